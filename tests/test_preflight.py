"""Pre-flight: each expect* input compared with the connection or the token, with the precise difference."""

from __future__ import annotations

import pytest
from oidc_credentials import preflight
from oidc_credentials.agent import AgentEnv, Endpoint
from oidc_credentials.errors import ConfigError
from oidc_credentials.oidc import Claims

SUB = "sc://fabrikam/Web/aws-prod"
ISS = "https://vstoken.dev.azure.com/00000000-1111-4222-8333-444444444444"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLAIMS = Claims(iss=ISS, sub=SUB, aud="api://AzureADTokenExchange", exp=0)
ENTRA = Claims(
    iss=f"https://login.microsoftonline.com/{TENANT}/v2.0",
    sub="/eid1/c/pub/t/x/a/y/sc/org/conn",
    aud="fb60f99c-7a34-4190-8149-302f77469936",
    exp=0,
    raw={"tid": TENANT},
)


def agent(**inputs: str) -> AgentEnv:
    return AgentEnv({f"INPUT_{k.upper()}": v for k, v in inputs.items()})


def expect(**inputs: str) -> preflight.Expectations:
    return preflight.read(agent(**inputs))


def endpoint(**params: str) -> Endpoint:
    return Endpoint("e", "https://x", "None", {k.upper(): v for k, v in params.items()})


def test_nothing_stated_checks_nothing() -> None:
    nothing = expect()
    assert not nothing
    preflight.check_connection(nothing, agent(), endpoint(), "aws")
    preflight.check_claims(nothing, CLAIMS, "AWS")


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("expectAwsAccountId", "12345", "12-digit"),
        ("expectGcpProjectNumber", "my-project", "digits only"),
        ("expectTenantId", "contoso.onmicrosoft.com", "GUID"),
    ],
)
def test_malformed_inputs_are_refused(name: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        expect(**{name: value})


def test_subject_differing_in_case_is_called_out_character_by_character() -> None:
    with pytest.raises(ConfigError) as err:
        preflight.check_claims(expect(expectSubject="sc://fabrikam/web/AWS-prod"), CLAIMS, "AWS")
    text = err.value.message
    assert "The token was not sent to AWS." in text and "'expectSubject'" in text
    assert "only in letter case" in text
    assert "character 15 is 'W' here but 'w' in the expectation" in text
    assert "character 19 is 'a' here but 'A' in the expectation" in text
    assert "character 20 is 'w'" in text and "character 21 is 's'" in text
    lines = text.splitlines()
    carets = lines[-2]
    assert lines[-4] == "  expected  sc://fabrikam/web/AWS-prod" and lines[-3] == f"  actual    {SUB}"
    assert [i - len("            ") for i, ch in enumerate(carets) if ch == "^"] == [14, 18, 19, 20]


def test_subject_differing_otherwise_names_where() -> None:
    with pytest.raises(ConfigError) as err:
        preflight.check_claims(expect(expectSubject="sc://fabrikam/Web/aws-production"), CLAIMS, "AWS")
    assert "differ from character 27 on (expected 32 characters, got 26)" in err.value.message


def test_trailing_white_space_is_pointed_at() -> None:
    with pytest.raises(ConfigError, match="invisible character: U[+]200B"):
        preflight.check_claims(expect(expectSubject=SUB[:5] + "\u200b" + SUB[5:]), CLAIMS, "AWS")


def test_matching_subject_and_issuer_pass() -> None:
    preflight.check_claims(expect(expectSubject=SUB, expectIssuer=ISS), CLAIMS, "AWS")


def test_issuer() -> None:
    with pytest.raises(ConfigError, match="'expectIssuer'"):
        preflight.check_claims(expect(expectIssuer=ISS.replace("0000", "9999", 1)), CLAIMS, "AWS")


def test_vault_bound_subject() -> None:
    preflight.check_claims(expect(expectVaultBoundSubject=SUB), CLAIMS, "HashiCorp Vault")
    with pytest.raises(ConfigError, match="bound_subject") as err:
        preflight.check_claims(expect(expectVaultBoundSubject=SUB.lower()), CLAIMS, "HashiCorp Vault")
    assert "letter case" in err.value.message


def test_aws_account_from_the_connection_or_the_input() -> None:
    role = "arn:aws:iam::123456789012:role/deploy"
    preflight.check_connection(expect(expectAwsAccountId="123456789012"), agent(), endpoint(roleArn=role), "aws")
    with pytest.raises(ConfigError, match="Nothing was requested") as err:
        preflight.check_connection(expect(expectAwsAccountId="123456789013"), agent(), endpoint(roleArn=role), "aws")
    assert "They differ from character 12 on." in err.value.message
    override = agent(awsRoleArn="arn:aws:iam::999999999999:role/x")
    with pytest.raises(ConfigError, match="999999999999"):
        preflight.check_connection(expect(expectAwsAccountId="123456789012"), override, endpoint(roleArn=role), "aws")


def test_aws_account_is_ignored_for_other_providers() -> None:
    preflight.check_connection(expect(expectAwsAccountId="123456789012"), agent(), endpoint(), "azure")


def test_gcp_project_number() -> None:
    wip = "projects/123456789/locations/global/workloadIdentityPools/ado/providers/fabrikam"
    preflight.check_connection(
        expect(expectGcpProjectNumber="123456789"), agent(), endpoint(workloadIdentityProvider=wip), "gcp"
    )
    with pytest.raises(ConfigError, match="project number"):
        preflight.check_connection(
            expect(expectGcpProjectNumber="123456780"), agent(), endpoint(workloadIdentityProvider=wip), "gcp"
        )


def test_tenant_against_the_connection_and_the_token() -> None:
    other = "11111111-2222-4333-8444-555555555555"
    preflight.check_connection(expect(expectTenantId=TENANT.upper()), agent(), endpoint(tenantId=TENANT), "keyvault")
    with pytest.raises(ConfigError, match="connection's tenant"):
        preflight.check_connection(expect(expectTenantId=other), agent(), endpoint(tenantId=TENANT), "azure")
    preflight.check_claims(expect(expectTenantId=TENANT), ENTRA, "Microsoft Entra ID")
    with pytest.raises(ConfigError, match="token's tenant"):
        preflight.check_claims(expect(expectTenantId=other), ENTRA, "Microsoft Entra ID")
    preflight.check_claims(expect(expectTenantId=other), CLAIMS, "Microsoft Entra ID")  # vstoken names no tenant


def test_difference_is_empty_for_equal_values() -> None:
    assert preflight.difference("a", "a") == ""
