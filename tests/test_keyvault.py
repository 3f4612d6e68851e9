"""Key Vault provider: inputs, names, aliases, origins, attributes and the explanation of each refusal."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from oidc_credentials.agent import AgentEnv, Endpoint
from oidc_credentials.errors import ConfigError, TaskError
from oidc_credentials.files import write_private
from oidc_credentials.http import Response
from oidc_credentials.providers import keyvault
from oidc_credentials.providers.keyvault import explain
from oidc_credentials.providers.keyvault_client import KeyVaultClient
from oidc_credentials.providers.keyvault_client import unusable as _unusable
from oidc_credentials.secret_vars import env_alias

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "0c3e4ae2-5cb5-4b2b-9bd3-2b0f3a0e2f5e"


def endpoint(**data: str) -> Endpoint:
    d = {"ENVIRONMENT": "AzureCloud"}
    d.update({k.upper(): v for k, v in data.items()})
    return Endpoint(
        id="c0",
        url="",
        scheme="WorkloadIdentityFederation",
        params={"TENANTID": TENANT, "SERVICEPRINCIPALID": CLIENT},
        data=d,
    )


def configure(**inputs: str) -> keyvault.KeyVaultConfig:
    env = {f"INPUT_{k.upper()}": v for k, v in inputs.items()}
    env.setdefault("INPUT_KEYVAULT", "kv-payments")
    env["AGENT_TEMPDIRECTORY"] = "/agent/_temp"
    return keyvault.configure(AgentEnv(env), endpoint())


@pytest.mark.parametrize(
    ("value", "url", "name"),
    [
        ("kv-payments", "https://kv-payments.vault.azure.net", "kv-payments"),
        ("KV-Payments", "https://kv-payments.vault.azure.net", "kv-payments"),
        ("https://kv-payments.vault.azure.net/", "https://kv-payments.vault.azure.net", "kv-payments"),
        ("https://kv-x.vault.azure.net:443", "https://kv-x.vault.azure.net:443", "kv-x"),
    ],
)
def test_vault_from_name_or_url(value: str, url: str, name: str) -> None:
    config = configure(keyVault=value)
    assert (config.vault_url, config.vault_name) == (url, name)
    assert config.scope == "https://vault.azure.net/.default"


def test_sovereign_vault_names_use_the_endpoint_suffix() -> None:
    env = AgentEnv({"INPUT_KEYVAULT": "kv-gov"})
    config = keyvault.configure(env, endpoint(environment="AzureUSGovernment"))
    assert (
        config.vault_url == "https://kv-gov.vault.usgovcloudapi.net"
        and config.scope == "https://vault.usgovcloudapi.net/.default"
    )


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        ({"keyVault": ""}, "Input 'keyVault' is required"),
        ({"keyVault": "kv"}, "3-24 letters, digits and single hyphens"),
        ({"keyVault": "kv--double"}, "got 'kv--double'"),
        ({"keyVault": "1vault"}, "got '1vault'"),
        ({"keyVault": "http://kv.vault.azure.net"}, "must be a vault name or its https:// URL"),
        ({"keyVault": "https://kv.vault.azure.net/secrets/a"}, "must be the vault's URL alone"),
        ({"secretsFilter": "db_password"}, "holds 'db_password', which is not a Key Vault secret name"),
        ({"secretsFilter": "db-*, a b"}, "holds 'a b'"),
        ({"secretsFilter": "db-*$"}, "neither a secret name nor a glob"),
        ({"keyVaultConcurrency": "0"}, "Input 'keyVaultConcurrency' must be from 1 to 64, got 0"),
        (
            {"keyVaultConcurrency": "lots"},
            "Input 'keyVaultConcurrency' must be a whole number from 1 to 64, got 'lots'",
        ),
        ({"multilineSecrets": "join"}, "Input 'multilineSecrets' must be one of fail, base64, file, got 'join'"),
        ({"secretsEnvironmentAliases": "yes please"}, "Input 'secretsEnvironmentAliases' must be true or false"),
    ],
)
def test_inputs_are_validated(inputs: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        configure(**inputs)
    assert fragment in str(caught.value)


def test_file_mode_needs_the_agent_temp_directory() -> None:
    with pytest.raises(ConfigError, match="Agent.TempDirectory is not set"):
        keyvault.configure(AgentEnv({"INPUT_KEYVAULT": "kv-a", "INPUT_MULTILINESECRETS": "file"}), endpoint())


def test_filter_splits_names_and_globs() -> None:
    config = configure(secretsFilter="db-password, api-*,DB-PASSWORD\nsvc-?-key")
    assert config.names == ("db-password",) and config.patterns == ("api-*", "svc-?-key")
    assert configure().patterns == ("*",) and configure().concurrency == 16 and configure().multiline == "fail"


@pytest.mark.parametrize(
    ("name", "alias"), [("my-db-password", "MY_DB_PASSWORD"), ("ApiKey", "APIKEY"), ("1st-key", "_1ST_KEY")]
)
def test_env_alias(name: str, alias: str) -> None:
    assert env_alias(name) == alias


def test_next_links_stay_on_the_vault_origin_an_explicit_443_being_the_default() -> None:
    client = KeyVaultClient("https://kv.vault.azure.net", "t", None)  # type: ignore[arg-type]
    ok = "https://kv.vault.azure.net:443/secrets?api-version=7.5&$skiptoken=eyJ9&maxresults=25"
    assert client._next(ok) == ok
    assert client._next("https://KV.vault.azure.net./secrets")
    for link, message in [
        ("https://kv.vault.azure.net:8443/secrets", "another origin (kv.vault.azure.net:8443)"),
        ("https://evil.example/secrets", "another origin (evil.example)"),
        ("http://kv.vault.azure.net/secrets", "over plain http"),
        ("https://evil.example\\@kv.vault.azure.net/secrets", "backslash"),
        ("https://evil.example@kv.vault.azure.net/secrets", "user information"),
        ("https://kv.vault.azure.net%2F@evil.example/secrets", "user information"),
        ("https://kv.vault.azure.net\t.evil.example/secrets", "whitespace"),
    ]:
        with pytest.raises(TaskError, match=re.escape(message)):
            client._next(link)


@pytest.mark.parametrize(
    ("attributes", "why"),
    [
        ({"enabled": True}, ""),
        ({"enabled": False}, "disabled"),
        ({"enabled": True, "nbf": 2000}, "not valid before 1970-01-01T00:33:20Z"),
        ({"enabled": True, "exp": 500}, "expired 1970-01-01T00:08:20Z"),
        ({"enabled": True, "nbf": 500, "exp": 2000}, ""),
    ],
)
def test_unusable(attributes: dict[str, object], why: str) -> None:
    assert _unusable(attributes, 1000.0) == why


def kv_error(status: int, code: str, message: str, inner: str = "", headers: dict[str, str] | None = None) -> Response:
    error: dict[str, object] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return Response(status, "https://kv-payments.vault.azure.net/secrets", json.dumps({"error": error}), headers or {})


RBAC = (
    "Caller is not authorized to perform action on resource.\r\nCaller: appid=x\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\n"
    "Resource: '/subscriptions/s1/resourcegroups/rg/providers/microsoft.keyvault/vaults/kv-payments/secrets/db'\r\n"
    "Assignment: (not found)\r\nVault: kv-payments;location=westeurope\r\n"
)


def test_rbac_refusal_gives_the_exact_role_assignment() -> None:
    text = str(explain(kv_error(403, "Forbidden", RBAC, "ForbiddenByRbac"), configure(), "read secret 'db'"))
    assert (
        f'  az role assignment create --role "Key Vault Secrets User" --assignee {CLIENT} '
        "--scope /subscriptions/s1/resourcegroups/rg/providers/microsoft.keyvault/vaults/kv-payments"
    ) in text
    assert text.startswith(
        "Azure Key Vault https://kv-payments.vault.azure.net refused to read secret 'db' (HTTP 403 ForbiddenByRbac)"
    )


def test_rbac_refusal_without_a_resource_line_looks_the_vault_up() -> None:
    text = str(
        explain(
            kv_error(403, "Forbidden", "Caller is not authorized.", "ForbiddenByRbac"), configure(), "list its secrets"
        )
    )
    assert "--scope $(az keyvault show --name kv-payments --query id -o tsv)" in text


def test_access_policy_refusal_gives_set_policy() -> None:
    message = "The user, group or application 'appid=x' does not have secrets list permission on key vault 'kv-payments;location=westeurope'."
    text = str(explain(kv_error(403, "Forbidden", message, "AccessDenied"), configure(), "list its secrets"))
    assert f"az keyvault set-policy --name kv-payments --spn {CLIENT} --secret-permissions get list" in text


def test_firewall_refusal_names_the_agent_address() -> None:
    message = "Client address is not authorized and caller is not a trusted service.\r\nClient address: 198.51.100.23\r\nCaller: appid=x\r\nVault: kv-payments;location=westeurope"
    text = str(explain(kv_error(403, "Forbidden", message, "ForbiddenByFirewall"), configure(), "list its secrets"))
    assert (
        "(address 198.51.100.23)" in text
        and "az keyvault network-rule add --name kv-payments --ip-address 198.51.100.23" in text
    )


def test_a_vault_of_another_tenant() -> None:
    challenge = 'Bearer authorization="https://login.microsoftonline.com/11111111-2222-4333-8444-555555555555", resource="https://vault.azure.net"'
    resp = kv_error(401, "Unauthorized", "AKV10032: Invalid issuer.", headers={"WWW-Authenticate": challenge})
    text = str(explain(resp, configure(), "list its secrets"))
    assert (
        f"The vault belongs to tenant 11111111-2222-4333-8444-555555555555, and the connection signs in to tenant {TENANT}"
        in text
    )


def test_throttling_that_outlasts_the_retries() -> None:
    text = str(explain(kv_error(429, "Throttled", "Too many requests."), configure(), "list its secrets"))
    assert "Lower input 'keyVaultConcurrency'" in text


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes and symlinks")
def test_private_files_are_owner_only_and_never_follow_links(tmp_path: Path) -> None:
    path = tmp_path / "oidc-credentials-x" / "tls-key"
    write_private(str(path), "line 1\nline 2")
    assert path.read_bytes() == b"line 1\nline 2"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    target = tmp_path / "elsewhere"
    target.write_text("untouched")
    link = path.parent / "linked"
    link.symlink_to(target)
    with pytest.raises(TaskError, match="Could not write the secret file"):
        write_private(str(link), "secret")
    assert target.read_text() == "untouched"
    linked_dir = tmp_path / "linked-dir"
    linked_dir.symlink_to(tmp_path / "oidc-credentials-x")
    with pytest.raises(TaskError, match="it is a symbolic link"):
        write_private(str(linked_dir / "f"), "secret")
