"""Key Vault: secrets from Azure Key Vault with the pipeline's federated identity, no stored secret.

An Entra ID token for the Key Vault resource of the connection's cloud (see ``_azure_common``), then the
secrets REST API (https://learn.microsoft.com/rest/api/keyvault/secrets): ``GET /secrets`` page by page,
following every ``nextLink``, and ``GET /secrets/{name}`` for each value, a bounded number at a time,
starting as soon as the first page names them. The bearer token is sent up front (the 401 challenge
would cost a round trip and tell nothing the connection does not) and only ever to the vault's own
origin. 429 answers are retried after their ``Retry-After`` by the shared HTTP layer.
"""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from ..agent import AgentEnv, Endpoint
from ..errors import ConfigError, ExchangeError
from ..http import Http, Response
from ..oidc import TokenSource
from ..vso import check_variable_name
from . import Context, File, Outcome, Variable
from ._azure_common import AzureConnection, exchange_tokens, read_connection

TITLE = "Key Vault"
CONNECTION_INPUT = "azureConnection"
SERVICE = "Azure Key Vault"
API_VERSION = "7.5"
PAGE_SIZE = 25
DEFAULT_CONCURRENCY = 16
MAX_CONCURRENCY = 64
MULTILINE_CHOICES = ("fail", "base64", "file")
MAX_PAGES = 10_000

_VAULT_NAME = re.compile(r"^[A-Za-z](?!.*--)[A-Za-z0-9-]{1,22}[A-Za-z0-9]$")
_SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_GLOB = re.compile(r"^[0-9A-Za-z*?\[\]!-]{1,127}$")


@dataclass(frozen=True)
class KeyVaultConfig:
    connection: AzureConnection
    vault_url: str
    vault_name: str
    names: tuple[str, ...]
    patterns: tuple[str, ...]
    concurrency: int
    aliases: bool
    multiline: str
    temp_dir: str

    @property
    def scope(self) -> str:
        return self.connection.keyvault_resource + "/.default"


def env_alias(name: str) -> str:
    """The environment-safe alias of a secret name: ``my-db-password`` -> ``MY_DB_PASSWORD``."""
    alias = re.sub(r"[^A-Za-z0-9]", "_", name).upper()
    return "_" + alias if alias[:1].isdigit() else alias


def _vault(raw: str, conn: AzureConnection) -> tuple[str, str]:
    """(origin URL, vault name) from the 'keyVault' input: a name or an https URL."""
    if "://" in raw:
        parts = urlsplit(raw)
        if parts.scheme != "https" or not parts.hostname:
            raise ConfigError(f"Input 'keyVault' must be a vault name or its https:// URL, got '{raw}'.")
        if parts.path.strip("/") or parts.query or parts.fragment or parts.username:
            raise ConfigError(
                f"Input 'keyVault' must be the vault's URL alone, like https://my-vault.{conn.keyvault_suffix or 'vault.azure.net'}, got '{raw}'."
            )
        host = parts.hostname.lower()
        return f"https://{parts.netloc.lower()}", host.split(".")[0]
    if not _VAULT_NAME.match(raw):
        raise ConfigError(
            "Input 'keyVault' must be a vault name (3-24 letters, digits and single hyphens, starting with a letter) "
            f"or the vault's https:// URL, got '{raw}'."
        )
    if not conn.keyvault_suffix:
        raise ConfigError(
            f"The connection carries no Key Vault DNS suffix (AzureKeyVaultDnsSuffix) for cloud '{conn.cloud.name}', "
            "so the vault's URL cannot be built from its name: give input 'keyVault' the vault's full https:// URL."
        )
    return f"https://{raw.lower()}.{conn.keyvault_suffix}", raw.lower()


