"""The credential-helper mode: what an SDK runs in a later step to get credentials. Never ``##vso``.

``entry.py helper <format> <helper.json>`` (what the task writes into the SDK's config) answers in the
calling SDK's own format on stdout; a failure is that format's error plus one plain line on stderr, exit
code 1.

- ``aws``: botocore's ``credential_process`` (``{"Version": 1, "AccessKeyId": ..., "SecretAccessKey":
  ..., "SessionToken": ..., "Expiration": ...}``). Its error is a non-zero exit with the reason on stderr,
  which botocore raises as ``CredentialRetrievalError``; it reads no JSON on failure, so none is printed.
- ``gcp``: google-auth's executable source (``{"version": 1, "success": true, "token_type":
  "urn:ietf:params:oauth:token-type:jwt", "id_token": ..., "expiration_time": ...}``): the Azure DevOps
  OIDC token, which google-auth and gcloud exchange themselves. Its error is ``{"version": 1, "success":
  false, "code": ..., "message": ...}`` and a non-zero exit. With ``output_file`` set, google-auth passes
  ``GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE`` and the helper writes the answer there too (only to that file of
  its own folder), so other processes reuse it without starting the helper.

The answer comes from the helper's cache (:mod:`oidc_credentials.refresh`) while it is fresh: that warm path
imports only the standard library. Near expiry one helper (under a file lock) asks Azure DevOps for a fresh
OIDC token with the job access token (``SYSTEM_ACCESSTOKEN`` from the step's environment, or the file the
task wrote when ``storeAccessToken`` is true) and exchanges it again.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from .. import refresh
from ..errors import TaskError
from ..vso import neutralise

if TYPE_CHECKING:
    from ..errors import ExchangeError
    from ..http import Http
    from ..oidc import TokenSource
    from ..providers.aws import AwsCredentials

T = TypeVar("T")

OK = 0
FAILED = 1
CONFIG_FORMAT = 1
#: seconds a refresh may take in all (google-auth stops an executable after its timeout_millis, 60 s)
DEADLINE = 50.0
ADO_SERVICE = "Azure DevOps"


class NotConfigured(TaskError):
    """The helper has nothing to answer with: the task did not set it up for this job."""

    kind = "not-configured"


class Format:
    """One SDK's helper protocol: how success and failure look on stdout."""

    __slots__ = ("error", "name")

    def __init__(self, name: str, error: Callable[[TaskError], str | None]) -> None:
        self.name = name
        #: stdout text for a failure (None: the format reads nothing on failure)
        self.error = error


def aws_process_json(creds: AwsCredentials) -> str:
    """Credentials as botocore's ``credential_process`` reads them."""
    from ..providers.aws import process_answer

    return json.dumps({"Version": 1, **process_answer(creds)})


# -- the helper's folder -----------------------------------------------------------------------------
def load_config(path: str, provider: str) -> dict[str, Any]:
    """``helper.json`` as the task wrote it; refused unless it is a private file of this user."""
    text = refresh.read_private(path)
    if text is None:
        raise NotConfigured(
            f"the helper's config {path} does not exist: the job that wrote it has ended (its post-job step deletes it) "
            "or the path in the SDK's config is wrong"
        )
    try:
        data = json.loads(text)
        ok = data["format"] == CONFIG_FORMAT and data["provider"] == provider and isinstance(data["settings"], dict)
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise TaskError(f"the helper's config {path} is corrupted or not a {provider} helper config of this version")
    return dict(data)


def access_token(folder: str, env: dict[str, str] | os._Environ[str]) -> str:
    """The job access token: the step's SYSTEM_ACCESSTOKEN, else the file the task wrote on request."""
    token = (env.get(refresh.ACCESS_TOKEN_ENV) or "").strip()
    if not token:
        token = (refresh.read_private(os.path.join(folder, refresh.TOKEN_FILE)) or "").strip()
    if not token:
        raise TaskError(
            f"refreshing the credentials needs the job access token, which this step lacks: add "
            f"`{refresh.ENV_MAPPING}` to this step's env: (or set the task input storeAccessToken: true)"
        )
    if token.startswith("$("):
        raise TaskError(
            f"{refresh.ACCESS_TOKEN_ENV} holds the unexpanded text {token[:24]!r} instead of the job access token: map "
            f"exactly `{refresh.ENV_MAPPING}` (in a classic pipeline, also enable 'Allow scripts to access the OAuth "
            "token')"
        )
    return token


def ceiling(exc: ExchangeError) -> TaskError | None:
    """The one line for a job access token Azure DevOps no longer accepts (the ~24-hour ceiling)."""
    if exc.service != ADO_SERVICE or not (exc.status in (203, 302, 401) or exc.code == "AccessTokenRejected"):
        return None
    return TaskError(
        f"Azure DevOps no longer accepts this job's access token (HTTP {exc.status}): it stops working about 24 hours "
        "after the job starts (or when it is revoked), and credentials cannot be refreshed beyond that; split the work "
        "into jobs that each finish sooner"
    )


def _warn(message: str) -> None:
    sys.stderr.write(_line(f"oidc-credentials helper: {message}") + "\n")


