"""The ``##vso`` exception boundary shared by the task and its post-job step.

Everything a mode does runs inside :func:`run_in_agent`: stderr and logging are routed through a stream
that neutralises logging commands, a :class:`~oidc_credentials.errors.TaskError` becomes one error issue
and a failed result, a missing dependency says how to install it, and anything else is reported as our bug
without a traceback (with one in the debug log when ``System.Debug`` is true). It never raises.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Mapping
from typing import TextIO

from .. import LIMITED_DEPENDENCIES, install_hint, missing_compiled
from ..agent import AgentEnv
from ..errors import TaskError
from ..vso import AgentOutput, NeutralisingStream

OK = 0
FAILED = 1


def missing_build(exc: ImportError) -> str:
    """The one error for a provider that needs compiled code on an agent with no bundled build of it ("" when
    that is not the cause): what is missing, what does run here, and the fix."""
    dist = missing_compiled(exc.name or "")
    if not dist:
        return ""
    facts = LIMITED_DEPENDENCIES
    python = str(facts.get("python") or sys.executable)
    return (
        f"This provider needs {dist}, which has compiled code, and the task bundles that only for "
        f"{facts.get('supported')}; this agent runs {facts.get('agent')}. The providers that need no compiled "
        f"code (AWS, Google Cloud, Vault) run here; Azure and Key Vault need azure-identity, which needs {dist}. "
        "Fix: run this step on one of those platforms (on a hosted agent, add a UsePythonVersion@0 step with "
        f"versionSpec '3.12' before it), or install the dependencies into this Python ({install_hint(python)}) "
        f"and set the pipeline variable OIDC_CREDENTIALS_PYTHON to {python}."
    )


def run_in_agent(
    work: Callable[[AgentEnv, AgentOutput], None],
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    *,
    on_failure: Callable[[BaseException], None] | None = None,
) -> int:
    """Run ``work`` behind the one boundary; ``on_failure`` sees the exception before it is reported."""
    agent = AgentEnv(os.environ if env is None else env)
    out = AgentOutput(stdout or sys.stdout, debug=agent.debug)
    from ..http import proxy_secrets  # the proxy password, registered before anything could print it

    for value in proxy_secrets(agent.raw):
        out.set_secret(value)
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
            work(agent, out)
        return OK
    except TaskError as exc:
        if on_failure:
            on_failure(exc)
        out.error(exc.message)
        if agent.debug:
            out.debug(traceback.format_exc())
        out.complete("Failed", exc.message.split("\n", 1)[0])
        return FAILED
    except ImportError as exc:
        if on_failure:
            on_failure(exc)
        message = missing_build(exc) or (
            f"OidcCredentials could not load its Python dependency '{exc.name or exc}' with {sys.executable}. Use the "
            f"packaged task, or install the dependencies for this interpreter: {install_hint(sys.executable)}."
        )
        out.error(message)
        out.complete("Failed", message)
        return FAILED
    except Exception as exc:  # the one boundary: anything else is our bug, reported without a traceback
        if on_failure:
            on_failure(exc)
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
