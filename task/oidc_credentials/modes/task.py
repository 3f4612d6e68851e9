"""The task mode: inputs -> OIDC token -> exchange -> variables, files and the post-job state.

This is what the pipeline step runs (``task/launcher.js`` with no mode, ``python -m oidc_credentials``).
Its boundary (:func:`~oidc_credentials.modes.boundary.run_in_agent`) speaks ``##vso`` to the agent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TextIO

from .. import __version__
from ..agent import AgentEnv
from ..emit import RunRecord, emit
from ..providers import Context, Outcome, load
from ..state import TASK_VARIABLE, PostState, new_state_path, save
from ..vso import AgentOutput
from .boundary import FAILED, OK, run_in_agent

if TYPE_CHECKING:
    from ..http import Deadline

__all__ = ["FAILED", "OK", "main", "run"]


def _post_state(agent: AgentEnv, out: AgentOutput, provider: str, outcome: Outcome) -> Callable[[list[str]], None]:
    """What records the post-job state: called once the files are written, before any variable is set."""

    def keep(written: list[str]) -> None:
        state = PostState(files=list(written), post={provider: outcome.post} if outcome.post else {})
        if not state:
            return
        temp = agent.variable("Agent.TempDirectory")
        if not temp:
            out.debug("Agent.TempDirectory is not set: the post-job step will not clean up after this step.")
            return
        path = new_state_path(temp)
        save(state, path)
        out.command("task.settaskvariable", {"variable": TASK_VARIABLE}, path)

    return keep


#: input 'timeoutSeconds': the whole task's deadline, after which it fails naming the service that stalled
DEFAULT_TIMEOUT = 120


def task_deadline(agent: AgentEnv) -> Deadline:
    """The step's deadline from input 'timeoutSeconds', counted from now."""
    from ..http import Deadline

    return Deadline.after(agent.int_input("timeoutSeconds", default=DEFAULT_TIMEOUT, low=10, high=3600))


def run(agent: AgentEnv, out: AgentOutput, record: RunRecord | None = None) -> None:
    from ..http import Http
    from ..oidc import TokenSource

    deadline = task_deadline(agent)
    record = record if record is not None else RunRecord()
    record.version = __version__
    with record.phase("configure"):
        provider_name = agent.input("provider", required=True)
        record.provider = provider_name.strip().lower()
        provider = load(provider_name)
        out.info(f"OidcCredentials {__version__}: provider {provider_name}")
        connection_id = agent.connection_id(provider.CONNECTION_INPUT)
        record.connection_id = connection_id
        endpoint = agent.endpoint(connection_id, input_name=provider.CONNECTION_INPUT)
        config = provider.configure(agent, endpoint)
        publish = agent.bool_input("publishOutputVariables")

    def log_claims(claims: object) -> None:
        from ..oidc import Claims

        if isinstance(claims, Claims):
            record.note_claims(claims)
            if tokens.calls == 1:
                out.info(f"OIDC token for service connection {connection_id}:")
                out.lines(claims.describe(time.time()))

    with record.phase("exchange"):
        http = Http(agent.raw, log=out.info, user_agent=f"OidcCredentials/{__version__}", deadline=deadline)
        try:
            tokens = TokenSource.from_agent(agent, connection_id, http, on_token=out.set_secret, on_claims=log_claims)
            ctx = Context(agent=agent, http=http, log=out.info, warn=out.warning)
            outcome = provider.exchange(config, tokens, ctx)
        finally:
            http.close()
    with record.phase("emit"):
        emit(
            outcome,
            out,
            publish_outputs=publish,
            record=record,
            keep=_post_state(agent, out, record.provider, outcome),
        )
    if outcome.identity:
        out.info(
            f"{provider.TITLE} identity: {outcome.identity}"
            + (f" (expires {outcome.expires})" if outcome.expires else "")
        )
    out.lines(outcome.notes)


def main(
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    *,
    record: RunRecord | None = None,
) -> int:
    """Run the task; ``record`` (when given) receives the run's facts, success or failure."""
    facts = record if record is not None else RunRecord()
    return run_in_agent(lambda agent, out: run(agent, out, facts), env, stdout, stderr, on_failure=facts.fail)


def launch(argv: list[str]) -> int:
    """The launcher's entry (no arguments: the agent passes everything in the environment)."""
    return main()
