"""Azure Key Vault stand-in: the secrets data plane as test-peers.md §5 and §10 describe it.

- A request without a bearer token gets the real challenge: 401, ``WWW-Authenticate: Bearer
  authorization="<authority>/<tenant>", resource="https://vault.azure.net"`` and AKV10000.
- A bearer token must be one the Entra stand-in issued for the vault resource, in the vault's tenant
  (else 401 with the AKV message Key Vault gives).
- Authorisation is either Azure RBAC (role assignments by app id; ``ForbiddenByRbac``) or access
  policies (``AccessDenied``), behind an optional firewall (``ForbiddenByFirewall``).
- ``GET /secrets?api-version=…&maxresults=n`` pages with real-style ``nextLink``s
  (``https://host:port/secrets?api-version=…&$skiptoken=<base64 json>&maxresults=n``); items carry no
  value and no version. ``GET /secrets/<name>[/[<version>]]`` returns the value; 404 ``SecretNotFound``;
  a disabled secret gives 403 ``SecretDisabled``. Names are case-insensitive, as in Key Vault.
- Faults: ``throttle_next`` answers 429 with ``Retry-After``; ``latency`` delays every request;
  ``page_size`` serves fewer items per page than ``maxresults`` asks for, as the service may.
It records every request and the highest number of requests it served at once.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from werkzeug.wrappers import Request, Response

from tests.standins.entra import Entra

RESOURCE = "https://vault.azure.net"
API_VERSIONS = ("2016-10-01", "7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01", "2026-04-01")
MAX_RESULTS = 25


@dataclass
class Secret:
    name: str
    value: str
    enabled: bool = True
    nbf: int | None = None
    exp: int | None = None
    content_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    version: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: int = field(default_factory=lambda: int(time.time()) - 86400)

    def attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {"enabled": self.enabled}
        if self.nbf is not None:
            attrs["nbf"] = self.nbf
        if self.exp is not None:
            attrs["exp"] = self.exp
        attrs.update(
            {
                "created": self.created,
                "updated": self.created,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": 90,
            }
        )
        return attrs


class KeyVault:
    """The WSGI app for one vault. ``base_url`` is set once the server listens."""

    def __init__(
        self,
        entra: Entra,
        tenant_id: str,
        *,
        name: str = "kv-payments",
        authority: str = "https://login.microsoftonline.com",
        rbac: bool = True,
        subscription_id: str = "",
    ) -> None:
        self.entra = entra
        self.tenant_id = tenant_id
        self.name = name
        self.authority = authority
        self.rbac = rbac
        self.subscription_id = subscription_id or str(uuid.uuid4())
        self.base_url = ""
        self.secrets: dict[str, Secret] = {}
        #: RBAC: app ids holding "Key Vault Secrets User" (get + list)
        self.role_assignments: set[str] = set()
        #: access policies: app id -> secret permissions ("get", "list")
        self.access_policies: dict[str, set[str]] = {}
        #: firewall on and these client addresses allowed (None: public access)
        self.allowed_ips: set[str] | None = None
        self.latency = 0.0
        self.page_size = MAX_RESULTS
        self.requests: list[dict[str, Any]] = []
        self.max_in_flight = 0
        #: the most secret values (GET /secrets/<name>) served at once
        self.max_values_in_flight = 0
        self._in_flight = 0
        self._values_in_flight = 0
        self._throttle: list[int] = []
        self._lock = threading.Lock()

    @property
    def resource_id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/rg-payments/providers/Microsoft.KeyVault/vaults/{self.name}"

    def add(self, name: str, value: str, **kwargs: Any) -> Secret:
        secret = Secret(name, value, **kwargs)
        self.secrets[name.lower()] = secret
        return secret

    def grant(self, client_id: str) -> None:
        """Give the app what it needs: the role (RBAC vault) or get + list (access-policy vault)."""
        if self.rbac:
            self.role_assignments.add(client_id)
        else:
            self.access_policies[client_id] = {"get", "list"}

    def throttle_next(self, count: int, retry_after: int = 1) -> None:
        with self._lock:
            self._throttle.extend([retry_after] * count)

    # -- the service --------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        value = request.path.startswith("/secrets/") and len(request.path.strip("/").split("/")) >= 2
        with self._lock:
            self._in_flight += 1
            self._values_in_flight += value
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            self.max_values_in_flight = max(self.max_values_in_flight, self._values_in_flight)
            self.requests.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "args": dict(request.args),
                    "headers": dict(request.headers),
                }
            )
        try:
            if self.latency:
                time.sleep(self.latency)
            response = self._route(request)
        finally:
            with self._lock:
                self._in_flight -= 1
                self._values_in_flight -= value
        return response(environ, start_response)

    @staticmethod
    def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
        return Response(json.dumps(body), status, headers or {}, content_type="application/json; charset=utf-8")

    def _err(
        self, status: int, code: str, message: str, inner: str = "", headers: dict[str, str] | None = None
    ) -> Response:
        error: dict[str, Any] = {"code": code, "message": message}
        if inner:
            error["innererror"] = {"code": inner}
        return self._json(status, {"error": error}, headers)

    def _route(self, request: Request) -> Response:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            challenge = f'Bearer authorization="{self.authority}/{self.tenant_id}", resource="{RESOURCE}"'
            return self._err(
                401,
                "Unauthorized",
                "AKV10000: Request is missing a Bearer or PoP token.",
                headers={"WWW-Authenticate": challenge},
            )
        with self._lock:
            throttled = self._throttle.pop(0) if self._throttle else None
        if throttled is not None:
            return self._err(
                429,
                "Throttled",
                "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
                headers={"Retry-After": str(throttled)},
            )
        version = request.args.get("api-version", "")
        if version not in API_VERSIONS:
            return self._err(
                400,
                "BadParameter",
                f"The specified version ({version}) is not recognized. Consider using the latest supported version (7.6).",
            )
        try:
            claims = self.entra.verify_access_token(auth[len("Bearer ") :], resource=RESOURCE)
        except jwt.ExpiredSignatureError:
            return self._err(401, "Unauthorized", "AKV10022: Invalid audience or token expired.")
        except jwt.PyJWTError:
            return self._err(
                401,
                "Unauthorized",
                "AKV10022: Invalid audience. Expected https://vault.azure.net, or the token signature is invalid.",
            )
        if claims.get("tid") != self.tenant_id:
            return self._err(
                401,
                "Unauthorized",
                f"AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{self.tenant_id}/, "
                f"https://login.microsoftonline.com/{self.tenant_id}/v2.0, found {claims.get('iss')}.",
            )
        app_id = str(claims.get("appid", ""))
        caller = f"appid={app_id};oid={claims.get('oid')};iss={claims.get('iss')}"
        client_ip = request.remote_addr or "127.0.0.1"
        if self.allowed_ips is not None and client_ip not in self.allowed_ips:
            return self._err(
                403,
                "Forbidden",
                f"Client address is not authorized and caller is not a trusted service.\r\nClient address: {client_ip}\r\n"
                f"Caller: {caller}\r\nVault: {self.name};location=westeurope",
                "ForbiddenByFirewall",
            )
        path = request.path
        if path in ("/secrets", "/secrets/"):
            denied = self._authorise(
                app_id, caller, "list", "Microsoft.KeyVault/vaults/secrets/readMetadata/action", ""
            )
            return denied or self._list(request)
        match = re.fullmatch(r"/secrets/([^/]+)(?:/([0-9a-fA-F]*))?/?", path)
        if not match:
            return self._err(404, "NotFound", f"The requested path {path} was not found.")
        name = match.group(1)
        denied = self._authorise(app_id, caller, "get", "Microsoft.KeyVault/vaults/secrets/getSecret/action", name)
        if denied:
            return denied
        secret = self.secrets.get(name.lower())
        if secret is None or (match.group(2) and match.group(2) != secret.version):
            return self._err(
                404,
                "SecretNotFound",
                f"A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182",
            )
        if not secret.enabled:
            return self._err(403, "Forbidden", "Operation get is not allowed on a disabled secret.", "SecretDisabled")
        body: dict[str, Any] = {
            "value": secret.value,
            "id": f"{self._host()}/secrets/{secret.name}/{secret.version}",
            "attributes": secret.attributes(),
            "tags": secret.tags,
        }
        if secret.content_type:
            body["contentType"] = secret.content_type
        return self._json(200, body)

    def _host(self) -> str:
        return self.base_url

    def _authorise(self, app_id: str, caller: str, permission: str, action: str, name: str) -> Response | None:
        if self.rbac:
            if app_id in self.role_assignments:
                return None
            resource = self.resource_id.lower() + (f"/secrets/{name}" if name else "")
            return self._err(
                403,
                "Forbidden",
                "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role "
                "definitions were changed recently, please observe propagation time.\r\n"
                f"Caller: {caller}\r\nAction: '{action}'\r\nResource: '{resource}'\r\nAssignment: (not found)\r\n"
                f"DecisionReason: 'DeniedWithNoValidRBAC' \r\nVault: {self.name};location=westeurope\r\n",
                "ForbiddenByRbac",
            )
        if permission in self.access_policies.get(app_id, set()):
            return None
        return self._err(
            403,
            "Forbidden",
            f"The user, group or application '{caller}' does not have secrets {permission} permission on key vault "
            f"'{self.name};location=westeurope'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
            "AccessDenied",
        )

    def _list(self, request: Request) -> Response:
        try:
            size = int(request.args.get("maxresults", MAX_RESULTS))
        except ValueError:
            size = 0
        if not 1 <= size <= MAX_RESULTS:
            return self._err(
                400, "BadParameter", f"Invalid maxresults value. The value must be between 1 and {MAX_RESULTS}."
            )
        size = min(size, self.page_size)
        start = 0
        token = request.args.get("$skiptoken")
        if token:
            try:
                token = token.replace(" ", "+")
                marker = json.loads(base64.b64decode(token + "=" * (-len(token) % 4)))["NextMarker"]
                start = int(marker.split("!")[-1])
            except (ValueError, KeyError, TypeError):
                return self._err(400, "BadParameter", "The skiptoken is invalid.")
        names = sorted(self.secrets)
        page = [self.secrets[n] for n in names[start : start + size]]
        items = []
        for secret in page:
            item: dict[str, Any] = {
                "id": f"{self._host()}/secrets/{secret.name}",
                "attributes": secret.attributes(),
                "tags": secret.tags,
            }
            if secret.content_type:
                item["contentType"] = secret.content_type
            items.append(item)
        next_link = None
        if start + size < len(names):
            marker = json.dumps({"NextMarker": f"2!88!{start + size}", "TargetLocation": 0}, separators=(",", ":"))
            skiptoken = base64.b64encode(marker.encode()).decode().rstrip("=")
            next_link = f"{self._host()}/secrets?api-version={request.args['api-version']}&$skiptoken={skiptoken}&maxresults={size}"
        return self._json(200, {"value": items, "nextLink": next_link})
