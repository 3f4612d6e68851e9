"""What the Azure and Key Vault providers share: the AzureRM connection, its cloud, the Entra exchange.

The connection is the built-in ``AzureRM`` type with scheme ``WorkloadIdentityFederation``: tenant and
app (client) id are auth parameters, subscription and cloud are endpoint data (platform.md §7). The
exchange is azure-identity's ``ClientAssertionCredential``, whose assertion callback is the
:class:`~oidc_credentials.oidc.TokenSource`: every token request to Entra presents a fresh Azure DevOps
OIDC token, so no assertion is ever reused past its short life (AADSTS700024).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from .. import destination
from ..agent import GUID, Endpoint
from ..catalogue import lookup, retryable
from ..destination import UnsafeDestination
from ..errors import ConfigError, ExchangeError, TaskError
from ..http import Http, tls_failure, untrusted_certificate
from ..oidc import Claims, TokenSource
from ..refusal import render_trust
from ..text import iso_utc, one_line
from . import Context

SERVICE = "Microsoft Entra ID"
#: attempts for a refusal the catalogue calls transient (AADSTS50166, AADSTS90061, ...), and the first backoff
ENTRA_ATTEMPTS = 3
ENTRA_BACKOFF = 0.5
WIF_SCHEME = "WorkloadIdentityFederation"
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")


@dataclass(frozen=True)
class Cloud:
    """One Azure cloud's well-known endpoints."""

    name: str
    authority: str
    arm_url: str
    keyvault_suffix: str
    #: what Terraform's azurerm/azuread providers call it (ARM_ENVIRONMENT)
    terraform: str

    @property
    def arm_scope(self) -> str:
        return self.arm_url.rstrip("/") + "/.default"


CLOUDS = {
    "azurecloud": Cloud(
        "AzureCloud", "https://login.microsoftonline.com/", "https://management.azure.com/", "vault.azure.net", "public"
    ),
    "azureusgovernment": Cloud(
        "AzureUSGovernment",
        "https://login.microsoftonline.us/",
        "https://management.usgovcloudapi.net/",
        "vault.usgovcloudapi.net",
        "usgovernment",
    ),
    "azurechinacloud": Cloud(
        "AzureChinaCloud",
        "https://login.chinacloudapi.cn/",
        "https://management.chinacloudapi.cn/",
        "vault.azure.cn",
        "china",
    ),
}
PUBLIC = CLOUDS["azurecloud"]

_NOT_WIF = {
    "serviceprincipal": "a service principal with a stored secret or certificate",
    "managedserviceidentity": "the agent's managed identity",
    "publishprofile": "a publish profile",
}


@dataclass(frozen=True)
class AzureConnection:
    """An AzureRM workload identity federation connection, as the agent passed it."""

    id: str
    tenant_id: str
    client_id: str
    subscription_id: str
    cloud: Cloud
    authority: str
    #: the federated credential the connection was created with, when the agent passes it
    fic_issuer: str = ""
    fic_subject: str = ""
    keyvault_suffix: str = ""
    keyvault_resource: str = ""


def _https(value: str, what: str) -> str:
    try:
        destination.parse(value, what="the OIDC token")
    except UnsafeDestination as exc:
        raise ConfigError(f"The connection's {what} must be an https URL, got '{value}': {exc.reason}.") from exc
    return value.rstrip("/") + "/"


