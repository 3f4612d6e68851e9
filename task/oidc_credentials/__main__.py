"""Composition root: inputs -> OIDC token -> exchange -> variables, behind the one exception boundary."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
import traceback
import warnings
from collections.abc import Mapping
from typing import TextIO

from . import __version__
from .agent import AgentEnv
from .errors import ConfigError, TaskError
from .files import write_private
from .providers import Context, Outcome, load
from .vso import AgentOutput, NeutralisingStream, check_variable_name

OK = 0
FAILED = 1


def _check(outcome: Outcome) -> None:
    """Refuse the whole outcome before anything is emitted: no half-set state."""
    seen: set[str] = set()
    for var in outcome.variables:
        why = check_variable_name(var.name, allow_dash=var.verbatim)
        if why:
            raise ConfigError(f"Cannot set variable '{var.name}': {why}.")
        if var.name.upper() in seen:
            raise ConfigError(f"Two values were produced for variable '{var.name}'.")
        seen.add(var.name.upper())
        if var.secret and ("\n" in var.value or "\r" in var.value):
            raise ConfigError(
                f"The value for secret variable '{var.name}' spans several lines, which the agent refuses."
            )


def emit(outcome: Outcome, out: AgentOutput, *, publish_outputs: bool) -> None:
    _check(outcome)
    for var in outcome.variables:
        if var.secret:
            out.set_secret(var.value)
    for value in outcome.secrets:
        out.set_secret(value)
    written: list[str] = []
    try:
        for file in outcome.files:
            write_private(file.path, file.content)
            written.append(file.path)
    except TaskError:
        for path in written:  # all files or none, like the variables
            with contextlib.suppress(OSError):
                os.remove(path)
        raise
    for var in outcome.variables:
        out.set_variable(var.name, var.value, secret=var.secret)
        if publish_outputs:
            out.set_variable(var.name, var.value, secret=var.secret, output=True)
    secret = [v.name for v in outcome.variables if v.secret]
    plain = [v.name for v in outcome.variables if not v.secret]
    if secret:
        out.info("Secret variables: " + ", ".join(secret))
    if plain:
        out.info("Variables: " + ", ".join(plain))
    if secret:
        out.info(
            "Secret variables reach a later script only when mapped, e.g. env: { "
            + ", ".join(f"{re.sub(r'[^A-Za-z0-9_]', '_', n).upper()}: $({n})" for n in secret[:3])
            + (", ..." if len(secret) > 3 else "")
            + " }"
        )
    if publish_outputs:
        out.info("Also published as output variables: reference them as <step name>.<NAME> from later jobs.")


def run(agent: AgentEnv, out: AgentOutput) -> None:
    from .http import Http
    from .oidc import TokenSource

    provider_name = agent.input("provider", required=True)
    provider = load(provider_name)
    out.info(f"OidcCredentials {__version__}: provider {provider_name}")
    connection_id = agent.connection_id(provider.CONNECTION_INPUT)
    endpoint = agent.endpoint(connection_id, input_name=provider.CONNECTION_INPUT)
    config = provider.configure(agent, endpoint)
    publish = agent.bool_input("publishOutputVariables")

    def log_claims(claims: object) -> None:
        from .oidc import Claims

        if isinstance(claims, Claims) and tokens.calls == 1:
            out.info(f"OIDC token for service connection {connection_id}:")
            out.lines(claims.describe(time.time()))

    http = Http(agent.raw, log=out.info, user_agent=f"OidcCredentials/{__version__}")
    try:
        tokens = TokenSource.from_agent(agent, connection_id, http, on_token=out.set_secret, on_claims=log_claims)
        ctx = Context(agent=agent, http=http, log=out.info, warn=out.warning)
        outcome = provider.exchange(config, tokens, ctx)
    finally:
        http.close()
    emit(outcome, out, publish_outputs=publish)
    if outcome.identity:
        out.info(
            f"{provider.TITLE} identity: {outcome.identity}"
            + (f" (expires {outcome.expires})" if outcome.expires else "")
        )
    out.lines(outcome.notes)


def main(env: Mapping[str, str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    agent = AgentEnv(os.environ if env is None else env)
    out = AgentOutput(stdout or sys.stdout, debug=agent.debug)
    real_stderr = stderr or sys.stderr
    guarded = NeutralisingStream(out, real_stderr)
    previous = sys.stderr
    sys.stderr = guarded
    handler = logging.StreamHandler(guarded)
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if agent.debug else logging.WARNING)
    logging.captureWarnings(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            run(agent, out)
        return OK
    except TaskError as exc:
        out.error(exc.message)
        if agent.debug:
            out.debug(traceback.format_exc())
        out.complete("Failed", exc.message.split("\n", 1)[0])
        return FAILED
    except ImportError as exc:
        message = (
            f"OidcCredentials could not load its Python dependency '{exc.name or exc}' with {sys.executable}. Use the "
            "packaged task, or install the dependencies for this interpreter: pip install oidc-credentials."
        )
        out.error(message)
        out.complete("Failed", message)
        return FAILED
    except Exception as exc:  # the one boundary: anything else is our bug, reported without a traceback
        message = f"Unexpected {type(exc).__name__}: {exc}. Set System.Debug to true for details and report this."
        out.error(message)
        if agent.debug:
            out.debug(traceback.format_exc())
        out.complete("Failed", message)
        return FAILED
    finally:
        guarded.flush()
        logging.captureWarnings(False)
        root.removeHandler(handler)
        root.setLevel(previous_level)
        sys.stderr = previous


if __name__ == "__main__":
    sys.exit(main())
