"""Key Vault: secrets from Azure Key Vault with the pipeline's federated identity, no stored secret.

An Entra ID token for the Key Vault resource of the connection's cloud (see ``_azure_common``), then the
wire client (:mod:`.keyvault_client`) reads the selected secrets, and the shared policy
(:mod:`oidc_credentials.secret_vars`) turns them into variables and files: no secret's name may shadow a
variable of the agent, and the plain variables of multi-line secrets written to files are
``KEYVAULT_FILE_<ALIAS>``. 429 answers are retried after their ``Retry-After`` by the shared HTTP layer.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlsplit

from .. import destination, secret_vars
from ..agent import AgentEnv, Endpoint
from ..catalogue import lookup
from ..destination import UnsafeDestination
from ..errors import ConfigError, ExchangeError
from ..http import Response, resolves
from ..oidc import TokenSource
from . import Context, Outcome
from ._azure_common import AzureConnection, exchange_tokens, read_connection
from .keyvault_client import (
    SECRET_NAME,
    SERVICE,
    KeyVaultClient,
    Refused,
    Selection,
    error_parts,
)

#: what this provider imports that has compiled code (azure-identity needs cryptography and cffi),
#: imported before any request so that an agent without a build of it fails at once, naming it
COMPILED_IMPORTS = ("azure.identity",)

TITLE = "Key Vault"
CONNECTION_INPUT = "azureConnection"
#: plain variables named from the vault live under this prefix: KEYVAULT_FILE_<ALIAS>
FILE_PREFIX = "KEYVAULT"
DEFAULT_CONCURRENCY = 16
MAX_CONCURRENCY = 64
MULTILINE_CHOICES = secret_vars.MULTILINE_CHOICES
#: input 'failOnMissingSecrets': names (default: a missing name fails, a glob matching nothing warns),
#: all (both fail), none (both warn)
MISSING_CHOICES = ("names", "all", "none")

_VAULT_NAME = re.compile(r"^[A-Za-z](?!.*--)[A-Za-z0-9-]{1,22}[A-Za-z0-9]$")
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
    fail_on_missing: str = "names"

    @property
    def scope(self) -> str:
        return self.connection.keyvault_resource + "/.default"


def _vault(raw: str, conn: AzureConnection) -> tuple[str, str]:
    """(origin URL, vault name) from the 'keyVault' input: a name or an https URL."""
    if "://" in raw:
        try:
            origin = destination.parse(raw, what="the Key Vault access token")
        except UnsafeDestination as exc:
            raise ConfigError(
                f"Input 'keyVault' must be a vault name or its https:// URL, got '{raw}': {exc.reason}."
            ) from exc
        parts = urlsplit(raw)
        if parts.path.strip("/") or parts.query or parts.fragment:
            raise ConfigError(
                f"Input 'keyVault' must be the vault's URL alone, like https://my-vault.{conn.keyvault_suffix or 'vault.azure.net'}, got '{raw}'."
            )
        host = f"[{origin.host}]" if ":" in origin.host else origin.host
        port = f":{parts.port}" if parts.port is not None else ""
        return f"{origin.scheme}://{host}{port}", origin.host.split(".")[0]
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
    """Validate the AzureRM connection and the Key Vault inputs (vault, filter, concurrency, aliases,
    multi-line mode, failOnMissingSecrets); raises ConfigError, sends nothing."""
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
        elif not SECRET_NAME.match(item):
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
    missing = agent.input("failOnMissingSecrets", default="names").lower()
    missing = {"true": "all", "false": "none"}.get(missing, missing)
    if missing not in MISSING_CHOICES:
        raise ConfigError(f"Input 'failOnMissingSecrets' must be one of {', '.join(MISSING_CHOICES)}, got '{missing}'.")
    return KeyVaultConfig(
        fail_on_missing=missing,
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
def explain(resp: Response, config: KeyVaultConfig, action: str) -> ExchangeError:
    """Map a Key Vault refusal to what to change, with the exact command where there is one."""
    code, inner, message = error_parts(resp)
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
        entry = lookup(SERVICE, inner) or lookup(SERVICE, code)  # the rest: the catalogue's meaning and fix
        fix = f"{entry.meaning} Fix: {entry.fix}" if entry else ""
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


def exchange(config: KeyVaultConfig, tokens: TokenSource, ctx: Context) -> Outcome:
    """Read the selected secrets with an Entra token bought with the job's OIDC token; map them to variables."""
    conn = config.connection
    host = urlsplit(config.vault_url).hostname or ""
    port = urlsplit(config.vault_url).port or 443
    resolvable = ctx.http.network.proxied(config.vault_url) or ctx.http.bounded(
        partial(resolves, host, port), service=f"DNS for {SERVICE}", url=config.vault_url, limit=30.0
    )
    if not resolvable:
        raise _not_found(config, host)
    ctx.log(
        f"Requesting an Entra ID token for {conn.keyvault_resource} as app {conn.client_id} in tenant {conn.tenant_id}"
    )
    token = exchange_tokens(conn, [config.scope], tokens, ctx)[0]
    client = KeyVaultClient(
        config.vault_url, token.token, ctx.http, concurrency=config.concurrency, log=ctx.log, clock=ctx.clock
    )
    try:
        found, missing = client.read(Selection(config.names, config.patterns))
    except Refused as exc:
        raise explain(exc.response, config, exc.action) from exc
    empty_globs = [
        p for p in config.patterns if p != "*" and not any(Selection((), (p,)).selects(e.name) for e in found.values())
    ]
    if missing:
        text = (
            f"{len(missing)} requested secret(s) do not exist in {config.vault_url}: {', '.join(missing)}. Check the "
            "names in input 'secretsFilter' (a deleted secret can be recovered with az keyvault secret recover)."
        )
        if config.fail_on_missing != "none":
            raise ExchangeError(text, service=SERVICE, status=404, code="SecretNotFound")
        ctx.warn(text)
    for pattern in empty_globs:
        text = f"Input 'secretsFilter': '{pattern}' matched no secret in {config.vault_url}."
        if config.fail_on_missing == "all":
            raise ExchangeError(
                text + " Input 'failOnMissingSecrets' is 'all', so the task fails.",
                service=SERVICE,
                code="SecretNotFound",
            )
        ctx.warn(text)
    requested = {n.lower() for n in config.names}
    skipped = sorted((e for e in found.values() if e.skipped), key=lambda e: e.name.lower())
    if skipped:
        text = f"Skipped {len(skipped)} secret(s): " + ", ".join(f"{e.name} ({e.skipped})" for e in skipped)
        (ctx.warn if any(e.name.lower() in requested for e in skipped) else ctx.log)(text)
    usable = [(e.name, e.value) for e in found.values() if e.value is not None]
    folder = os.path.join(config.temp_dir, f"oidc-credentials-{uuid.uuid4().hex[:12]}") if config.temp_dir else ""
    policy = secret_vars.Policy(prefix=FILE_PREFIX, aliases=config.aliases, multiline=config.multiline, folder=folder)
    planned = secret_vars.plan(usable, policy, requested=config.names, warn=ctx.warn)
    ctx.log(f"Read {len(usable) - len(planned.refused)} secret(s) from {config.vault_url}.")
    return Outcome(
        variables=planned.variables,
        identity=f"app {conn.client_id} in tenant {conn.tenant_id}, vault {config.vault_url}",
        notes=planned.notes,
        secrets=planned.secrets,
        files=planned.files,
    )