def read_connection(endpoint: Endpoint, input_name: str) -> AzureConnection:
    """Validate the AzureRM endpoint: workload identity federation, tenant, app id, cloud."""
    scheme = endpoint.scheme.strip()
    label = f"The Azure Resource Manager connection ({endpoint.id}) referenced by input '{input_name}'"
    if scheme.lower() != WIF_SCHEME.lower():
        kind = _NOT_WIF.get(scheme.lower(), f"authentication scheme '{scheme or 'none'}'")
        if scheme.lower() == "serviceprincipal" and endpoint.param("authenticationType") == "spnCertificate":
            kind = "a service principal with a stored certificate"
        elif scheme.lower() == "serviceprincipal" and endpoint.param("authenticationType"):
            kind = "a service principal with a stored client secret"
        raise ConfigError(
            f"{label} uses {kind}, not workload identity federation. OidcCredentials trades the job's OIDC token "
            "and never uses a stored secret. Convert the connection: Project settings > Service connections > "
            "the connection > 'Convert' (to workload identity federation), which keeps its name and permissions; "
            "or create a new 'Azure Resource Manager' connection with 'Workload identity federation' and pick it here. "
            "For a managed identity, add a federated credential to a user-assigned identity and create the "
            "connection with 'Workload identity federation (manual)'."
        )
    tenant = endpoint.param("tenantId")
    client = endpoint.param("servicePrincipalId")
    if not tenant or not _TENANT.match(tenant):
        raise ConfigError(
            f"{label} has no valid tenant ID (auth parameter tenantId = '{tenant}'). Edit the connection."
        )
    if not client or not GUID.match(client):
        raise ConfigError(
            f"{label} has no valid app (client) ID: auth parameter servicePrincipalId must be a GUID, got '{client}'. "
            "Edit the connection."
        )
    environment = endpoint.datum("environment") or "AzureCloud"
    cloud = CLOUDS.get(environment.lower())
    if cloud is None:
        # Azure Stack and other private clouds: everything comes from the endpoint's own data.
        authority = endpoint.datum("activeDirectoryAuthority")
        suffix = endpoint.datum("AzureKeyVaultDnsSuffix")
        if not authority:
            raise ConfigError(
                f"{label} is for cloud '{environment}', whose sign-in authority is not known to the task, and the "
                "connection carries no activeDirectoryAuthority. Re-create it from the cloud's metadata."
            )
        cloud = Cloud(environment, authority, endpoint.url or "", suffix, "")
    authority = _https(
        endpoint.datum("activeDirectoryAuthority") or cloud.authority, "Entra ID authority (activeDirectoryAuthority)"
    )
    suffix = endpoint.datum("AzureKeyVaultDnsSuffix") or cloud.keyvault_suffix
    resource = endpoint.datum("AzureKeyVaultServiceEndpointResourceId") or (f"https://{suffix}" if suffix else "")
    return AzureConnection(
        id=endpoint.id,
        tenant_id=tenant,
        client_id=client.lower(),
        subscription_id=endpoint.datum("subscriptionId"),
        cloud=cloud,
        authority=authority,
        fic_issuer=endpoint.param("workloadIdentityFederationIssuer"),
        fic_subject=endpoint.param("workloadIdentityFederationSubject"),
        keyvault_suffix=suffix.lstrip("."),
        keyvault_resource=resource.rstrip("/"),
    )


# -- explaining Entra's refusals --------------------------------------------------------------------
def case_only_difference(presented: str, expected: str) -> str:
    """Describe where two strings differ only in letter case ("" when they are equal or differ otherwise)."""
    if presented == expected or presented.lower() != expected.lower():
        return ""
    spots = [
        f"character {i + 1}: '{a}' here, '{b}' there" for i, (a, b) in enumerate(zip(presented, expected)) if a != b
    ]
    return "; ".join(spots[:5]) + ("; …" if len(spots) > 5 else "")


def _presented(claims: Claims | None) -> str:
    if claims is None:
        return "The OIDC token could not be decoded, so its claims are not shown."
    return f"The token presented:\n  issuer    {claims.iss}\n  subject   {claims.sub}\n  audience  {claims.aud}"


def _must_contain(conn: AzureConnection, claims: Claims | None) -> str:
    iss = claims.iss if claims else "<the token's issuer>"
    sub = claims.sub if claims else "<the token's subject>"
    aud = claims.aud if claims else "api://AzureADTokenExchange"
    return (
        f"App {conn.client_id} needs a federated credential with exactly (case-sensitive):\n"
        f"  Issuer               {iss}\n  Subject identifier   {sub}\n  Audience             {aud}\n"
        "Entra ID > App registrations (or the managed identity) > Certificates & secrets > Federated credentials. "
        "The subject holds the organisation, project and connection names: renaming any of them changes it."
        + _rendered_credential(conn, claims)
    )


def _rendered_credential(conn: AzureConnection, claims: Claims | None) -> str:
    """The ``oidc-credentials trust azure`` command's own rendering for these claims ("" when it cannot render)."""
    rendered = render_trust("azure", claims, app_id=conn.client_id) if claims else ""
    return "\nOr create it with:\n" + rendered if rendered else ""


