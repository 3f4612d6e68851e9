"""Microsoft Entra ID stand-in: the v2.0 token endpoint for client assertions, plus a sliver of ARM.

``POST /<tenant>/oauth2/v2.0/token`` with ``grant_type=client_credentials``, ``client_id``,
``client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer``, ``client_assertion``
and ``scope=<resource>/.default`` (test-peers.md §4). It checks what Entra checks, in the same order:
the tenant exists, the app is registered there, the assertion's issuer matches one of the app's
federated identity credentials, its signature verifies against that issuer's JWKS (fetched over HTTPS
from the Azure DevOps stand-in, as Entra fetches it from the issuer), its lifetime, then an exact,
case-sensitive match of audience and subject. Every refusal is Entra's error JSON with the AADSTS code
real Entra uses (``error``, ``error_description`` with trace and correlation ids, ``error_codes``,
``timestamp``, ``trace_id``, ``correlation_id``, ``error_uri``).

Issued access tokens are RS256 JWTs with ``aud`` = the resource, ``iss`` = ``https://sts.windows.net/<tenant>/``,
``appid``, ``tid``; :meth:`Entra.verify_access_token` checks one, which the Key Vault and ARM stand-ins use.
``GET /subscriptions`` answers like ARM for a valid ARM token (the "later step" check).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from oidc_credentials.claims import ADO_AUDIENCE, ENTRA_AUDIENCE, entra_issuer
from werkzeug.wrappers import Request, Response

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ARM_RESOURCE = "https://management.azure.com"
#: resources every tenant has (the first-party apps); scopes for anything else fail with AADSTS500011
KNOWN_RESOURCES = (
    "https://management.azure.com",
    "https://management.core.windows.net",
    "https://management.usgovcloudapi.net",
    "https://management.chinacloudapi.cn",
    "https://vault.azure.net",
    "https://vault.usgovcloudapi.net",
    "https://vault.azure.cn",
    "https://graph.microsoft.com",
    "https://storage.azure.com",
    "https://database.windows.net",
)


@dataclass
class FederatedCredential:
    name: str
    issuer: str
    subject: str
    audiences: list[str] = field(default_factory=lambda: [ADO_AUDIENCE])


@dataclass
class App:
    client_id: str
    display_name: str
    federated: list[FederatedCredential] = field(default_factory=list)
    object_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Tenant:
    tenant_id: str
    name: str
    apps: dict[str, App] = field(default_factory=dict)
    subscriptions: list[str] = field(default_factory=list)


class Entra:
    """The WSGI app. ``jwks_for`` maps an issuer to the JWKS URL Entra would discover for it."""

    def __init__(self, *, ca_bundle: str | bool = True, token_lifetime: int = 3599) -> None:
        self.tenants: dict[str, Tenant] = {}
        self.jwks_for: dict[str, str] = {}
        self.ca_bundle = ca_bundle
        self.token_lifetime = token_lifetime
        #: seconds of clock skew ARM tolerates when it checks a token's expiry (the real one allows minutes)
        self.arm_leeway = 0.0
        self.base_url = ""
        self.requests: list[dict[str, Any]] = []
        self.issued: list[dict[str, Any]] = []
        #: queued (status, body) answers for the next token requests, for errors Entra gives on its own
        self.queued: list[tuple[int, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex
        self._jwks_cache: dict[str, dict[str, Any]] = {}

    # -- set-up -------------------------------------------------------------------------------------
    def add_tenant(self, name: str = "Contoso", tenant_id: str = "") -> Tenant:
        tenant = Tenant(tenant_id or str(uuid.uuid4()), name, subscriptions=[str(uuid.uuid4())])
        self.tenants[tenant.tenant_id] = tenant
        return tenant

    def add_app(self, tenant: Tenant, display_name: str = "ado-deploy", client_id: str = "") -> App:
        app = App(client_id or str(uuid.uuid4()), display_name)
        tenant.apps[app.client_id] = app
        return app

    def trust(
        self, app: App, *, issuer: str, subject: str, audience: str = ADO_AUDIENCE, name: str = "ado"
    ) -> FederatedCredential:
        credential = FederatedCredential(name, issuer, subject, [audience])
        app.federated.append(credential)
        return credential

    def trust_issuer_keys(self, issuer: str, jwks_url: str) -> None:
        """Where Entra finds the signing keys of ``issuer`` (what discovery would tell it)."""
        self.jwks_for[issuer] = jwks_url

    def queue_error(self, status: int, code: int, error: str, description: str) -> None:
        """Answer the next token request with this Entra error (for errors the checks cannot provoke)."""
        with self._lock:
            self.queued.append((status, self._error_body(code, error, description)))

    def public_key(self) -> Any:
        return self._key.public_key()

    # -- tokens ---------------------------------------------------------------------------------------
    def mint_access_token(
        self, tenant: Tenant, app: App, resource: str, *, lifetime: int | None = None
    ) -> tuple[str, int]:
        now = int(time.time())
        exp = now + (self.token_lifetime if lifetime is None else lifetime)
        claims = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{tenant.tenant_id}/",
            "iat": now,
            "nbf": now - 300,
            "exp": exp,
            "appid": app.client_id,
            "appidacr": "2",
            "idtyp": "app",
            "oid": app.object_id,
            "sub": app.object_id,
            "tid": tenant.tenant_id,
            "ver": "1.0",
            "uti": uuid.uuid4().hex[:22],
        }
        token = jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"})
        return token, exp

    def verify_access_token(self, token: str, *, resource: str, leeway: float = 0.0) -> dict[str, Any]:
        """The claims of a token this stand-in issued for ``resource``; raises jwt.PyJWTError otherwise."""
        claims: dict[str, Any] = jwt.decode(
            token,
            self._key.public_key(),
            algorithms=["RS256"],
            leeway=leeway,
            audience=[resource, resource.rstrip("/") + "/", resource.rstrip("/")],
            options={"require": ["exp", "aud", "iss", "tid"]},
        )
        return claims

    # -- the service --------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        form = {k: v[0] for k, v in parse_qs(request.get_data(as_text=True)).items()}
        with self._lock:
            self.requests.append(
                {"method": request.method, "path": request.path, "form": form, "headers": dict(request.headers)}
            )
        response = self._route(request, form)
        return response(environ, start_response)

    def _route(self, request: Request, form: dict[str, str]) -> Response:
        parts = request.path.strip("/").split("/")
        if request.path == "/subscriptions" and request.method == "GET":
            return self._arm_subscriptions(request)
        if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            return self._openid_configuration(parts[0])
        if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
            if request.method != "POST":
                return self._error(405, 900561, "invalid_request", "The endpoint only accepts POST requests.")
            return self._token(parts[0], form)
        return Response("Not Found", 404, content_type="text/plain")

    def _openid_configuration(self, tenant_id: str) -> Response:
        base = f"{self.base_url}/{tenant_id}"
        body = {
            "issuer": f"{base}/v2.0",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        }
        return Response(json.dumps(body), 200, content_type="application/json; charset=utf-8")

    @staticmethod
    def _error_body(code: int, error: str, description: str) -> dict[str, Any]:
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        return {
            "error": error,
            "error_description": f"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {now}",
            "error_codes": [code],
            "timestamp": now,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        }

    def _error(self, status: int, code: int, error: str, description: str) -> Response:
        return Response(
            json.dumps(self._error_body(code, error, description)),
            status,
            content_type="application/json; charset=utf-8",
        )

    def _keys(self, issuer: str) -> dict[str, Any]:
        url = self.jwks_for[issuer]
        if url not in self._jwks_cache:
            resp = requests.get(url, timeout=10, verify=self.ca_bundle)
            resp.raise_for_status()
            self._jwks_cache[url] = resp.json()
        return self._jwks_cache[url]

    def _token(self, tenant_id: str, form: dict[str, str]) -> Response:
        with self._lock:
            queued = self.queued.pop(0) if self.queued else None
        if queued:
            return Response(json.dumps(queued[1]), queued[0], content_type="application/json; charset=utf-8")
        tenant = self.tenants.get(tenant_id.lower())
        if tenant is None:
            return self._error(
                400,
                90002,
                "invalid_request",
                f"Tenant '{tenant_id}' not found. Check to make sure you have the correct tenant ID and are signing "
                "into the correct cloud. Check with your subscription administrator, this may happen if there are no "
                "active subscriptions for the tenant.",
            )
        if form.get("grant_type") != "client_credentials":
            return self._error(400, 70003, "unsupported_grant_type", "The app requested an unsupported grant type.")
        client_id = form.get("client_id", "")
        if not client_id:
            return self._error(
                400, 900144, "invalid_request", "The request body must contain the following parameter: 'client_id'."
            )
        app = tenant.apps.get(client_id.lower())
        if app is None:
            return self._error(
                400,
                700016,
                "unauthorized_client",
                f"Application with identifier '{client_id}' was not found in the directory '{tenant.name}'. This can "
                "happen if the application has not been installed by the administrator of the tenant or consented to by "
                "any user in the tenant. You may have sent your authentication request to the wrong tenant.",
            )
        if "client_secret" in form:
            return self._error(
                401,
                7000215,
                "invalid_client",
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, "
                f"not the client secret ID, for a secret added to app '{app.client_id}'.",
            )
        assertion = form.get("client_assertion", "")
        if form.get("client_assertion_type") != JWT_BEARER or not assertion:
            return self._error(
                401,
                7000218,
                "invalid_client",
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return self._error(401, 50027, "invalid_client", "JWT token is invalid or malformed.")
        iss, sub, aud = str(claims.get("iss", "")), str(claims.get("sub", "")), claims.get("aud", "")
        auds = [str(a) for a in aud] if isinstance(aud, list) else [str(aud)]
        if not app.federated:
            return self._error(
                401,
                70021,
                "invalid_client",
                f"No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. "
                f"Assertion Subject: '{sub}'. Assertion Audience: '{', '.join(auds)}'. "
                "https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
            )
        by_issuer = [c for c in app.federated if c.issuer == iss]
        if not by_issuer:
            return self._error(
                401,
                700211,
                "invalid_client",
                f"No matching federated identity record found for presented assertion issuer '{iss}'. Please check your "
                "federated identity credential Subject, Audience and Issuer against the presented assertion. "
                "https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
            )
        try:
            keys = self._keys(iss)
            jwk = next(k for k in keys.get("keys", []) if k.get("kid") == header.get("kid"))
            key = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwk))
            jwt.decode(
                assertion,
                key,
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_nbf": False, "verify_aud": False, "verify_iat": False},
            )  # type: ignore[arg-type]
        except (StopIteration, KeyError, jwt.PyJWTError, requests.RequestException):
            return self._error(
                401,
                700027,
                "invalid_client",
                "Client assertion failed signature validation. Trace ID hint: the key with the assertion's kid was not "
                "found in, or did not verify against, the issuer's published keys.",
            )
        now = int(time.time())
        nbf, exp = int(claims.get("nbf") or 0), int(claims.get("exp") or 0)
        if not exp or now >= exp or (nbf and now < nbf - 300):

            def iso(value: int) -> str:
                return dt.datetime.fromtimestamp(value, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")

            return self._error(
                401,
                700024,
                "invalid_client",
                f"Client assertion is not within its valid time range. Current time: {iso(now)}, assertion valid from "
                f"{iso(nbf)}, expiry time of assertion {iso(exp)}. Review the documentation at "
                "https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
            )
        by_audience = [c for c in by_issuer if any(a in c.audiences for a in auds)]
        if not by_audience:
            return self._error(
                401,
                700212,
                "invalid_client",
                f"No matching federated identity record found for presented assertion audience '{', '.join(auds)}'. "
                "Please check your federated identity credential Subject, Audience and Issuer against the presented "
                "assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
            )
        if not any(c.subject == sub for c in by_audience):
            if any(c.subject.lower() == sub.lower() for c in by_audience):
                return self._error(
                    401,
                    7002138,
                    "invalid_client",
                    f"No matching federated identity record found for presented assertion subject '{sub}'. The subject "
                    "matches with case-insensitive comparison, but not with case-sensitive comparison. Check your "
                    "federated identity credential Subject, Audience and Issuer against the presented assertion. See "
                    "documentation at: https://learn.microsoft.com/entra/workload-id/workload-identity-federation.",
                )
            return self._error(
                401,
                700213,
                "invalid_client",
                f"No matching federated identity record found for presented assertion subject '{sub}'. Please note that "
                "the matching is done using a case-sensitive comparison. Check your federated identity credential Subject, "
                "Audience and Issuer against the presented assertion. "
                "https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
            )
        scope = form.get("scope", "")
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            return self._error(
                400,
                1002012,
                "invalid_scope",
                f"The provided value for scope {scope} is not valid. Client credential flows must have a scope value "
                "with /.default suffixed to the resource identifier (application ID URI).",
            )
        resource = scopes[0][: -len("/.default")].rstrip("/")
        if resource not in KNOWN_RESOURCES:
            return self._error(
                400,
                500011,
                "invalid_resource",
                f"The resource principal named {resource} was not found in the tenant named {tenant.name}. This can "
                "happen if the application has not been installed by the administrator of the tenant or consented to by "
                "any user in the tenant. You might have sent your authentication request to the wrong tenant.",
            )
        token, _exp = self.mint_access_token(tenant, app, resource)
        with self._lock:
            self.issued.append(
                {
                    "tenant": tenant.tenant_id,
                    "client_id": app.client_id,
                    "resource": resource,
                    "token": token,
                    "claims": form.get("claims", ""),
                }
            )
        body = {
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "ext_expires_in": self.token_lifetime,
            "access_token": token,
        }
        return Response(json.dumps(body), 200, content_type="application/json; charset=utf-8")

    # -- a sliver of ARM ------------------------------------------------------------------------------
    def _arm_subscriptions(self, request: Request) -> Response:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return Response(
                json.dumps(
                    {
                        "error": {
                            "code": "AuthenticationFailed",
                            "message": "Authentication failed. The 'Authorization' header is missing.",
                        }
                    }
                ),
                401,
                content_type="application/json; charset=utf-8",
            )
        try:
            claims = self.verify_access_token(auth[len("Bearer ") :], resource=ARM_RESOURCE, leeway=self.arm_leeway)
        except jwt.PyJWTError as exc:
            return Response(
                json.dumps(
                    {
                        "error": {
                            "code": "InvalidAuthenticationToken",
                            "message": f"The access token is invalid: {type(exc).__name__}.",
                        }
                    }
                ),
                401,
                content_type="application/json; charset=utf-8",
            )
        tenant = self.tenants.get(str(claims.get("tid")))
        subs = tenant.subscriptions if tenant else []
        value = [
            {
                "id": f"/subscriptions/{s}",
                "subscriptionId": s,
                "tenantId": claims["tid"],
                "displayName": "Payments (prod)",
                "state": "Enabled",
            }
            for s in subs
        ]
        return Response(
            json.dumps({"value": value, "count": {"type": "Total", "value": len(value)}}),
            200,
            content_type="application/json; charset=utf-8",
        )


@dataclass
class AzureWorld:
    """Entra wired to an Azure DevOps stand-in: one tenant, one app trusting one ADO connection."""

    entra: Entra
    tenant: Tenant
    app: App
    connection_id: str
    issuer: str
    subject: str
    url: str

    def endpoint(
        self, job: Any, *, scheme: str = "WorkloadIdentityFederation", params: dict[str, str] | None = None, **data: str
    ) -> Any:
        """Add the AzureRM endpoint to an AgentJob, the way the agent passes it."""
        values = {
            "environment": "AzureCloud",
            "subscriptionId": self.tenant.subscriptions[0],
            "subscriptionName": "Payments (prod)",
            "activeDirectoryAuthority": self.url + "/",
            "AzureKeyVaultDnsSuffix": "vault.azure.net",
            "AzureKeyVaultServiceEndpointResourceId": "https://vault.azure.net",
        }
        values.update(data)
        auth = {"tenantId": self.tenant.tenant_id, "servicePrincipalId": self.app.client_id}
        auth.update(params or {})
        return job.endpoint(
            self.connection_id, url="https://management.azure.com/", scheme=scheme, params=auth, data=values
        )


def wire(entra: Entra, ado: Any, *, url: str, connection: str = "azure-prod", issuer: str = "vstoken") -> AzureWorld:
    """Register a tenant, an app and an ADO connection it trusts by a federated credential."""
    tenant = entra.add_tenant()
    app = entra.add_app(tenant)
    conn = ado.add_connection(connection, issuer=issuer, tenant_id=tenant.tenant_id)
    entra.trust_issuer_keys(ado.issuer, f"{ado.base_url}/.well-known/jwks")
    entra.trust_issuer_keys(entra_issuer(tenant.tenant_id), f"{ado.base_url}/{tenant.tenant_id}/discovery/v2.0/keys")
    token_issuer = ado.issuer if issuer == "vstoken" else entra_issuer(tenant.tenant_id)
    audience = ADO_AUDIENCE if issuer == "vstoken" else ENTRA_AUDIENCE
    subject = ado.subject(conn)
    entra.trust(app, issuer=token_issuer, subject=subject, audience=audience)
    return AzureWorld(entra, tenant, app, conn.id, token_issuer, subject, url)
