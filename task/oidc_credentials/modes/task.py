"""The task mode: inputs -> OIDC token -> exchange -> variables, files and the post-job state.

This is what the pipeline step runs (``task/launcher.js`` with no mode, ``python -m oidc_credentials``).
Its boundary (:func:`~oidc_credentials.modes.boundary.run_in_agent`) speaks ``##vso`` to the agent.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TextIO

from .. import __version__
from ..agent import AgentEnv
from ..emit import RunRecord, emit
from ..errors import ExchangeError
from ..providers import Context, Outcome, load
from ..state import TASK_VARIABLE, PostState, new_state_path, save
from ..vso import AgentOutput
from .boundary import FAILED, OK, run_in_agent

if TYPE_CHECKING:
    from ..audit import AuditTrail
    from ..http import Deadline
    from ..oidc import Claims

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
        save(state, path, root=temp)
        out.command("task.settaskvariable", {"variable": TASK_VARIABLE}, path)

    return keep


#: input 'timeoutSeconds': the whole task's deadline, after which it fails naming the service that stalled
DEFAULT_TIMEOUT = 120


def task_deadline(agent: AgentEnv) -> Deadline:
    """The step's deadline from input 'timeoutSeconds', counted from now."""
    from ..http import Deadline

    return Deadline.after(agent.int_input("timeoutSeconds", default=DEFAULT_TIMEOUT, low=10, high=3600))


def run(agent: AgentEnv, out: AgentOutput, record: RunRecord | None = None) -> None:
    """The run, then (success or failure) its summary and audit record."""
    from ..audit import AuditTrail
    from ..http import observed

    record = record if record is not None else RunRecord()
    record.version = __version__
    trail = AuditTrail(record, agent, __version__)
    try:
        with observed(trail):
            _run(agent, out, record, trail)
    except BaseException as exc:
        if isinstance(exc, ExchangeError):
            from ..catalogue import annotate

            annotate(exc)
        record.fail(exc)
        raise
    finally:
        _publish(agent, out, record)


def _run(agent: AgentEnv, out: AgentOutput, record: RunRecord, trail: AuditTrail) -> None:
    from .. import preflight
    from ..http import Http
    from ..oidc import TokenSource

    deadline = task_deadline(agent)
    with record.phase("configure"):
        provider_name = agent.input("provider", required=True)
        record.provider = provider_name.strip().lower()
        provider = load(provider_name)
        for module in getattr(provider, "COMPILED_IMPORTS", ()):  # on an agent without them: one error, now
            importlib.import_module(module)
        out.info(f"OidcCredentials {__version__}: provider {provider_name}")
        expect = preflight.read(agent)
        connection_id = agent.connection_id(provider.CONNECTION_INPUT)
        record.connection_id = connection_id
        endpoint = agent.endpoint(connection_id, input_name=provider.CONNECTION_INPUT)
        preflight.check_connection(expect, agent, endpoint, record.provider)
        config = provider.configure(agent, endpoint)
        publish = agent.bool_input("publishOutputVariables")
        session_name = getattr(config, "session_name", "")
        if isinstance(session_name, str) and session_name:
            record.correlation["aws_session_name"] = session_name

    def log_claims(claims: object) -> None:
        from ..oidc import Claims

        if isinstance(claims, Claims):
            record.note_claims(claims)
            trail.on_claims(claims)
            if tokens.calls == 1:
                out.info(f"OIDC token for service connection {connection_id}:")
                out.lines(claims.describe(time.time()))
                _warn_issuer_retirement(agent, out, record, config, claims)
                if expect:
                    preflight.check_claims(expect, claims, provider.TITLE)
                    out.info("Pre-flight: the token matches every expect* input.")

    def on_token(token: str) -> None:
        out.set_secret(token)
        trail.on_token(token)

    with record.phase("exchange"):
        http = Http(agent.raw, log=out.info, user_agent=trail.user_agent, deadline=deadline)
        out.hide(agent.access_token())  # a service may echo it back in an error body
        try:
            tokens = TokenSource.from_agent(agent, connection_id, http, on_token=on_token, on_claims=log_claims)
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
            root=agent.variable("Agent.TempDirectory"),
        )
    if outcome.identity:
        out.info(
            f"{provider.TITLE} identity: {outcome.identity}"
            + (f" (expires {outcome.expires})" if outcome.expires else "")
        )
    out.lines(outcome.notes)


#: when Microsoft retires the Azure DevOps issuer for Azure (public cloud) workload identity federation
ISSUER_RETIREMENT = "2027-07-01"


def _warn_issuer_retirement(
    agent: AgentEnv, out: AgentOutput, record: RunRecord, config: object, claims: Claims
) -> None:
    """An Azure connection on the Azure DevOps issuer stops working on the retirement date: say so, with the fix."""
    import shlex

    if record.provider not in ("azure", "keyvault") or claims.issuer_kind != "Azure DevOps issuer, vstoken":
        return
    connection = getattr(config, "connection", None)
    cloud = getattr(getattr(connection, "cloud", None), "name", "AzureCloud")
    if cloud != "AzureCloud":  # sovereign clouds keep the Azure DevOps issuer
        return
    parts = claims.sub.split("/")  # sc://<organisation>/<project>/<connection>
    project = agent.variable("System.TeamProject") or (parts[3] if len(parts) > 4 else "<project>")
    name = parts[4] if len(parts) > 4 else "<connection>"
    org = agent.variable("System.CollectionUri") or "<organisation URL>"
    app = getattr(connection, "client_id", "") or "<app id>"
    where = f"--org {shlex.quote(org)} --project {shlex.quote(project)}"
    text = (
        f"This Azure connection still uses the Azure DevOps issuer ({claims.iss}), which Microsoft retires for Azure "
        f"public-cloud connections on {ISSUER_RETIREMENT}; from then on Entra ID refuses its tokens. Before then, add "
        f"the Entra-issuer federated credential next to the current one (oidc-credentials trust azure {where} "
        f"--connection {shlex.quote(name)} --dual-issuer --format az --app-id {app}), then convert the connection "
        f"(Project settings > Service connections > the connection > Convert); oidc-credentials doctor {where} "
        "checks every connection of the project."
    )
    record.notices.append(text)
    out.warning(text)


def _publish(agent: AgentEnv, out: AgentOutput, record: RunRecord) -> None:
    """Write the run summary (uploaded to the Extensions tab) and the audit record; never fails the run."""
    from .. import audit, summary

    temp = agent.variable("Agent.TempDirectory")
    if not temp:
        out.debug("Agent.TempDirectory is not set: no run summary or audit record.")
        return
    try:
        out.upload_summary(summary.write(record, temp, out.redact))
    except ImportError as exc:
        from .. import missing_compiled

        if not missing_compiled(exc.name or ""):
            out.warning(f"Could not write the run summary: {type(exc).__name__}: {exc}")
        else:  # an agent with no bundled build: jinja2 needs MarkupSafe's, and the run itself is fine
            out.debug(f"No run summary: it needs {missing_compiled(exc.name or '')}, not bundled for this agent.")
    except Exception as exc:  # the summary must never hide the run's own result
        out.warning(f"Could not write the run summary: {type(exc).__name__}: {exc}")
    try:
        path = audit.write(audit.document(record, out.redact), temp, record.provider)
        out.info(f"Audit record: {path}")
        if agent.bool_input("publishAuditRecord"):
            name = agent.input("auditArtifactName") or f"oidc-credentials-audit-{record.run_uid[:12]}"
            out.upload_artifact(path, name)
    except Exception as exc:
        out.warning(f"Could not write the audit record: {type(exc).__name__}: {exc}")


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
