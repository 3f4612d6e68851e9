"""Start-up: launcher start to the task's first network request, per provider, with an import breakdown.

Every loopback URL in the job's environment is pointed at one listening socket; the time from starting
``node launcher.js`` to that socket accepting the first connection is the start-up (node, the interpreter,
our modules, the HTTP stack: everything before the first byte goes out). The process is then stopped.
The baseline beside it is a bare ``python -c pass``. A second, untimed run under ``python -X importtime``
gives the breakdown by top-level package recorded in results.json (``detail.importtime_ms``). Target
(issue #15): <= 150 ms for AWS, Google Cloud and Vault; Azure and Key Vault are reported without a target.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.suite import Case, RunFailed, interleaved, runs_default
from demo.stage import Stage
from tests.harness import LAUNCHER, ROOT, AgentJob

TARGET_MS = 150.0
LOOPBACK = re.compile(r"127\.0\.0\.1:\d+")
ENTRY = ROOT / "task" / "entry.py"
PROVIDERS_DIR = ROOT / "task" / "oidc_credentials" / "providers"


def _pointed_at(env: dict[str, str], port: int) -> dict[str, str]:
    return {k: LOOPBACK.sub(f"127.0.0.1:{port}", v) for k, v in env.items()}


def first_request(argv: list[str], env: dict[str, str], *, stderr_to: Path | None = None, timeout: float = 30) -> float:
    """Seconds from starting ``argv`` to its first TCP connection to any loopback URL of ``env``."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(timeout)
        port = listener.getsockname()[1]
        err = open(stderr_to, "wb") if stderr_to else subprocess.DEVNULL  # noqa: SIM115
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            env=_pointed_at(env, port),
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
        try:
            conn, _ = listener.accept()
            elapsed = time.perf_counter() - start
            conn.close()
        except socket.timeout:
            raise RunFailed(f"{' '.join(argv[:2])}… made no network request within {timeout:.0f} s") from None
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if stderr_to:
                err.close()  # type: ignore[union-attr]
    return elapsed


def importtime(env: dict[str, str]) -> dict[str, Any]:
    """Cumulative import time (ms) on the way to the first request: per top-level package, largest first,
    and the modules one level below each that took over 2 ms."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "importtime.txt"
        first_request([sys.executable, "-X", "importtime", str(ENTRY)], env, stderr_to=path)
        text = path.read_text(errors="replace")
    totals: dict[str, float] = defaultdict(float)
    nested: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)", line)
        if not m:
            continue
        depth = (len(m.group(3)) - 1) // 2
        ms = int(m.group(2)) / 1000
        if depth == 0:
            totals[m.group(4).split(".")[0]] += ms
        elif depth == 1 and ms > 2:
            nested[m.group(4)] = nested.get(m.group(4), 0) + ms
    ordered = dict(sorted(totals.items(), key=lambda kv: -kv[1]))
    top: dict[str, Any] = {k: round(v, 1) for k, v in list(ordered.items())[:12]}
    top["(all)"] = round(sum(ordered.values()), 1)
    top["(one level down, > 2 ms)"] = {k: round(v, 1) for k, v in sorted(nested.items(), key=lambda kv: -kv[1])}
    return top


def provider_jobs(stage: Stage) -> dict[str, Callable[[], AgentJob] | str]:
    """Per provider, a builder of its job, or why it cannot run yet."""
    from bench.aws import aws_job
    from bench.keyvault import vault_job
    from demo.azure import start_entra

    world = start_entra(stage)
    jobs: dict[str, Callable[[], AgentJob] | str] = {
        "aws": lambda: aws_job(stage, "https://127.0.0.1:9"),
        "azure": lambda: world.endpoint(stage.job().inputs(provider="azure", azureConnection=world.connection_id)),
        "keyvault": lambda: vault_job(stage, world, "https://127.0.0.1:9"),
    }
    for name, title in (("gcp", "Google Cloud"), ("vault", "HashiCorp Vault")):
        builder = _optional_job(stage, name)
        jobs[name] = builder or f"not yet runnable: there is no {title} provider (providers/{name}.py) on this branch"
    return jobs


GCP_PROVIDER = "projects/123456789012/locations/global/workloadIdentityPools/ado-pool/providers/ado-provider"
GCP_SA = "deployer@payments-prod.iam.gserviceaccount.com"
UNREACHED = "https://127.0.0.1:9"  # every loopback URL is pointed at the listening socket anyway


def _optional_job(stage: Stage, name: str) -> Callable[[], AgentJob] | None:
    """Google Cloud and Vault jobs, once their providers exist (inputs as their own tests give them)."""
    if not (PROVIDERS_DIR / f"{name}.py").exists():
        return None
    conn = stage.ado.add_connection(f"{name}-startup")

    def build() -> AgentJob:
        job = stage.job()
        if name == "gcp":
            job.inputs(provider="gcp", gcpConnection=conn.id, gcpIamCredentialsUrl=UNREACHED)
            params = {"workloadIdentityProvider": GCP_PROVIDER, "serviceAccount": GCP_SA}
            return job.endpoint(conn.id, url=UNREACHED, scheme="None", params=params)
        job.inputs(provider="vault", vaultConnection=conn.id, vaultSecrets="secret/ado/app db_password | DB_PASSWORD")
        return job.endpoint(conn.id, url=UNREACHED, scheme="None", params={"role": "ado-pipeline", "mountPath": "jwt"})

    return build


TARGETS = {"aws": TARGET_MS, "gcp": TARGET_MS, "vault": TARGET_MS}


def measure_startup(job: AgentJob, runs: int) -> tuple[list[float], list[float]]:
    """(launcher start -> first request, bare ``python -c pass``), interleaved."""
    env = dict(job.env)
    launcher = ["node", str(LAUNCHER)]
    bare = [sys.executable, "-c", "pass"]

    def bare_run() -> float:
        start = time.perf_counter()
        subprocess.run(bare, check=True)
        return time.perf_counter() - start

    times = interleaved(runs, task=lambda: first_request(launcher, env), bare=bare_run)
    return times["task"], times["bare"]


def run() -> list[Case]:
    runs = runs_default(9)
    stage = Stage.start()
    cases = []
    try:
        for name, job in provider_jobs(stage).items():
            title = f"start-up {name}: launcher start -> first network request"
            if isinstance(job, str):
                cases.append(Case(title, error=job, target=TARGETS.get(name), target_on="median"))
                continue
            built = job()
            task, bare = measure_startup(built, runs)
            cases.append(
                Case(
                    title,
                    task,
                    "python -c pass",
                    bare,
                    target=TARGETS.get(name),
                    target_on="median" if name in TARGETS else "none",
                    detail={"importtime_ms": importtime(dict(built.env))},
                )
            )
    finally:
        stage.stop()
    return cases
