"""The Azure provider end to end through the launcher, against the Azure DevOps and Entra stand-ins."""

from __future__ import annotations

import re

import pytest
import requests

from tests.harness import AgentJob, TaskRun, unregistered_secret_lines
from tests.standins.ado import AzureDevOps
from tests.standins.entra import AzureWorld, Entra, FederatedCredential, wire
from tests.standins.server import LocalCA, Server


def test_arm_token_and_variables_for_later_steps(
    job: AgentJob, world: AzureWorld, ado: AzureDevOps, ca: LocalCA
) -> None:
    world.endpoint(job.inputs(provider="azure", azureConnection=world.connection_id))
    result = job.run()
    assert not result.failed, result.text
    token = result.variables["AZURE_ACCESS_TOKEN"]
    assert "AZURE_ACCESS_TOKEN" in result.secret_names
    # A later step: ARM accepts the token.
    resp = requests.get(
        f"{world.url}/subscriptions?api-version=2022-12-01",
        headers={"Authorization": f"Bearer {token}"},
        verify=ca.bundle,
        timeout=10,
    )
    assert resp.status_code == 200
    assert resp.json()["value"][0]["subscriptionId"] == world.tenant.subscriptions[0]


def test_later_step_needs_no_secret(
    job: AgentJob, world: AzureWorld, ado: AzureDevOps, ca: LocalCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.identity import AzurePipelinesCredential

    world.endpoint(job.inputs(provider="azure", azureConnection=world.connection_id))
    result = job.run()
    v = result.variables
    assert v["ARM_USE_OIDC"] == "true" and v["ARM_OIDC_AZURE_SERVICE_CONNECTION_ID"] == world.connection_id
    assert v["ARM_CLIENT_ID"] == v["AZURE_CLIENT_ID"] == v["AZURESUBSCRIPTION_CLIENT_ID"] == world.app.client_id
    assert v["ARM_TENANT_ID"] == v["AZURE_TENANT_ID"] == v["AZURESUBSCRIPTION_TENANT_ID"] == world.tenant.tenant_id
    assert v["ARM_SUBSCRIPTION_ID"] == v["AZURE_SUBSCRIPTION_ID"] == world.tenant.subscriptions[0]
    assert "ARM_ENVIRONMENT" not in v
    # The later step: azure-identity mints its own token from the plain variables and the job token.
    monkeypatch.setenv("SYSTEM_OIDCREQUESTURI", ado.oidc_request_uri)
    credential = AzurePipelinesCredential(
        tenant_id=v["AZURESUBSCRIPTION_TENANT_ID"],
        client_id=v["AZURESUBSCRIPTION_CLIENT_ID"],
        service_connection_id=v["AZURESUBSCRIPTION_SERVICE_CONNECTION_ID"],
        system_access_token=ado.access_token,
        authority=world.url,
        connection_verify=ca.bundle,
    )
    assert world.entra.verify_access_token(
        credential.get_token("https://management.azure.com/.default").token, resource="https://management.azure.com"
    )


def test_each_scope_gets_its_own_token_and_a_fresh_oidc_token(
    job: AgentJob, world: AzureWorld, ado: AzureDevOps
) -> None:
    scopes = (
        "https://management.azure.com/.default\nhttps://graph.microsoft.com/.default\nhttps://vault.azure.net/.default"
    )
    world.endpoint(job.inputs(provider="azure", azureConnection=world.connection_id, azureScopes=scopes))
    result = job.run()
    assert not result.failed, result.text
    for name, resource in [
        ("AZURE_ACCESS_TOKEN", "https://management.azure.com"),
        ("AZURE_ACCESS_TOKEN_2", "https://graph.microsoft.com"),
        ("AZURE_ACCESS_TOKEN_3", "https://vault.azure.net"),
    ]:
        assert world.entra.verify_access_token(result.variables[name], resource=resource)
        assert name in result.secret_names and f"{name}_EXPIRES_ON" not in result.secret_names
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", result.variables[f"{name}_EXPIRES_ON"])
    assertions = [r["form"]["client_assertion"] for r in world.entra.requests if r["path"].endswith("/token")]
    assert len(assertions) == 3 and len(set(assertions)) == 3 and set(assertions) <= set(ado.issued)
    assert unregistered_secret_lines(result.stdout, [*result.secrets, *ado.issued]) == []
    assert not any(t in result.stderr for t in result.variables.values() if t.startswith("ey"))


def test_an_entra_issuer_connection_works(job: AgentJob, ado: AzureDevOps, ca: LocalCA) -> None:
    entra = Entra(ca_bundle=ca.bundle)
    with Server(entra, ca=ca) as server:
        entra.base_url = server.url
        world = wire(entra, ado, url=server.url, connection="entra-conn", issuer="entra")
        world.endpoint(job.inputs(provider="azure", azureConnection=world.connection_id))
        result = job.run()
    assert not result.failed, result.text
    assert "Microsoft Entra issuer" in result.text
    assert not any("2027-07-01" in w for w in result.warnings)  # the retirement is the Azure DevOps issuer's


def test_a_sovereign_cloud_connection_gets_its_own_arm(job: AgentJob, world: AzureWorld) -> None:
    world.endpoint(
        job.inputs(
            provider="azure", azureConnection=world.connection_id, azureScopes="https://management.azure.com/.default"
        ),
        environment="AzureUSGovernment",
    )
    result = job.run()
    assert not result.failed, result.text
    assert world.entra.verify_access_token(
        result.variables["AZURE_ACCESS_TOKEN"], resource="https://management.usgovcloudapi.net"
    )
    assert result.variables["ARM_ENVIRONMENT"] == "usgovernment"
    assert "https://management.azure.com/.default -> https://management.usgovcloudapi.net/.default" in result.text
    assert not any("2027-07-01" in w for w in result.warnings)  # sovereign clouds keep the Azure DevOps issuer


def test_a_secret_based_connection_is_refused_before_any_request(
    job: AgentJob, world: AzureWorld, ado: AzureDevOps
) -> None:
    world.endpoint(
        job.inputs(provider="azure", azureConnection=world.connection_id),
        scheme="ServicePrincipal",
        params={"authenticationType": "spnKey", "serviceprincipalkey": "hunter2-secret"},
    )
    result = job.run()
    assert result.failed and result.variables == {}
    assert "uses a service principal with a stored client secret, not workload identity federation" in result.errors[0]
    assert "'Convert'" in result.errors[0]
    assert not ado.issued and not world.entra.requests
    assert "Traceback" not in result.stdout + result.stderr


def _fail(job: AgentJob, world: AzureWorld, **params: str) -> TaskRun:
    world.endpoint(job.inputs(provider="azure", azureConnection=world.connection_id), params=params)
    result = job.run()
    assert result.failed and result.variables == {}, result.text
    assert "Traceback" not in result.stdout + result.stderr
    return result


def _untrust(world: AzureWorld) -> FederatedCredential:
    credential = world.app.federated[0]
    world.app.federated.clear()
    return credential


def test_700211_issuer(job: AgentJob, world: AzureWorld) -> None:
    _untrust(world)
    world.entra.trust(world.app, issuer="https://login.microsoftonline.com/other/v2.0", subject=world.subject)
    error = _fail(job, world).errors[0]
    assert "AADSTS700211" in error and "No federated credential of the app has this token's issuer" in error
    assert f"  Issuer               {world.issuer}\n" in error and f"  issuer    {world.issuer}\n" in error


def test_700212_audience(job: AgentJob, world: AzureWorld) -> None:
    _untrust(world)
    world.entra.trust(world.app, issuer=world.issuer, subject=world.subject, audience="api://SomethingElse")
    error = _fail(job, world).errors[0]
    assert "AADSTS700212" in error and "none lists this token's audience" in error
    assert "  Audience             api://AzureADTokenExchange" in error


def test_700213_subject(job: AgentJob, world: AzureWorld) -> None:
    _untrust(world)
    world.entra.trust(world.app, issuer=world.issuer, subject="sc://fabrikam/Payments/renamed")
    error = _fail(job, world, workloadIdentityFederationSubject="sc://fabrikam/Payments/renamed").errors[0]
    assert "AADSTS700213" in error and f"  Subject identifier   {world.subject}\n" in error
    assert (
        f"The connection records the subject sc://fabrikam/Payments/renamed, but the token carries {world.subject}"
        in error
    )


def test_7002138_subject_differs_in_letter_case(job: AgentJob, world: AzureWorld) -> None:
    _untrust(world)
    recorded = world.subject.replace("azure-prod", "Azure-Prod")
    world.entra.trust(world.app, issuer=world.issuer, subject=recorded)
    result = _fail(job, world, workloadIdentityFederationSubject=recorded)
    error = result.errors[0]
    assert "AADSTS7002138" in error and "only when letter case is ignored" in error
    assert "character 24: 'a' here, 'A' there; character 30: 'p' here, 'P' there" in error
    assert any(
        "differs from the one the connection records" in w and "only in letter case" in w for w in result.warnings
    )


def test_70021_no_federated_credential(job: AgentJob, world: AzureWorld) -> None:
    _untrust(world)
    error = _fail(job, world).errors[0]
    assert "AADSTS70021:" in error and "no federated credential matching this token at all" in error


def test_700016_unknown_app(job: AgentJob, world: AzureWorld) -> None:
    error = _fail(job, world, servicePrincipalId="00000000-0000-4000-8000-0000000000aa").errors[0]
    assert "AADSTS700016" in error and "does not exist in tenant" in error


def test_700024_expired_assertion(job: AgentJob, world: AzureWorld, ado: AzureDevOps) -> None:
    ado.lifetime = -120
    error = _fail(job, world).errors[0]
    assert "AADSTS700024" in error and "check the agent's clock" in error


def test_7000215_secret_error(job: AgentJob, world: AzureWorld) -> None:
    world.entra.queue_error(401, 7000215, "invalid_client", "Invalid client secret provided.")
    error = _fail(job, world).errors[0]
    assert "AADSTS7000215" in error and "OidcCredentials sends no secret" in error


def test_500011_misspelt_resource_names_the_input_and_the_scope(job: AgentJob, world: AzureWorld) -> None:
    job.inputs(azureScopes="https://management.azure.com/.default\nhttps://graph.microsft.com/.default")
    error = _fail(job, world).errors[0]
    assert "AADSTS500011" in error
    assert "Input 'azureScopes' asks for the scope 'https://graph.microsft.com/.default'" in error
    assert f"tenant {world.tenant.tenant_id} has no resource of that name" in error
    assert "A scope is a resource URI followed by /.default" in error and "https://graph.microsoft.com" in error


def test_unreachable_entra(job: AgentJob, world: AzureWorld) -> None:
    world.endpoint(
        job.inputs(provider="azure", azureConnection=world.connection_id),
        activeDirectoryAuthority="https://127.0.0.1:1/",
    )
    result = job.run()
    assert result.failed and "Could not reach Microsoft Entra ID at https://127.0.0.1:1/" in result.errors[0]


@pytest.mark.parametrize("debug", ["false", "true"])
def test_a_hostile_entra_error_cannot_command_the_agent(job: AgentJob, world: AzureWorld, debug: str) -> None:
    world.entra.queue_error(
        401,
        700213,
        "invalid_client",
        "No match ##vso[task.setvariable variable=PWNED]yes and ##vso[task.complete result=Succeeded]",
    )
    world.endpoint(job.variables(SYSTEM_DEBUG=debug).inputs(provider="azure", azureConnection=world.connection_id))
    result = job.run()
    assert result.failed and result.variables == {}
    assert "AADSTS700213" in result.errors[0]
    assert "PWNED" not in result.variables and result.completions[-1][0] == "Failed"
    assert all(r == "Failed" for r, _ in result.completions)
    assert "##vso[task.setvariable variable=PWNED" not in result.stdout + result.stderr


def test_an_azure_devops_refusal_in_the_assertion_callback_is_reported_as_is(
    job: AgentJob, world: AzureWorld, ado: AzureDevOps
) -> None:
    ado.connections[world.connection_id].referenced = False
    result = _fail(job, world)
    assert "not referenced from this stage" in result.errors[0] and "Entra" not in result.errors[0]
    assert not world.entra.requests