def _subject_note(conn: AzureConnection, claims: Claims | None) -> str:
    if claims is None or not conn.fic_subject or conn.fic_subject == claims.sub:
        return ""
    diff = case_only_difference(claims.sub, conn.fic_subject)
    if diff:
        return (
            f"\nThe subject the connection records ({conn.fic_subject}) differs from the token's only in letter case "
            f"({diff}): Entra compares case-sensitively. Fix the federated credential's subject to the token's."
        )
    return f"\nThe connection records the subject {conn.fic_subject}, but the token carries {claims.sub}."


def explain_entra(
    code: int,
    description: str,
    status: int,
    conn: AzureConnection,
    claims: Claims | None,
    now: float,
    *,
    scope: str = "",
    scope_from: str = "the request",
) -> ExchangeError:
    """Map an Entra error to the paragraph that says what was presented and what to fix."""
    desc = " ".join(description.split())
    head = f"{SERVICE} refused the token exchange for app {conn.client_id} in tenant {conn.tenant_id}: {desc or f'HTTP {status}'}"
    trust = _presented(claims) + "\n" + _must_contain(conn, claims)
    issuer_note = ""
    if claims and conn.fic_issuer and conn.fic_issuer != claims.iss:
        issuer_note = f"\nThe connection records the issuer {conn.fic_issuer}, but the token carries {claims.iss} ({claims.issuer_kind})."
    fixes: dict[int, str] = {
        700211: "No federated credential of the app has this token's issuer." + issuer_note + "\n" + trust,
        700212: "A federated credential has this issuer, but none lists this token's audience.\n" + trust,
        700213: "Federated credentials with this issuer and audience exist, but none has this token's subject."
        + _subject_note(conn, claims)
        + "\n"
        + trust,
        7002138: "A federated credential's subject matches this token's only when letter case is ignored, and Entra "
        "compares case-sensitively: correct the letter case of the credential's subject (or of the organisation, "
        "project or connection name)." + _subject_note(conn, claims) + "\n" + trust,
        70021: "The app has no federated credential matching this token at all.\n" + trust,
        700016: (
            f"App {conn.client_id} does not exist in tenant {conn.tenant_id}: the connection's service principal "
            "(client) ID or tenant ID is wrong, or the app was deleted. Check both on the connection against Entra ID > "
            "App registrations (Application (client) ID, Directory (tenant) ID)."
        ),
        7000215: (
            "Entra ID judged a client secret: this is its 'invalid client secret' error. OidcCredentials sends no "
            "secret, only the OIDC token as a client assertion, so the app registration or something in front of it "
            "expects a secret: make sure the connection is a converted workload identity federation connection and "
            "that the app id on it is the one holding the federated credential."
        ),
        700024: _lifetime_note(claims, now),
        500011: (
            f"{scope_from[0].upper()}{scope_from[1:]} asks for the scope '{scope}', and tenant {conn.tenant_id} has no "
            "resource of that name: a typo in the resource, or an API that is not registered in this tenant. A scope "
            "is a resource URI followed by /.default: an application ID URI such as https://management.azure.com, "
            "https://graph.microsoft.com, https://vault.azure.net, https://storage.azure.com or api://<app id>, or "
            "the resource app's client id (a GUID)."
        ),
    }
    fix = fixes.get(code)
    if fix is None:
        fix = trust if code in (700027, 50027) else ""
        entry = lookup(SERVICE, f"AADSTS{code}") if code else None
        if entry is not None:  # the catalogue's meaning and fix for the codes explained nowhere else
            fix = f"{entry.meaning} Fix: {entry.fix}" + ("\n" + fix if fix else "")
    return ExchangeError(
        head + ("\n" + fix if fix else ""), service=SERVICE, status=status, code=f"AADSTS{code}" if code else ""
    )


