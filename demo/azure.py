"""Azure: an Entra ID token for ARM from the stand-in's OIDC token, then a later step that uses it."""

from __future__ import annotations

import os

import requests

from demo.stage import Stage, show
from tests.standins.entra import AzureWorld, Entra, wire
from tests.standins.server import Server


def start_entra(stage: Stage) -> AzureWorld:
    """Entra on 127.0.0.1, trusting the stage's Azure DevOps connection 'azure-prod' (started once)."""
    existing = getattr(stage, "_azure_world", None)
    if isinstance(existing, AzureWorld):
        return existing
    entra = Entra(ca_bundle=stage.ca.bundle)
    server = Server(entra, ca=stage.ca)
    stage.servers.append(server)
    entra.base_url = server.url
    world = wire(entra, stage.ado, url=server.url)
    stage._azure_world = world  # type: ignore[attr-defined]
    return world


def run(stage: Stage) -> None:
    world = start_entra(stage)
    job = world.endpoint(stage.job().inputs(provider="azure", azureConnection=world.connection_id))
    result = job.run()
    show("Azure: OidcCredentials@1 (provider: azure)", result)
    if result.failed:
        raise SystemExit("the Azure flow failed")
    token = result.variables["AZURE_ACCESS_TOKEN"]
    resp = requests.get(
        f"{world.url}/subscriptions?api-version=2022-12-01",
        headers={"Authorization": f"Bearer {token}"},
        verify=stage.ca.bundle,
        timeout=10,
    )
    subs = [s["subscriptionId"] for s in resp.json().get("value", [])] if resp.status_code == 200 else []
    print(f"  later step: GET /subscriptions with $(AZURE_ACCESS_TOKEN) -> HTTP {resp.status_code} {subs}")
    if resp.status_code != 200 or subs != world.tenant.subscriptions:
        raise SystemExit("the later step could not use the ARM token")

    # A later step with no secret at all: azure-identity's AzurePipelinesCredential reads what the task set.
    from azure.identity import AzurePipelinesCredential

    credential = AzurePipelinesCredential(
        tenant_id=result.variables["AZURESUBSCRIPTION_TENANT_ID"],
        client_id=result.variables["AZURESUBSCRIPTION_CLIENT_ID"],
        service_connection_id=result.variables["AZURESUBSCRIPTION_SERVICE_CONNECTION_ID"],
        system_access_token=stage.ado.access_token,
        authority=world.url,
        connection_verify=stage.ca.bundle,
    )
    os.environ["SYSTEM_OIDCREQUESTURI"] = stage.ado.oidc_request_uri
    fresh = credential.get_token("https://management.azure.com/.default")
    print(f"  later step: AzurePipelinesCredential from AZURESUBSCRIPTION_* -> token expiring {fresh.expires_on}")

    # The same app, but the connection was renamed to differ only in letter case from the trusted subject: it
    # still records the subject it was created with, so the task names the characters that differ.
    wrong = stage.ado.add_connection("Azure-Prod", issuer="vstoken", tenant_id=world.tenant.tenant_id)
    other = AzureWorld(world.entra, world.tenant, world.app, wrong.id, world.issuer, world.subject, world.url)
    recorded = {"workloadIdentityFederationIssuer": world.issuer, "workloadIdentityFederationSubject": world.subject}
    failed = other.endpoint(stage.job().inputs(provider="azure", azureConnection=wrong.id), params=recorded).run()
    show("Azure: a connection renamed to differ only in letter case (expected to fail)", failed)
    if not failed.failed or "only in letter case (character 24: 'A' here, 'a' there" not in failed.errors[0]:
        raise SystemExit("the failing Azure flow did not name the characters that differ")
