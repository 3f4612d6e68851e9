"""The AWS credential helper under fire: faults injected at Azure DevOps and STS when it refreshes.

Its stdout is the credential itself (JSON for the SDK); everything else it prints or writes (stderr, every file
under Agent.TempDirectory but its own cache) is scanned for every form of every secret of the job. A transient
fault is retried and the refresh succeeds; a permanent one is one line on stderr, exit 1, nothing on stdout,
no secret anywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from oidc_credentials import refresh

from tests.harness import AgentJob
from tests.helperjob import ROLE, AwsHelperJob
from tests.standins.ado import AzureDevOps
from tests.standins.server import Fault, LocalCA, Server
from tests.standins.sts import Sts, keys_of
from tests.test_faults import FAIL_FAST, RETRIED
from tests.test_leaks import forms

SOAK = bool(os.environ.get("OIDC_CREDENTIALS_SOAK"))
pytestmark = pytest.mark.soak
#: counted for the README's figures
INJECTED = {"faults": 0, "runs": 0}

#: service -> the path its faults hit
PATHS = {"ado": "/oidctoken", "sts": ""}


@pytest.fixture
def helper_job(ado: AzureDevOps, ca: LocalCA, job: AgentJob, tmp_path: Path) -> Iterator[tuple[AwsHelperJob, Server]]:
    app = Sts()
    app.trust(ado.issuer, keys_of(ado))
    app.add_role(ROLE, issuer_url=ado.issuer, sub="sc://fabrikam/Payments/*")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    with Server(app) as server:
        yield (
            AwsHelperJob(ado, app, server.url, job, ca.bundle, workspace, Path(job.env["AGENT_TEMPDIRECTORY"])),
            server,
        )


def _server(aws_job: AwsHelperJob, sts: Server, service: str) -> Server:
    return aws_job.ado.server if service == "ado" else sts  # type: ignore[attr-defined, no-any-return]


def _expire_cache(aws_job: AwsHelperJob) -> None:
    path = aws_job.folder / refresh.CACHE
    data = json.loads(path.read_text())
    data["expires_at"] = data["issued_at"] + 1
    path.write_text(json.dumps(data))


def assert_helper_leaks_nothing(aws_job: AwsHelperJob, proc: subprocess.CompletedProcess[str]) -> None:
    """stderr and every file but the helper's cache hold no form of any secret (stdout is the credential)."""
    cache = aws_job.folder / refresh.CACHE
    texts = {"stderr": proc.stderr}
    for path in aws_job.temp.rglob("*"):
        if path.is_file() and path != cache:
            texts[str(path)] = path.read_text(errors="replace")
    for path in aws_job.workspace.rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_text(errors="replace")
    secrets = [s for s in aws_job.secrets() if s]
    assert secrets
    found = [(where, form[:8]) for where, text in texts.items() for s in secrets for form in forms(s) if form in text]
    assert found == [], f"a secret in {found}"


@pytest.mark.parametrize("kind", list(RETRIED))
@pytest.mark.parametrize("service", list(PATHS))
def test_helper_retries_transient_faults(helper_job: tuple[AwsHelperJob, Server], service: str, kind: str) -> None:
    if not SOAK and list(RETRIED).index(kind) % len(PATHS) != list(PATHS).index(service):
        pytest.skip("make test runs half the faults at each service; make soak runs every fault at both")
    aws_job, sts = helper_job
    aws_job.start()
    _expire_cache(aws_job)
    server = _server(aws_job, sts, service)
    count, fault = RETRIED[kind]
    before = server.faults.injected
    server.fail_next(count, Fault(**{**vars(fault), "path": PATHS[service]}))
    INJECTED["faults"] += count
    proc = aws_job.helper()
    INJECTED["runs"] += 1
    assert proc.returncode == 0, proc.stderr
    assert server.faults.injected - before == count
    credential = json.loads(proc.stdout)
    assert credential["Version"] == 1 and credential["SecretAccessKey"]
    assert "##vso[" not in proc.stderr and "Traceback" not in proc.stderr
    assert_helper_leaks_nothing(aws_job, proc)


@pytest.mark.parametrize("kind", list(FAIL_FAST))
@pytest.mark.parametrize("service", list(PATHS))
def test_helper_fails_permanent_faults_in_one_line(
    helper_job: tuple[AwsHelperJob, Server], service: str, kind: str
) -> None:
    if not SOAK and list(FAIL_FAST).index(kind) % len(PATHS) != list(PATHS).index(service):
        pytest.skip("make test runs half the faults at each service; make soak runs every fault at both")
    aws_job, sts = helper_job
    aws_job.start()
    _expire_cache(aws_job)
    server = _server(aws_job, sts, service)
    before = server.faults.injected
    server.fail_next(5, Fault(**{**vars(FAIL_FAST[kind]), "path": PATHS[service]}))
    INJECTED["faults"] += 1
    proc = aws_job.helper()
    INJECTED["runs"] += 1
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("oidc-credentials helper aws: error: "), proc.stderr
    assert server.faults.injected - before == 1, "a permanent fault is not retried"
    assert "##vso[" not in proc.stderr and "##[" not in proc.stderr and "Traceback" not in proc.stderr
    assert_helper_leaks_nothing(aws_job, proc)


