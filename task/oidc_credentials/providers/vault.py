"""HashiCorp Vault (and OpenBao): JWT login with the job's OIDC token, then read the secrets the author maps.

- Login: ``POST <address>/v1/auth/<mount>/login`` ``{"role", "jwt"}`` (``X-Vault-Namespace`` when set);
  the answer's ``auth.client_token`` is a Vault token (https://developer.hashicorp.com/vault/api-docs/auth/jwt).
- Secrets: the mount of each path is looked up (``GET /v1/sys/internal/ui/mounts/<path>``, as Vault's own
  CLI does) to read KV version 2 at ``<mount>/data/<rest>`` (``data.data``) and version 1 at the path
  itself (``data``).
- At the end of the job: ``POST /v1/auth/token/revoke-self`` with the token.

The first half of the module is the wire client (no pipeline notions); ``configure``/``exchange`` map the
inputs to it and its results to pipeline variables; ``post`` revokes the token when the job ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from .. import destination, secret_vars
from ..agent import AgentEnv, Endpoint
from ..catalogue import find
from ..destination import UnsafeDestination
from ..errors import ConfigError, ExchangeError, TaskError
from ..files import write_private
from ..http import Http, Response
from ..oidc import Claims, TokenSource
from ..text import iso_utc
from ..vso import check_variable_name
from . import Context, File, Outcome, Variable

TITLE = "Vault"
CONNECTION_INPUT = "vaultConnection"
SERVICE = "Vault"
DEFAULT_MOUNT = "jwt"
ADO_AUDIENCE = "api://AzureADTokenExchange"
OIDC_TOKEN = "the OIDC token"  # noqa: S105 - descriptions for the destination guard, not secrets
VAULT_TOKEN = "the Vault token"  # noqa: S105
MULTILINE = ("fail", "base64", "file")
_MOUNT = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
_PATH = re.compile(r"^[A-Za-z0-9_.@=+-]+(/[A-Za-z0-9_.@=+-]+)+$")
_NAMESPACE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*/?$")
_OWN = ("VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "VAULT_CACERT")


# -- the wire client ---------------------------------------------------------------------------
@dataclass(frozen=True)
class VaultServer:
    """Where Vault is and how to talk to it."""

    address: str
    namespace: str = ""
    ca_bundle: str = ""


@dataclass(frozen=True)
class VaultLogin:
    token: str
    accessor: str
    policies: tuple[str, ...]
    lease_duration: int
    renewable: bool


@dataclass(frozen=True)
class VaultError:
    """Vault's error answer: the status and its ``errors`` list."""

    status: int
    errors: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return "; ".join(" ".join(e.replace("*", " ").split()) for e in self.errors) or f"HTTP {self.status}"


@dataclass(frozen=True)
class Mount:
    path: str  # "secret/" (with the trailing slash, as Vault names it)
    type: str
    version: int  # KV version; 0 for other engines


def _error(resp: Response) -> VaultError:
    body = resp.json()
    errors = body.get("errors") if isinstance(body, dict) else None
    return VaultError(resp.status, tuple(str(e) for e in errors) if isinstance(errors, list) else ())


def _retry_if(resp: Response) -> bool:
    return resp.status == 412  # a performance standby that has not caught up yet (Vault's own advice: retry)


def _call(
    http: Http,
    server: VaultServer,
    method: str,
    path: str,
    *,
    token: str = "",
    json_body: Any = None,
    credential: str = VAULT_TOKEN,
) -> Response:
    headers = {"Accept": "application/json"}
    if token:
        headers["X-Vault-Token"] = token
    if server.namespace:
        headers["X-Vault-Namespace"] = server.namespace
    return http.request(
        method,
        f"{server.address}/v1/{path}",
        service=SERVICE,
        headers=headers,
        json=json_body,
        retry_if=_retry_if,
        ca_bundle=server.ca_bundle,
        allowed=destination.parse(server.address, what=credential),
        credential=credential,
    )