def configure(agent: AgentEnv, endpoint: Endpoint) -> KeyVaultConfig:
    conn = read_connection(endpoint, CONNECTION_INPUT)
    url, name = _vault(agent.input("keyVault", required=True), conn)
    if not conn.keyvault_resource:
        raise ConfigError(
            f"The connection carries no Key Vault resource for cloud '{conn.cloud.name}' "
            "(AzureKeyVaultServiceEndpointResourceId or AzureKeyVaultDnsSuffix). Re-create it from the cloud's metadata."
        )
    names: list[str] = []
    patterns: list[str] = []
    for item in agent.list_input("secretsFilter") or ["*"]:
        if any(ch in item for ch in "*?["):
            if not _GLOB.match(item):
                raise ConfigError(
                    f"Input 'secretsFilter' holds '{item}', which is neither a secret name nor a glob: names have "
                    "1-127 letters, digits and hyphens; globs add *, ? and [...]."
                )
            patterns.append(item)
        elif not _SECRET_NAME.match(item):
            raise ConfigError(
                f"Input 'secretsFilter' holds '{item}', which is not a Key Vault secret name (1-127 letters, digits "
                "and hyphens). Separate names with commas; use * or a glob like db-* to match several."
            )
        elif item.lower() not in (n.lower() for n in names):
            names.append(item)
    multiline = agent.input("multilineSecrets", default="fail").lower()
    if multiline not in MULTILINE_CHOICES:
        raise ConfigError(f"Input 'multilineSecrets' must be one of {', '.join(MULTILINE_CHOICES)}, got '{multiline}'.")
    temp_dir = agent.variable("Agent.TempDirectory")
    if multiline == "file" and not temp_dir:
        raise ConfigError(
            "Input 'multilineSecrets' is 'file', but Agent.TempDirectory is not set, so there is no private place "
            "for the files. Run the task on an Azure Pipelines agent, or choose base64."
        )
    return KeyVaultConfig(
        connection=conn,
        vault_url=url,
        vault_name=name,
        names=tuple(names),
        patterns=tuple(patterns),
        concurrency=agent.int_input("keyVaultConcurrency", default=DEFAULT_CONCURRENCY, low=1, high=MAX_CONCURRENCY),
        aliases=agent.bool_input("secretsEnvironmentAliases"),
        multiline=multiline,
        temp_dir=temp_dir,
    )


# -- the wire ------------------------------------------------------------------------------------------
def _error(resp: Response) -> tuple[str, str, str]:
    """(code, innererror code, message) of a Key Vault error body."""
    body = resp.json()
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", "", resp.snippet(300)
    inner = error.get("innererror")
    inner_code = str(inner.get("code", "")) if isinstance(inner, dict) else ""
    return str(error.get("code", "")), inner_code, str(error.get("message", ""))


def _same_origin(url: str, origin: str) -> bool:
    a, b = urlsplit(url), urlsplit(origin)

    def port(parts: Any) -> int:
        return int(parts.port or (443 if parts.scheme == "https" else 80))

    return a.scheme == b.scheme and (a.hostname or "").lower() == (b.hostname or "").lower() and port(a) == port(b)


def explain(resp: Response, config: KeyVaultConfig, action: str) -> ExchangeError:
    """Map a Key Vault refusal to what to change, with the exact command where there is one."""
    code, inner, message = _error(resp)
    conn = config.connection
    flat = " ".join(message.split())
    vault_match = re.search(r"(?:Vault: |key vault ')([A-Za-z0-9-]+)", message)
    vault = vault_match.group(1) if vault_match else config.vault_name
    head = f"{SERVICE} {config.vault_url} refused to {action} (HTTP {resp.status} {inner or code}): {flat}"
    if inner == "ForbiddenByRbac":
        found = re.search(r"Resource: '([^']+)'", message)
        scope = (
            re.sub(r"/secrets/[^/]*$", "", found.group(1))
            if found
            else f"$(az keyvault show --name {vault} --query id -o tsv)"
        )
        fix = (
            f"The vault uses Azure RBAC and app {conn.client_id} holds no role that allows this. Grant it "
            "'Key Vault Secrets User' on the vault (a role admin runs this once; it can take a few minutes to apply):\n"
            f'  az role assignment create --role "Key Vault Secrets User" --assignee {conn.client_id} --scope {scope}'
        )
    elif inner == "AccessDenied" or "does not have secrets" in message:
        fix = (
            f"The vault uses access policies and app {conn.client_id} lacks the secret permission. Add Get and List "
            f"for it:\n  az keyvault set-policy --name {vault} --spn {conn.client_id} --secret-permissions get list"
        )
    elif inner == "ForbiddenByFirewall" or "Client address is not authorized" in message:
        ip_match = re.search(r"Client address: ([0-9A-Fa-f.:]+)", message)
        ip = ip_match.group(1) if ip_match else "<agent address>"
        fix = (
            f"The vault's firewall does not admit this agent (address {ip}). Allow it:\n"
            f"  az keyvault network-rule add --name {vault} --ip-address {ip}\n"
            "Microsoft-hosted agents change address from job to job, so for them use a self-hosted agent inside "
            "the vault's network (private endpoint) or a pipeline step that opens and closes the rule."
        )
    elif resp.status == 401:
        challenge = resp.header("WWW-Authenticate")
        tenant = re.search(r'authorization(?:_uri)?="[^"]*/([^/"]+)"', challenge)
        if tenant and tenant.group(1).lower() != conn.tenant_id.lower():
            fix = (
                f"The vault belongs to tenant {tenant.group(1)}, and the connection signs in to tenant "
                f"{conn.tenant_id}. Use a connection of the vault's tenant."
            )
        else:
            fix = (
                f"Key Vault did not accept the Entra ID token (resource {conn.keyvault_resource}, tenant "
                f"{conn.tenant_id}). A vault in another tenant or cloud refuses it: check the connection's tenant and "
                "environment against the vault's."
            )
    elif resp.status == 429:
        fix = (
            "Key Vault kept throttling the requests and the retries ran out. Lower input 'keyVaultConcurrency', "
            "select fewer secrets, or spread out pipelines that read this vault at the same moment."
        )
    else:
        fix = ""
    return ExchangeError(head + ("\n" + fix if fix else ""), service=SERVICE, status=resp.status, code=inner or code)


