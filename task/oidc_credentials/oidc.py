"""The job's OIDC token: request it from Azure DevOps, decode its claims for the pre-flight log.

``POST {System.OidcRequestUri}?api-version=7.1&serviceConnectionId={guid}`` with the job access token
as a bearer token; the answer is ``{"oidcToken": "<JWT>"}``. The token lives five to ten minutes and is
minted per call, so it is requested right before each exchange (:class:`TokenSource` is a callable).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from .agent import GUID, AgentEnv
from .errors import ConfigError, ExchangeError
from .http import Http, Response

SERVICE = "Azure DevOps"
API_VERSION = "7.1"
ENTRA_HOSTS = (
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "login.partner.microsoftonline.cn",
)
VSTOKEN_HOST = "vstoken.dev.azure.com"
# Organisations reached under either name belong to the same service.
_ADO_FAMILY = ("dev.azure.com", ".visualstudio.com")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")

_CLASSIC_HINT = (
    "In a classic pipeline, enable 'Allow scripts to access the OAuth token' on the agent job; in YAML the "
    "token is always there. Check also that the job authorization scope (project or collection) can read "
    "this project, and that the job has not outlived its access token."
)


@dataclass(frozen=True)
class Claims:
    """The parts of the OIDC token a trust configuration is written against."""

    iss: str
    sub: str
    aud: str
    exp: int
    iat: int = 0
    jti: str = ""
    kid: str = ""
    alg: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def issuer_kind(self) -> str:
        host = urlsplit(self.iss).hostname or ""
        if host == VSTOKEN_HOST:
            return "Azure DevOps issuer, vstoken"
        if host in ENTRA_HOSTS:
            return "Microsoft Entra issuer"
        return "unrecognised issuer"

    @property
    def issuer_id(self) -> str:
        """The issuer without its scheme: the prefix of AWS condition keys (``vstoken.dev.azure.com/<org>``)."""
        return self.iss.split("://", 1)[-1].rstrip("/")

    def expires_in(self, now: float) -> int:
        return int(self.exp - now)

    def describe(self, now: float) -> list[str]:
        expiry = (
            dt.datetime.fromtimestamp(self.exp, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if self.exp else "?"
        )
        return [
            f"  issuer    {self.iss} ({self.issuer_kind})",
            f"  subject   {self.sub}",
            f"  audience  {self.aud}",
            f"  expires   {expiry} (in {self.expires_in(now)} s)",
        ]


def decode_claims(token: str) -> Claims:
    """Decode the JWT without checking its signature (the cloud checks it); never print the token."""
    import jwt  # lazy

    try:
        header = jwt.get_unverified_header(token)
        payload = jwt.decode(token, options={"verify_signature": False, "verify_exp": False, "verify_aud": False})
    except jwt.PyJWTError as exc:
        raise ExchangeError(
            f"{SERVICE} returned an OIDC token that is not a valid JWT ({type(exc).__name__}).", service=SERVICE
        ) from exc
    aud = payload.get("aud", "")
    return Claims(
        iss=str(payload.get("iss", "")),
        sub=str(payload.get("sub", "")),
        aud=", ".join(map(str, aud)) if isinstance(aud, list) else str(aud),
        exp=int(payload.get("exp") or 0),
        iat=int(payload.get("iat") or 0),
        jti=str(payload.get("jti", "")),
        kid=str(header.get("kid", "")),
        alg=str(header.get("alg", "")),
        raw=payload,
    )


def _same_service(request_host: str, collection_host: str) -> bool:
    if request_host == collection_host:
        return True

    def family(host: str) -> bool:
        return host == _ADO_FAMILY[0] or host.endswith(_ADO_FAMILY[1])

    return family(request_host) and family(collection_host)


def request_url(agent: AgentEnv, connection_id: str) -> str:
    """Where to ask for the token; refuses any host but the collection's (the access token goes there)."""
    if not GUID.match(connection_id):
        raise ConfigError(f"Service connection id '{connection_id}' is not a GUID.")
    collection = agent.variable("System.CollectionUri") or agent.variable("System.TeamFoundationCollectionUri")
    if not collection:
        raise ConfigError(
            "SYSTEM_COLLECTIONURI is not set, so this does not look like an Azure Pipelines job. The task needs "
            "the variables the agent passes to every task (System.CollectionUri, System.OidcRequestUri)."
        )
    base = agent.variable("System.OidcRequestUri").strip()
    if not base:
        parts = {
            "System.TeamProjectId": agent.variable("System.TeamProjectId"),
            "System.HostType": agent.variable("System.HostType"),
            "System.PlanId": agent.variable("System.PlanId"),
            "System.JobId": agent.variable("System.JobId"),
        }
        missing = [name for name, value in parts.items() if not value]
        if missing:
            raise ConfigError(
                "System.OidcRequestUri is not set and it cannot be built because "
                + ", ".join(missing)
                + " is missing. The agent sets these in every job; an agent older than 2024 (Sprint 240) lacks "
                "System.OidcRequestUri: update the agent."
            )
        base = (
            f"{collection.rstrip('/')}/{quote(parts['System.TeamProjectId'])}/_apis/distributedtask/hubs/"
            f"{quote(parts['System.HostType'])}/plans/{quote(parts['System.PlanId'])}/jobs/"
            f"{quote(parts['System.JobId'])}/oidctoken"
        )
    req, col = urlsplit(base), urlsplit(collection)
    req_host, col_host = (req.hostname or "").lower(), (col.hostname or "").lower()
    if not _same_service(req_host, col_host) or (req.port or 0) != (col.port or 0) or req.scheme != col.scheme:
        raise ConfigError(
            f"Refusing to send the job access token to {req.scheme}://{req.netloc}: the OIDC request URL must be on "
            f"the collection's host ({col.scheme}://{col.netloc}, from System.CollectionUri). Something has "
            "overridden System.OidcRequestUri; remove that variable from the pipeline."
        )
    if req.scheme != "https" and req_host not in _LOOPBACK:
        raise ConfigError(
            f"Refusing to send the job access token over {req.scheme}: the OIDC request URL must be https."
        )
    return f"{base.rstrip('/')}?api-version={API_VERSION}&serviceConnectionId={connection_id}"