def jwt_login(http: Http, server: VaultServer, *, mount: str, role: str, jwt: str) -> VaultLogin | VaultError:
    resp = _call(
        http, server, "POST", f"auth/{mount}/login", json_body={"role": role, "jwt": jwt}, credential=OIDC_TOKEN
    )
    if resp.status != 200:
        return _error(resp)
    body = resp.json()
    auth = body.get("auth") if isinstance(body, dict) else None
    token = auth.get("client_token") if isinstance(auth, dict) else None
    if not isinstance(auth, dict) or not isinstance(token, str) or not token:
        raise ExchangeError(
            f"{SERVICE} answered the login with HTTP 200 but no auth.client_token. Check the connection's URL "
            f"({server.address}): it must be the Vault server's address.",
            service=SERVICE,
            status=200,
        )
    return VaultLogin(
        token=token,
        accessor=str(auth.get("accessor") or ""),
        policies=tuple(map(str, auth.get("policies") or ())),
        lease_duration=int(auth.get("lease_duration") or 0),
        renewable=bool(auth.get("renewable")),
    )


def find_mount(http: Http, server: VaultServer, token: str, path: str) -> Mount | VaultError:
    resp = _call(http, server, "GET", f"sys/internal/ui/mounts/{quote(path)}", token=token)
    if resp.status != 200:
        return _error(resp)
    body = resp.json()
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or not data.get("path"):
        return VaultError(resp.status, ("the mount lookup answered without a mount path",))
    options = data.get("options") if isinstance(data.get("options"), dict) else {}
    kind = str(data.get("type") or "")
    version = int(str((options or {}).get("version") or "1")) if kind in ("kv", "generic") else 0
    return Mount(str(data["path"]), kind, version)


def read_secret(http: Http, server: VaultServer, token: str, api_path: str) -> dict[str, Any] | VaultError:
    """The ``data`` of a read (for KV v2, the caller passes ``<mount>/data/<rest>`` and takes ``data.data``)."""
    resp = _call(http, server, "GET", quote(api_path), token=token)
    if resp.status != 200:
        return _error(resp)
    body = resp.json()
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else {}


def lookup_self(http: Http, server: VaultServer, token: str) -> dict[str, Any] | VaultError:
    """The token's own properties (``accessor``, ``ttl``, ``policies``, ...)."""
    return read_secret(http, server, token, "auth/token/lookup-self")


def revoke_self(http: Http, server: VaultServer, token: str) -> VaultError | None:
    """Revoke the token (and its children). None on success; a 403 means it was already gone."""
    resp = _call(http, server, "POST", "auth/token/revoke-self", token=token)
    return None if resp.status in (200, 204) else _error(resp)


# -- configuration -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SecretRef:
    """One line of ``vaultSecrets``: ``<path> [<field>] | <VARIABLE>``."""

    line: int
    path: str
    field: str
    variable: str


@dataclass(frozen=True)
class VaultConfig:
    address: str
    role: str
    mount: str
    namespace: str
    secrets: tuple[SecretRef, ...] = ()
    #: PEM text of a CA bundle to trust for Vault ("" = the job's)
    ca_pem: str = ""
    ca_path: str = ""
    temp_dir: str = ""
    #: what to do with a multi-line value: fail, base64 or file (the shared secret-to-variable policy)
    multiline: str = "fail"


def protected_reason(name: str) -> str | None:
    """Why a variable name from the secrets list may not be used (the shared secret-to-variable policy), or None."""
    why = check_variable_name(name) or secret_vars.protected(name)
    if why:
        return why
    if secret_vars.agent_key(name).upper() in _OWN:
        return "the task sets it itself"
    return None


