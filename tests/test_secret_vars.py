"""The secret-to-variable policy shared by every secret source: protected names, files, registration."""

from __future__ import annotations

import pytest
from oidc_credentials.errors import ConfigError
from oidc_credentials.secret_vars import Policy, agent_key, env_hint, plan, protected, registrable

KV = Policy(prefix="KEYVAULT", aliases=True, multiline="file", folder="/agent/_temp/oidc-credentials-x")


@pytest.mark.parametrize(
    "name",
    [
        "System-CollectionUri",
        "System.OidcRequestUri",
        "system_accesstoken",
        "SYSTEM COLLECTIONURI",
        "Agent-ProxyUrl",
        "AGENT_TEMPDIRECTORY",
        "Build-SourceBranch",
        "Release.ReleaseId",
        "Pipeline-Workspace",
        "Environment-Name",
        "Resources-Pipeline-x",
        "Task-DisplayName",
        "TF_BUILD",
        "tf-build",
        "Common-TestResultsDirectory",
        "endpoint-url",
        "INPUT_PROVIDER",
        "secret-key",
        "Path",
        "securefile-x",
    ],
)
def test_names_in_the_agents_namespaces_are_protected(name: str) -> None:
    assert protected(name)


@pytest.mark.parametrize("name", ["db-password", "api-key", "systems-key", "agentless", "TF-BUILDER", "fine"])
def test_ordinary_names_are_not(name: str) -> None:
    assert protected(name) == ""


def test_agent_key_compares_like_the_agent() -> None:
    assert agent_key("System.Collection-Uri x") == agent_key("SYSTEM_COLLECTION_URI_X") == "system_collection_uri_x"


def test_plan_skips_protected_names_with_a_warning_and_fails_when_asked_by_name() -> None:
    warnings: list[str] = []
    result = plan([("System-CollectionUri", "x"), ("ok", "y")], KV, warn=warnings.append)
    assert [v.name for v in result.variables] == ["ok"]
    assert "System-CollectionUri" in warnings[0]
    with pytest.raises(ConfigError, match="System-CollectionUri cannot become pipeline variables"):
        plan([("System-CollectionUri", "x")], KV, requested=["system-collectionuri"])


def test_a_protected_alias_refuses_the_secret_too() -> None:
    """A protected name is refused with aliases off too: the agent compares '-' like '_'."""
    result = plan([("System-x", "v")], Policy(prefix="VAULT", aliases=False))
    assert result.variables == [] and result.refused


def test_files_live_under_the_sources_prefix() -> None:
    result = plan([("ssl-cert", "a\nb"), ("pip-config", "[global]\nindex-url = x")], KV)
    names = {v.name for v in result.variables}
    assert names == {"KEYVAULT_FILE_SSL_CERT", "KEYVAULT_FILE_PIP_CONFIG"}
    assert all(not v.secret for v in result.variables)
    assert {file.path for file in result.files} == {
        "/agent/_temp/oidc-credentials-x/SSL_CERT",
        "/agent/_temp/oidc-credentials-x/PIP_CONFIG",
    }


def test_two_secrets_for_one_variable_fail_before_anything_is_set() -> None:
    with pytest.raises(ConfigError, match="would both set variable"):
        plan([("db.password", "a"), ("db-password", "b")], Policy(prefix="VAULT", aliases=True))


def test_registration_skips_trivial_fragments() -> None:
    value = '{\n  "private_key": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",\n  "n": 1\n}\n \n-\n'
    registered = registrable(value, "ZW5jb2RlZA==")
    assert '"private_key": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",' in registered and "ZW5jb2RlZA==" in registered
    for trivial in ("{", "}", "", " ", "-", '"n": 1'[:3]):
        assert trivial not in registered
    assert value not in registered  # a whole multi-line value never matches one log line
    assert registrable("abc") == [] and registrable("----") == [] and registrable("abcd") == ["abcd"]


def test_env_hint_is_yaml_with_one_key_per_secret() -> None:
    import yaml

    hint = env_hint(["api-key", "API_KEY", "db-password", "DB_PASSWORD", "1st"])
    parsed = yaml.safe_load(hint)
    assert parsed == {"env": {"API_KEY": "$(api-key)", "DB_PASSWORD": "$(db-password)", "_1ST": "$(1st)"}}
