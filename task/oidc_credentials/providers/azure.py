"""Azure: Microsoft Entra ID access tokens from the pipeline's federated identity.

The job's OIDC token for an AzureRM workload identity federation connection is the client assertion of
an OAuth 2.0 client-credentials request (``POST {authority}{tenant}/oauth2/v2.0/token``,
``client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer``), made through
azure-identity's ``ClientAssertionCredential``. See
https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow#third-case-access-token-request-with-a-federated-credential.

Besides the tokens it sets what tools read to mint their own (Terraform's azurerm/azuread providers,
azure-identity's ``AzurePipelinesCredential``), so a later step needs no secret from this one at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..agent import AgentEnv, Endpoint
from ..errors import ConfigError
from ..helper_setup import RefreshSetup, lifetime_warning, read_setup
from ..oidc import TokenSource
from ..text import parse_iso_utc
from . import Context, Outcome, Variable
from ._azure_common import PUBLIC, AccessToken, AzureConnection, exchange_tokens, read_connection

#: what this provider imports that has compiled code (azure-identity needs cryptography and cffi),
#: imported before any request so that an agent without a build of it fails at once, naming it
COMPILED_IMPORTS = ("azure.identity",)

TITLE = "Azure"
CONNECTION_INPUT = "azureConnection"
MAX_SCOPES = 10


@dataclass(frozen=True)
class AzureConfig:
    """The connection and the scopes to request a token for, in order."""

    connection: AzureConnection
    scopes: tuple[str, ...]
    #: scopes rewritten for a sovereign cloud, for the log
    rewritten: tuple[str, ...] = ()
    #: the lifetime check (tools that mint their own tokens refresh; the token variables do not)
    refresh: RefreshSetup | None = field(default=None, compare=False)


def token_variable(index: int) -> str:
    """``AZURE_ACCESS_TOKEN`` for the first scope, ``AZURE_ACCESS_TOKEN_2``, ``_3`` … for the others."""
    return "AZURE_ACCESS_TOKEN" if index == 0 else f"AZURE_ACCESS_TOKEN_{index + 1}"


def configure(agent: AgentEnv, endpoint: Endpoint) -> AzureConfig:
    """Check the connection is workload identity federation and the scopes are ``<resource>/.default``; sends nothing."""
    conn = read_connection(endpoint, CONNECTION_INPUT)
    scopes = agent.list_input("azureScopes") or [conn.cloud.arm_scope]
    if len(scopes) > MAX_SCOPES:
        raise ConfigError(f"Input 'azureScopes' takes at most {MAX_SCOPES} scopes, got {len(scopes)}.")
    seen: set[str] = set()
    result: list[str] = []
    rewritten: list[str] = []
    for scope in scopes:
        if " " in scope or not scope.endswith("/.default") or len(scope) <= len("/.default"):
            raise ConfigError(
                f"Input 'azureScopes' must list client-credentials scopes, a resource followed by /.default (one per "
                f"line), like https://graph.microsoft.com/.default; got '{scope}'."
            )
        # The task's default is the public cloud's ARM scope; a sovereign connection means its own ARM.
        if (
            scope.rstrip("/").lower() == PUBLIC.arm_scope.lower()
            and conn.cloud.name != PUBLIC.name
            and conn.cloud.arm_url
        ):
            rewritten.append(f"{scope} -> {conn.cloud.arm_scope}")
            scope = conn.cloud.arm_scope
        if scope.lower() in seen:
            raise ConfigError(f"Input 'azureScopes' lists '{scope}' twice.")
        seen.add(scope.lower())
        result.append(scope)
    return AzureConfig(conn, tuple(result), tuple(rewritten), read_setup(agent))


def exchange(config: AzureConfig, tokens: TokenSource, ctx: Context) -> Outcome:
    """One Entra access token per scope (wire client: ``_azure_common.request_tokens``), as pipeline variables."""
    conn = config.connection
    ctx.log(
        f"Requesting Entra ID tokens for app {conn.client_id} in tenant {conn.tenant_id} ({conn.cloud.name}, "
        f"authority {conn.authority}) for: {', '.join(config.scopes)}"
    )
    for note in config.rewritten:
        ctx.log(f"Scope for this connection's cloud: {note}")
    outcome = to_outcome(
        config, exchange_tokens(conn, list(config.scopes), tokens, ctx, scope_from="input 'azureScopes'")
    )
    if config.refresh is not None and outcome.expires:
        warning = lifetime_warning(
            config.refresh,
            parse_iso_utc(outcome.expires) - ctx.clock(),
            "AZURE_ACCESS_TOKEN and the other token variables",
            refreshing=config.refresh.enabled,
        )
        if warning:
            ctx.warn(warning)
    return outcome


def to_outcome(config: AzureConfig, issued: list[AccessToken]) -> Outcome:
    """The tokens as secret variables, plus what Terraform and ``AzurePipelinesCredential`` read to mint their own."""
    conn = config.connection
    variables: list[Variable] = []
    for index, token in enumerate(issued):
        name = token_variable(index)
        variables.append(Variable(name, token.token, secret=True))
        variables.append(Variable(f"{name}_EXPIRES_ON", token.expires_iso))
    ids = {"CLIENT_ID": conn.client_id, "TENANT_ID": conn.tenant_id, "SUBSCRIPTION_ID": conn.subscription_id}
    variables += [Variable(f"AZURE_{key}", value) for key, value in ids.items() if value]
    # Terraform azurerm/azuread (and TerraformTask@5's settings): they mint their own tokens from the
    # pipeline's OIDC endpoint, given System.AccessToken as ARM_OIDC_REQUEST_TOKEN.
    variables += [Variable("ARM_USE_OIDC", "true")]
    variables += [Variable(f"ARM_{key}", value) for key, value in ids.items() if value]
    variables.append(Variable("ARM_OIDC_AZURE_SERVICE_CONNECTION_ID", conn.id))
    if conn.cloud.terraform and conn.cloud.terraform != "public":
        variables.append(Variable("ARM_ENVIRONMENT", conn.cloud.terraform))
    # What AzureCLI@2 sets for azure-identity's AzurePipelinesCredential.
    variables += [
        Variable("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID", conn.id),
        Variable("AZURESUBSCRIPTION_CLIENT_ID", conn.client_id),
        Variable("AZURESUBSCRIPTION_TENANT_ID", conn.tenant_id),
    ]
    notes = [f"Token {token_variable(i)}: {t.scope}, expires {t.expires_iso}" for i, t in enumerate(issued)]
    notes.append(
        "Terraform and AzurePipelinesCredential mint their own tokens from these variables: map "
        "SYSTEM_ACCESSTOKEN: $(System.AccessToken) (Terraform: ARM_OIDC_REQUEST_TOKEN: $(System.AccessToken)) "
        "into that step's env."
    )
    return Outcome(
        variables=variables,
        identity=f"app {conn.client_id} in tenant {conn.tenant_id}"
        + (f", subscription {conn.subscription_id}" if conn.subscription_id else ""),
        expires=issued[0].expires_iso if issued else "",
        notes=notes,
    )
