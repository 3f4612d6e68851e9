"""The job's OIDC token: request it from Azure DevOps; its claims (:mod:`.claims`) go to the pre-flight log.

``POST {System.OidcRequestUri}?api-version=7.1&serviceConnectionId={guid}`` with the job access token
as a bearer token; the answer is ``{"oidcToken": "<JWT>"}``. The token lives five to ten minutes and is
minted per call, so it is requested right before each exchange (:class:`TokenSource` is a callable).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from . import destination
from .agent import GUID, AgentEnv

# Claims and decode_claims live in claims.py with the token formats; imported here for existing callers.
from .claims import SERVICE, Claims, TokenKind, decode_claims
from .destination import Origin, UnsafeDestination
from .errors import ConfigError, ExchangeError
from .http import Http, Response

__all__ = ["API_VERSION", "SERVICE", "Claims", "TokenSource", "decode_claims", "request_url", "token_origin"]

API_VERSION = "7.1"
ACCESS_TOKEN = "the job access token"  # noqa: S105 (a description, not a secret)

_CLASSIC_HINT = (
    "In a classic pipeline, enable 'Allow scripts to access the OAuth token' on the agent job; in YAML the "
    "token is always there. Check also that the job authorization scope (project or collection) can read "
    "this project, and that the job has not outlived its access token."
)


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
        if claims.kind is TokenKind.PIPELINE:
            raise ConfigError(
                f"{SERVICE} returned the pipeline's own token (subject {claims.sub}) instead of one for service "
                f"connection {self._connection_id}: the connection id was not recognised. Pick the connection in "
                "the task's connection input."
            )
        self.last_claims = claims
        self._on_claims(claims)
        return token