def _lifetime_note(claims: Claims | None, now: float) -> str:
    if claims is None:
        return "The OIDC token was outside its valid time range."

    def iso(value: int) -> str:
        return iso_utc(value) if value else "?"

    return (
        f"The OIDC token was outside its valid time range when Entra checked it (issued {iso(claims.iat)}, expires "
        f"{iso(claims.exp)}, agent clock {iso(int(now))}). The task requests a fresh token right before every "
        "exchange, so check the agent's clock: it must be within a few minutes of real time."
    )


# -- the exchange ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AccessToken:
    """One Entra access token (never in a repr) for one scope."""

    scope: str
    token: str = field(repr=False)
    expires_on: int = 0

    @property
    def expires_iso(self) -> str:
        return iso_utc(self.expires_on)


class _Assertions:
    """The assertion callback: a fresh Azure DevOps token per call, checked once against the connection."""

    def __init__(self, conn: AzureConnection, tokens: TokenSource, warn: Callable[[str], None]) -> None:
        self._conn = conn
        self._tokens = tokens
        self._warn = warn
        self.error: TaskError | None = None
        self._checked = False

    def __call__(self) -> str:
        try:
            token = self._tokens()
        except TaskError as exc:  # azure-identity would wrap or log it; keep ours whole
            self.error = exc
            raise
        claims = self._tokens.last_claims
        if claims is not None and not self._checked:
            self._checked = True
            self._preflight(claims)
        return token

    def _preflight(self, claims: Claims) -> None:
        conn = self._conn
        if conn.fic_issuer and conn.fic_issuer != claims.iss:
            self._warn(
                f"The token's issuer {claims.iss} differs from the one the connection records ({conn.fic_issuer}); "
                "Entra will refuse it unless the app also trusts this issuer."
            )
        if conn.fic_subject and conn.fic_subject != claims.sub:
            diff = case_only_difference(claims.sub, conn.fic_subject)
            self._warn(
                f"The token's subject {claims.sub} differs from the one the connection records ({conn.fic_subject})"
                + (f" only in letter case ({diff}), and Entra compares case-sensitively." if diff else ".")
            )


def exchange_tokens(
    conn: AzureConnection, scopes: list[str], tokens: TokenSource, ctx: Context, *, scope_from: str = "the request"
) -> list[AccessToken]:
    """:func:`request_tokens` with a provider's context: its HTTP settings, warnings, clock and debug flag."""
    return request_tokens(
        conn, scopes, tokens, ctx.http, warn=ctx.warn, clock=ctx.clock, verbose=ctx.agent.debug, scope_from=scope_from
    )


