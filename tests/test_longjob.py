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
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from oidc_credentials import refresh

from tests.harness import AgentJob
from tests.helperjob import ROLE, ROLE_SESSION, AwsHelperJob, tree
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


def test_aws_long_job_one_client_and_ten_helpers_at_once(aws_job: AwsHelperJob) -> None:
    aws_job.start()
    env = aws_job.step_env()
    began = time.time()
    client = subprocess.Popen(
        [sys.executable, "-c", BOTO3_CLIENT, aws_job.sts_url, str(SECONDS), ROLE_SESSION],
        env=env,
        cwd=aws_job.workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    rounds = 0
    command = aws_job.credential_process
    import shlex

    while client.poll() is None:
        helpers = [
            subprocess.Popen(
                shlex.split(command),
                env=env,
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
    out, err = client.communicate(timeout=120)
    elapsed = time.time() - began
    assert client.returncode == 0, err
    report = json.loads(out)
    assert report["errors"] == [] and report["method"] == "custom-process"
    assert report["calls"] >= SECONDS / 4, report
    assert len(report["keys"]) >= SECONDS // CREDENTIAL_LIFE, report  # the client went across several expiries
    assert rounds >= 5
    # One exchange per credential lifetime: each set is used until its refresh margin, never two at once.
    times = aws_job.sts.exchange_times
    used = CREDENTIAL_LIFE - refresh.margin(CREDENTIAL_LIFE)
    assert SECONDS // CREDENTIAL_LIFE <= len(times) - 1 <= math.ceil(elapsed / used), times
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= used - 1.5, gaps
    assert len(aws_job.ado.issued) == len(times)  # one fresh OIDC token per exchange, none wasted
    # and after the job nothing is left
    assert aws_job.post().returncode == 0
    assert tree(aws_job.temp) == [] and tree(aws_job.workspace) == []


def test_azure_long_job_azure_pipelines_credential(
    job: AgentJob, world: AzureWorld, ado: AzureDevOps, ca: LocalCA, tmp_path: Path
) -> None:
    ado.lifetime = TOKEN_LIFE
    world.entra.token_lifetime = CREDENTIAL_LIFE
    world.entra.arm_leeway = 5.0  # a token handed out in its last second is still accepted, as ARM's skew allows
    world.endpoint(job.inputs(provider="azure", azureConnection=world.connection_id))
    run = job.run()
    assert not run.failed, run.text
    before = len(world.entra.issued)
    env = {
        "PATH": os.environ["PATH"],
        "REQUESTS_CA_BUNDLE": ca.bundle,
        "SYSTEM_OIDCREQUESTURI": ado.oidc_request_uri,  # the agent exports it to every step
        "SYSTEM_ACCESSTOKEN": ado.access_token,  # env: mapping
        **{k: v for k, v in run.variables.items() if k not in run.secret_names},
    }
    began = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", AZURE_CLIENT, world.url, str(SECONDS), ca.bundle],
        env=env,
        capture_output=True,
        text=True,
        timeout=SECONDS + 120,
        check=False,
        cwd=tmp_path,
    )
    elapsed = time.time() - began
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["errors"] == [], report
    assert report["calls"] >= SECONDS / 4
    exchanges = len(world.entra.issued) - before
    assert report["tokens"] == exchanges >= SECONDS // CREDENTIAL_LIFE, report
    assert exchanges <= math.ceil(elapsed / CREDENTIAL_LIFE) + 1, (exchanges, elapsed)


def test_gcp_long_job_google_auth_through_the_credentials_file(
    ado: AzureDevOps, ca: LocalCA, job: AgentJob, tmp_path: Path
) -> None:
    from tests.test_gcp import make_world

    ado.lifetime = TOKEN_LIFE
    for world in make_world(ado, ca):
        world.google.token_lifetime = CREDENTIAL_LIFE
        run = world.job(job).run()
        assert not run.failed, run.text
        assert run.variables["GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES"] == "1"
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "REQUESTS_CA_BUNDLE": ca.bundle,
            "SYSTEM_ACCESSTOKEN": ado.access_token,  # env: mapping
            **{k: v for k, v in run.variables.items() if k not in run.secret_names},
        }
        before, began = len(ado.issued), time.time()
        proc = subprocess.run(
            [sys.executable, "-c", GCP_CLIENT, world.url + "/storage/v1/b/artifacts/o", str(SECONDS)],
            env=env,
            capture_output=True,
            text=True,
            timeout=SECONDS + 120,
            check=False,
            cwd=tmp_path,
        )
        elapsed = time.time() - began
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report["errors"] == [], report
        assert report["calls"] >= SECONDS / 4 and report["tokens"] >= SECONDS // CREDENTIAL_LIFE, report
        # the helper asked Azure DevOps for a fresh OIDC token once per token lifetime, not per google-auth refresh
        fresh = len(ado.issued) - before
        used = TOKEN_LIFE - refresh.margin(TOKEN_LIFE)
        assert SECONDS // TOKEN_LIFE - 1 <= fresh <= math.ceil(elapsed / used) + 1, (fresh, elapsed)
