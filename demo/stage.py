"""The demo's world: a throwaway CA, the Azure DevOps stand-in and the real moto server on 127.0.0.1."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness import AgentJob, TaskRun
from tests.standins.ado import AzureDevOps
from tests.standins.server import LocalCA, Server


@dataclass
class Stage:
    ca: LocalCA
    ado: AzureDevOps
    workdir: Path
    servers: list[Server] = field(default_factory=list)
    moto_url: str = ""
    _moto: object | None = None

    @classmethod
    def start(cls) -> Stage:
        workdir = Path(tempfile.mkdtemp(prefix="oidc-demo-"))
        try:
            ca = LocalCA(str(workdir / "ca"))
            ado = AzureDevOps()
            stage = cls(ca=ca, ado=ado, workdir=workdir)
            server = Server(ado, ca=ca)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        ado.base_url = server.url
        stage.servers.append(server)
        return stage

    def start_moto(self) -> str:
        if not self.moto_url:
            from moto.server import ThreadedMotoServer

            moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            moto.start()
            host, port = moto.get_host_and_port()
            self._moto = moto
            self.moto_url = f"http://{host}:{port}"
        return self.moto_url

    def job(self) -> AgentJob:
        temp = Path(tempfile.mkdtemp(prefix="agent-temp-", dir=self.workdir))
        job = AgentJob(
            collection_uri=self.ado.collection_uri,
            oidc_request_uri=self.ado.oidc_request_uri,
            access_token=self.ado.access_token,
            project_id=self.ado.project_id,
            temp=temp,
        )
        job.env["REQUESTS_CA_BUNDLE"] = self.ca.bundle
        return job

    def stop(self) -> None:
        """Stop every server and remove the work folder (the CA's key and certificates, the agents' temp)."""
        try:
            for server in self.servers:
                server.stop()
            if self._moto is not None:
                self._moto.stop()  # type: ignore[attr-defined]
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


def show(title: str, run: TaskRun) -> None:
    """Print what the pipeline log would show: commands hidden, registered secrets masked."""
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)))
    for line in run.log:
        print("  | " + line)
    for name, value in run.variables.items():
        shown = "***" if name in run.secret_names else value
        print(f"  = {name}{' (secret)' if name in run.secret_names else ''}: {shown}")
    print(f"  result: {run.result}")
