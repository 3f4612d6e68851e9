"""The Azure provider end to end through the launcher, against the Azure DevOps and Entra stand-ins."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.harness import AgentJob
from tests.standins.ado import AzureDevOps
from tests.standins.entra import AzureWorld, Entra, wire
from tests.standins.server import LocalCA, Server


@pytest.fixture
def world(ado: AzureDevOps, ca: LocalCA) -> Iterator[AzureWorld]:
    entra = Entra(ca_bundle=ca.bundle)
    with Server(entra, ca=ca) as server:
        entra.base_url = server.url
        yield wire(entra, ado, url=server.url)


def test_arm_token_and_variables_for_later_steps(job: AgentJob, world: AzureWorld, ado: AzureDevOps, ca: LocalCA) -> None:
    world.endpoint(job.inputs(provider="azure", azureConnection=world.connection_id))
    result = job.run()
    assert not result.failed, result.text
    token = result.variables["AZURE_ACCESS_TOKEN"]
    assert "AZURE_ACCESS_TOKEN" in result.secret_names
    # A later step: ARM accepts the token.
    resp = requests.get(f"{world.url}/subscriptions?api-version=2022-12-01", headers={"Authorization": f"Bearer {token}"}, verify=ca.bundle, timeout=10)
    assert resp.status_code == 200
    assert resp.json()["value"][0]["subscriptionId"] == world.tenant.subscriptions[0]