def parse_secrets(text: str) -> tuple[SecretRef, ...]:
    refs: list[SecretRef] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip().rstrip(";").strip()
        if not line or line.startswith("#"):
            continue
        spec, bar, variable = line.partition("|")
        variable = variable.strip()
        parts = spec.split()
        example = "secret/app db_password | DB_PASSWORD"
        if not bar or not variable:
            raise ConfigError(
                f"Input 'vaultSecrets', line {number}: name the variable after '|', e.g. '{example}' (got '{line}')."
            )
        if len(parts) not in (1, 2):
            raise ConfigError(
                f"Input 'vaultSecrets', line {number}: write '<path> <field> | <VARIABLE>' or '<path> | <VARIABLE>' "
                f"for the whole secret as JSON, e.g. '{example}' (got '{line}')."
            )
        path = parts[0].strip("/")
        if not _PATH.match(path) or any(seg in (".", "..") for seg in path.split("/")):
            raise ConfigError(
                f"Input 'vaultSecrets', line {number}: '{parts[0]}' is not a secret path like secret/app "
                "(the mount, then the secret's path)."
            )
        why = protected_reason(variable)
        if why:
            raise ConfigError(f"Input 'vaultSecrets', line {number}: cannot set variable '{variable}': {why}.")
        key = secret_vars.agent_key(variable)
        if key in seen:
            raise ConfigError(
                f"Input 'vaultSecrets', lines {seen[key]} and {number} both set '{variable}' (names are compared "
                "the way the agent does: case and . - _ alike)."
            )
        seen[key] = number
        refs.append(SecretRef(number, path, parts[1] if len(parts) == 2 else "", variable))
    return tuple(refs)


def _address(url: str) -> str:
    """The server's address (no /v1, no trailing slash), once the one destination guard admits it."""
    url = url.strip()
    try:
        destination.parse(url, what=OIDC_TOKEN)
    except UnsafeDestination as exc:
        raise ConfigError(
            f"The Vault connection's URL must be the server's https address like https://vault.example.com:8200, "
            f"got '{destination.shown(url)}': {exc.reason}."
        ) from exc
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[:-3]
    return f"{parts.scheme}://{parts.netloc}{path}"


def configure(agent: AgentEnv, endpoint: Endpoint) -> VaultConfig:
    """Read the connection and the ``vault*`` inputs; refuse bad ones. Sends nothing, writes nothing."""
    if not endpoint.url:
        raise ConfigError(
            "The Vault connection has no URL: set it to the server's address, e.g. https://vault.example.com:8200."
        )
    address = _address(endpoint.url)
    role = agent.input("vaultRole") or endpoint.param("role")
    if not role:
        raise ConfigError("No Vault role: set 'role' on the Vault connection or the task input 'vaultRole'.")
    mount = (agent.input("vaultMountPath") or endpoint.param("mountPath") or DEFAULT_MOUNT).strip("/")
    if mount.startswith("auth/"):
        mount = mount[len("auth/") :]
    if not _MOUNT.match(mount):
        raise ConfigError(f"The JWT auth mount path must look like 'jwt' or 'ado/jwt', got '{mount}'.")
    namespace = agent.input("vaultNamespace") or endpoint.param("namespace")
    if namespace and not _NAMESPACE.match(namespace):
        raise ConfigError(f"The Vault namespace must look like 'admin' or 'admin/team', got '{namespace}'.")
    refs = parse_secrets(agent.input("vaultSecrets"))
    ca = agent.input("vaultCaCertificate")
    ca_pem = ca_path = ""
    temp = agent.variable("Agent.TempDirectory")
    if ca.startswith("-----BEGIN"):
        if "-----BEGIN CERTIFICATE-----" not in ca:
            raise ConfigError("Input 'vaultCaCertificate' must hold PEM certificates (-----BEGIN CERTIFICATE-----).")
        if not temp:
            raise ConfigError("Agent.TempDirectory is not set, so there is nowhere to keep the CA bundle for Vault.")
        ca_pem = ca.strip() + "\n"
        ca_path = os.path.join(temp, "oidc-credentials", f"vault-ca-{secrets.token_hex(6)}.pem")
    elif ca:
        if not os.path.isfile(ca):
            raise ConfigError(
                f"Input 'vaultCaCertificate' must be PEM text or the path of a PEM file on the agent; '{ca}' is not a file."
            )
        ca_path = os.path.abspath(ca)
    multiline = (agent.input("vaultMultilineSecrets") or "fail").lower()
    if multiline not in MULTILINE:
        raise ConfigError(f"Input 'vaultMultilineSecrets' must be one of {', '.join(MULTILINE)}, got '{multiline}'.")
    if multiline == "file" and not temp:
        raise ConfigError("Agent.TempDirectory is not set, so there is nowhere private for multi-line secret files.")
    return VaultConfig(address, role, mount, namespace, refs, ca_pem, ca_path, temp, multiline)


