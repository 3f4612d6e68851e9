"""The Key Vault provider end to end through the launcher, against the ADO, Entra and Key Vault stand-ins."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.harness import AgentJob
from tests.standins.ado import AzureDevOps
from tests.standins.entra import AzureWorld, Entra, wire
from tests.standins.keyvault import KeyVault
from tests.standins.server import LocalCA, Server


@dataclass
class Vaulted:
    world: AzureWorld
    vault: KeyVault

    def job(self, job: AgentJob, **inputs: str) -> AgentJob:
        inputs.setdefault("keyVault", self.vault.base_url)
        self.world.endpoint(job.inputs(provider="keyvault", azureConnection=self.world.connection_id, **inputs))
        return job


@pytest.fixture
def kv(ado: AzureDevOps, ca: LocalCA) -> Iterator[Vaulted]:
    entra = Entra(ca_bundle=ca.bundle)
    with Server(entra, ca=ca) as entra_server:
        entra.base_url = entra_server.url
        world = wire(entra, ado, url=entra_server.url)
        vault = KeyVault(entra, world.tenant.tenant_id, authority=entra_server.url)
        vault.grant(world.app.client_id)
        with Server(vault, ca=ca) as vault_server:
            vault.base_url = vault_server.url
            yield Vaulted(world, vault)


def test_every_secret_with_exact_values(job: AgentJob, kv: Vaulted) -> None:
    values = {f"app-secret-{i:02d}": f"v{i};%AZP25]$(x)" for i in range(60)}
    for name, value in values.items():
        kv.vault.add(name, value)
    result = kv.job(job).run()
    assert not result.failed, result.text
    assert {k: v for k, v in result.variables.items()} == values
    assert result.secret_names == set(values)
