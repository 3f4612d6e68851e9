"""The AWS credential helper end to end: the task writes the refreshing profile, later steps use it through
botocore, every failure is one line in the format botocore expects, and the post-job step leaves nothing."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.compat import compat_shell_split
from oidc_credentials import helper_setup, refresh

from tests.harness import AgentJob
from tests.helperjob import ROLE, ROLE_SESSION, AwsHelperJob, leftovers, tree
from tests.standins.ado import AzureDevOps
from tests.standins.server import LocalCA, Server
from tests.standins.sts import Sts, keys_of


@pytest.fixture
def aws_job(ado: AzureDevOps, ca: LocalCA, job: AgentJob, tmp_path: Path) -> Iterator[AwsHelperJob]:
    app = Sts()
    app.trust(ado.issuer, keys_of(ado))
    app.add_role(ROLE, issuer_url=ado.issuer, sub="sc://fabrikam/Payments/*")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    assert job.env["AGENT_TEMPDIRECTORY"]
    with Server(app) as server:
        yield AwsHelperJob(ado, app, server.url, job, ca.bundle, workspace, Path(job.env["AGENT_TEMPDIRECTORY"]))


def caller(env: dict[str, str], sts_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A later step: boto3 through the profile, GetCallerIdentity at the stand-in."""
    code = (
        "import boto3, sys\n"
        f"print(boto3.Session().client('sts', endpoint_url={sts_url!r}, region_name='us-east-1')"
        ".get_caller_identity()['Arn'])\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=90, check=False, cwd=cwd
    )


# -- the profile --------------------------------------------------------------------------------------
def test_task_writes_a_private_refreshing_profile_and_a_warm_cache(aws_job: AwsHelperJob) -> None:
    run = aws_job.start(awsRegion="eu-west-1")
    v = aws_job.variables
    assert v["AWS_PROFILE"] == "oidc-credentials" and v["AWS_SDK_LOAD_CONFIG"] == "1"
    assert {"AWS_CONFIG_FILE", "AWS_PROFILE", "AWS_SDK_LOAD_CONFIG"}.isdisjoint(run.secret_names)
    # nothing the task sets as a plain variable could shadow the profile in botocore's chain
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} & (set(v) - run.secret_names)
    folder = aws_job.folder
    assert folder.parent == aws_job.temp / "oidc-credentials"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert sorted(p.name for p in folder.iterdir()) == ["aws-config", "cache.json", "helper.json"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())
    argv = shlex.split(aws_job.credential_process)
    assert argv[:4] == [sys.executable, str(helper_setup.ENTRY), "helper", "aws"]
    assert "region = eu-west-1" in Path(v["AWS_CONFIG_FILE"]).read_text()
    config = json.loads(aws_job.helper_config.read_text())
    assert config["settings"]["role_arn"] == ROLE and config["settings"]["duration"] == 900
    assert not any(s in aws_job.helper_config.read_text() for s in aws_job.secrets())
    assert "Refreshing profile 'oidc-credentials'" in run.text
    assert tree(aws_job.workspace) == []


def test_later_step_uses_the_profile_without_a_new_exchange(aws_job: AwsHelperJob) -> None:
    aws_job.start()
    assert len(aws_job.sts.exchanges) == 1  # the task's own
    proc = caller(aws_job.step_env(), aws_job.sts_url, aws_job.workspace)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ROLE_SESSION
    assert len(aws_job.sts.exchanges) == 1  # the cache the task seeded served it
    answer = json.loads(aws_job.helper().stdout)
    assert answer["Version"] == 1 and answer["AccessKeyId"] in aws_job.sts.issued
    assert answer["AccessKeyId"] == aws_job.variables["AWS_ACCESS_KEY_ID"]


