"""A simulated long job: Azure DevOps tokens live 10 s and cloud credentials 20 s, and later steps keep calling
for a minute (``OIDC_CREDENTIALS_LONGJOB_SECONDS``), across several expiries, through the SDKs' own refresh.

AWS: one long-lived boto3 client through the profile, and at the same time rounds of ten helper processes
started at once (a ``make -j``), all sharing one cache; the STS stand-in counts the exchanges. Google Cloud:
one long-lived google-auth credential from the credentials file, whose executable source runs the helper;
Azure DevOps counts the OIDC tokens it hands out. Azure: azure-identity's ``AzurePipelinesCredential`` from
the variables the task set; Entra counts the exchanges.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from oidc_credentials import refresh

from tests.harness import AgentJob, TaskRun
from tests.helperjob import ROLE, ROLE_SESSION, AwsHelperJob, leftovers, tree
from tests.standins.ado import AzureDevOps
from tests.standins.entra import AzureWorld
from tests.standins.server import LocalCA, Server
from tests.standins.sts import Sts, keys_of

SECONDS = float(os.environ.get("OIDC_CREDENTIALS_LONGJOB_SECONDS", "60"))
TOKEN_LIFE = 10
CREDENTIAL_LIFE = 20

BOTO3_CLIENT = """
import boto3, json, sys, time
url, seconds, expected = sys.argv[1], float(sys.argv[2]), sys.argv[3]
session = boto3.Session()
creds = session.get_credentials()
client = session.client("sts", endpoint_url=url, region_name="us-east-1")
calls, keys, errors = 0, [], []
end = time.time() + seconds
while time.time() < end:
    try:
        arn = client.get_caller_identity()["Arn"]
        if arn != expected:
            errors.append("wrong identity " + arn)
    except Exception as exc:
        errors.append(type(exc).__name__ + ": " + str(exc)[:300])
    calls += 1
    if creds._access_key not in keys:
        keys.append(creds._access_key)
    time.sleep(0.5)
print(json.dumps({"calls": calls, "keys": keys, "errors": errors, "method": creds.method}))
"""

AZURE_CLIENT = """
import json, os, sys, time
import requests
from azure.identity import AzurePipelinesCredential
authority, seconds, ca = sys.argv[1], float(sys.argv[2]), sys.argv[3]
credential = AzurePipelinesCredential(
    tenant_id=os.environ["AZURESUBSCRIPTION_TENANT_ID"],
    client_id=os.environ["AZURESUBSCRIPTION_CLIENT_ID"],
    service_connection_id=os.environ["AZURESUBSCRIPTION_SERVICE_CONNECTION_ID"],
    system_access_token=os.environ["SYSTEM_ACCESSTOKEN"],
    authority=authority,
    connection_verify=ca,
)
calls, tokens, errors = 0, [], []
end = time.time() + seconds
while time.time() < end:
    try:
        token = credential.get_token("https://management.azure.com/.default").token
        resp = requests.get(authority + "/subscriptions?api-version=2022-12-01",
                            headers={"Authorization": "Bearer " + token}, verify=ca, timeout=30)
        if resp.status_code != 200:
            errors.append("ARM " + str(resp.status_code) + " " + resp.text[:200])
        if token not in tokens:
            tokens.append(token)
    except Exception as exc:
        errors.append(type(exc).__name__ + ": " + str(exc)[:300])
    calls += 1
    time.sleep(0.5)
print(json.dumps({"calls": calls, "tokens": len(tokens), "errors": errors}))
"""


GCP_CLIENT = """
import json, os, sys, time
import google.auth, google.auth.transport.requests, requests
url, seconds = sys.argv[1], float(sys.argv[2])
creds, _project = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
request = google.auth.transport.requests.Request()
calls, tokens, errors = 0, set(), []
end = time.time() + seconds
while time.time() < end:
    try:
        if not creds.valid:
            creds.refresh(request)
        tokens.add(creds.token)
        r = requests.get(url, headers={"Authorization": "Bearer " + creds.token}, timeout=30)
        if r.status_code != 200:
            errors.append("storage " + str(r.status_code) + " " + r.text[:200])
    except Exception as exc:
        errors.append(type(exc).__name__ + ": " + str(exc)[:300])
    calls += 1
    time.sleep(0.5)
print(json.dumps({"calls": calls, "tokens": len(tokens), "errors": errors}))
"""


@pytest.fixture
def aws_job(ado: AzureDevOps, ca: LocalCA, job: AgentJob, tmp_path: Path) -> Iterator[AwsHelperJob]:
    ado.lifetime = TOKEN_LIFE
    app = Sts(lifetime=CREDENTIAL_LIFE)
    app.trust(ado.issuer, keys_of(ado))
    app.add_role(ROLE, issuer_url=ado.issuer, sub="sc://fabrikam/Payments/*")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    with Server(app) as server:
        yield AwsHelperJob(ado, app, server.url, job, ca.bundle, workspace, Path(job.env["AGENT_TEMPDIRECTORY"]))


def issued_to(ado: AzureDevOps, connection: str) -> int:
    """How many OIDC tokens Azure DevOps has handed out for the connection named ``connection``."""
    return sum(1 for t in ado.issued if jwt.decode(t, options={"verify_signature": False})["sub"].endswith(connection))


def another_job(ado: AzureDevOps, ca: LocalCA, folder: Path) -> AgentJob:
    """One more job step of the same stand-in, with its own Agent.TempDirectory under ``folder``."""
    from tests.conftest import make_job

    folder.mkdir()
    return make_job(ado, ca, folder)


def later(run: TaskRun, **extra: str) -> dict[str, str]:
    """A later step's environment: the plain variables of the run, and what its env: maps."""
    env = {"PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1"}
    env.update({k: v for k, v in run.variables.items() if k not in run.secret_names})
    env.update(extra)
    return env