def _not_found(config: KeyVaultConfig, host: str) -> ExchangeError:
    return ExchangeError(
        f"Key vault '{config.vault_name}' was not found: {host} does not resolve. Check input 'keyVault' (the vault's "
        f"own name, which is part of its URL), that the vault exists in the connection's cloud ({config.connection.cloud.name}: "
        f"vaults end in .{config.connection.keyvault_suffix or 'vault.azure.net'}) and that it was not deleted "
        "(az keyvault list-deleted). A vault reached only through a private endpoint needs an agent inside its network.",
        service=SERVICE,
        code="VaultNotFound",
    )


def _resolves(host: str, port: int) -> bool:
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    return True


@dataclass
class _Found:
    name: str
    attributes: dict[str, Any] = field(default_factory=dict)
    value: str | None = None
    skipped: str = ""


def _unusable(attributes: dict[str, Any], now: float) -> str:
    """Why a secret with these attributes is skipped, or ""."""

    def iso(value: Any) -> str:
        return dt.datetime.fromtimestamp(int(value), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    if attributes.get("enabled") is False:
        return "disabled"
    nbf, exp = attributes.get("nbf"), attributes.get("exp")
    if isinstance(nbf, (int, float)) and nbf > now:
        return f"not valid before {iso(nbf)}"
    if isinstance(exp, (int, float)) and exp <= now:
        return f"expired {iso(exp)}"
    return ""


class _Reader:
    """Lists and fetches with a bounded pool of workers; stops everything at the first hard refusal."""

    def __init__(self, config: KeyVaultConfig, http: Http, token: str, clock: Callable[[], float]) -> None:
        self.config = config
        self.http = http
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.clock = clock
        self.pool = ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="keyvault")
        self.stop = threading.Event()
        self.futures: dict[str, Future[Response | None]] = {}

    def _get(self, name: str) -> Response | None:
        if self.stop.is_set():
            return None
        url = f"{self.config.vault_url}/secrets/{quote(name, safe='')}?api-version={API_VERSION}"
        return self.http.request("GET", url, service=SERVICE, headers=self.headers)

    def fetch(self, name: str) -> None:
        if name.lower() not in self.futures:
            self.futures[name.lower()] = self.pool.submit(self._get, name)

    def list(self, on_item: Callable[[str, dict[str, Any]], None]) -> None:
        url: str | None = f"{self.config.vault_url}/secrets?api-version={API_VERSION}&maxresults={PAGE_SIZE}"
        seen: set[str] = set()
        while url:
            if url in seen or len(seen) >= MAX_PAGES:
                raise ExchangeError(f"{SERVICE} sent a paging loop at {url}; stopped listing.", service=SERVICE)
            seen.add(url)
            resp = self.http.request("GET", url, service=SERVICE, headers=self.headers)
            if resp.status != 200:
                raise explain(resp, self.config, "list its secrets")
            body = resp.json()
            if not isinstance(body, dict):
                raise ExchangeError(
                    f"{SERVICE} answered the listing with something else than JSON: {resp.snippet(200)}",
                    service=SERVICE,
                )
            for item in body.get("value") or []:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    name = item["id"].rstrip("/").rsplit("/", 1)[-1]
                    attributes = item.get("attributes")
                    on_item(name, attributes if isinstance(attributes, dict) else {})
            next_link = body.get("nextLink")
            if next_link and not _same_origin(str(next_link), self.config.vault_url):
                raise ExchangeError(
                    f"{SERVICE} sent a nextLink to another origin ({urlsplit(str(next_link)).netloc}); the token is only "
                    f"sent to {self.config.vault_url}, so listing stopped.",
                    service=SERVICE,
                )
            url = str(next_link) if next_link else None

    def collect(self) -> dict[str, tuple[str, Response]]:
        """name (lower) -> (name, response) for every fetch; raises at the first hard refusal."""
        results: dict[str, tuple[str, Response]] = {}
        for key, future in self.futures.items():
            resp = future.result()
            if resp is None:
                continue
            _code, inner, _message = _error(resp) if resp.status != 200 else ("", "", "")
            if resp.status == 200 or resp.status == 404 or inner == "SecretDisabled":
                results[key] = (key, resp)
                continue
            self.stop.set()
            raise explain(resp, self.config, f"read secret '{key}'")
        return results

    def close(self) -> None:
        self.stop.set()
        self.pool.shutdown(wait=True, cancel_futures=True)


