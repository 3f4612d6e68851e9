"""Load: many task runs at once against stand-ins that throttle 30 % of their requests with 429 (half of them
with ``Retry-After``), and the request rate the task would put on a real Key Vault.

``make test`` runs 10 parallel runs; ``make soak`` (``OIDC_CREDENTIALS_SOAK=1``) the full 50.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import Vaulted, make_job
from tests.harness import AgentJob
from tests.standins.ado import AzureDevOps
from tests.standins.server import LocalCA

pytestmark = pytest.mark.soak
RUNS = 50 if os.environ.get("OIDC_CREDENTIALS_SOAK") else 10


def _report(text: str) -> None:
    sys.__stdout__.write(f"\n{text}\n")


def test_parallel_runs_all_succeed_under_throttling(ado: AzureDevOps, ca: LocalCA, kv: Vaulted, tmp_path: Path) -> None:
    for i in range(5):
        kv.vault.add(f"app-secret-{i}", f"value-{i}-0123456789")
    servers = [ado.server, kv.world.entra.server, kv.vault.server]  # type: ignore[attr-defined]
    # what the task asks for (the stand-ins' own key-set fetches between them are not throttled)
    paths = ["/oidctoken", "/oauth2/v2.0/token", "/secrets"]
    for n, (server, path) in enumerate(zip(servers, paths)):
        server.throttle(0.3, "1" if n % 2 == 0 else "", path)
    jobs: list[AgentJob] = []
    for i in range(RUNS):
        folder = tmp_path / f"run-{i}"
        folder.mkdir()
        jobs.append(kv.job(make_job(ado, ca, folder), timeoutSeconds="300"))
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=RUNS) as pool:
        runs = list(pool.map(lambda job: job.run(timeout=600), jobs))
    wall = time.monotonic() - began
    for server in servers:
        server.throttle(0.0)
    failed = [run.errors for run in runs if run.failed]
    assert failed == [], failed[0][0] if failed else ""
    assert all(run.variables[f"app-secret-{i}"] == f"value-{i}-0123456789" for run in runs for i in range(5))
    retries = sum(run.text.count("retrying in") for run in runs)
    injected = sum(s.faults.injected for s in servers)
    requests = sum(s.faults.requests for s in servers)
    assert injected > 0.1 * requests, "the stand-ins throttled"
    _report(
        f"load figures: {RUNS} parallel runs, all succeeded, wall {wall:.1f} s, {requests} requests, "
        f"{injected} answered 429, {retries} retries logged by the task (Entra's are azure-identity's own)"
    )


def test_key_vault_request_rate_of_20_jobs_of_200_secrets(ado: AzureDevOps, job: AgentJob, kv: Vaulted) -> None:
    """One job reading 200 secrets at a real vault's latency (20 ms a request): its request rate, times 20."""
    for i in range(200):
        kv.vault.add(f"s-{i:03d}", f"v{i}")
    kv.vault.latency = 0.02
    began = time.monotonic()
    run = kv.job(job).run(timeout=300)
    took = time.monotonic() - began
    assert not run.failed, run.text
    assert len(run.variables) == 200
    sent = [r for r in kv.vault.requests if r["path"].startswith("/secrets")]
    per_second = len(sent) / took
    assert kv.vault.max_values_in_flight <= 16
    _report(
        f"key vault figures: one job sent {len(sent)} requests in {took:.2f} s (launcher start to exit, at most "
        f"{kv.vault.max_values_in_flight} at once): {per_second:.0f}/s; 20 such jobs at once: "
        f"{20 * per_second * 10:.0f} requests per 10 s against a vault limit of 4,000"
    )
