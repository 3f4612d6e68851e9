"""First-run cost of the packaged task on a fresh agent, against the same run with installed dependencies.

A fresh agent: the .vsix's task folder unzipped into an empty folder (as the agent does after
downloading it; timed on its own), a bare venv Python with no packages on PATH, fresh HOME and temp
dir, no ``__pycache__`` anywhere, and PYTHONDONTWRITEBYTECODE unset as on a real agent, so the first
run compiles what it imports. Baseline: the same extracted task's second run on that agent (bytecode
now cached). Both run ``node launcher.js`` end to end against the local stand-ins, for the AWS flow
(requests + PyJWT) and the Azure flow (azure-identity, msal, cryptography). "Extra" is the first run
minus the second; target (issue #4): at most 1.5 s. The same task from the repository with installed
dependencies is recorded beside them (``detail.installed_deps_ms``). Medians of BENCH_RUNS runs
(default 5), each on a new extraction.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.suite import Case, runs_default, timed_run
from demo.azure import start_entra
from demo.stage import Stage
from tests.harness import LAUNCHER, AgentJob
from tests.test_package import extract_task, packaged_vsix

ROLE = "arn:aws:iam::123456789012:role/ado-deploy"
TARGET_MS = 1500.0


def timed(argv: list[str], env: dict[str, str]) -> float:
    return timed_run(argv, env, expect="task.setvariable")[0]


def fresh_agent_env(job_env: dict[str, str], python: Path, root: Path) -> dict[str, str]:
    env = dict(job_env)
    env.pop("OIDC_CREDENTIALS_PYTHON", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for name in ("home", "tmp"):
        (root / name).mkdir()
    env.update(
        {
            "PATH": f"{python.parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
            "HOME": str(root / "home"),
            "TMPDIR": str(root / "tmp"),
            "TEMP": str(root / "tmp"),
            "TMP": str(root / "tmp"),
        }
    )
    return env


def bench_flow(name: str, make_job: Callable[[], AgentJob], vsix: Path, python: Path, work: Path, runs: int) -> Case:
    """The fresh agent's first run against its own second run (and, for the record, installed dependencies)."""
    node = shutil.which("node") or "node"
    baseline_env = dict(make_job().env)
    baseline_env.pop("PYTHONDONTWRITEBYTECODE", None)
    timed([node, str(LAUNCHER)], baseline_env)  # compile and cache once: an agent with pip-installed deps
    first: list[float] = []
    second: list[float] = []
    installed: list[float] = []
    unzip: list[float] = []
    for i in range(runs):  # interleaved: each extraction's first and second run, then the installed run
        root = work / f"{name}-{i}"
        start = time.perf_counter()
        task_dir = extract_task(vsix, root / "_tasks")
        unzip.append(time.perf_counter() - start)
        target = task_dir / "task" / "launcher.js"
        env = fresh_agent_env(make_job().env, python, root)
        first.append(timed([node, str(target)], env))
        second.append(timed([node, str(target)], env))
        installed.append(timed([node, str(LAUNCHER)], baseline_env))
        shutil.rmtree(root)
    return Case(
        f"first run {name}: extracted .vsix on a fresh agent, first run vs its second run",
        first,
        "second run",
        second,
        target=TARGET_MS,
        target_on="extra",
        detail={
            "installed_deps_ms": round(statistics.median(installed) * 1000, 1),
            "unzip_ms": round(statistics.median(unzip) * 1000, 1),
            "vsix_mb": round(vsix.stat().st_size / 1e6, 2),
        },
    )


def run() -> list[Case]:
    runs = runs_default(5)
    vsix = packaged_vsix()
    work = Path(tempfile.mkdtemp(prefix="oidc-firstrun-"))
    stage = Stage.start()
    try:
        venv = work / "bare-venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        python = venv / "bin" / "python3"
        moto = stage.start_moto()
        aws_conn = stage.ado.add_connection("aws-firstrun")
        world = start_entra(stage)

        def aws_job() -> AgentJob:
            job = stage.job().inputs(provider="aws", awsConnection=aws_conn.id, awsRegion="eu-west-1")
            return job.endpoint(aws_conn.id, url=moto, scheme="None", params={"roleArn": ROLE})

        def azure_job() -> AgentJob:
            job: AgentJob = world.endpoint(stage.job().inputs(provider="azure", azureConnection=world.connection_id))
            return job

        cases = [
            bench_flow("aws", aws_job, vsix, python, work, runs),
            bench_flow("azure", azure_job, vsix, python, work, runs),
        ]
    finally:
        stage.stop()
        shutil.rmtree(work, ignore_errors=True)
    return cases