def test_aws_cli_reads_the_profile(aws_job: AwsHelperJob) -> None:
    """The AWS CLI (v1, botocore's chain) as a second real consumer."""
    found = Path(sys.executable).with_name("aws")
    aws = str(found) if found.exists() else shutil.which("aws")
    if not aws:
        pytest.skip("the AWS CLI is not installed in this environment")
    aws_job.start()
    proc = subprocess.run(
        [aws, "sts", "get-caller-identity", "--endpoint-url", aws_job.sts_url, "--region", "us-east-1"],
        env=aws_job.step_env(),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        cwd=aws_job.workspace,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["Arn"] == ROLE_SESSION


def test_refresh_off_writes_nothing_and_keeps_the_variables(aws_job: AwsHelperJob) -> None:
    run = aws_job.start(refreshCredentials="false")
    assert "AWS_CONFIG_FILE" not in run.variables and "AWS_PROFILE" not in run.variables
    assert run.secret_names == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
    assert leftovers(aws_job.temp, aws_job.secrets()) == [] and run.task_variables == {}


def test_lifetime_check_warns_before_expiry_when_refresh_is_off(aws_job: AwsHelperJob) -> None:
    run = aws_job.start(refreshCredentials="false", requiredLifetimeMinutes="120")
    assert len(run.warnings) == 1, run.warnings
    assert "expire in 15 min" in run.warnings[0] and "need them for 120 min" in run.warnings[0]
    assert "refreshCredentials" in run.warnings[0]


def test_lifetime_check_is_quiet_with_refresh_and_names_the_ceiling_beyond_it(aws_job: AwsHelperJob) -> None:
    run = aws_job.start(requiredLifetimeMinutes="120")
    assert run.warnings == []
    aws_job.job.inputs(requiredLifetimeMinutes=str(30 * 60))
    again = aws_job.job.run(cwd=aws_job.workspace)
    assert len(again.warnings) == 1 and "about 24 hours" in again.warnings[0]


def test_store_access_token_is_opt_in_private_and_needs_refresh(aws_job: AwsHelperJob) -> None:
    run = aws_job.start(storeAccessToken="true")
    token_file = aws_job.folder / refresh.TOKEN_FILE
    assert token_file.read_text() == aws_job.ado.access_token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert aws_job.ado.access_token in run.secrets
    # a later step without the env: mapping refreshes with the stored token
    (aws_job.folder / refresh.CACHE).unlink()
    proc = aws_job.helper(aws_job.step_env(access_token=False))
    assert proc.returncode == 0, proc.stderr
    assert len(aws_job.sts.exchanges) == 2
    aws_job.job.inputs(refreshCredentials="false")
    refused = aws_job.job.run()
    assert refused.failed and "'storeAccessToken' only serves refreshing" in refused.errors[0]


# -- post-job cleanup -------------------------------------------------------------------------------
def test_post_job_leaves_nothing_in_the_temp_directory_and_nothing_was_written_to_the_workspace(
    aws_job: AwsHelperJob,
) -> None:
    aws_job.start(storeAccessToken="true")
    env = aws_job.step_env()
    assert caller(env, aws_job.sts_url, aws_job.workspace).returncode == 0
    (aws_job.folder / refresh.CACHE).unlink()  # a later refresh: the helper writes the cache and its lock
    assert aws_job.helper(env).returncode == 0
    assert {p.name for p in aws_job.folder.iterdir()} >= {refresh.CACHE, refresh.LOCK, refresh.TOKEN_FILE}
    done = aws_job.post()
    assert done.returncode == 0 and not done.failed, done.stdout + done.stderr
    assert leftovers(aws_job.temp, aws_job.secrets()) == []  # the run summary and audit record stay, for the agent
    assert tree(aws_job.workspace) == []
    # a helper run after the job says so in one line
    late = aws_job.helper(env)
    assert late.returncode == 1 and late.stdout == ""
    assert "does not exist: the job that wrote it has ended" in late.stderr and len(late.stderr.splitlines()) == 1


def test_post_job_keeps_other_instances_files(aws_job: AwsHelperJob) -> None:
    aws_job.start()
    other = aws_job.temp / "oidc-credentials" / "helper-other"
    other.mkdir()
    (other / "cache.json").write_text("{}")
    assert aws_job.post().returncode == 0
    assert leftovers(aws_job.temp, aws_job.secrets()) == [
        "oidc-credentials",
        "oidc-credentials/helper-other",
        "oidc-credentials/helper-other/cache.json",
    ]


# -- failure modes: one line on stderr, exit 1, nothing on stdout, no secret ---------------------------
def one_line_failure(aws_job: AwsHelperJob, proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("oidc-credentials helper aws: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not any(s and s in proc.stderr for s in aws_job.secrets())
    assert "##vso[" not in proc.stderr and "Traceback" not in proc.stderr
    return lines[0]


def expire_cache(aws_job: AwsHelperJob) -> None:
    path = aws_job.folder / refresh.CACHE
    data = json.loads(path.read_text())
    data["expires_at"] = data["issued_at"] + 1
    path.write_text(json.dumps(data))


def test_without_the_access_token_it_names_the_env_mapping(aws_job: AwsHelperJob) -> None:
    aws_job.start()
    assert aws_job.helper(aws_job.step_env(access_token=False)).returncode == 0  # warm: no token needed yet
    expire_cache(aws_job)
    proc = aws_job.helper(aws_job.step_env(access_token=False))
    one_line_failure(aws_job, proc, "add `SYSTEM_ACCESSTOKEN: $(System.AccessToken)` to this step's env:")
    proc = aws_job.helper(aws_job.step_env(SYSTEM_ACCESSTOKEN="$(System.AccessToken)"))
    one_line_failure(aws_job, proc, "unexpanded text", "SYSTEM_ACCESSTOKEN: $(System.AccessToken)")


def test_the_24_hour_ceiling_is_named(aws_job: AwsHelperJob) -> None:
    aws_job.start()
    expire_cache(aws_job)
    aws_job.ado.access_token = "a-later-token-the-old-one-no-longer-matches"
    proc = aws_job.helper(aws_job.step_env(SYSTEM_ACCESSTOKEN="ado-job-access-token-0123456789"))
    one_line_failure(aws_job, proc, "no longer accepts this job's access token (HTTP 401)", "about 24 hours")
    aws_job.ado.access_token = "ado-job-access-token-0123456789"
    aws_job.ado.fail_next(1, 203, "<html><title>Azure DevOps Services | Sign In</title></html>")
    one_line_failure(aws_job, aws_job.helper(), "(HTTP 203)", "about 24 hours")


def test_connection_no_longer_authorised(aws_job: AwsHelperJob) -> None:
    aws_job.start()
    expire_cache(aws_job)
    for conn in aws_job.ado.connections.values():
        conn.referenced = False
    one_line_failure(aws_job, aws_job.helper(), "not referenced from this stage", "authorise this pipeline")


def test_role_trust_removed_is_sts_access_denied(aws_job: AwsHelperJob) -> None:
    aws_job.start()
    expire_cache(aws_job)
    aws_job.sts.roles.clear()
    one_line_failure(aws_job, aws_job.helper(), "AccessDenied")


def test_clock_skew(aws_job: AwsHelperJob) -> None:
    aws_job.start()
    expire_cache(aws_job)
    aws_job.sts.clock_offset = -900  # the agent's clock is 15 minutes ahead of the service's
    one_line_failure(aws_job, aws_job.helper(), "this agent's clock is about 900 s ahead of the service's", "NTP")
    aws_job.sts.clock_offset = 900
    one_line_failure(aws_job, aws_job.helper(), "about 900 s behind")


def test_corrupted_cache(aws_job: AwsHelperJob) -> None:
    aws_job.start()
    (aws_job.folder / refresh.CACHE).write_text('{"format": 1, "answer": ')
    one_line_failure(aws_job, aws_job.helper(), "refusing the credential cache", "corrupted", "delete it")
    assert len(aws_job.sts.exchanges) == 1  # refused, not overwritten


def test_cache_behind_a_symbolic_link(aws_job: AwsHelperJob, tmp_path: Path) -> None:
    aws_job.start()
    elsewhere = tmp_path / "planted.json"
    cache = aws_job.folder / refresh.CACHE
    os.replace(cache, elsewhere)
    cache.symlink_to(elsewhere)
    one_line_failure(aws_job, aws_job.helper(), "refusing the credential cache", "symbolic link")


def test_cache_readable_by_others(aws_job: AwsHelperJob) -> None:
    aws_job.start()
    (aws_job.folder / refresh.CACHE).chmod(0o644)
    one_line_failure(aws_job, aws_job.helper(), "mode is 0644", "private (0600)")


def test_foreign_owned_cache(aws_job: AwsHelperJob, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another user's file: as root by chown (a real foreign owner), otherwise as seen by a different user id."""
    aws_job.start()
    cache = aws_job.folder / refresh.CACHE
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        os.chown(cache, 65534, 65534)
        one_line_failure(aws_job, aws_job.helper(), "belongs to user id 65534")
        return
    from oidc_credentials.modes import helper

    monkeypatch.setattr(refresh.os, "geteuid", lambda: os.getuid() + 1)
    out, err = __import__("io").StringIO(), __import__("io").StringIO()
    assert helper.main(["aws", str(aws_job.helper_config)], out, err) == 1
    assert out.getvalue() == "" and f"belongs to user id {os.getuid()}" in err.getvalue()


def test_helper_config_corrupted_or_missing(aws_job: AwsHelperJob) -> None:
    aws_job.start()
    aws_job.helper_config.write_text("[]")
    one_line_failure(aws_job, aws_job.helper(), "is corrupted or not a aws helper config")
    aws_job.helper_config.unlink()
    one_line_failure(aws_job, aws_job.helper(), "does not exist")


# -- the command line, on every OS ------------------------------------------------------------------
NASTY = [
    "/opt/hosted tool cache/Python/3.12.1/x64/bin/python3",
    "/home/vsts/work/_tasks/OidcCredentials_9b7d/1.0.0/task/entry.py",
    '/tmp/it\'s $HOME `id` ; rm -rf x & echo \\ "q"/helper.json',
]
WINDOWS = [
    r"C:\hostedtoolcache\windows\Python\3.12.1\x64\python.exe",
    r"D:\a\_tasks\OidcCredentials_9b7d\1.0.0\task\entry.py",
    r"D:\a\_temp\oidc credentials (1)\helper-ab & cd\helper.json",
]


def test_posix_command_line_reads_back_exactly_in_shlex_and_sh() -> None:
    argv = [*NASTY[:2], "helper", "aws", NASTY[2]]
    line = helper_setup.command_line(argv, windows=False)
    assert shlex.split(line) == argv == compat_shell_split(line, "linux2")
    echoed = subprocess.run(
        ["sh", "-c", "printf '%s\\n' " + line], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    assert echoed.splitlines() == argv


def test_windows_command_line_reads_back_exactly_in_botocores_splitter() -> None:
    argv = [*WINDOWS[:2], "helper", "aws", WINDOWS[2]]
    line = helper_setup.command_line(argv, windows=True)
    assert compat_shell_split(line, "win32") == argv
    for bad in ['C:\\a"b\\helper.json', "C:\\100%\\helper.json"]:
        with pytest.raises(helper_setup.ConfigError, match="cmd.exe"):
            helper_setup.command_line([bad], windows=True)
    with pytest.raises(helper_setup.ConfigError, match="line break"):
        helper_setup.command_line(["/tmp/a\nb"], windows=False)


# -- the warm path is as light as Python itself --------------------------------------------------------
def test_warm_path_imports_no_http_jwt_crypto_or_azure(aws_job: AwsHelperJob) -> None:
    aws_job.start()
    argv = shlex.split(aws_job.credential_process)
    proc = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        env=aws_job.step_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["Version"] == 1
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "oidc_credentials.refresh" in imported  # the measurement saw the helper's own imports
    heavy = {m for m in imported if m.split(".")[0] in ("requests", "urllib3", "jwt", "cryptography", "azure", "msal")}
    assert heavy == set()
    assert len(aws_job.sts.exchanges) == 1 and len(aws_job.ado.issued) == 1  # it was the warm path
