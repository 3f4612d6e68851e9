"""Azure provider: the AzureRM connection, clouds, scopes and the explanation of each Entra error."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from oidc_credentials.agent import AgentEnv, Endpoint
from oidc_credentials.errors import ConfigError
from oidc_credentials.oidc import Claims
from oidc_credentials.providers import azure
from oidc_credentials.providers._azure_common import case_only_difference, explain_entra, read_connection

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "0c3e4ae2-5cb5-4b2b-9bd3-2b0f3a0e2f5e"
CONN = "5b7f1c1a-2c3d-4e5f-8a9b-0c1d2e3f4a5b"


def endpoint(scheme: str = "WorkloadIdentityFederation", params: dict[str, str] | None = None, **data: str) -> Endpoint:
    p = {"TENANTID": TENANT, "SERVICEPRINCIPALID": CLIENT}
    p.update({k.upper(): v for k, v in (params or {}).items()})
    d = {"ENVIRONMENT": "AzureCloud", "SUBSCRIPTIONID": "sub-1"}
    d.update({k.upper(): v for k, v in data.items()})
    return Endpoint(id=CONN, url="https://management.azure.com/", scheme=scheme, params=p, data=d)


def agent(**inputs: str) -> AgentEnv:
    return AgentEnv({f"INPUT_{k.upper()}": v for k, v in inputs.items()})


@pytest.mark.parametrize(
    ("scheme", "params", "fragment"),
    [
        ("ServicePrincipal", {"authenticationType": "spnKey"}, "a service principal with a stored client secret"),
        ("ServicePrincipal", {"authenticationType": "spnCertificate"}, "a service principal with a stored certificate"),
        ("ManagedServiceIdentity", {}, "the agent's managed identity"),
        ("PublishProfile", {}, "a publish profile"),
        ("", {}, "authentication scheme 'none'"),
    ],
)
def test_a_connection_that_is_not_wif_says_how_to_convert(scheme: str, params: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        read_connection(endpoint(scheme, params), "azureConnection")
    message = str(caught.value)
    assert fragment in message and "not workload identity federation" in message
    assert "'Convert'" in message and "Workload identity federation" in message and CONN in message


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"TENANTID": ""}, "no valid tenant ID"),
        ({"TENANTID": "bad tenant!"}, "'bad tenant!'"),
        ({"SERVICEPRINCIPALID": "my-app"}, "must be a GUID, got 'my-app'"),
    ],
)
def test_tenant_and_client_id_are_checked(params: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match="Edit the connection") as caught:
        read_connection(endpoint(params=params), "azureConnection")
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("environment", "authority", "arm_scope", "suffix", "terraform"),
    [
        (
            "AzureCloud",
            "https://login.microsoftonline.com/",
            "https://management.azure.com/.default",
            "vault.azure.net",
            "public",
        ),
        (
            "AzureUSGovernment",
            "https://login.microsoftonline.us/",
            "https://management.usgovcloudapi.net/.default",
            "vault.usgovcloudapi.net",
            "usgovernment",
        ),
        (
            "azurechinacloud",
            "https://login.chinacloudapi.cn/",
            "https://management.chinacloudapi.cn/.default",
            "vault.azure.cn",
            "china",
        ),
    ],
)
def test_sovereign_clouds_come_from_the_endpoint_data(
    environment: str, authority: str, arm_scope: str, suffix: str, terraform: str
) -> None:
    config = azure.configure(
        agent(azureScopes="https://management.azure.com/.default"), endpoint(environment=environment)
    )
    conn = config.connection
    assert conn.authority == authority and conn.keyvault_suffix == suffix and conn.cloud.terraform == terraform
    assert conn.keyvault_resource == f"https://{suffix}"
    assert config.scopes == (arm_scope,)  # the task.json default follows the connection's cloud
    assert bool(config.rewritten) is (environment != "AzureCloud")


def test_endpoint_data_overrides_the_cloud_table() -> None:
    conn = read_connection(
        endpoint(activeDirectoryAuthority="https://login.example.test", AzureKeyVaultDnsSuffix="vault.example.test"),
        "azureConnection",
    )
    assert conn.authority == "https://login.example.test/" and conn.keyvault_resource == "https://vault.example.test"


def test_azure_stack_needs_its_authority() -> None:
    with pytest.raises(ConfigError, match="cloud 'AzureStack'.*activeDirectoryAuthority"):
        read_connection(endpoint(environment="AzureStack"), "azureConnection")
    conn = read_connection(
        endpoint(environment="AzureStack", activeDirectoryAuthority="https://adfs.local/adfs"), "azureConnection"
    )
    assert conn.authority == "https://adfs.local/adfs/"


def test_an_http_authority_is_refused() -> None:
    with pytest.raises(ConfigError, match="must be an https URL, got 'http://login.example.test'"):
        read_connection(endpoint(activeDirectoryAuthority="http://login.example.test"), "azureConnection")


@pytest.mark.parametrize(
    ("scopes", "fragment"),
    [
        ("https://graph.microsoft.com/User.Read", "a resource followed by /.default"),
        ("/.default", "got '/.default'"),
        ("https://graph.microsoft.com/.default\nhttps://graph.microsoft.com/.default", "twice"),
        ("\n".join(f"api://app{i}/.default" for i in range(11)), "at most 10 scopes, got 11"),
    ],
)
def test_scopes_are_validated(scopes: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match="Input 'azureScopes'") as caught:
        azure.configure(agent(azureScopes=scopes), endpoint())
    assert fragment in str(caught.value)


def test_scopes_default_and_names() -> None:
    assert azure.configure(agent(), endpoint()).scopes == ("https://management.azure.com/.default",)
    config = azure.configure(
        agent(azureScopes="https://management.azure.com/.default, api://my-api/.default"), endpoint()
    )
    assert config.scopes == ("https://management.azure.com/.default", "api://my-api/.default")
    assert [azure.token_variable(i) for i in range(3)] == [
        "AZURE_ACCESS_TOKEN",
        "AZURE_ACCESS_TOKEN_2",
        "AZURE_ACCESS_TOKEN_3",
    ]


def test_case_only_difference() -> None:
    assert (
        case_only_difference("sc://Org/proj/Conn", "sc://org/proj/conn")
        == "character 6: 'O' here, 'o' there; character 15: 'C' here, 'c' there"
    )
    assert case_only_difference("same", "same") == ""
    assert case_only_difference("sc://a", "sc://b") == ""


CLAIMS = Claims(
    iss="https://vstoken.dev.azure.com/org-id",
    sub="sc://fabrikam/Payments/Azure-Prod",
    aud="api://AzureADTokenExchange",
    exp=2000,
    iat=1700,
)


@pytest.mark.parametrize(
    ("code", "fragments"),
    [
        (
            700211,
            [
                "No federated credential of the app has this token's issuer",
                "Issuer               https://vstoken.dev.azure.com/org-id",
            ],
        ),
        (700212, ["none lists this token's audience", "Audience             api://AzureADTokenExchange"]),
        (700213, ["none has this token's subject", "Subject identifier   sc://fabrikam/Payments/Azure-Prod"]),
        (7002138, ["only when letter case is ignored", "case-sensitive"]),
        (70021, ["no federated credential matching this token at all"]),
        (700016, [f"App {CLIENT} does not exist in tenant {TENANT}", "Directory (tenant) ID"]),
        (7000215, ["'invalid client secret' error", "OidcCredentials sends no secret"]),
        (
            700024,
            [
                "outside its valid time range",
                "issued 1970-01-01T00:28:20Z",
                "expires 1970-01-01T00:33:20Z",
                "agent's clock",
            ],
        ),
    ],
)
def test_each_entra_error_is_explained(code: int, fragments: list[str]) -> None:
    conn = read_connection(endpoint(), "azureConnection")
    error = explain_entra(code, f"AADSTS{code}: what Entra said.\r\nTrace ID: x", 401, conn, CLAIMS, 5000.0)
    text = str(error)
    assert text.startswith(
        f"Microsoft Entra ID refused the token exchange for app {CLIENT} in tenant {TENANT}: AADSTS{code}: what Entra said. Trace ID: x"
    )
    assert error.code == f"AADSTS{code}" and error.status == 401
    for fragment in fragments:
        assert fragment in text
    if code in (700211, 700212, 700213, 7002138, 70021):
        assert (
            "The token presented:\n  issuer    https://vstoken.dev.azure.com/org-id\n  subject   sc://fabrikam/Payments/Azure-Prod"
            in text
        )


def test_a_recorded_subject_differing_in_case_is_called_out() -> None:
    conn = read_connection(
        endpoint(params={"workloadIdentityFederationSubject": "sc://fabrikam/Payments/azure-prod"}), "azureConnection"
    )
    text = str(explain_entra(700213, "AADSTS700213: no match", 401, conn, CLAIMS, 0.0))
    assert (
        "differs from the token's only in letter case (character 24: 'A' here, 'a' there; character 30: 'P' here, 'p' there)"
        in text
    )


def test_a_recorded_issuer_that_differs_is_named() -> None:
    conn = read_connection(
        endpoint(params={"workloadIdentityFederationIssuer": "https://login.microsoftonline.com/t/v2.0"}),
        "azureConnection",
    )
    text = str(explain_entra(700211, "AADSTS700211: no match", 401, conn, CLAIMS, 0.0))
    assert (
        "The connection records the issuer https://login.microsoftonline.com/t/v2.0, but the token carries https://vstoken.dev.azure.com/org-id"
        in text
    )


def test_unknown_codes_keep_entra_words() -> None:
    conn = read_connection(endpoint(), "azureConnection")
    error: Any = explain_entra(50000, "AADSTS50000: There was an error issuing a token.", 500, conn, None, 0.0)
    assert str(error).endswith("AADSTS50000: There was an error issuing a token.")


def test_the_entra_client_uses_the_agents_ca_bundle_and_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    import azure.identity
    from oidc_credentials.http import Http
    from oidc_credentials.providers import Context
    from oidc_credentials.providers._azure_common import exchange_tokens

    seen: dict[str, Any] = {}

    class FakeCredential:
        def __init__(self, tenant_id: str, client_id: str, func: Any, **kwargs: Any) -> None:
            seen.update(kwargs, tenant_id=tenant_id, client_id=client_id)

        def get_token(self, scope: str) -> Any:
            from azure.core.credentials import AccessToken

            return AccessToken(f"token-for-{scope}", 4102444800)

        def close(self) -> None:
            seen["closed"] = True

    monkeypatch.setattr(azure.identity, "ClientAssertionCredential", FakeCredential)
    env = {
        "REQUESTS_CA_BUNDLE": "/etc/ca.pem",
        "AGENT_PROXYURL": "http://proxy.local:8080",
        "AGENT_PROXYBYPASSLIST": '["\\\\.internal$"]',
    }
    agent = AgentEnv(env)
    ctx = Context(agent=agent, http=Http(env), log=lambda _m: None, warn=lambda _m: None)
    conn = read_connection(endpoint(), "azureConnection")
    issued = exchange_tokens(conn, ["api://a/.default"], None, ctx)  # type: ignore[arg-type]
    assert issued[0].token == "token-for-api://a/.default" and issued[0].expires_iso == "2100-01-01T00:00:00Z"
    assert seen["authority"] == "https://login.microsoftonline.com/" and seen["connection_verify"] == "/etc/ca.pem"
    assert seen["proxies"] == {"http": "http://proxy.local:8080", "https": "http://proxy.local:8080"}
    assert seen["tenant_id"] == TENANT and seen["client_id"] == CLIENT and seen["closed"]
    assert logging.getLogger("azure.identity").level == logging.NOTSET  # quietened only while it ran
