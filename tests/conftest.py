"""Shared fixtures: a throwaway CA, the Azure DevOps stand-in, the real moto STS server, agent jobs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness import SCHEMAS, AgentJob
from tests.openbao import openbao  # noqa: F401 - the session's real OpenBao server, for every test file
from tests.standins.ado import AzureDevOps
from tests.standins.entra import AzureWorld, Entra, wire
from tests.standins.keyvault import KeyVault
from tests.standins.server import LocalCA, Server


def _no_schemas() -> str:
    """Why the schema tests skip ("" when the schemas are there)."""
    if (SCHEMAS / "tasks.schema.json").is_file() and (SCHEMAS / "azure-pipelines.schema.json").is_file():
        return ""
    return (
        f"the JSON schemas are not at {SCHEMAS} (a clone without shared/ beside it): set OIDC_CREDENTIALS_SCHEMAS "
        "to the folder holding tasks.schema.json and azure-pipelines.schema.json to run this test"
    )


def pytest_report_header(config: pytest.Config) -> str:
    why = _no_schemas()
    return f"schemas: {SCHEMAS}" + (f" MISSING: tests that validate against them skip ({why})" if why else "")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A test that failed only because it read a missing schema file is reported as skipped, with the reason."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    exc = call.excinfo.value if call.excinfo is not None else None
    if isinstance(exc, FileNotFoundError) and exc.filename and Path(exc.filename).parent == SCHEMAS and _no_schemas():
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {_no_schemas()}")


@pytest.fixture(scope="session")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA(str(tmp_path_factory.mktemp("ca")))


@pytest.fixture
def ado(ca: LocalCA) -> Iterator[AzureDevOps]:
    app = AzureDevOps()
    with Server(app, ca=ca) as server:
        app.base_url = server.url
        app.server = server  # type: ignore[attr-defined]  # its fault knobs, for tests that inject faults
        yield app


@pytest.fixture
def world(ado: AzureDevOps, ca: LocalCA) -> Iterator[AzureWorld]:
    """Entra (and ARM) stand-in wired to trust the Azure DevOps stand-in, with a tenant, app and connection."""
    entra = Entra(ca_bundle=ca.bundle)
    with Server(entra, ca=ca) as server:
        entra.base_url = server.url
        entra.server = server  # type: ignore[attr-defined]
        yield wire(entra, ado, url=server.url)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def make_job(ado: AzureDevOps, ca: LocalCA, tmp_path: Path) -> AgentJob:
    """A job step of the given Azure DevOps stand-in, trusting the local CA, with its own Agent.TempDirectory."""
    temp = tmp_path / "agent-temp"
    temp.mkdir()
    agent_job = AgentJob(
        collection_uri=ado.collection_uri,
        oidc_request_uri=ado.oidc_request_uri,
        access_token=ado.access_token,
        project_id=ado.project_id,
        temp=temp,
    )
    agent_job.env["REQUESTS_CA_BUNDLE"] = ca.bundle
    return agent_job


@pytest.fixture
def job(ado: AzureDevOps, ca: LocalCA, tmp_path: Path) -> AgentJob:
    return make_job(ado, ca, tmp_path)


@dataclass
class Vaulted:
    """A Key Vault stand-in granted to the Azure world's app, and the jobs that read it."""

    world: AzureWorld
    vault: KeyVault
    port: int = 0

    def job(self, job: AgentJob, **inputs: str) -> AgentJob:
        inputs.setdefault("keyVault", self.vault.base_url)
        self.world.endpoint(job.inputs(provider="keyvault", azureConnection=self.world.connection_id, **inputs))
        return job


@pytest.fixture
def kv(world: AzureWorld, ca: LocalCA) -> Iterator[Vaulted]:
    vault = KeyVault(world.entra, world.tenant.tenant_id, authority=world.url)
    vault.grant(world.app.client_id)
    with Server(vault, ca=ca) as vault_server:
        vault.base_url = vault_server.url
        vault.server = vault_server  # type: ignore[attr-defined]
        yield Vaulted(world, vault, vault_server.port)
