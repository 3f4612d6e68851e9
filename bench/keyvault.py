"""Key Vault: 200 secrets, 20 ms injected per vault request, at most 7 secrets per page (29 pages).

Subject: the whole task through the launcher (OIDC token, Entra token, listing every nextLink, values
fetched a bounded number at a time while the listing pages on). The vault is served with HTTP/1.1
keep-alive (bench/keepalive.py), as Key Vault is, so no client pays a TLS handshake per request.
Baselines, interleaved run by run:

- the script a user would write: ``AzurePipelinesCredential`` + ``SecretClient``,
  ``list_properties_of_secrets`` then ``get_secret`` one by one (target: <= 0.12x);
- the floor: the task's own start-up (launcher start -> first request, measured in the same run) plus
  the page round trips, which must follow one another (each nextLink comes from the page before), plus
  one value round trip after the last page: start-up + (pages + 1) x 20 ms (target: <= 1.3x).

The same SDK with the task's concurrency (16 threads) is reported beside them, without a target.
"""

from __future__ import annotations

import math
import statistics
import sys

from bench.azure import bare_script_env
from bench.keepalive import KeepAliveServer
from bench.startup import first_request
from bench.suite import Case, interleaved, runs_default, timed_run
from demo.azure import start_entra
from demo.stage import Stage
from tests.harness import LAUNCHER, AgentJob
from tests.standins.entra import AzureWorld
from tests.standins.keyvault import KeyVault

SECRETS = 200
LATENCY = 0.020
PAGE_SIZE = 7

LOOP = """
import os
from azure.identity import AzurePipelinesCredential
from azure.keyvault.secrets import SecretClient
credential = AzurePipelinesCredential(
    tenant_id=os.environ["B_TENANT"], client_id=os.environ["B_CLIENT"],
    service_connection_id=os.environ["B_CONNECTION"], system_access_token=os.environ["B_ACCESS_TOKEN"],
    authority=os.environ["B_AUTHORITY"],
)
client = SecretClient(os.environ["B_VAULT"], credential, verify_challenge_resource=False)
values = {}
for item in client.list_properties_of_secrets():
    if item.enabled:
        values[item.name] = client.get_secret(item.name).value
assert len(values) == int(os.environ["B_COUNT"]), len(values)
"""

# The same SDK with the task's concurrency: what the task would cost had it used azure-keyvault-secrets.
POOLED = LOOP.replace(
    """values = {}
for item in client.list_properties_of_secrets():
    if item.enabled:
        values[item.name] = client.get_secret(item.name).value
""",
    """from concurrent.futures import ThreadPoolExecutor
from azure.core.pipeline.transport import RequestsTransport
import requests
session = requests.Session()
session.mount("https://", requests.adapters.HTTPAdapter(pool_maxsize=16))
client = SecretClient(os.environ["B_VAULT"], credential, verify_challenge_resource=False,
                      transport=RequestsTransport(session=session, session_owner=False))
with ThreadPoolExecutor(16) as pool:
    names = [item.name for item in client.list_properties_of_secrets() if item.enabled]
    values = dict(zip(names, pool.map(lambda n: client.get_secret(n).value, names)))
""",
)


def start_vault(stage: Stage, world: AzureWorld, secrets: int, *, latency: float = LATENCY) -> tuple[KeyVault, str]:
    vault = KeyVault(world.entra, world.tenant.tenant_id, authority=world.url)
    vault.grant(world.app.client_id)
    for i in range(secrets):
        vault.add(f"bench-secret-{i:04d}", f"value-{i:04d}-" + "x" * 24)
    server = KeepAliveServer(vault, ca=stage.ca)  # Key Vault keeps connections open; werkzeug's server does not
    stage.servers.append(server)  # type: ignore[arg-type]
    vault.base_url = server.url
    vault.latency = latency
    vault.page_size = PAGE_SIZE
    return vault, server.url


def vault_job(stage: Stage, world: AzureWorld, url: str) -> AgentJob:
    job: AgentJob = world.endpoint(
        stage.job().inputs(provider="keyvault", azureConnection=world.connection_id, keyVault=url)
    )
    return job


def run() -> list[Case]:
    runs = runs_default(5)
    pages = math.ceil(SECRETS / PAGE_SIZE)
    stage = Stage.start()
    try:
        world = start_entra(stage)
        vault, url = start_vault(stage, world, SECRETS)
        env = dict(vault_job(stage, world, url).env)
        loop_env = bare_script_env(env, stage, world, B_VAULT=url, B_COUNT=str(SECRETS))
        task = ["node", str(LAUNCHER)]
        expect = f"bench-secret-{SECRETS - 1:04d}"
        times = interleaved(
            runs,
            task=lambda: timed_run(task, env, expect=expect)[0],
            startup=lambda: first_request(task, env),
            loop=lambda: timed_run([sys.executable, "-c", LOOP], loop_env)[0],
            pooled=lambda: timed_run([sys.executable, "-c", POOLED], loop_env)[0],
        )
        listed = sum(1 for r in vault.requests if r["path"].rstrip("/") == "/secrets")
    finally:
        stage.stop()
    startup = statistics.median(times["startup"])
    floor = startup + (pages + 1) * LATENCY
    shape = f"{SECRETS} secrets, {LATENCY * 1000:.0f} ms per request, {PAGE_SIZE} per page ({pages} pages)"
    return [
        Case(
            f"keyvault: whole task vs sequential SecretClient loop ({shape})",
            times["task"],
            "SecretClient loop",
            times["loop"],
            target=0.12,
            detail={"list_requests_seen": listed},
        ),
        Case(
            f"keyvault: whole task vs the floor (start-up + {pages + 1} x {LATENCY * 1000:.0f} ms)",
            times["task"],
            "floor",
            derived_baseline=floor * 1000,
            target=1.3,
            note=f"floor = median start-up {startup * 1000:.0f} ms + ({pages} pages + 1 value) x {LATENCY * 1000:.0f} ms",
            detail={"startup_ms": [round(t * 1000, 1) for t in times["startup"]]},
        ),
        Case(
            "keyvault: SecretClient with 16 threads (the SDK alternative; no target)",
            times["pooled"],
            "whole task",
            times["task"],
            target_on="none",
        ),
    ]