def server_of(config: VaultConfig) -> VaultServer:
    return VaultServer(config.address, config.namespace.strip("/"), config.ca_path)


# -- explanations ------------------------------------------------------------------------------
def _role_cmd(config: VaultConfig, claims: Claims | None, extra: str = "") -> str:
    sub = claims.sub if claims else "<subject>"
    aud = claims.aud if claims else ADO_AUDIENCE
    return (
        f"vault write auth/{config.mount}/role/{config.role} role_type=jwt user_claim=sub bound_audiences={aud} "
        f"bound_subject={sub} token_policies=<policy>{extra}"
    )


def explain_login(err: VaultError, config: VaultConfig, claims: Claims | None) -> ExchangeError:
    text = err.text
    lowered = text.lower()
    head = f"{SERVICE} at {config.address} refused the JWT login (auth/{config.mount}, role '{config.role}'): {text}"
    sub = claims.sub if claims else "<the token's subject>"
    aud = claims.aud if claims else ADO_AUDIENCE
    iss = claims.iss if claims else "<the token's issuer>"
    code = ""
    if "sealed" in lowered:
        code, fix = (
            "Sealed",
            "The Vault server is sealed: an operator must unseal it (vault operator unseal) before jobs can log in.",
        )
    elif "could not be found" in lowered and "role" in lowered:
        code, fix = (
            "RoleNotFound",
            (
                f"There is no role '{config.role}' on the JWT mount auth/{config.mount}. Create it (or fix 'role' on the "
                f"connection): {_role_cmd(config, claims)}"
            ),
        )
    elif "no audiences bound" in lowered:
        code, fix = (
            "NoAudiencesBound",
            (
                f"The role binds no audience, and Vault (>= 1.16) refuses tokens that carry one. Bind the Azure DevOps "
                f"audience: vault write auth/{config.mount}/role/{config.role} bound_audiences={ADO_AUDIENCE} (keep the "
                "role's other settings)."
            ),
        )
    elif "audience" in lowered:
        code, fix = (
            "AudienceMismatch",
            (
                f"The role's bound_audiences do not include this token's audience ({aud}). Add it: vault write "
                f"auth/{config.mount}/role/{config.role} bound_audiences={aud}"
            ),
        )
    elif "subject" in lowered or "bound claim" in lowered or ("claim" in lowered and "does not match" in lowered):
        code, fix = (
            "ClaimMismatch",
            (
                f"The role's bound subject or bound claims do not match this token: its sub is {sub}. Vault says: {text}. "
                f"Set the role's bound_subject (or bound_claims) to it: {_role_cmd(config, claims)}. The subject holds "
                "names: renaming the organisation, project or connection changes it."
            ),
        )
    elif "issuer" in lowered:
        code, fix = (
            "IssuerMismatch",
            (
                f"The JWT mount trusts another issuer. This token's issuer is {iss}: vault write auth/{config.mount}/config "
                f"oidc_discovery_url={iss} bound_issuer={iss}"
            ),
        )
    elif "signature" in lowered or "no known key" in lowered:
        code, fix = (
            "UntrustedSigner",
            (
                f"The JWT mount does not have the keys that signed this token. Point it at the issuer: vault write "
                f"auth/{config.mount}/config oidc_discovery_url={iss} bound_issuer={iss}"
            ),
        )
    elif "expired" in lowered:
        code, fix = (
            "TokenExpired",
            "The OIDC token had expired when Vault checked it: check the agent's and Vault's clocks.",
        )
    elif err.status in (403, 404) or "no handler" in lowered:
        code, fix = (
            "NoJwtMount",
            (
                f"There is no JWT auth method at auth/{config.mount} here"
                + (f" (namespace '{config.namespace}')" if config.namespace else "")
                + f". Enable it (vault auth enable -path={config.mount} jwt) or fix the connection's 'mountPath'."
            ),
        )
    else:
        entry = find(SERVICE, "", text)  # the rest of Vault's wordings: the catalogue's code, meaning and fix
        code, fix = (entry.code, f"{entry.meaning} Fix: {entry.fix}") if entry else ("", "")
    return ExchangeError(
        head.rstrip(".") + (".\n" + fix if fix else "."), service=SERVICE, status=err.status, code=code
    )


