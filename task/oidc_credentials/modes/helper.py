"""The credential-helper mode: what an SDK runs in a later step to get credentials. Never ``##vso``.

``launcher.js helper <format>`` (or ``entry.py helper <format>``) answers in the calling SDK's own
format on stdout; a failure is that format's error plus one plain line on stderr, exit code 1.

- ``aws``: botocore's ``credential_process`` (``{"Version": 1, "AccessKeyId": ..., "SecretAccessKey":
  ..., "SessionToken": ..., "Expiration": ...}``). Its error is a non-zero exit with the reason on stderr,
  which botocore raises as ``CredentialRetrievalError``; it reads no JSON on failure, so none is printed.

Helpers are not configured by the task yet: each answers "not configured" through this boundary.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import TaskError
from ..vso import neutralise

if TYPE_CHECKING:
    from ..providers.aws import AwsCredentials

OK = 0
FAILED = 1


class NotConfigured(TaskError):
    """The helper has nothing to answer with: the task did not set it up for this job."""

    kind = "not-configured"


@dataclass(frozen=True)
class Format:
    """One SDK's helper protocol: how success and failure look on stdout."""

    name: str
    #: stdout text for a failure (None: the format reads nothing on failure)
    error: Callable[[TaskError], str | None]


def aws_process_json(creds: AwsCredentials) -> str:
    """Credentials as botocore's ``credential_process`` reads them."""
    body: dict[str, Any] = {
        "Version": 1,
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key,
        "SessionToken": creds.session_token,
    }
    if creds.expiration:
        body["Expiration"] = creds.expiration
    return json.dumps(body)


def _aws(argv: list[str]) -> str:
    raise NotConfigured("the AWS credential helper is not configured for this job: no credentials were recorded for it")


#: format -> (how to answer, its protocol)
HELPERS: dict[str, tuple[Callable[[list[str]], str], Format]] = {
    "aws": (_aws, Format("aws", error=lambda exc: None)),
}


def _line(text: str) -> str:
    return neutralise(" ".join(text.split()))


def main(argv: list[str], stdout: TextIO | None = None, stderr: TextIO | None = None, *, debug: bool = False) -> int:
    """``helper <format> [args]``: the answer on stdout, or the format's error and one line on stderr."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    if not argv or argv[0] not in HELPERS:
        got = f"'{argv[0]}'" if argv else "none"
        err.write(_line(f"oidc-credentials helper: error: expected a format ({', '.join(HELPERS)}), got {got}") + "\n")
        return 2
    answer, protocol = HELPERS[argv[0]]
    try:
        text = answer(argv[1:])
    except TaskError as exc:
        failure = protocol.error(exc)
        if failure is not None:
            out.write(failure + "\n")
        err.write(_line(f"oidc-credentials helper {protocol.name}: error: {exc.message}") + "\n")
        return FAILED
    except Exception as exc:  # our bug: one line, a traceback only when asked for
        err.write(_line(f"oidc-credentials helper {protocol.name}: unexpected {type(exc).__name__}: {exc}") + "\n")
        if debug:
            err.write(neutralise(traceback.format_exc()))
        return FAILED
    out.write(text + "\n")
    out.flush()
    return OK


def launch(argv: list[str]) -> int:
    """The launcher's entry: ``helper <format> [args]``."""
    import os

    from ..agent import AgentEnv

    return main(argv, debug=AgentEnv(os.environ).debug)
