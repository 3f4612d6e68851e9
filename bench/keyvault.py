"""Key Vault: 200 secrets behind 20 ms of latency per request, the task vs a plain sequential SecretClient loop.

Both are fresh processes against the same stand-ins: the task through the launcher (Entra token, listing
with every nextLink, values fetched a bounded number at a time), and the script a user would write:
``AzurePipelinesCredential`` + ``SecretClient``, ``list_properties_of_secrets`` then ``get_secret`` one by
one. Target (issue #3): the task at most 0.15x the loop's wall time.
"""

from __future__ import annotations

import os
import statistics
import sys

from bench.azure import bare_script_env, timed
from demo.azure import start_entra
from demo.stage import Stage
from tests.harness import LAUNCHER
from tests.standins.keyvault import KeyVault
from tests.standins.server import Server

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SECRETS = 200
LATENCY = 0.020

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


def main() -> None:
    stage = Stage.start()
    try:
        world = start_entra(stage)
        vault = KeyVault(world.entra, world.tenant.tenant_id, authority=world.url)
        vault.grant(world.app.client_id)
        for i in range(SECRETS):
            vault.add(f"bench-secret-{i:03d}", f"value-{i:03d}-" + "x" * 24)
        server = Server(vault, ca=stage.ca)
        stage.servers.append(server)
        vault.base_url = server.url
        vault.latency = LATENCY
        job = world.endpoint(
            stage.job().inputs(provider="keyvault", azureConnection=world.connection_id, keyVault=server.url)
        )
        env = dict(job.env)
        loop_env = bare_script_env(env, stage, world, B_VAULT=server.url, B_COUNT=str(SECRETS))
        task = ["node", str(LAUNCHER)]
        loop = [sys.executable, "-c", LOOP]
        timed(task, env)  # warm the file cache
        ours, theirs, pooled = [], [], []
        for _ in range(RUNS):
            ours.append(timed(task, env))
            theirs.append(timed(loop, loop_env))
            pooled.append(timed([sys.executable, "-c", POOLED], loop_env))
    finally:
        stage.stop()
    a, b = statistics.median(ours) * 1000, statistics.median(theirs) * 1000
    print(f"keyvault: {SECRETS} secrets, {LATENCY * 1000:.0f} ms per Key Vault request")
    print(f"keyvault: task through the launcher (16 at a time)  median {a:6.0f} ms  ({RUNS} runs)")
    print(f"keyvault: sequential SecretClient loop              median {b:6.0f} ms")
    c = statistics.median(pooled) * 1000
    print(f"keyvault: SecretClient, 16 threads (SDK alternative) median {c:6.0f} ms")
    print(f"keyvault: ratio {a / b:.3f}x  (target <= 0.15x)")
    print(f"          machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
