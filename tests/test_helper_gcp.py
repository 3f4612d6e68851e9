"""The Google Cloud helper: google-auth's executable source runs it for the Azure DevOps OIDC token.

google-auth is the real consumer here (``pluggable.Credentials.retrieve_subject_token`` runs the command
exactly as it does before every STS exchange). The task side (the credentials file pointing at it) comes
with the Google Cloud provider; this sets the helper's folder up the way the task does.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from oidc_credentials import helper_setup, refresh
from oidc_credentials.agent import AgentEnv
from oidc_credentials.files import write_private
from oidc_credentials.modes import helper

from tests.harness import AgentJob
from tests.standins.ado import AzureDevOps

pluggable = pytest.importorskip("google.auth.pluggable", reason="google-auth is not installed")
exceptions = pytest.importorskip("google.auth.exceptions")

AUDIENCE = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/ado-pool/providers/ado-prov"


def helper_folder(ado: AzureDevOps, job: AgentJob) -> tuple[helper_setup.RefreshSetup, dict[str, Any]]:
    """What the task writes for the gcp helper, and the external_account configuration that runs it."""
    conn = ado.add_connection("gcp-prod")
    agent = AgentEnv(job.env)
    setup = helper_setup.read_setup(agent)
    write_private(setup.path(refresh.HELPER_CONFIG), helper_setup.helper_config("gcp", agent, conn.id, {}))
    info = {
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": "https://sts.googleapis.com/v1/token",
        "credential_source": helper_setup.executable_source(setup),
    }
    return setup, info


@pytest.fixture
def step(monkeypatch: pytest.MonkeyPatch, ado: AzureDevOps, job: AgentJob) -> None:
    """A later step's environment: executables allowed, the access token mapped, the stand-ins' CA."""
    monkeypatch.setenv("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1")
    monkeypatch.setenv("SYSTEM_ACCESSTOKEN", ado.access_token)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", job.env["REQUESTS_CA_BUNDLE"])


def subject_claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def test_google_auth_gets_a_fresh_oidc_token_and_reuses_it(ado: AzureDevOps, job: AgentJob, step: None) -> None:
    setup, info = helper_folder(ado, job)
    creds = pluggable.Credentials.from_info(info)
    token = creds.retrieve_subject_token(None)
    assert subject_claims(token)["sub"] == "sc://fabrikam/Payments/gcp-prod" and token == ado.issued[-1]
    output = Path(setup.path(refresh.GCP_OUTPUT))
    answer = json.loads(output.read_text())
    assert answer["success"] is True and answer["id_token"] == token
    assert answer["expiration_time"] < subject_claims(token)["exp"]  # never handed out in its last seconds
    assert oct(output.stat().st_mode & 0o777) == "0o600"
    # the next process reuses it (google-auth's output file, or the helper's cache): no new token
    assert pluggable.Credentials.from_info(info).retrieve_subject_token(None) == token
    output.unlink()
    assert pluggable.Credentials.from_info(info).retrieve_subject_token(None) == token
    assert len(ado.issued) == 1


def test_tokens_are_renewed_near_expiry(ado: AzureDevOps, job: AgentJob, step: None) -> None:
    ado.lifetime = 10
    _setup, info = helper_folder(ado, job)
    first = pluggable.Credentials.from_info(info).retrieve_subject_token(None)
    time.sleep(9)
    second = pluggable.Credentials.from_info(info).retrieve_subject_token(None)
    assert second != first and subject_claims(second)["exp"] > time.time()
    assert len(ado.issued) == 2


def test_failure_is_googles_unsuccessful_response_and_one_line(
    ado: AzureDevOps, job: AgentJob, step: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _setup, info = helper_folder(ado, job)
    monkeypatch.delenv("SYSTEM_ACCESSTOKEN")
    with pytest.raises(exceptions.RefreshError) as caught:
        pluggable.Credentials.from_info(info).retrieve_subject_token(None)
    text = str(caught.value)
    assert "add `SYSTEM_ACCESSTOKEN: $(System.AccessToken)` to this step" in text
    assert ado.access_token not in text
    out, err = __import__("io").StringIO(), __import__("io").StringIO()
    command = info["credential_source"]["executable"]["command"].split()
    assert helper.main(command[3:], out, err) == 1
    assert json.loads(out.getvalue()) == {
        "version": 1,
        "success": False,
        "code": "error",
        "message": json.loads(out.getvalue())["message"],
    }
    assert len(err.getvalue().splitlines()) == 1


def test_executable_command_survives_both_splitters() -> None:
    argv = [sys.executable, "/home/vsts/work/_tasks/Oidc_9b7d/1.0.0/task/entry.py", "helper", "gcp", "/t/helper.json"]
    line = helper_setup.executable_command(argv, windows=False)
    assert line.split() == shlex.split(line) == argv
    win = [r"C:\hostedtoolcache\windows\Python\3.12.1\x64\python.exe", r"D:\a\_temp\oidc-credentials\h\helper.json"]
    line = helper_setup.executable_command(win, windows=True)
    assert (
        line.split()
        == shlex.split(line)
        == ["C:/hostedtoolcache/windows/Python/3.12.1/x64/python.exe", win[1].replace("\\", "/")]
    )
    for bad in ["/opt/my tools/python3", "/tmp/it's", 'C:/a"b']:
        with pytest.raises(helper_setup.ConfigError, match="google-auth cannot pass on"):
            helper_setup.executable_command([bad], windows=False)


def test_gcp_entry_refuses_a_skewed_clock() -> None:
    now = time.time()
    with pytest.raises(refresh.CacheError, match="ahead of"):
        helper.gcp_entry("t", expires=now - 400 + 600, issued=now - 400, now=now)
    entry = helper.gcp_entry("t", expires=now + 600, issued=now, now=now)
    assert entry.answer["expiration_time"] == int(now + 600 - 75) and os.path.sep