def explain_read(err: VaultError, ref: SecretRef, api_path: str, mount: Mount | None) -> ExchangeError:
    where = f"Input 'vaultSecrets' line {ref.line} ({ref.path})"
    rest = ref.path[len(mount.path) :] if mount else ""
    if "sealed" in err.text.lower():
        fix = "The Vault server is sealed: an operator must unseal it."
        code = "Sealed"
    elif mount and mount.version == 1 and rest.startswith("data/") and err.status in (403, 404):
        code = "KvVersionMixup"
        fix = (
            f"The mount {mount.path} is KV version 1, which has no data/ segment: write the path as "
            f"{mount.path}{rest[len('data/') :]}"
        )
    elif mount and mount.version == 2 and rest.startswith(("metadata/", "delete/", "destroy/")):
        code = "KvVersionMixup"
        fix = (
            f"The mount {mount.path} is KV version 2: write the secret's path as {mount.path}"
            f"{rest.split('/', 1)[1]} (the task reads {mount.path}data/...)"
        )
    elif err.status == 403:
        code = "PermissionDenied"
        fix = (
            f"The token's policies do not allow reading {api_path}. Add to a policy of the role:\n"
            f'  path "{api_path}" {{ capabilities = ["read"] }}'
            + (
                f"\n(KV version 2 policies name {mount.path}data/..., not {ref.path})"
                if mount and mount.version == 2 and not rest.startswith("data/")
                else ""
            )
        )
    elif err.status == 404:
        code = "NotFound"
        kind = f"KV version {mount.version}" if mount and mount.version else (mount.type if mount else "")
        fix = f"No secret at {api_path}" + (f" (mount {mount.path}, {kind})" if mount else "") + ": check the path."
    else:
        code, fix = "", ""
    return ExchangeError(
        f"{SERVICE} refused to read {where}: HTTP {err.status}: {err.text}" + (f".\n{fix}" if fix else "."),
        service=SERVICE,
        status=err.status,
        code=code,
    )


# -- the exchange ------------------------------------------------------------------------------
def _value(data: dict[str, Any], ref: SecretRef, multiline_ok: bool) -> str:
    if not ref.field:
        return json.dumps(data, separators=(",", ":"), sort_keys=True)
    if ref.field not in data:
        raise ExchangeError(
            f"The secret {ref.path} (input 'vaultSecrets' line {ref.line}) has no field '{ref.field}'; it has: "
            + (", ".join(sorted(map(str, data))) or "no fields")
            + ".",
            service=SERVICE,
            code="NoSuchField",
        )
    value = data[ref.field]
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if not multiline_ok and ("\n" in text or "\r" in text):
        raise ExchangeError(
            f"The field '{ref.field}' of {ref.path} (line {ref.line}) spans several lines, which a secret pipeline "
            "variable cannot hold. Set input 'vaultMultilineSecrets' to base64 (the variable holds it base64-encoded) "
            "or file (a private file, its path in VAULT_FILE_<VARIABLE>), or map the whole secret (one-line JSON).",
            service=SERVICE,
            code="MultiLine",
        )
    return text