def request_tokens(
    conn: AzureConnection,
    scopes: list[str],
    tokens: TokenSource,
    http: Http,
    *,
    warn: Callable[[str], None] = lambda _: None,
    clock: Callable[[], float] = time.time,
    verbose: bool = False,
    scope_from: str = "the request",
    sleep: Callable[[float], None] = time.sleep,
) -> list[AccessToken]:
    """One Entra access token per scope, each bought with a fresh Azure DevOps OIDC token: the wire client.

    Goes through azure-identity's ``ClientAssertionCredential`` with ``http``'s CA bundle and proxy. A
    refusal becomes an :class:`ExchangeError` that says what the token presented and what to fix; ``warn``
    hears a token whose issuer or subject differs from what the connection records; ``verbose`` keeps
    azure-identity's own failure logs; ``scope_from`` says where the scopes came from (an input's name).
    """
    from azure.core.exceptions import AzureError, ClientAuthenticationError
    from azure.identity import ClientAssertionCredential

    # azure-identity logs each failure before raising it; the task explains it once, below.
    identity_logger = logging.getLogger("azure.identity")
    previous_level = identity_logger.level
    if not verbose:
        identity_logger.setLevel(logging.ERROR)
    assertions = _Assertions(conn, tokens, warn)
    # A redirect would re-send the assertion elsewhere. azure-identity's pipeline has no redirect policy and
    # its requests transport passes allow_redirects=False; permit_redirects=False keeps that should one be added.
    kwargs: dict[str, Any] = {"authority": conn.authority, "permit_redirects": False}
    # azure-core retries a 429 or 5xx only 3 times by default; a throttled Entra gets the task's own allowance
    # (http.THROTTLED_ATTEMPTS), with its backoff cap, inside the exchange's deadline.
    from ..http import DEFAULT_RETRY, THROTTLED_ATTEMPTS

    kwargs.update(retry_status=THROTTLED_ATTEMPTS - 1, retry_backoff_max=DEFAULT_RETRY.cap)
    ca = http.ca_bundle
    if ca:
        kwargs["connection_verify"] = ca
    proxies = http.proxies_for(conn.authority)
    if proxies is not None:
        kwargs["proxies"] = proxies
    kwargs.update(_observer_hooks())
    credential = ClientAssertionCredential(conn.tenant_id, conn.client_id, assertions, **kwargs)
    issued: list[AccessToken] = []
    try:
        for scope in scopes:
            attempt = 0
            while True:
                attempt += 1
                try:
                    result = http.bounded(partial(credential.get_token, scope), service=SERVICE, url=conn.authority)
                    break
                except ClientAuthenticationError as exc:
                    if assertions.error is not None:
                        raise assertions.error from exc
                    error = _from_response(exc, conn, tokens, clock(), scope, scope_from)
                    # Entra's transient refusals (it could not reach the token's issuer): the catalogue says retry
                    if attempt >= ENTRA_ATTEMPTS or not retryable(SERVICE, error.code):
                        raise error from exc
                    delay = ENTRA_BACKOFF * 2 ** (attempt - 1)
                    warn(
                        f"{SERVICE} answered {error.code}, which passes; retrying with a fresh token in {delay:.1f} s."
                    )
                    sleep(delay)
                except AzureError as exc:
                    if assertions.error is not None:
                        raise assertions.error from exc
                    if untrusted_certificate(exc):
                        raise tls_failure(SERVICE, conn.authority, exc) from exc
                    raise ExchangeError(
                        f"Could not reach {SERVICE} at {conn.authority}: {type(exc).__name__}: {one_line(str(exc), 400)}. "
                        "Check the agent's network and proxy, and for a private CA point REQUESTS_CA_BUNDLE at its "
                        "certificate.",
                        service=SERVICE,
                    ) from exc
                except TaskError:
                    raise
            issued.append(AccessToken(scope, result.token, int(result.expires_on)))
    finally:
        credential.close()
        identity_logger.setLevel(previous_level)
    return issued


def _observer_hooks() -> dict[str, Any]:
    """azure-core hooks that show Entra requests to the Http observers (audit record, correlation headers)."""
    from ..http import RequestEvent, notify, observer_headers

    def on_request(request: Any) -> None:
        request.http_request.headers.update(observer_headers(request.http_request.url, SERVICE))
        request.context["oidc_credentials_sent"] = time.monotonic()

    def on_response(response: Any) -> None:
        url = urlsplit(response.http_request.url)
        sent = response.context.get("oidc_credentials_sent") or time.monotonic()
        status = int(getattr(response.http_response, "status_code", 0) or 0) or None
        notify(
            RequestEvent(
                SERVICE,
                response.http_request.method,
                f"{url.scheme}://{url.netloc}{url.path}",
                status,
                time.monotonic() - sent,
                1,
            )
        )

    return {"raw_request_hook": on_request, "raw_response_hook": on_response}


def _from_response(
    exc: Any, conn: AzureConnection, tokens: TokenSource, now: float, scope: str, scope_from: str
) -> ExchangeError:
    response = getattr(exc, "response", None)
    status = int(getattr(response, "status_code", 0) or 0)
    body: Any = None
    if response is not None:
        try:
            import json

            body = json.loads(response.text())
        except (ValueError, TypeError, AttributeError):
            body = None
    if isinstance(body, dict) and body.get("error"):
        codes = body.get("error_codes") or []
        code = int(codes[0]) if codes and str(codes[0]).isdigit() else 0
        if not code:
            match = re.search(r"AADSTS(\d+)", str(body.get("error_description", "")))
            code = int(match.group(1)) if match else 0
        description = str(body.get("error_description") or body.get("error"))
        return explain_entra(
            code, description, status, conn, tokens.last_claims, now, scope=scope, scope_from=scope_from
        )
    return ExchangeError(
        f"{SERVICE} refused the token exchange for app {conn.client_id}: {one_line(getattr(exc, 'message', '') or str(exc), 400)}",
        service=SERVICE,
        status=status or None,
    )