def _explain(resp: Response, connection_id: str, connection_label: str) -> ExchangeError:
    body = resp.text or ""
    location = resp.header("Location")
    what = (
        f"service connection {connection_label} ({connection_id})"
        if connection_label
        else f"service connection {connection_id}"
    )
    if "no explicit reference" in body.lower():
        return ExchangeError(
            f"{SERVICE} will not issue a token for {what}; it says (HTTP {resp.status}): {_service_message(resp)}\n"
            "The connection is not referenced from this stage. Fix: choose the connection in this task's connection "
            "input (by name, not passed in a variable or as a plain string), and authorise this pipeline to use it "
            "(Project settings > Service connections > the connection > Security > Pipeline permissions).",
            service=SERVICE,
            status=resp.status,
            code="NoExplicitReference",
        )
    if resp.status in (401, 403) or "TF400813" in body or "_signin" in location or (300 <= resp.status < 400):
        return ExchangeError(
            f"{SERVICE} rejected the job access token when asked for an OIDC token (HTTP {resp.status}"
            + (", redirected to sign-in" if location else "")
            + f"). {_CLASSIC_HINT}",
            service=SERVICE,
            status=resp.status,
            code="AccessTokenRejected",
        )
    if resp.status == 404:
        return ExchangeError(
            f"{SERVICE} answered Not Found for an OIDC token for {what}. The connection must exist in this project, be "
            "referenced by this task's connection input, and the pipeline must be authorised to use it "
            "(Project settings > Service connections > Security > Pipeline permissions).",
            service=SERVICE,
            status=404,
            code="NotFound",
        )
    return ExchangeError(
        f"{SERVICE} refused the OIDC token request for {what}: HTTP {resp.status}: {resp.snippet() or '[no body]'}",
        service=SERVICE,
        status=resp.status,
    )


def _service_message(resp: Response) -> str:
    """The sentence an Azure DevOps error carries (``{"message": ...}``, or ``{"value": ...}``), not its JSON."""
    body = resp.json()
    if isinstance(body, dict):
        for key in ("message", "value"):
            if isinstance(body.get(key), str) and body[key].strip():
                return " ".join(body[key].split())
    return resp.snippet(300)


class TokenSource:
    """A callable that asks Azure DevOps for a fresh OIDC token for one service connection."""

    def __init__(
        self,
        *,
        url: str,
        access_token: str,
        connection_id: str,
        http: Http,
        connection_label: str = "",
        on_token: Callable[[str], None] = lambda _t: None,
        on_claims: Callable[[Claims], None] = lambda _c: None,
    ) -> None:
        self._url = url
        self._access_token = access_token
        self._connection_id = connection_id
        self._label = connection_label
        self._http = http
        self._on_token = on_token
        self._on_claims = on_claims
        self.calls = 0
        self.last_claims: Claims | None = None

    @classmethod
    def from_agent(
        cls,
        agent: AgentEnv,
        connection_id: str,
        http: Http,
        *,
        label: str = "",
        on_token: Callable[[str], None] = lambda _t: None,
        on_claims: Callable[[Claims], None] = lambda _c: None,
    ) -> TokenSource:
        token = agent.access_token()
        if not token:
            raise ConfigError(
                "No job access token: neither the SystemVssConnection endpoint nor System.AccessToken reached the "
                f"task. {_CLASSIC_HINT}"
            )
        return cls(
            url=request_url(agent, connection_id),
            access_token=token,
            connection_id=connection_id,
            http=http,
            connection_label=label,
            on_token=on_token,
            on_claims=on_claims,
        )

    def __call__(self) -> str:
        self.calls += 1
        resp = self._http.request(
            "POST",
            self._url,
            service=SERVICE,
            headers={
                "Authorization": f"Bearer {self._access_token}",
                "Content-Type": "application/json",
                "X-TFS-FedAuthRedirect": "Suppress",
            },
        )
        if resp.status != 200:
            raise _explain(resp, self._connection_id, self._label)
        body = resp.json()
        token = body.get("oidcToken") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ExchangeError(
                # Only the field names: the body may hold a token under another name.
                f"{SERVICE} answered HTTP 200 but without an oidcToken (fields: "
                + (", ".join(map(str, body)) if isinstance(body, dict) else "none, not a JSON object")
                + ").",
                service=SERVICE,
                status=200,
            )
        self._on_token(token)
        claims = decode_claims(token)
        if claims.sub.startswith("p://"):
            raise ConfigError(
                f"{SERVICE} returned the pipeline's own token (subject {claims.sub}) instead of one for service "
                f"connection {self._connection_id}: the connection id was not recognised. Pick the connection in "
                "the task's connection input."
            )
        self.last_claims = claims
        self._on_claims(claims)
        return token
