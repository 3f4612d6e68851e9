"""From the built .vsix: an agent whose platform has no bundled build runs the portable part of the bundle.

The extracted task's manifest is edited to list no build for this machine (what a musl, 32-bit ARM or
Python 3.16 agent finds), and a bare venv's Python (no packages) runs it as the agent would: AWS succeeds
from the platform-independent folders alone; Azure fails with one error naming cryptography, before any
request. The real manifest's ``portable`` folders hold no compiled file, and ``compiled`` names the
distributions only platform builds carry.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.harness import AgentJob
from tests.standins.ado import AzureDevOps
from tests.standins.entra import AzureWorld
from tests.test_package import ROLE, Agent, bare_python, vsix  # noqa: F401 - the built .vsix fixture

COMPILED_SUFFIXES = (".so", ".pyd", ".dylib")


def without_this_platform(agent: Agent) -> None:
    manifest = agent.manifest()
    targets = manifest["targets"]
    assert isinstance(targets, dict)
    for key in [k for k in targets if k.startswith(agent.target_key().split("-")[0] + "-")]:
        del targets[key]
    (agent.deps / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_the_manifest_names_the_portable_part_and_what_it_lacks(vsix: Path, tmp_path: Path) -> None:  # noqa: F811
    agent = Agent(vsix, tmp_path, bare_python("current", tmp_path))
    manifest = agent.manifest()
    portable = manifest["portable"]
    compiled = manifest["compiled"]
    assert isinstance(portable, dict) and isinstance(compiled, dict)
    assert sorted(portable) == sorted(manifest["pythons"])  # type: ignore[arg-type]
    for folders in portable.values():
        assert "any-py3" in folders
        for name in folders:
            assert not [p for p in (agent.deps / name).rglob("*") if p.suffix in COMPILED_SUFFIXES], name
    assert compiled["cryptography"] == "cryptography" and compiled["_cffi_backend"] == "cffi"
    assert "requests" not in compiled and "azure" not in compiled and "jwt" not in compiled


def test_aws_runs_and_azure_names_the_missing_piece_without_a_build(
    vsix: Path,  # noqa: F811
    tmp_path: Path,
    ado: AzureDevOps,
    job: AgentJob,
    moto_url: str,
    world: AzureWorld,
) -> None:
    agent = Agent(vsix, tmp_path, bare_python("current", tmp_path))
    without_this_platform(agent)
    conn = ado.add_connection("aws-prod")
    job.inputs(provider="aws", awsConnection=conn.id).endpoint(
        conn.id, url=moto_url, scheme="None", params={"roleArn": ROLE}
    )
    run = agent.run(job)
    assert not run.failed, run.stdout + run.stderr
    assert run.variables["AWS_ACCESS_KEY_ID"]
    assert all(not name.startswith("linux_") for name in agent.folders_used(run))

    for key in [k for k in job.env if k.startswith("INPUT_")]:
        del job.env[key]
    world.endpoint(job.inputs(provider="azure", azureConnection=world.connection_id))
    issued = len(ado.issued)
    run = agent.run(job)
    assert run.failed and len(run.errors) == 1 and run.variables == {}, run.stdout + run.stderr
    assert run.errors[0].startswith("This provider needs cryptography, which has compiled code"), run.errors
    assert len(ado.issued) == issued  # before any request