def read_all(
    http: Http, server: VaultServer, token: str, refs: tuple[SecretRef, ...], log: Any, *, multiline_ok: bool = False
) -> list[str]:
    """The value of each reference, in order; raises the explained error for the first that fails."""
    mounts: dict[str, Mount] = {}
    values: list[str] = []
    for ref in refs:
        mount = next((m for p, m in mounts.items() if ref.path.startswith(p)), None)
        if mount is None:
            found = find_mount(http, server, token, ref.path)
            if isinstance(found, VaultError):
                raise explain_read(found, ref, ref.path, None)
            mount = mounts.setdefault(found.path, found)
        rest = ref.path[len(mount.path) :]
        api_path = ref.path
        if mount.version == 2 and not rest.startswith("data/"):
            api_path = f"{mount.path}data/{rest}"
        data = read_secret(http, server, token, api_path)
        if isinstance(data, VaultError):
            raise explain_read(data, ref, api_path, mount)
        if mount.version == 2:
            inner = data.get("data")
            data = inner if isinstance(inner, dict) else {}
        values.append(_value(data, ref, multiline_ok))
        log(f"Read {api_path}" + (f" field {ref.field}" if ref.field else " (whole secret)") + f" into {ref.variable}")
    return values


def obtain(config: VaultConfig, tokens: TokenSource, ctx: Context) -> tuple[VaultLogin, list[str]]:
    """Log in with the OIDC token and read the mapped secrets, errors explained. When a read fails after the
    login the token is revoked at once: a failed task leaves no live token behind."""
    server = server_of(config)
    jwt = tokens()
    try:
        login = jwt_login(ctx.http, server, mount=config.mount, role=config.role, jwt=jwt)
    except ExchangeError as exc:
        if exc.status is None:
            raise ExchangeError(
                exc.message + f"\nIs the Vault server at {config.address} running and reachable from this agent?",
                service=SERVICE,
            ) from exc
        raise
    if isinstance(login, VaultError):
        raise explain_login(login, config, tokens.last_claims)
    ctx.log(
        f"Logged in: policies {', '.join(login.policies) or 'none'}, token valid for {login.lease_duration} s"
        + (" (renewable)" if login.renewable else "")
    )
    try:
        values = read_all(
            ctx.http, server, login.token, config.secrets, ctx.log, multiline_ok=config.multiline != "fail"
        )
    except TaskError:
        with contextlib.suppress(TaskError):
            revoke_self(ctx.http, server, login.token)
            ctx.log("Revoked the Vault token, since the secrets could not all be read.")
        raise
    return login, values


# -- the pipeline ------------------------------------------------------------------------------
def to_outcome(config: VaultConfig, login: VaultLogin, values: list[str], now: float, suffix: str) -> Outcome:
    """VAULT_ADDR (plain), VAULT_TOKEN (secret) and each mapped value by the shared secret-to-variable policy
    (secret variables; multi-line ones base64-encoded or in private files), and what the post-job step revokes."""
    namespace = config.namespace.strip("/")
    variables = [Variable("VAULT_ADDR", config.address)]
    if namespace:
        variables.append(Variable("VAULT_NAMESPACE", namespace))
    if config.ca_path:
        variables.append(Variable("VAULT_CACERT", config.ca_path))
    variables.append(Variable("VAULT_TOKEN", login.token, secret=True))
    policy = secret_vars.Policy(
        prefix="VAULT",
        multiline=config.multiline,
        folder=os.path.join(config.temp_dir, "oidc-credentials", f"vault-{suffix}"),
        filter_input="vaultSecrets",
    )
    names = [ref.variable for ref in config.secrets]
    planned = secret_vars.plan(zip(names, values), policy, requested=names)
    return Outcome(
        variables=variables + planned.variables,
        identity=f"role {config.role} (policies: {', '.join(login.policies) or 'none'})",
        expires=iso_utc(now + login.lease_duration) if login.lease_duration else "",
        notes=[*planned.notes, "The Vault token is revoked when the job ends (the task's post-job step)."],
        secrets=planned.secrets,
        files=([File(config.ca_path, config.ca_pem)] if config.ca_pem else []) + planned.files,
        post=post_data(config, login),
    )