# -- the Google Cloud helper, run by google-auth itself (executable-sourced credentials) -------------------
def _gcp_leaks(ado: AzureDevOps, job: AgentJob, texts: dict[str, str], keep: set[Path]) -> list[tuple[str, str]]:
    """Forms of the job's secrets in ``texts`` and in every file under the temp directory but ``keep``."""
    for path in Path(job.env["AGENT_TEMPDIRECTORY"]).rglob("*"):
        if path.is_file() and path not in keep:
            texts[str(path)] = path.read_text(errors="replace")
    secrets = [s for s in [ado.access_token, *ado.issued] if s]
    return [(where, form[:8]) for where, text in texts.items() for s in secrets for form in forms(s) if form in text]


@pytest.mark.parametrize("kind", list(RETRIED))
def test_gcp_helper_retries_transient_faults_at_azure_devops(
    ado: AzureDevOps, job: AgentJob, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    from tests.test_helper_gcp import helper_folder, pluggable

    if not SOAK and kind not in ("429-retry-after", "reset"):
        pytest.skip("make soak runs every fault")
    monkeypatch.setenv("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1")
    monkeypatch.setenv("SYSTEM_ACCESSTOKEN", ado.access_token)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", job.env["REQUESTS_CA_BUNDLE"])
    setup, info = helper_folder(ado, job)
    count, fault = RETRIED[kind]
    server: Server = ado.server  # type: ignore[attr-defined]
    server.fail_next(count, Fault(**{**vars(fault), "path": PATHS["ado"]}))
    INJECTED["faults"] += count
    token = pluggable.Credentials.from_info(info).retrieve_subject_token(None)
    INJECTED["runs"] += 1
    assert token == ado.issued[-1] and server.faults.injected == count
    keep = {Path(setup.path(refresh.CACHE)), Path(setup.path(refresh.GCP_OUTPUT))}  # the credential itself
    assert _gcp_leaks(ado, job, {}, keep) == []


@pytest.mark.parametrize("kind", list(FAIL_FAST))
def test_gcp_helper_fails_permanent_faults_at_azure_devops_without_a_secret(
    ado: AzureDevOps, job: AgentJob, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    from tests.test_helper_gcp import exceptions, helper_folder, pluggable

    if not SOAK and kind not in ("400-html", "403-json"):
        pytest.skip("make soak runs every fault")
    monkeypatch.setenv("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1")
    monkeypatch.setenv("SYSTEM_ACCESSTOKEN", ado.access_token)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", job.env["REQUESTS_CA_BUNDLE"])
    setup, info = helper_folder(ado, job)
    server: Server = ado.server  # type: ignore[attr-defined]
    server.fail_next(5, Fault(**{**vars(FAIL_FAST[kind]), "path": PATHS["ado"]}))
    INJECTED["faults"] += 1
    with pytest.raises(exceptions.RefreshError) as caught:
        pluggable.Credentials.from_info(info).retrieve_subject_token(None)
    INJECTED["runs"] += 1
    text = str(caught.value)
    assert server.faults.injected == 1, "a permanent fault is not retried"
    assert "Azure DevOps" in text and "##vso[" not in text and "##[" not in text and "Traceback" not in text
    assert _gcp_leaks(ado, job, {"google-auth's error": text}, {Path(setup.path(refresh.CACHE))}) == []


def test_helper_fails_at_once_on_a_certificate_the_agent_does_not_trust(
    helper_job: tuple[AwsHelperJob, Server], tmp_path: Path
) -> None:
    """Azure DevOps answers the refreshing helper with a certificate from a CA the step does not trust."""
    aws_job, _sts = helper_job
    aws_job.start()
    _expire_cache(aws_job)
    foreign = LocalCA(str(tmp_path / "foreign-ca"))
    proc = aws_job.helper(aws_job.step_env(REQUESTS_CA_BUNDLE=foreign.bundle))
    INJECTED["runs"] += 1
    INJECTED["faults"] += 1
    assert proc.returncode == 1 and proc.stdout == "", proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "TLS verification failed for Azure DevOps" in lines[0], proc.stderr
    assert "REQUESTS_CA_BUNDLE" in lines[0] and "retrying" not in proc.stderr
    assert_helper_leaks_nothing(aws_job, proc)


@pytest.fixture(scope="module", autouse=True)
def _report_figures() -> Iterator[None]:
    yield
    import sys

    sys.__stdout__.write(f"\nhelper fault figures: {INJECTED}\n")
