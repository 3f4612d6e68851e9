"""The job's OIDC token: request it from Azure DevOps, decode its claims for the pre-flight log.

``POST {System.OidcRequestUri}?api-version=7.1&serviceConnectionId={guid}`` with the job access token
as a bearer token; the answer is ``{"oidcToken": "<JWT>"}``. The token lives five to ten minutes and is
minted per call, so it is requested right before each exchange (:class:`TokenSource` is a callable).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from . import destination
from .agent import GUID, AgentEnv
from .destination import Origin, UnsafeDestination
from .errors import ConfigError, ExchangeError
from .http import Http, Response
from .text import iso_utc

SERVICE = "Azure DevOps"
API_VERSION = "7.1"
ENTRA_HOSTS = (
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "login.partner.microsoftonline.cn",
)
VSTOKEN_HOST = "vstoken.dev.azure.com"
ACCESS_TOKEN = "the job access token"  # noqa: S105 (a description, not a secret)

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
        expiry = iso_utc(self.exp) if self.exp else "?"
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
        exp=_time_claim(payload, "exp"),
        iat=_time_claim(payload, "iat"),
        jti=str(payload.get("jti", "")),
        kid=str(header.get("kid", "")),
        alg=str(header.get("alg", "")),
        raw=payload,
    )


#: the latest instant a claim may name (9999-12-31T23:59:59Z): later ones cannot be shown as dates
_MAX_TIME = 253402300799


def _time_claim(payload: dict[str, Any], name: str) -> int:
    """A NumericDate claim as whole seconds; a value that is no date gets a message naming the claim."""
    value = payload.get(name)
    if value is None or value == "":
        return 0
    try:
        seconds = int(value)
    except (TypeError, ValueError, OverflowError):
        seconds = -1
    if not 0 <= seconds <= _MAX_TIME or isinstance(value, bool):
        raise ExchangeError(
            f"{SERVICE} returned an OIDC token whose '{name}' claim is not a date in seconds from 1970 to 9999 "
            f"({str(value)[:40]}).",
            service=SERVICE,
            code="InvalidToken",
        )
    return seconds


def token_origin(agent: AgentEnv, collection: str) -> Origin:
    """The one origin the job access token may go to (contract "Network").

    The job's SystemVssConnection endpoint decides (the agent sets it and no variable override reaches
    it); System.CollectionUri must name the same origin. Without that endpoint, the collection's own
    origin, exactly: another organisation's host is another tenant.
    """
    endpoint_url = ""
    try:
        endpoint_url = agent.endpoint("SYSTEMVSSCONNECTION").url
    except ConfigError:
        endpoint_url = ""
    try:
        origin = destination.parse(endpoint_url or collection, what=ACCESS_TOKEN)
        if endpoint_url:
            destination.check(collection, origin, what=ACCESS_TOKEN)
    except UnsafeDestination as exc:
        raise ConfigError(
            f"{exc.message} System.CollectionUri ({destination.shown(collection)}) must name the host of the job's "
            "SystemVssConnection"
            + (f" ({destination.shown(endpoint_url)})" if endpoint_url else "")
            + ". Something has overridden System.CollectionUri; remove that variable from the pipeline."
        ) from exc
    return origin


def request_url(agent: AgentEnv, connection_id: str) -> str:
    """Where to ask for the token: only ever on the collection's origin (the access token goes there)."""
    return _request(agent, connection_id)[0]


def _request(agent: AgentEnv, connection_id: str) -> tuple[str, Origin]:
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
    origin = token_origin(agent, collection)
    try:
        destination.check(base, origin, what=ACCESS_TOKEN)
    except UnsafeDestination as exc:
        raise ConfigError(
            f"{exc.message} The OIDC request URL must be on the collection's origin ({origin}). Something has "
            "overridden System.OidcRequestUri; remove that variable from the pipeline."
        ) from exc
    return f"{base.rstrip('/')}?api-version={API_VERSION}&serviceConnectionId={connection_id}", origin


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
    signin = "_signin" in location.lower() or "/signin" in location.lower()
    if resp.status in (401, 403) or "TF400813" in body or signin:
        return ExchangeError(
            f"{SERVICE} rejected the job access token when asked for an OIDC token (HTTP {resp.status}"
            + (", redirected to sign-in" if signin else "")
            + f"). {_CLASSIC_HINT}",
            service=SERVICE,
            status=resp.status,
            code="AccessTokenRejected",
        )
    if 300 <= resp.status < 400:
        return ExchangeError(
            f"{SERVICE} answered the OIDC token request with a redirect (HTTP {resp.status}"
            + (f" to {destination.shown(location)}" if location else "")
            + "), which the task never follows with the job access token. System.OidcRequestUri or "
            "System.CollectionUri points at an old or moved address: check the organisation's URL.",
            service=SERVICE,
            status=resp.status,
            code="Redirected",
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
        origin: Origin | None = None,
    ) -> None:
        self._url = url
        #: the only origin the access token goes to (by default: the URL's own, checked)
        self._origin = origin or destination.parse(url, what=ACCESS_TOKEN)
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
        url, origin = _request(agent, connection_id)
        return cls(
            url=url,
            origin=origin,
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
            allowed=self._origin,
            credential=ACCESS_TOKEN,
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
