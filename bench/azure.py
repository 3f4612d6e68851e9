"""Azure path end to end through the launcher vs a bare azure-identity script doing the same exchange.

Both start a fresh process, request the job's OIDC token from the Azure DevOps stand-in and exchange it
at the Entra stand-in for an ARM token; the bare script is what a user would write with
``AzurePipelinesCredential``. Target (issue #3): the task within 1.3x of the bare script.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from demo.azure import start_entra
from demo.stage import Stage
from tests.harness import LAUNCHER
from tests.standins.entra import AzureWorld

RUNS = int(os.environ.get("BENCH_RUNS", "9"))

BARE = """
import os
from azure.identity import AzurePipelinesCredential
credential = AzurePipelinesCredential(
    tenant_id=os.environ["B_TENANT"], client_id=os.environ["B_CLIENT"],
    service_connection_id=os.environ["B_CONNECTION"], system_access_token=os.environ["B_ACCESS_TOKEN"],
    authority=os.environ["B_AUTHORITY"],
)
token = credential.get_token("https://management.azure.com/.default")
assert token.token
"""


def bare_script_env(env: dict[str, str], stage: Stage, world: AzureWorld, **extra: str) -> dict[str, str]:
    """The job's environment plus what a bare AzurePipelinesCredential script is given (B_*)."""
    return dict(
        env,
        B_TENANT=world.tenant.tenant_id,
        B_CLIENT=world.app.client_id,
        B_CONNECTION=world.connection_id,
        B_ACCESS_TOKEN=stage.ado.access_token,
        B_AUTHORITY=world.url,
        **extra,
    )


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or "result=Failed" in proc.stdout:
        raise SystemExit(f"benchmark run failed: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    stage = Stage.start()
    try:
        world = start_entra(stage)
        job = world.endpoint(stage.job().inputs(provider="azure", azureConnection=world.connection_id))
        env = dict(job.env)
        bare_env = bare_script_env(env, stage, world)
        task = ["node", str(LAUNCHER)]
        bare = [sys.executable, "-c", BARE]
        timed(task, env), timed(bare, bare_env)  # warm the file cache
        ours, theirs = [], []
        for _ in range(RUNS):  # interleaved, so drift hits both alike
            ours.append(timed(task, env))
            theirs.append(timed(bare, bare_env))
    finally:
        stage.stop()
    a, b = statistics.median(ours) * 1000, statistics.median(theirs) * 1000
    print(f"azure: task through the launcher, start -> exit  median {a:6.0f} ms  ({RUNS} runs)")
    print(f"azure: bare AzurePipelinesCredential script      median {b:6.0f} ms")
    print(f"azure: ratio {a / b:.2f}x  (target <= 1.3x)")
    print(f"       machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