def read_secrets(config: KeyVaultConfig, token: str, ctx: Context) -> tuple[dict[str, _Found], list[str]]:
    """The selected secrets (values filled in, or why skipped) and the requested names that do not exist."""
    found: dict[str, _Found] = {}
    wanted = {n.lower(): n for n in config.names}
    now = ctx.clock()

    def selected(name: str) -> bool:
        lowered = name.lower()
        return lowered in wanted or any(fnmatch.fnmatchcase(lowered, p.lower()) for p in config.patterns)

    http = Http(ctx.agent.raw, log=ctx.log, pool_size=config.concurrency, user_agent="OidcCredentials")
    reader = _Reader(config, http, token, ctx.clock)
    try:
        if config.patterns:

            def on_item(name: str, attributes: dict[str, Any]) -> None:
                if not selected(name):
                    return
                entry = found.setdefault(name.lower(), _Found(name, attributes))
                entry.skipped = _unusable(attributes, now)
                if not entry.skipped:
                    reader.fetch(name)

            ctx.log(f"Listing the secrets of {config.vault_url} ({config.concurrency} values at a time)")
            reader.list(on_item)
        else:
            for name in config.names:
                found[name.lower()] = _Found(name)
                reader.fetch(name)
        responses = reader.collect()
    finally:
        reader.close()
        http.close()
    missing = [n for key, n in wanted.items() if key not in found]
    for key, (_name, resp) in responses.items():
        entry = found[key]
        if resp.status == 404:
            missing.append(entry.name)
            del found[key]
            continue
        if resp.status != 200:
            entry.skipped = "disabled"
            continue
        body = resp.json() if resp.status == 200 else None
        if not isinstance(body, dict) or not isinstance(body.get("value"), str):
            raise ExchangeError(
                f"{SERVICE} answered HTTP 200 for '{entry.name}' without a value.", service=SERVICE, status=200
            )
        raw_attributes = body.get("attributes")
        attributes: dict[str, Any] = raw_attributes if isinstance(raw_attributes, dict) else {}
        secret_id = body.get("id")
        if isinstance(secret_id, str) and "/secrets/" in secret_id:
            entry.name = secret_id.split("/secrets/", 1)[1].split("/", 1)[0] or entry.name
        entry.skipped = _unusable(attributes, now)
        entry.value = None if entry.skipped else body["value"]
    return found, sorted(missing, key=str.lower)


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.replace("\r", "\n").split("\n") if line.strip()]


