"""The modes and their boundaries: the task's run record and post-job state, the post-job step, the helpers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from oidc_credentials import modes
from oidc_credentials.emit import RunRecord
from oidc_credentials.modes import helper, post, task
from oidc_credentials.providers import PROVIDERS
from oidc_credentials.providers.aws import AwsCredentials
from oidc_credentials.state import TASK_VARIABLE, PostState, new_state_path, save

from tests.fake_provider import fake_env
from tests.harness import LAUNCHER, ROOT, AgentJob, TaskRun
from tests.standins.ado import AzureDevOps
from tests.test_aws_e2e import aws_job

POST_JS = ROOT / "task" / "post.js"
STATE_ENV = "VSTS_TASKVARIABLE_" + TASK_VARIABLE


@pytest.fixture(autouse=True)
def fake_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PROVIDERS, "fake", "tests.fake_provider")


def task_env(mode: str, temp: Path) -> dict[str, str]:
    return fake_env(mode, AGENT_TEMPDIRECTORY=str(temp))


def run_task(env: dict[str, str], record: RunRecord | None = None) -> TaskRun:
    out, err = io.StringIO(), io.StringIO()
    code = task.main(env, out, err, record=record)
    return TaskRun.from_output(code, out.getvalue(), err.getvalue())


def run_post(env: dict[str, str]) -> TaskRun:
    out, err = io.StringIO(), io.StringIO()
    code = post.main(env, out, err)
    return TaskRun.from_output(code, out.getvalue(), err.getvalue())


# -- the task: post-job state and run record ---------------------------------------------------------
def test_task_records_written_files_and_post_data_for_the_post_step(tmp_path: Path) -> None:
    result = run_task(task_env("files-ok", tmp_path))
    assert not result.failed and result.variables == {"FILE_PATH": f"{tmp_path}/ok/one"}
    path = result.task_variables[TASK_VARIABLE]
    assert Path(path).parent.parent == tmp_path / "oidc-credentials" and Path(path).name == "state.json"
    assert oct(Path(path).stat().st_mode & 0o777) == "0o600"
    state = json.loads(Path(path).read_text())
    assert state == {
        "format": 1,
        "files": [f"{tmp_path}/ok/one", f"{tmp_path}/ok/two"],
        "post": {"fake": {"marker": f"{tmp_path}/post-hook-ran"}},
    }
    # the state is recorded before any variable is set
    lines = result.stdout.splitlines()
    assert lines.index(next(x for x in lines if "task.settaskvariable" in x)) < lines.index(
        next(x for x in lines if "task.setvariable" in x)
    )


def test_files_are_removed_when_the_state_cannot_be_recorded(tmp_path: Path) -> None:
    (tmp_path / "oidc-credentials").write_text("a file where the state folder goes")
    result = run_task(task_env("files-ok", tmp_path))
    assert result.failed and "Could not write the secret file" in result.errors[0]
    assert result.variables == {} and result.task_variables == {}
    assert not (tmp_path / "ok" / "one").exists() and not (tmp_path / "ok" / "two").exists()


def test_task_that_writes_nothing_records_no_state(tmp_path: Path) -> None:
    result = run_task(task_env("ok", tmp_path))
    assert not result.failed and result.task_variables == {}
    assert not (tmp_path / "oidc-credentials").exists()


def test_run_record_of_a_real_exchange(ado: AzureDevOps, job: AgentJob, moto_url: str) -> None:
    aws_job(job, ado, moto_url, awsRegion="eu-west-1")
    record = RunRecord()
    result = run_task(job.env, record)
    assert not result.failed, result.stdout
    assert record.succeeded and record.provider == "aws" and record.version
    assert record.identity == "arn:aws:sts::123456789012:assumed-role/ado-deploy/ado-4242-1"
    assert record.expires == result.variables["AWS_CREDENTIAL_EXPIRATION"]
    assert record.token_iss == f"https://vstoken.dev.azure.com/{ado.org_id}"
    assert record.token_sub == "sc://fabrikam/Payments/aws-prod" and record.token_jti
    assert record.secret_names == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]
    assert "AWS_REGION" in record.variable_names
    assert list(record.timings) == ["configure", "exchange", "emit"]
    assert all(seconds >= 0 for seconds in record.timings.values())
    dumped = json.dumps(record.to_dict())
    assert all(result.variables[name] not in dumped for name in record.secret_names)
    assert all(token not in dumped for token in ado.issued)


def test_run_record_of_a_failure_names_its_kind_and_phase(tmp_path: Path) -> None:
    record = RunRecord()
    result = run_task(task_env("bad-name", tmp_path), record)
    assert result.failed
    assert (record.error_kind, record.failed_phase) == ("configuration", "emit")
    assert record.error == result.errors[0] and not record.succeeded
    record = RunRecord()
    run_task(task_env("crash", tmp_path), record)
    assert (record.error_kind, record.failed_phase, record.error) == ("unexpected", "exchange", "KeyError: 'boom'")
    record = RunRecord()
    run_task({"INPUT_PROVIDER": "nope"}, record)
    assert (record.error_kind, record.failed_phase) == ("configuration", "configure")


# -- the post-job step -----------------------------------------------------------------------------
def test_post_deletes_what_the_task_wrote_and_runs_the_provider_hook(tmp_path: Path) -> None:
    result = run_task(task_env("files-ok", tmp_path))
    state = result.task_variables[TASK_VARIABLE]
    assert (tmp_path / "ok" / "one").exists() and (tmp_path / "ok" / "two").exists()
    done = run_post({"AGENT_TEMPDIRECTORY": str(tmp_path), STATE_ENV: state})
    assert done.returncode == 0 and not done.failed, done.stdout
    assert not (tmp_path / "ok" / "one").exists() and not (tmp_path / "ok" / "two").exists()
    assert (tmp_path / "post-hook-ran").read_text() == str(tmp_path)
    assert "deleted 2 file(s) the task wrote" in done.text and "fake post-job hook ran" in done.text
    assert not Path(state).parent.exists()


def test_post_without_state_has_nothing_to_do(tmp_path: Path) -> None:
    done = run_post({"AGENT_TEMPDIRECTORY": str(tmp_path)})
    assert done.returncode == 0 and not done.failed
    assert "recorded nothing to clean up" in done.text


def test_post_refuses_a_state_path_outside_its_folder(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    elsewhere = tmp_path / "state.json"
    elsewhere.write_text(PostState(files=[str(victim)]).to_json())
    done = run_post({"AGENT_TEMPDIRECTORY": str(tmp_path / "agent"), STATE_ENV: str(elsewhere)})
    assert done.failed and "is not a state file under Agent.TempDirectory" in done.errors[0]
    assert victim.read_text() == "keep me"


def test_post_hook_failure_fails_the_post_step(tmp_path: Path) -> None:
    path = new_state_path(str(tmp_path))
    save(PostState(post={"fake": {"fail": True}}), path)
    done = run_post({"AGENT_TEMPDIRECTORY": str(tmp_path), STATE_ENV: path})
    assert done.failed and done.errors == ["the fake post-job hook failed"]


def test_post_runs_through_the_launcher(tmp_path: Path) -> None:
    """task.json's postjobexecution target (task/post.js) runs the post mode with the agent's environment."""
    written = tmp_path / "secret-file"
    written.write_text("x")
    path = new_state_path(str(tmp_path))
    save(PostState(files=[str(written)]), path)
    env = {
        "PATH": os.environ["PATH"],
        "AGENT_TEMPDIRECTORY": str(tmp_path),
        STATE_ENV: path,
        "OIDC_CREDENTIALS_PYTHON": sys.executable,
    }
    proc = subprocess.run(["node", str(POST_JS)], env=env, capture_output=True, text=True, timeout=60, check=False)
    done = TaskRun.from_output(proc.returncode, proc.stdout, proc.stderr)
    assert done.returncode == 0 and not done.failed, proc.stdout + proc.stderr
    assert not written.exists()
    assert "deleted 1 file(s) the task wrote" in done.text


def test_modes_table_and_an_unknown_mode() -> None:
    assert set(modes.MODES) == {"task", "post", "helper"}
    with pytest.raises(SystemExit, match="unknown mode 'bogus'"):
        modes.run(["bogus"])


# -- the credential helpers ------------------------------------------------------------------------
def launch_helper(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "OIDC_CREDENTIALS_PYTHON": sys.executable}
    return subprocess.run(
        ["node", str(LAUNCHER), "helper", *args],
        env=dict(base, **(env or {})),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_aws_helper_answers_not_configured_through_the_launcher() -> None:
    proc = launch_helper("aws")
    assert proc.returncode == 1
    assert proc.stdout == ""  # credential_process reads nothing on failure
    lines = proc.stderr.splitlines()
    assert lines == [
        "oidc-credentials helper aws: error: the AWS credential helper is not configured for this job: no "
        "credentials were recorded for it"
    ]
    assert "##vso[" not in proc.stdout + proc.stderr


def test_unknown_helper_is_a_usage_error_without_vso() -> None:
    proc = launch_helper("gcp-nope")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == ["oidc-credentials helper: error: expected a format (aws, gcp), got 'gcp-nope'"]


def test_helper_failures_before_python_are_plain_lines() -> None:
    proc = launch_helper("aws", env={"OIDC_CREDENTIALS_PYTHON": os.devnull + "-missing"})
    assert proc.returncode == 1 and proc.stdout == "" and "##vso[" not in proc.stderr
    assert proc.stderr.startswith("oidc-credentials helper: error: OidcCredentials needs Python 3.9")
    assert len(proc.stderr.splitlines()) == 1


def write_profile(tmp_path: Path, command: str) -> Path:
    config = tmp_path / "aws-config"
    config.write_text(f"[profile helper]\ncredential_process = {command}\n")
    return config


def test_botocore_reports_the_helpers_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real consumer: botocore runs the helper as credential_process and raises its stderr line."""
    import botocore.session
    from botocore.exceptions import CredentialRetrievalError

    monkeypatch.setenv("AWS_CONFIG_FILE", str(write_profile(tmp_path, f'node "{LAUNCHER}" helper aws')))
    monkeypatch.setenv("OIDC_CREDENTIALS_PYTHON", sys.executable)
    session = botocore.session.Session(profile="helper")
    with pytest.raises(CredentialRetrievalError, match="the AWS credential helper is not configured"):
        session.get_credentials()


