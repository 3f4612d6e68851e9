"""`oidc-credentials trust` with facts read from the organisation (azure-devops SDK, REST stand-in)."""

from __future__ import annotations

import json

from oidc_credentials.commands import trust as trust_command

from tests.cli_harness import (
    Result,
    org_fixture,  # noqa: F401 - the `org` fixture
    run_command,
)
from tests.standins.ado import AzureDevOps
from tests.standins.ado_rest import Organisation

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def trust(org: Organisation, *argv: str) -> Result:
    return run_command(trust_command, [argv[0], "--org", org.url, *argv[1:]])


def test_custom_connection_gets_the_azure_devops_issuer_and_its_names(org: Organisation, ado: AzureDevOps) -> None:
    org.add_endpoint("Payments", "Vault-Prod", type="OidcCredentialsVault", scheme="None", parameters={"role": "r"})
    result = trust(
        org, "vault", "--project", "payments", "--connection", "vault-prod", "--policy", "p", "--format", "json"
    )
    assert result.code == 0, result.err
    role = json.loads(result.out)["auth/jwt/role/ado-vault-prod"]
    # names as Azure DevOps spells them (the subject is case-sensitive), whatever case was typed
    assert role["bound_subject"] == f"sc://{ado.org}/{ado.project}/Vault-Prod"
    assert json.loads(result.out)["auth/jwt/config"]["bound_issuer"] == ado.issuer


def test_azure_connection_issuer_and_subject_come_from_the_connection(org: Organisation, ado: AzureDevOps) -> None:
    modern = ado.add_connection("arm-new", issuer="entra", tenant_id=TENANT)
    org.add_endpoint(
        "Payments",
        "arm-new",
        parameters={
            "tenantid": TENANT,
            "workloadIdentityFederationIssuer": f"https://login.microsoftonline.com/{TENANT}/v2.0",
            "workloadIdentityFederationSubject": ado.subject(modern),
        },
    )
    result = trust(org, "azure", "--project", "Payments", "--connection", "arm-new")
    assert result.code == 0, result.err
    credential = json.loads(result.out)
    assert credential["issuer"] == f"https://login.microsoftonline.com/{TENANT}/v2.0"
    assert credential["subject"] == ado.subject(modern)


def test_dual_issuer_predicts_the_entra_subject_from_the_connection(org: Organisation, ado: AzureDevOps) -> None:
    legacy = org.add_endpoint("Payments", "arm-old", parameters={"tenantid": TENANT})
    result = trust(org, "azure", "--project", "Payments", "--connection", "arm-old", "--dual-issuer")
    assert result.code == 0, result.err
    old, new = json.loads(result.out)
    assert (old["issuer"], old["subject"]) == (ado.issuer, f"sc://{ado.org}/{ado.project}/arm-old")
    # what the token stand-in (the service's format) issues once the connection uses the Entra issuer
    converted = ado.add_connection("arm-old", issuer="entra", tenant_id=TENANT)
    assert new["subject"] == ado.subject(converted).replace(converted.id, legacy["id"])
    assert new["issuer"] == f"https://login.microsoftonline.com/{TENANT}/v2.0"


def test_organisation_source_needs_project_and_connection(org: Organisation) -> None:
    result = trust(org, "aws", "--account-id", "123456789012")
    assert result.code == 1 and "missing --project and --connection" in result.err
    unknown = trust(org, "aws", "--account-id", "123456789012", "--project", "Payments", "--connection", "nope")
    assert unknown.code == 1 and "--connection nope: no service connection of that name" in unknown.err