def exchange(config: KeyVaultConfig, tokens: TokenSource, ctx: Context) -> Outcome:
    conn = config.connection
    host = urlsplit(config.vault_url).hostname or ""
    port = urlsplit(config.vault_url).port or 443
    proxied = any(ctx.agent.raw.get(k) for k in ("HTTPS_PROXY", "https_proxy")) or ctx.http.proxies_for(
        config.vault_url
    )
    if not proxied and not _resolves(host, port):
        raise _not_found(config, host)
    ctx.log(
        f"Requesting an Entra ID token for {conn.keyvault_resource} as app {conn.client_id} in tenant {conn.tenant_id}"
    )
    token = exchange_tokens(conn, [config.scope], tokens, ctx)[0]
    found, missing = read_secrets(config, token.token, ctx)
    if missing:
        raise ExchangeError(
            f"{len(missing)} requested secret(s) do not exist in {config.vault_url}: {', '.join(missing)}. Check the "
            "names in input 'secretsFilter' (a deleted secret can be recovered with az keyvault secret recover).",
            service=SERVICE,
            status=404,
            code="SecretNotFound",
        )
    requested = {n.lower() for n in config.names}
    skipped = sorted((e for e in found.values() if e.skipped), key=lambda e: e.name.lower())
    if skipped:
        text = f"Skipped {len(skipped)} secret(s): " + ", ".join(f"{e.name} ({e.skipped})" for e in skipped)
        (ctx.warn if any(e.name.lower() in requested for e in skipped) else ctx.log)(text)
    usable = sorted((e for e in found.values() if e.value is not None), key=lambda e: e.name.lower())
    for pattern in config.patterns:
        if pattern != "*" and not any(fnmatch.fnmatchcase(e.name.lower(), pattern.lower()) for e in found.values()):
            ctx.warn(f"Input 'secretsFilter': '{pattern}' matched no secret in {config.vault_url}.")

    refused = [(e.name, why) for e in usable if (why := check_variable_name(e.name, allow_dash=True))]
    explicit_refused = [name for name, _why in refused if name.lower() in requested]
    if explicit_refused:
        raise ConfigError(
            f"Secret(s) {', '.join(explicit_refused)} cannot become pipeline variables: {refused[0][1]}. Rename them in "
            "the vault."
        )
    if refused:
        ctx.warn(f"Not set, because {refused[0][1]}: " + ", ".join(name for name, _ in refused))
    refused_names = {name for name, _ in refused}
    usable = [e for e in usable if e.name not in refused_names]

    multiline = [e.name for e in usable if e.value is not None and ("\n" in e.value or "\r" in e.value)]
    if multiline and config.multiline == "fail":
        raise ConfigError(
            f"Secret(s) {', '.join(multiline)} hold several lines, which the agent refuses as secret variables. Set "
            "input 'multilineSecrets' to base64 (the variable holds the value base64-encoded) or file (the value goes "
            "to a private file in Agent.TempDirectory, its path in <NAME>_FILE), or select other secrets."
        )
    variables: list[Variable] = []
    extra_secrets: list[str] = []
    files: list[File] = []
    notes: list[str] = []
    folder = os.path.join(config.temp_dir, f"oidc-credentials-{uuid.uuid4().hex[:12]}") if config.temp_dir else ""
    for entry in usable:
        value = entry.value or ""
        alias = env_alias(entry.name)
        alias_ok = config.aliases and alias.upper() != entry.name.upper() and check_variable_name(alias) is None
        if entry.name in multiline:
            extra_secrets += _lines(value)
            encoded = base64.b64encode(value.encode("utf-8")).decode("ascii")
            extra_secrets.append(encoded)
            if config.multiline == "base64":
                variables.append(Variable(entry.name, encoded, secret=True, verbatim=True))
                if alias_ok:
                    variables.append(Variable(alias, encoded, secret=True))
                notes.append(f"{entry.name}: several lines, set base64-encoded")
            else:
                path = os.path.join(folder, entry.name)
                files.append(File(path, value))
                variables.append(Variable(f"{alias}_FILE", path))
                notes.append(f"{entry.name}: several lines, written to {path} ($({alias}_FILE))")
            continue
        variables.append(Variable(entry.name, value, secret=True, verbatim=True))
        if alias_ok:
            variables.append(Variable(alias, value, secret=True))
    ctx.log(f"Read {len(usable)} secret(s) from {config.vault_url}.")
    return Outcome(
        variables=variables,
        identity=f"app {conn.client_id} in tenant {conn.tenant_id}, vault {config.vault_url}",
        notes=notes,
        secrets=extra_secrets,
        files=files,
    )