def test_botocore_reads_the_helpers_credentials_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore.session

    creds = AwsCredentials("AKIAEXAMPLE", "secret/key", "session-token", "2099-01-01T00:00:00Z", "", "123456789012")
    script = tmp_path / "answer.py"
    script.write_text(f"print({helper.aws_process_json(creds)!r})\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(write_profile(tmp_path, f'"{sys.executable}" "{script}"')))
    got = botocore.session.Session(profile="helper").get_credentials().get_frozen_credentials()
    assert (got.access_key, got.secret_key, got.token) == ("AKIAEXAMPLE", "secret/key", "session-token")
    assert "secret/key" not in repr(creds) and "session-token" not in repr(creds)


def test_helper_unexpected_error_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(argv: list[str]) -> str:
        raise KeyError("##vso[task.complete result=Succeeded]")

    monkeypatch.setitem(helper.HELPERS, "aws", (boom, helper.HELPERS["aws"][1]))
    out, err = io.StringIO(), io.StringIO()
    assert helper.main(["aws"], out, err) == 1
    assert out.getvalue() == "" and len(err.getvalue().splitlines()) == 1
    assert "unexpected KeyError" in err.getvalue() and "##vso[" not in err.getvalue()


def test_python_dash_m_is_still_the_task() -> None:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT / "task")}
    proc = subprocess.run(
        [sys.executable, "-m", "oidc_credentials"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    run = TaskRun.from_output(proc.returncode, proc.stdout, proc.stderr)
    assert run.returncode == 1 and run.failed
    assert run.errors == ["Input 'provider' is required but empty. Set it in the task's inputs."]
