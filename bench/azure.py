"""Azure path end to end through the launcher vs a bare azure-identity script doing the same exchange.

Both start a fresh process, request the job's OIDC token from the Azure DevOps stand-in and exchange it
at the Entra stand-in for an ARM token; the bare script is what a user would write with
``AzurePipelinesCredential``. Target (issue #15): the task within 1.2x of the bare script.
"""

from __future__ import annotations

import sys

from bench.suite import Case, interleaved, runs_default, timed_run
from demo.azure import start_entra
from demo.stage import Stage
from tests.harness import LAUNCHER
from tests.standins.entra import AzureWorld

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


def run() -> list[Case]:
    runs = runs_default(9)
    stage = Stage.start()
    try:
        world = start_entra(stage)
        job = world.endpoint(stage.job().inputs(provider="azure", azureConnection=world.connection_id))
        env = dict(job.env)
        bare_env = bare_script_env(env, stage, world)
        task = ["node", str(LAUNCHER)]
        bare = [sys.executable, "-c", BARE]
        times = interleaved(
            runs,
            task=lambda: timed_run(task, env, expect="AZURE_ACCESS_TOKEN")[0],
            bare=lambda: timed_run(bare, bare_env)[0],
        )
    finally:
        stage.stop()
    return [
        Case(
            "azure: whole task vs a bare AzurePipelinesCredential script",
            times["task"],
            "azure-identity script",
            times["bare"],
            target=1.2,
        )
    ]