def exchange_with_fresh_token(config: dict[str, Any], folder: str, use: Callable[[TokenSource, Http], T]) -> T:
    """Run ``use`` with a source of fresh OIDC tokens (the cold path: imports requests and pyjwt).

    A job access token Azure DevOps no longer accepts becomes the one line about the 24-hour ceiling.
    """
    from .. import __version__
    from ..agent import AgentEnv
    from ..errors import ExchangeError
    from ..http import Deadline, Http
    from ..oidc import TokenSource, request_url

    token = access_token(folder, os.environ)
    agent = AgentEnv({str(k): str(v) for k, v in (config.get("agent") or {}).items()})
    connection = str(config["connection_id"])
    http = Http(os.environ, user_agent=f"OidcCredentials/{__version__} helper", deadline=Deadline.after(DEADLINE))
    try:
        tokens = TokenSource(
            url=request_url(agent, connection), access_token=token, connection_id=connection, http=http
        )
        return use(tokens, http)
    except ExchangeError as exc:
        raise (ceiling(exc) or exc) from exc
    finally:
        http.close()


def _refresh_aws(config: dict[str, Any], folder: str) -> refresh.Entry:
    """AssumeRoleWithWebIdentity again with a fresh OIDC token."""
    from ..providers import aws

    def assume(tokens: TokenSource, http: Http) -> refresh.Entry:
        creds = aws.assume_role(aws.from_settings(config["settings"]), tokens, http, warn=_warn)
        return aws.cache_entry(creds, time.time())

    return exchange_with_fresh_token(config, folder, assume)


def cached(
    path: str, provider: str, fetch: Callable[[dict[str, Any], str], refresh.Entry]
) -> tuple[refresh.Entry, str]:
    """The answer from the cache of the helper folder ``path`` is in, refreshed by ``fetch`` when due."""
    config = load_config(path, provider)
    folder = os.path.dirname(path)
    entry, _ = refresh.get(
        os.path.join(folder, refresh.CACHE), os.path.join(folder, refresh.LOCK), lambda: fetch(config, folder)
    )
    return entry, folder


def _aws(argv: list[str]) -> str:
    if not argv:
        raise NotConfigured(
            "the AWS credential helper is not configured for this job: no credentials were recorded for it"
        )
    entry, _ = cached(os.path.abspath(argv[0]), "aws", _refresh_aws)
    return json.dumps({"Version": 1, **entry.answer})


# -- gcp: google-auth's executable-sourced credentials (AIP-4117) ---------------------------------------
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
#: google-auth tells the executable where it may cache its answer; only this file of the folder is written
OUTPUT_FILE_ENV = "GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE"


def gcp_entry(token: str, expires: float, issued: float, now: float) -> refresh.Entry:
    """The executable response for an Azure DevOps OIDC token, as a cache entry.

    Its ``expiration_time`` (on this machine's clock, which google-auth compares it with) is the token's
    expiry less the refresh margin, and the cache hands the response out only while that time is still a
    margin away: neither google-auth, which reuses a response until then, nor the cache ever passes on a
    token in its last seconds.
    """
    cut = refresh.margin(expires - issued)
    entry = refresh.entry_from_expiry({}, expires - cut, now, server_time=issued)
    entry.expires_at = float(int(entry.expires_at))
    entry.answer = {
        "version": 1,
        "success": True,
        "token_type": JWT_TYPE,
        "id_token": token,
        "expiration_time": int(entry.expires_at),
    }
    return entry


def _refresh_gcp(config: dict[str, Any], folder: str) -> refresh.Entry:
    """A fresh Azure DevOps OIDC token: google-auth itself exchanges it (STS, impersonation)."""

    def fetch(tokens: TokenSource, _http: Http) -> refresh.Entry:
        subject = tokens()
        claims = tokens.last_claims
        if claims is None or not claims.exp:
            raise TaskError("Azure DevOps returned an OIDC token without an expiry")
        return gcp_entry(subject, float(claims.exp), float(claims.iat or 0), time.time())

    return exchange_with_fresh_token(config, folder, fetch)


def _gcp(argv: list[str]) -> str:
    if not argv:
        raise NotConfigured("the Google Cloud credential helper is not configured for this job")
    entry, folder = cached(os.path.abspath(argv[0]), "gcp", _refresh_gcp)
    text = json.dumps(entry.answer)
    output = os.environ.get(OUTPUT_FILE_ENV, "")
    if output and os.path.abspath(output) == os.path.join(folder, refresh.GCP_OUTPUT):
        refresh.write_text(os.path.join(folder, refresh.GCP_OUTPUT), text)
    return text


def _gcp_error(exc: TaskError) -> str:
    """google-auth's unsuccessful response: it reads stdout (stderr merged) when the exit code is not 0."""
    return json.dumps({"version": 1, "success": False, "code": exc.kind, "message": _line(exc.message)})


#: format -> (how to answer, its protocol)
HELPERS: dict[str, tuple[Callable[[list[str]], str], Format]] = {
    "aws": (_aws, Format("aws", error=lambda exc: None)),
    "gcp": (_gcp, Format("gcp", error=_gcp_error)),
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
            import traceback

            err.write(neutralise(traceback.format_exc()))
        return FAILED
    out.write(text + "\n")
    out.flush()
    return OK


def launch(argv: list[str]) -> int:
    """The launcher's entry: ``helper <format> [args]``."""
    return main(argv, debug=os.environ.get("SYSTEM_DEBUG", "").strip().lower() == "true")