def client(script: str, env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def report_of(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=SECONDS + 120)
    assert proc.returncode == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


def test_long_job_every_cloud_at_once(
    aws_job: AwsHelperJob, world: AzureWorld, ado: AzureDevOps, ca: LocalCA, tmp_path: Path
) -> None:
    """The three clouds in the same minute (so the suite waits for it once), each through its own SDK."""
    from tests.test_gcp import make_world

    gcp_worlds = make_world(ado, ca)
    gcp = next(gcp_worlds)
    try:
        gcp.google.token_lifetime = CREDENTIAL_LIFE
        world.entra.token_lifetime = CREDENTIAL_LIFE
        world.entra.arm_leeway = 5.0  # a token handed out in its last second is still accepted, as ARM's skew allows
        # the task, once per cloud
        aws_job.start()
        gcp_run = gcp.job(another_job(ado, ca, tmp_path / "gcp-temp")).run()
        assert not gcp_run.failed, gcp_run.text
        assert gcp_run.variables["GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES"] == "1"
        azure_job = another_job(ado, ca, tmp_path / "azure-temp")
        azure_run = world.endpoint(azure_job.inputs(provider="azure", azureConnection=world.connection_id)).run()
        assert not azure_run.failed, azure_run.text
        entra_before, gcp_before = len(world.entra.issued), issued_to(ado, "/gcp-prod")
        # later steps, all at once
        began = time.time()
        step = {"REQUESTS_CA_BUNDLE": ca.bundle, "SYSTEM_ACCESSTOKEN": ado.access_token, "HOME": str(tmp_path)}
        gcp_client = client(
            GCP_CLIENT, later(gcp_run, **step), tmp_path, gcp.url + "/storage/v1/b/artifacts/o", str(SECONDS)
        )
        azure_client = client(
            AZURE_CLIENT,
            later(azure_run, SYSTEM_OIDCREQUESTURI=ado.oidc_request_uri, **step),  # the agent exports it to every step
            tmp_path,
            world.url,
            str(SECONDS),
            ca.bundle,
        )
        aws_env = aws_job.step_env()
        aws_client = client(BOTO3_CLIENT, aws_env, aws_job.workspace, aws_job.sts_url, str(SECONDS), ROLE_SESSION)
        rounds = 0
        while aws_client.poll() is None:  # meanwhile, rounds of ten AWS helpers started at once (a make -j)
            helpers = [
                subprocess.Popen(
                    shlex.split(aws_job.credential_process),
                    env=aws_env,
                    cwd=aws_job.workspace,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(10)
            ]
            for proc in helpers:
                out, err = proc.communicate(timeout=120)
                assert proc.returncode == 0, err
                answer = json.loads(out)
                token, expiry, _arn = aws_job.sts.issued[answer["AccessKeyId"]]
                assert answer["SessionToken"] == token and expiry > time.time(), "handed out expired credentials"
            rounds += 1
            time.sleep(0.3)
        aws, google, azure = report_of(aws_client), report_of(gcp_client), report_of(azure_client)
        elapsed = time.time() - began
    finally:
        gcp_worlds.close()

    # AWS: every call succeeded across several expiries; one exchange per credential lifetime, never two at once
    assert aws["errors"] == [] and aws["method"] == "custom-process"
    assert aws["calls"] >= SECONDS / 4 and len(aws["keys"]) >= SECONDS // CREDENTIAL_LIFE, aws
    assert rounds >= 5
    times = aws_job.sts.exchange_times
    used = CREDENTIAL_LIFE - refresh.margin(CREDENTIAL_LIFE)
    assert SECONDS // CREDENTIAL_LIFE <= len(times) - 1 <= math.ceil(elapsed / used), times
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= used - 1.5, gaps
    assert issued_to(ado, "/aws-prod") == len(times)  # one fresh OIDC token per exchange, none wasted
    # Google Cloud: google-auth refreshed as often as it liked; the helper asked for one OIDC token per token life
    assert google["errors"] == [], google
    assert google["calls"] >= SECONDS / 4 and google["tokens"] >= SECONDS // CREDENTIAL_LIFE, google
    fresh = issued_to(ado, "/gcp-prod") - gcp_before
    token_used = TOKEN_LIFE - refresh.margin(TOKEN_LIFE)
    assert SECONDS // TOKEN_LIFE - 1 <= fresh <= math.ceil(elapsed / token_used) + 1, (fresh, elapsed)
    # Azure: AzurePipelinesCredential minted its own tokens, one Entra exchange per token lifetime
    assert azure["errors"] == [], azure
    exchanges = len(world.entra.issued) - entra_before
    assert azure["calls"] >= SECONDS / 4
    assert azure["tokens"] == exchanges >= SECONDS // CREDENTIAL_LIFE, azure
    assert exchanges <= math.ceil(elapsed / CREDENTIAL_LIFE) + 1, (exchanges, elapsed)
    # and after the job nothing is left
    assert aws_job.post().returncode == 0
    assert leftovers(aws_job.temp, aws_job.secrets()) == [] and tree(aws_job.workspace) == []
