"""Shared fixtures: a throwaway CA, the Azure DevOps stand-in, the real moto STS server, agent jobs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import AgentJob
from tests.standins.ado import AzureDevOps
from tests.standins.entra import AzureWorld, Entra, wire
from tests.standins.server import LocalCA, Server


def pytest_configure(config: pytest.Config) -> None:
    from tests.harness import SCHEMAS

    if not (SCHEMAS / "tasks.schema.json").is_file():
        raise pytest.UsageError(
            f"The JSON schemas are not at {SCHEMAS}: keep the shared/ folder beside the repository, or set "
            "OIDC_CREDENTIALS_SCHEMAS to the folder that holds tasks.schema.json and azure-pipelines.schema.json."
        )


@pytest.fixture(scope="session")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA(str(tmp_path_factory.mktemp("ca")))


@pytest.fixture
def ado(ca: LocalCA) -> Iterator[AzureDevOps]:
    app = AzureDevOps()
    with Server(app, ca=ca) as server:
        app.base_url = server.url
        yield app


@pytest.fixture
def world(ado: AzureDevOps, ca: LocalCA) -> Iterator[AzureWorld]:
    """Entra (and ARM) stand-in wired to trust the Azure DevOps stand-in, with a tenant, app and connection."""
    entra = Entra(ca_bundle=ca.bundle)
    with Server(entra, ca=ca) as server:
        entra.base_url = server.url
        yield wire(entra, ado, url=server.url)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def job(ado: AzureDevOps, ca: LocalCA, tmp_path: Path) -> AgentJob:
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