def exchange(config: VaultConfig, tokens: TokenSource, ctx: Context) -> Outcome:
    """Log in with the OIDC token, read the mapped secrets; they and the token become secret variables."""
    ctx.log(
        f"Logging in to {SERVICE} at {config.address} with auth/{config.mount}, role '{config.role}'"
        + (f", namespace '{config.namespace.strip('/')}'" if config.namespace else "")
    )
    if config.ca_pem:  # Vault's CA is needed now; the emit step writes it again and records it for clean-up
        write_private(config.ca_path, config.ca_pem, root=config.temp_dir)
    try:
        login, values = obtain(config, tokens, ctx)
    except BaseException:
        if config.ca_pem:
            with contextlib.suppress(OSError):
                os.remove(config.ca_path)
        raise
    return to_outcome(config, login, values, ctx.clock(), secrets.token_hex(6))


# -- end of job --------------------------------------------------------------------------------
def _accessor_digest(accessor: str) -> str:
    return hashlib.sha256(accessor.encode("utf-8")).hexdigest()


def post_data(config: VaultConfig, login: VaultLogin) -> dict[str, Any]:
    """What the post-job step needs to revoke the token: where Vault is, and a fingerprint (SHA-256 of the
    accessor) that tells this step's token from another one VAULT_TOKEN may hold by then. Never the token."""
    data: dict[str, Any] = {"address": config.address, "namespace": config.namespace.strip("/")}
    if login.accessor:
        data["accessor_sha256"] = _accessor_digest(login.accessor)
    if config.ca_pem:
        data["ca_pem"] = config.ca_pem  # a CA certificate is public; the post-job step deletes the task's copy first
    elif config.ca_path:
        data["ca_path"] = config.ca_path
    return data


def post(data: dict[str, Any], ctx: Context) -> None:
    """The post-job hook: revoke the job's Vault token (the secret VAULT_TOKEN the task set) at the recorded
    address, which came from the service connection, never from a variable a later step could change."""
    address = str(data.get("address") or "")
    if not address:
        ctx.warn("The post-job state names no Vault address; the job's Vault token was not revoked.")
        return
    token = ctx.agent.variable("VAULT_TOKEN")
    if not token:
        ctx.warn(
            "VAULT_TOKEN did not reach the post-job step, so the job's Vault token was not revoked; it expires with "
            "its TTL."
        )
        return
    ca_pem = str(data.get("ca_pem") or "")
    ca_path = str(data.get("ca_path") or "")
    temp = ""
    if ca_pem:
        directory = ctx.agent.variable("Agent.TempDirectory") or "."
        temp = ca_path = os.path.join(directory, "oidc-credentials", f"vault-ca-post-{secrets.token_hex(6)}.pem")
        write_private(temp, ca_pem, root=directory)
    try:
        revoke_job_token(
            ctx,
            VaultServer(address, str(data.get("namespace") or ""), ca_path),
            token,
            str(data.get("accessor_sha256") or ""),
        )
    finally:
        if temp:
            with contextlib.suppress(OSError):
                os.remove(temp)


def revoke_job_token(ctx: Context, server: VaultServer, token: str, fingerprint: str = "") -> None:
    """Revoke ``token`` when it is the one the task issued (``fingerprint``: SHA-256 of its accessor)."""
    try:
        if fingerprint:
            found = lookup_self(ctx.http, server, token)
            if isinstance(found, VaultError):
                if found.status == 403:
                    ctx.log(f"The job's Vault token was already revoked or expired at {server.address}.")
                else:
                    ctx.warn(f"Could not look up the job's Vault token at {server.address}: {found.text}.")
                return
            if _accessor_digest(str(found.get("accessor") or "")) != fingerprint:
                ctx.warn(
                    "VAULT_TOKEN now holds another Vault token (a later step set it), so this step's token was not "
                    "revoked; it expires with its TTL. Give each Vault step its own job to have every token revoked."
                )
                return
        err = revoke_self(ctx.http, server, token)
    except ExchangeError as exc:
        ctx.warn(f"Could not revoke the job's Vault token: {exc.message} It expires with its TTL.")
        return
    if err is None:
        ctx.log(f"Revoked the job's Vault token at {server.address}.")
    elif err.status == 403:
        ctx.log(f"The job's Vault token was already revoked or expired at {server.address}.")
    else:
        ctx.warn(f"Could not revoke the job's Vault token at {server.address}: {err.text}. It expires with its TTL.")
