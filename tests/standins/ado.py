"""Azure DevOps stand-in: the job's OIDC token endpoint, its signing keys and discovery.

Behaves like ``POST {System.OidcRequestUri}?api-version=7.1&serviceConnectionId=<guid>``
(platform.md §1): RS256 tokens with a ``kid``, issuer ``https://vstoken.dev.azure.com/<orgId>`` (or the
Entra issuer for connections converted to it), audience ``api://AzureADTokenExchange``, subject
``sc://<org>/<project>/<connection name>``; a name instead of a GUID returns the pipeline's ``p://`` token,
as the real service does. Issuer, subject and audience formats are the package's own
(``oidc_credentials.claims``). Discovery answers for every organisation it knows (:meth:`add_organization`)
with the one shared key set; :meth:`rotate_key` rolls the signing key. Entra-issued tokens are signed
with a key of their own, published through the Entra discovery path (``/<tenant>/v2.0/.well-known/…``,
``/<tenant>/discovery/v2.0/keys``) for a verifier whose Entra host is mapped here. Errors have the real shapes: a sign-in redirect (or TF400813 with
``X-TFS-FedAuthRedirect: Suppress``) for a bad access token, "There is no explicit reference to service
connection …" for a connection the stage does not reference, a missing api-version, GET not allowed.
Faults (5xx, 429) can be queued to exercise retries.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from oidc_credentials.claims import (
    ADO_AUDIENCE,
    AZURE_DEVOPS_APP_ID,
    ENTRA_AUDIENCE,
    VSTOKEN_BASE,
    entra_issuer,
    entra_subject,
    pipeline_subject,
    service_connection_subject,
    vstoken_issuer,
)
from werkzeug.wrappers import Request, Response

VSTOKEN = VSTOKEN_BASE
AZURE_DEVOPS_APP = AZURE_DEVOPS_APP_ID
_ENTRA_DISCOVERY = re.compile(r"/([0-9a-f-]{36})/v2\.0/\.well-known/openid-configuration")
_ENTRA_KEYS = re.compile(r"/([0-9a-f-]{36})/discovery/v2\.0/keys")


class SigningKey:
    """An RSA signing key and its kid (the SHA-1 thumbprint, upper-case hex, as the real kid is)."""

    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        der = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = hashlib.sha1(der).hexdigest().upper()  # noqa: S324 - a thumbprint

    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return jwk


@dataclass
class Connection:
    id: str
    name: str
    #: False: the stage has no input that references it (the service refuses)
    referenced: bool = True
    #: "vstoken" or "entra": which issuer signs its tokens
    issuer: str = "vstoken"
    tenant_id: str = ""


@dataclass
class Fault:
    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)


class AzureDevOps:
    """The WSGI app. ``base_url`` must be set (to the server's URL) before tokens are requested."""

    def __init__(
        self,
        *,
        org: str = "fabrikam",
        project: str = "Payments",
        pipeline: str = "deploy",
        access_token: str = "ado-job-access-token-0123456789",
        lifetime: int = 300,
    ) -> None:
        self.org = org
        self.org_id = str(uuid.uuid4())
        self.project = project
        self.project_id = str(uuid.uuid4())
        self.pipeline = pipeline
        self.plan_id = str(uuid.uuid4())
        self.job_id = str(uuid.uuid4())
        self.access_token = access_token
        self.lifetime = lifetime
        self.base_url = ""
        self.connections: dict[str, Connection] = {}
        self.faults: list[Fault] = []
        self.requests: list[dict[str, Any]] = []
        self.issued: list[str] = []
        self._lock = threading.Lock()
        #: the published keys, the signing one first
        self.keys: list[SigningKey] = [SigningKey()]
        self.entra_key = SigningKey()
        #: organisation id -> name: every organisation discovery answers for
        self.organizations: dict[str, str] = {self.org_id: org}

    # -- set-up ---------------------------------------------------------------------------------
    @property
    def _key(self) -> Any:
        return self.keys[0].private

    @property
    def kid(self) -> str:
        return self.keys[0].kid

    @property
    def issuer(self) -> str:
        return vstoken_issuer(self.org_id)

    def add_organization(self, name: str) -> str:
        """Another organisation on the same service (same key set); returns its id."""
        org_id = str(uuid.uuid4())
        self.organizations[org_id] = name
        return org_id

    def rotate_key(self, key: SigningKey | None = None, *, keep_old: bool = True) -> str:
        """Sign with a new key (or ``key``) from now on; the key set publishes it first, and the old one if kept."""
        with self._lock:
            self.keys = [key or SigningKey(), *(self.keys[:1] if keep_old else [])]
            return self.keys[0].kid

    def fetches(self, path: str = "/.well-known/jwks") -> int:
        """How many times ``path`` was requested (the key set, by default)."""
        with self._lock:
            return sum(1 for r in self.requests if r["path"] == path)

    @property
    def collection_uri(self) -> str:
        return f"{self.base_url}/{self.org}/"

    @property
    def oidc_request_uri(self) -> str:
        return (
            f"{self.base_url}/{self.org}/{self.project_id}/_apis/distributedtask/hubs/build/plans/"
            f"{self.plan_id}/jobs/{self.job_id}/oidctoken"
        )

    def add_connection(
        self, name: str, *, referenced: bool = True, issuer: str = "vstoken", tenant_id: str = ""
    ) -> Connection:
        conn = Connection(str(uuid.uuid4()), name, referenced, issuer, tenant_id)
        self.connections[conn.id] = conn
        return conn

    def subject(self, conn: Connection) -> str:
        if conn.issuer == "entra":
            return entra_subject(conn.tenant_id, self.org_id, conn.id)
        return service_connection_subject(self.org, self.project, conn.name)

    def fail_next(self, count: int, status: int = 503, body: str = "", headers: dict[str, str] | None = None) -> None:
        with self._lock:
            self.faults.extend(Fault(status, body, dict(headers or {})) for _ in range(count))

    def public_pem(self) -> str:
        return (
            self._key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.jwk() for key in self.keys]}

    def mint(
        self,
        claims: dict[str, Any],
        *,
        now: int | None = None,
        lifetime: int | None = None,
        key: SigningKey | None = None,
    ) -> str:
        """Sign a token the way the service does (tests use it for expired or odd tokens)."""
        iat = int(time.time()) if now is None else now
        payload = {"jti": str(uuid.uuid4()), "nbf": iat - 600, "iat": iat, "exp": iat + (lifetime or self.lifetime)}
        payload.update(claims)
        signer = key or self.keys[0]
        x5t = base64.urlsafe_b64encode(bytes.fromhex(signer.kid)).rstrip(b"=").decode()
        return jwt.encode(
            payload, signer.private, algorithm="RS256", headers={"kid": signer.kid, "x5t": x5t, "typ": "JWT"}
        )

    def token_for(self, conn: Connection) -> str:
        if conn.issuer == "entra":
            claims = {
                "iss": entra_issuer(conn.tenant_id),
                "aud": ENTRA_AUDIENCE,
                "sub": self.subject(conn),
                "azp": AZURE_DEVOPS_APP,
                "tid": conn.tenant_id,
                "idtyp": "app",
                "ver": "2.0",
            }
            return self.mint(claims, lifetime=86700, key=self.entra_key)
        return self.mint({"iss": self.issuer, "aud": ADO_AUDIENCE, "sub": self.subject(conn)})

    def pipeline_claims(self) -> dict[str, Any]:
        """The claims of this job's pipeline token (Teleport's RFD 0211 sample, platform.md §3.1)."""
        return {
            "iss": self.issuer,
            "aud": ADO_AUDIENCE,
            "sub": pipeline_subject(self.org, self.project, self.pipeline),
            "org_id": self.org_id,
            "prj_id": self.project_id,
            "def_id": "42",
            "rpo_id": "a6e6b5a2-4b4f-4b3a-9a1b-0b6c1f1e2d3c",
            "rpo_uri": f"https://dev.azure.com/{self.org}/{self.project}/_git/{self.pipeline}",
            "rpo_ver": "9f2c1e0d4b5a69788796a5b4c3d2e1f00a1b2c3d",
            "rpo_ref": "refs/heads/main",
            "run_id": "1234",
        }

    def pipeline_token(self, **overrides: Any) -> str:
        return self.mint({**self.pipeline_claims(), **overrides})

    # -- the service ------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        body = request.get_data(as_text=True)
        with self._lock:
            self.requests.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "args": dict(request.args),
                    "headers": dict(request.headers),
                    "body": body,
                }
            )
            fault = self.faults.pop(0) if self.faults and request.path.endswith("/oidctoken") else None
        response = self._fault(fault) if fault else self._route(request)
        return response(environ, start_response)

    @staticmethod
    def _fault(fault: Fault) -> Response:
        return Response(
            fault.body or f"<html><body>Service Unavailable ({fault.status})</body></html>",
            fault.status,
            fault.headers,
            content_type="text/html",
        )

    @staticmethod
    def _vss_error(status: int, message: str, type_key: str) -> Response:
        body = {
            "$id": "1",
            "innerException": None,
            "message": message,
            "typeName": f"Microsoft.VisualStudio.Services.WebApi.{type_key}, Microsoft.VisualStudio.Services.WebApi",
            "typeKey": type_key,
            "errorCode": 0,
            "eventId": 3000,
        }
        return Response(json.dumps(body), status, content_type="application/json; charset=utf-8")

    def _route(self, request: Request) -> Response:
        path = request.path
        if path == "/.well-known/jwks":
            return Response(json.dumps(self.jwks()), 200, content_type="application/json")
        entra = _ENTRA_DISCOVERY.fullmatch(path)
        if entra and any(c.tenant_id == entra.group(1) for c in self.connections.values()):
            tenant = entra.group(1)
            return Response(
                json.dumps(
                    {
                        "issuer": entra_issuer(tenant),
                        "jwks_uri": f"{self.base_url}/{tenant}/discovery/v2.0/keys",
                        "token_endpoint": f"{self.base_url}/{tenant}/oauth2/v2.0/token",
                        "id_token_signing_alg_values_supported": ["RS256"],
                        "subject_types_supported": ["pairwise"],
                        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                    }
                ),
                200,
                content_type="application/json",
            )
        keys = _ENTRA_KEYS.fullmatch(path)
        if keys and any(c.tenant_id == keys.group(1) for c in self.connections.values()):
            return Response(json.dumps({"keys": [self.entra_key.jwk()]}), 200, content_type="application/json")
        org_id = path[1:].split("/", 1)[0]
        if path == f"/{org_id}/.well-known/openid-configuration" and org_id in self.organizations:
            return Response(
                json.dumps(
                    {
                        "issuer": vstoken_issuer(org_id),
                        "jwks_uri": f"{self.base_url}/.well-known/jwks",
                        "subject_types_supported": ["public", "pairwise"],
                        "response_types_supported": ["id_token"],
                        "claims_supported": ["sub", "aud", "exp", "iat", "iss", "nbf"],
                        "id_token_signing_alg_values_supported": ["RS256"],
                        "scopes_supported": ["openid"],
                    }
                ),
                200,
                content_type="application/json",
            )
        expected = self.oidc_request_uri[len(self.base_url) :]
        if path != expected:
            return self._vss_error(404, f"The resource cannot be found: {path}", "ResourceNotFoundException")
        if request.method != "POST":
            return Response(
                json.dumps({"Message": f"The requested resource does not support http method '{request.method}'."}),
                405,
                {"Allow": "POST"},
                content_type="application/json; charset=utf-8",
            )
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            if request.headers.get("X-TFS-FedAuthRedirect") == "Suppress":
                return self._vss_error(
                    401,
                    "TF400813: The user '' is not authorized to access this resource.",
                    "UnauthorizedRequestException",
                )
            signin = f"https://spsprodweu5.vssps.visualstudio.com/_signin?realm=dev.azure.com&reply_to={self.base_url}"
            return Response(
                f'<html><head><title>Object moved</title></head><body><h2>Object moved to <a href="{signin}">here</a>.</h2></body></html>',
                302,
                {"Location": signin},
                content_type="text/html; charset=utf-8",
            )
        if not request.args.get("api-version"):
            return self._vss_error(
                400,
                "No api-version was supplied for the POST request. An api-version must be supplied either as part of the "
                'Accept header (e.g. "application/json; api-version=1.0") or as a query parameter.',
                "VssVersionNotSpecifiedException",
            )
        connection_id = request.args.get("serviceConnectionId", "")
        try:
            uuid.UUID(connection_id)
            is_guid = True
        except ValueError:
            is_guid = False
        if not is_guid:
            token = self.pipeline_token()
        else:
            conn = self.connections.get(connection_id.lower())
            if conn is None or not conn.referenced:
                message = f"There is no explicit reference to service connection {connection_id} from current stage Deploy.Job.__default."
                return Response(
                    json.dumps({"count": 1, "value": message}), 400, content_type="application/json; charset=utf-8"
                )
            token = self.token_for(conn)
        with self._lock:
            self.issued.append(token)
        return Response(json.dumps({"oidcToken": token}), 200, content_type="application/json; charset=utf-8")
