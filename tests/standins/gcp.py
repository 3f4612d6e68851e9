"""Google Cloud stand-in: STS token exchange, IAM Credentials and one resource API, errors included.

What Google checks is checked here, with Google's answers:

- STS ``POST /v1/token`` (RFC 8693 form): the grant, token types and scope; the audience must name a
  known, enabled workload identity provider (``//iam.<universe>/projects/<number>/locations/global/
  workloadIdentityPools/<pool>/providers/<id>``, else ``invalid_target``); the JWT's signature against the
  issuer's keys, its expiry, its issuer (the provider's ``issuer_uri``) and audience (``allowed_audiences``)
  (``invalid_grant`` with Google's texts); the attribute mapping ``google.subject`` (at most 127 bytes) and
  the attribute condition. The answer is a federated token for
  ``principal://iam.googleapis.com/projects/<n>/locations/global/workloadIdentityPools/<pool>/subject/<s>``.
- ``POST /v1/introspect`` (gcloud asks it for the account when there is no impersonation).
- IAM Credentials ``POST /v1/projects/-/serviceAccounts/<email>:generateAccessToken`` and
  ``:generateIdToken`` with a bearer token: 401 for an unknown token, 404 for an unknown account, 403
  ``iam.serviceAccounts.getAccessToken``/``getOpenIdToken`` without ``roles/iam.workloadIdentityUser``
  for the principal, 400 for lifetimes over 3600 s (without the lifetime extension) or no scope.
- ``GET /storage/v1/b/<bucket>/o``: a resource that says who the bearer is (for later-step checks).

google-auth itself checks the wire format (tests/test_standins_gcp.py).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from werkzeug.wrappers import Request, Response

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPES = ("urn:ietf:params:oauth:token-type:jwt", "urn:ietf:params:oauth:token-type:id_token")
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
GOOGLE_SCOPES = "https://www.googleapis.com/auth/"
WORKLOAD_IDENTITY_USER = "roles/iam.workloadIdentityUser"


@dataclass
class WorkloadProvider:
    number: str
    pool: str
    id: str
    issuer: str
    keys: Callable[[], Any]
    allowed_audiences: list[str]
    #: google.subject = mapping(claims)
    mapping: Callable[[dict[str, Any]], str] = lambda claims: str(claims.get("sub", ""))
    #: attribute condition on the claims; None admits all
    condition: Callable[[dict[str, Any]], bool] | None = None
    enabled: bool = True

    @property
    def name(self) -> str:
        return f"projects/{self.number}/locations/global/workloadIdentityPools/{self.pool}/providers/{self.id}"

    def principal(self, subject: str) -> str:
        return f"principal://iam.googleapis.com/projects/{self.number}/locations/global/workloadIdentityPools/{self.pool}/subject/{subject}"


@dataclass
class ServiceAccount:
    email: str
    #: members holding roles/iam.workloadIdentityUser on it
    token_creators: set[str] = field(default_factory=set)
    lifetime_extension: bool = False


@dataclass
class Issued:
    principal: str
    expires: float
    kind: str  # "federated" or "service-account"
    scopes: list[str] = field(default_factory=list)


def _iso(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Google:
    """The WSGI app (STS, IAM Credentials and a storage listing on one origin)."""

    def __init__(self, *, universe: str = "googleapis.com") -> None:
        self.universe = universe
        self.providers: dict[str, WorkloadProvider] = {}
        self.accounts: dict[str, ServiceAccount] = {}
        self.tokens: dict[str, Issued] = {}
        self.requests: list[dict[str, Any]] = []
        self.disabled_apis: set[str] = set()
        #: long-job tests: every access token lives this many seconds (None: as Google issues them)
        self.token_lifetime: int | None = None
        self.base_url = ""
        self._lock = threading.Lock()
        self._id_secret = secrets.token_bytes(32)

    # -- set-up ---------------------------------------------------------------------------------
    def add_provider(
        self,
        *,
        issuer: str,
        keys: Callable[[], Any],
        number: str = "123456789012",
        pool: str = "ado-pool",
        provider: str = "ado-provider",
        allowed_audiences: list[str] | None = None,
        mapping: Callable[[dict[str, Any]], str] | None = None,
        condition: Callable[[dict[str, Any]], bool] | None = None,
    ) -> WorkloadProvider:
        wp = WorkloadProvider(number, pool, provider, issuer, keys, allowed_audiences or ["api://AzureADTokenExchange"])
        if mapping is not None:
            wp.mapping = mapping
        wp.condition = condition
        self.providers[wp.name] = wp
        return wp

    def add_service_account(self, email: str, *, members: list[str] | None = None) -> ServiceAccount:
        sa = ServiceAccount(email, set(members or []))
        self.accounts[email] = sa
        return sa

    def verify_id_token(self, token: str, audience: str) -> dict[str, Any]:
        return jwt.decode(token, self._id_secret, algorithms=["HS256"], audience=audience)

    def who(self, token: str) -> Issued | None:
        issued = self.tokens.get(token)
        return issued if issued and issued.expires > time.time() else None

    # -- the service ------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        body = request.get_data(as_text=True)
        with self._lock:
            self.requests.append(
                {"method": request.method, "path": request.path, "headers": dict(request.headers), "body": body}
            )
        response = self._route(request, body)
        return response(environ, start_response)

    @staticmethod
    def _json(status: int, body: dict[str, Any]) -> Response:
        return Response(json.dumps(body), status, content_type="application/json; charset=UTF-8")

    def _oauth_error(self, error: str, description: str, status: int = 400) -> Response:
        return self._json(status, {"error": error, "error_description": description})

    def _api_error(
        self, code: int, status: str, message: str, *, reason: str = "", permission: str = "", domain: str = ""
    ) -> Response:
        err: dict[str, Any] = {"code": code, "message": message, "status": status}
        if reason:
            metadata = {"permission": permission} if permission else {}
            err["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": reason,
                    "domain": domain or "iam.googleapis.com",
                    "metadata": metadata,
                }
            ]
        return self._json(code, {"error": err})

    def _route(self, request: Request, body: str) -> Response:
        path = request.path
        if request.method == "POST" and path == "/v1/token":
            return self._token(dict(urllib.parse.parse_qsl(body)))
        if request.method == "POST" and path == "/v1/introspect":
            return self._introspect(dict(urllib.parse.parse_qsl(body)))
        if request.method == "POST" and path.startswith("/v1/projects/-/serviceAccounts/"):
            return self._iam(request, path[len("/v1/projects/-/serviceAccounts/") :], body)
        if request.method == "GET" and path.startswith("/storage/v1/b/"):
            issued = self._bearer(request)
            if issued is None:
                return self._api_error(401, "UNAUTHENTICATED", "Invalid Credentials")
            return self._json(200, {"kind": "storage#objects", "items": [], "caller": issued.principal})
        return self._api_error(404, "NOT_FOUND", f"The requested URL {path} was not found on this server.")

    def _bearer(self, request: Request) -> Issued | None:
        auth = request.headers.get("Authorization", "")
        return self.who(auth[len("Bearer ") :]) if auth.startswith("Bearer ") else None

    def _token(self, form: dict[str, str]) -> Response:
        if form.get("grant_type") != GRANT:
            return self._oauth_error("unsupported_grant_type", f"Unsupported grant_type: {form.get('grant_type', '')}")
        if form.get("requested_token_type") != ACCESS:
            return self._oauth_error("invalid_request", "Invalid value for requested_token_type.")
        if form.get("subject_token_type") not in JWT_TYPES:
            return self._oauth_error("invalid_request", "Invalid value for subject_token_type.")
        if not form.get("subject_token"):
            return self._oauth_error("invalid_request", "Missing required parameter: subject_token.")
        scopes = form.get("scope", "").split()
        if not scopes or any(s != "openid" and not s.startswith(GOOGLE_SCOPES) for s in scopes):
            return self._oauth_error("invalid_scope", f"Invalid scope: {form.get('scope', '')}")
        prefix = f"//iam.{self.universe}/"
        audience = form.get("audience", "")
        wp = self.providers.get(audience[len(prefix) :]) if audience.startswith(prefix) else None
        if wp is None or not wp.enabled:
            return self._oauth_error(
                "invalid_target",
                'The target service indicated by the "audience" parameters is invalid. This might either be because '
                "the pool or provider is disabled or deleted or because it doesn't exist.",
            )
        try:
            claims = jwt.decode(
                form["subject_token"],
                key=wp.keys(),
                algorithms=["RS256"],
                options={"verify_aud": False, "verify_iss": False, "require": ["exp", "iat", "iss", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            return self._oauth_error("invalid_grant", "ID Token has expired.")
        except jwt.PyJWTError:
            return self._oauth_error("invalid_grant", "Invalid ID Token: the signature is not valid.")
        if claims.get("iss") != wp.issuer:
            return self._oauth_error(
                "invalid_grant",
                f"The issuer in ID Token {claims.get('iss')} does not match the expected ones: {wp.issuer}.",
            )
        audiences = claims.get("aud")
        audiences = audiences if isinstance(audiences, list) else [audiences]
        if not set(map(str, audiences)) & set(wp.allowed_audiences):
            return self._oauth_error(
                "invalid_grant",
                f"The audience in ID Token [{', '.join(map(str, audiences))}] does not match the expected audience.",
            )
        subject = wp.mapping(claims)
        if len(subject.encode("utf-8")) > 127:
            return self._oauth_error(
                "invalid_request",
                "The size of mapped attribute google.subject exceeds the 127 bytes limit. Either modify your attribute "
                "mapping or the incoming assertion to produce a mapped attribute that is less than 127 bytes.",
            )
        if wp.condition is not None and not wp.condition(claims):
            return self._oauth_error(
                "unauthorized_client", "The given credential is rejected by the attribute condition."
            )
        token = "ya29.d." + secrets.token_urlsafe(48)
        with self._lock:
            life = self.token_lifetime or 3600
            self.tokens[token] = Issued(wp.principal(subject), time.time() + life, "federated", scopes)
        return self._json(
            200, {"access_token": token, "issued_token_type": ACCESS, "token_type": "Bearer", "expires_in": life}
        )

    def _introspect(self, form: dict[str, str]) -> Response:
        issued = self.who(form.get("token", ""))
        if issued is None:
            return self._json(200, {"active": False})
        return self._json(
            200, {"active": True, "username": issued.principal, "exp": int(issued.expires), "iat": int(time.time())}
        )

    def _iam(self, request: Request, tail: str, body: str) -> Response:
        email, _, method = urllib.parse.unquote(tail).partition(":")
        if method not in ("generateAccessToken", "generateIdToken"):
            return self._api_error(404, "NOT_FOUND", f"Method not found: {method}")
        caller = self._bearer(request)
        if caller is None:
            return self._api_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
                "valid authentication credential.",
            )
        if "iamcredentials.googleapis.com" in self.disabled_apis:
            return self._api_error(
                403,
                "PERMISSION_DENIED",
                "IAM Service Account Credentials API has not been used in project 123456789012 before or it is disabled.",
                reason="SERVICE_DISABLED",
                domain="googleapis.com",
            )
        try:
            payload = json.loads(body or "{}")
        except ValueError:
            return self._api_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        permission = (
            "iam.serviceAccounts.getAccessToken"
            if method == "generateAccessToken"
            else "iam.serviceAccounts.getOpenIdToken"
        )
        sa = self.accounts.get(email)
        if sa is None:
            return self._api_error(404, "NOT_FOUND", f"Not found; Gaia id not found for email {email}")
        if caller.principal not in sa.token_creators:
            return self._api_error(
                403,
                "PERMISSION_DENIED",
                f"Permission '{permission}' denied on resource (or it may not exist).",
                reason="IAM_PERMISSION_DENIED",
                permission=permission,
            )
        if method == "generateIdToken":
            audience = payload.get("audience")
            if not audience:
                return self._api_error(400, "INVALID_ARGUMENT", "Invalid audience: must not be empty.")
            now = int(time.time())
            claims = {
                "iss": "https://accounts.google.com",
                "aud": audience,
                "sub": "1234567890",
                "iat": now,
                "exp": now + 3600,
            }
            if payload.get("includeEmail"):
                claims.update({"email": email, "email_verified": True})
            return self._json(200, {"token": jwt.encode(claims, self._id_secret, algorithm="HS256")})
        scopes = payload.get("scope") or []
        if not scopes:
            return self._api_error(400, "INVALID_ARGUMENT", "Scope required.")
        lifetime_text = str(payload.get("lifetime") or "3600s")
        try:
            lifetime = int(float(lifetime_text.rstrip("s")))
        except ValueError:
            return self._api_error(400, "INVALID_ARGUMENT", f"Invalid value at 'lifetime' ({lifetime_text}).")
        if lifetime > (43200 if sa.lifetime_extension else 3600) or lifetime < 1:
            return self._api_error(
                400,
                "INVALID_ARGUMENT",
                "The lifetime of the access token must be between 1 second and 1 hour (3600s). To set the lifetime "
                "above 1 hour, add the service account to the list of allowed values in the organization policy "
                "constraint constraints/iam.allowServiceAccountCredentialLifetimeExtension.",
            )
        token = "ya29.c." + secrets.token_urlsafe(48)
        expires = time.time() + (self.token_lifetime or lifetime)
        with self._lock:
            self.tokens[token] = Issued(f"serviceAccount:{email}", expires, "service-account", list(scopes))
        return self._json(200, {"accessToken": token, "expireTime": _iso(expires)})
