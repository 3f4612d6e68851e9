"""AWS end to end: the real launcher, an agent-like environment, the Azure DevOps stand-in, moto STS."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ROOT, AgentJob, TaskRun, caller_arn, parse_line, unregistered_secret_lines
from tests.standins.ado import AzureDevOps
from tests.standins.server import Server
from tests.standins.sts import Sts, keys_of

ROLE = "arn:aws:iam::123456789012:role/ado-deploy"


def aws_job(job: AgentJob, ado: AzureDevOps, sts_url: str, name: str = "aws-prod", **inputs: str) -> AgentJob:
    conn = ado.add_connection(name)
    job.inputs(provider="aws", awsConnection=conn.id, **inputs)
    return job.endpoint(conn.id, url=sts_url, scheme="None", params={"roleArn": ROLE})


def assert_failed_cleanly(run: TaskRun, *fragments: str) -> str:
    """Failed with one error paragraph, nothing set, exit 0, no traceback, no stray commands."""
    assert run.returncode == 0
    assert run.failed, run.stdout
    assert len(run.errors) == 1, run.errors
    assert run.variables == {} and run.output_variables == {}
    assert "Traceback" not in run.stdout + run.stderr
    assert run.unknown_commands == []
    for fragment in fragments:
        assert fragment in run.errors[0], run.errors[0]
    return run.errors[0]


def test_credentials_work_in_a_later_step(ado: AzureDevOps, job: AgentJob, moto_url: str) -> None:
    run = aws_job(job, ado, moto_url, awsRegion="eu-west-1", awsSessionDuration="900").run()
    assert run.returncode == 0 and not run.failed, run.stdout + run.stderr
    assert run.secret_names == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
    assert run.variables["AWS_REGION"] == run.variables["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert run.variables["AWS_CREDENTIAL_EXPIRATION"]
    assert caller_arn(run, moto_url) == "arn:aws:sts::123456789012:assumed-role/ado-deploy/ado-4242-1"
    # the log shows the pre-flight claims and the identity, and never a secret
    assert "subject   sc://fabrikam/Payments/aws-prod" in run.text
    assert "audience  api://AzureADTokenExchange" in run.text
    assert f"issuer    https://vstoken.dev.azure.com/{ado.org_id}" in run.text
    assert "AWS identity: arn:aws:sts::123456789012:assumed-role/ado-deploy/ado-4242-1" in run.text
    secrets = [run.variables[n] for n in run.secret_names] + ado.issued
    assert unregistered_secret_lines(run.stdout, secrets) == []
    assert all(s not in run.stderr for s in secrets)
    assert ado.access_token not in run.stdout + run.stderr
    assert run.unknown_commands == []


def test_secrets_are_registered_before_variables(ado: AzureDevOps, job: AgentJob, moto_url: str) -> None:
    run = aws_job(job, ado, moto_url).run()
    lines = run.stdout.splitlines()
    first_setvariable = next(i for i, line in enumerate(lines) if "task.setvariable" in line)
    registered = [
        line.split("]", 1)[1] for line in lines[:first_setvariable] if line.startswith("##vso[task.setsecret]")
    ]
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        assert run.variables[name] in registered


def test_output_variables_for_later_jobs(ado: AzureDevOps, job: AgentJob, moto_url: str) -> None:
    run = aws_job(job, ado, moto_url, publishOutputVariables="true").run()
    assert not run.failed
    assert set(run.output_variables) == set(run.variables)
    assert run.output_variables["AWS_SECRET_ACCESS_KEY"] == run.variables["AWS_SECRET_ACCESS_KEY"]
    assert "isoutput=true" in run.stdout and "issecret=true;isoutput=true" in run.stdout


def test_regional_endpoint_and_session_policy_reach_sts(ado: AzureDevOps, job: AgentJob) -> None:
    app = Sts()
    app.trust(ado.issuer, keys_of(ado))
    app.add_role(ROLE, issuer_url=ado.issuer, sub="sc://fabrikam/Payments/aws-prod", max_session=7200)
    with Server(app) as server:
        run = aws_job(
            job,
            ado,
            server.url,
            awsSessionDuration="7200",
            awsSessionName="deploy-blue",
            awsSessionPolicy='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}',
            awsManagedSessionPolicies="arn:aws:iam::aws:policy/ReadOnlyAccess",
            awsAllowedAccountIds="123456789012",
        ).run()
    assert not run.failed, run.errors
    sent = app.requests[-1]
    assert sent["DurationSeconds"] == "7200" and sent["RoleSessionName"] == "deploy-blue"
    assert sent["Policy"].startswith('{"Version":"2012-10-17"')
    assert sent["PolicyArns.member.1.arn"] == "arn:aws:iam::aws:policy/ReadOnlyAccess"


# -- every failure mode: one clear paragraph, a failed task, nothing set -----------------------


def test_missing_access_token(ado: AzureDevOps, job: AgentJob, moto_url: str) -> None:
    aws_job(job, ado, moto_url)
    del job.env["ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN"]
    assert_failed_cleanly(job.run(), "No job access token", "Allow scripts to access the OAuth token")


def test_rejected_access_token(ado: AzureDevOps, job: AgentJob, moto_url: str) -> None:
    aws_job(job, ado, moto_url)
    job.env["ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN"] = "expired-token"
    assert_failed_cleanly(job.run(), "rejected the job access token", "HTTP 401")


def test_connection_not_referenced(ado: AzureDevOps, job: AgentJob, moto_url: str) -> None:
    aws_job(job, ado, moto_url)
    conn_id = job.env["INPUT_AWSCONNECTION"]
    ado.connections[conn_id].referenced = False
    assert_failed_cleanly(
        job.run(), "There is no explicit reference to service connection", "not referenced from this stage"
    )


def test_connection_name_instead_of_guid(ado: AzureDevOps, job: AgentJob, moto_url: str) -> None:
    aws_job(job, ado, moto_url)
    job.env["INPUT_AWSCONNECTION"] = "aws-prod"
    assert_failed_cleanly(job.run(), "Input 'awsConnection' must name a service connection", "'aws-prod'")
    assert ado.requests == []


def test_invalid_input_fails_before_any_request(ado: AzureDevOps, job: AgentJob, moto_url: str) -> None:
    run = aws_job(job, ado, moto_url, awsSessionDuration="10").run()
    assert_failed_cleanly(run, "Input 'awsSessionDuration' must be from 900 to 43200, got 10")
    assert ado.requests == []


@pytest.mark.parametrize(
    ("provider", "fragment"), [("", "Input 'provider' is required"), ("azurerm", "must be one of aws, azure")]
)
def test_provider_input(job: AgentJob, provider: str, fragment: str) -> None:
    job.inputs(provider=provider)
    assert_failed_cleanly(job.run(), fragment)


def test_access_denied_names_the_trust_condition(ado: AzureDevOps, job: AgentJob) -> None:
    app = Sts()
    app.trust(ado.issuer, keys_of(ado))
    app.add_role(ROLE, issuer_url=ado.issuer, sub="sc://fabrikam/Payments/aws-PROD")
    with Server(app) as server:
        run = aws_job(job, ado, server.url).run()
    issuer = f"vstoken.dev.azure.com/{ado.org_id}"
    error = assert_failed_cleanly(run, "AccessDenied", f"{issuer}:sub = sc://fabrikam/Payments/aws-prod")
    assert f'"{issuer}:sub": "sc://fabrikam/Payments/aws-prod"' in error


def test_a_typo_in_the_role_name_names_both_causes_and_the_arn(ado: AzureDevOps, job: AgentJob) -> None:
    app = Sts()
    app.trust(ado.issuer, keys_of(ado))
    app.add_role(ROLE, issuer_url=ado.issuer, sub="sc://fabrikam/Payments/aws-prod")
    typo = "arn:aws:iam::123456789012:role/ado-deplyo"
    with Server(app) as server:
        run = aws_job(job, ado, server.url, awsRoleArn=typo).run()
    error = assert_failed_cleanly(run, "AccessDenied")
    assert f"the role {typo} does not exist in account 123456789012" in error
    assert "or it exists but its trust policy does not match this token" in error
    assert len(app.requests) == 1


def _no_dns(tmp_path: Path, *, unknown: str = "eu-wset-1") -> dict[str, str]:
    """PYTHONPATH for the task's Python: a sitecustomize whose resolver answers 'no such host' for names
    holding ``unknown`` (every name when it is "") and 127.0.0.1 for the others, so no DNS query leaves."""
    folder = tmp_path / "no-dns"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        "import socket\n"
        "_real = socket.getaddrinfo\n"
        "def _resolve(host, port, *args, **kwargs):\n"
        "    if str(host) in ('127.0.0.1', 'localhost', '::1'):\n"
        "        return _real(host, port, *args, **kwargs)\n"
        f"    if {unknown!r} in str(host):\n"
        "        raise socket.gaierror(socket.EAI_NONAME, 'Name or service not known')\n"
        "    return _real('127.0.0.1', port, *args, **kwargs)\n"
        "socket.getaddrinfo = _resolve\n",
        encoding="utf-8",
    )
    return {"PYTHONPATH": str(folder)}


def test_an_agent_without_dns_is_not_told_its_region_is_wrong(ado: AzureDevOps, job: AgentJob, tmp_path: Path) -> None:
    aws_job(job, ado, "https://sts.amazonaws.com", awsRegion="eu-west-1")
    run = job.run(extra=_no_dns(tmp_path, unknown=""))
    error = assert_failed_cleanly(run, "Neither the STS endpoint sts.eu-west-1.amazonaws.com nor sts.amazonaws.com")
    assert "Fix the agent's network" in error and "does not exist" not in error


def test_a_region_that_does_not_exist_is_named_at_once(ado: AzureDevOps, job: AgentJob, tmp_path: Path) -> None:
    aws_job(job, ado, "https://sts.amazonaws.com", awsRegion="eu-wset-1")
    run = job.run(extra=_no_dns(tmp_path))
    error = assert_failed_cleanly(run, "Region 'eu-wset-1' (from input 'awsRegion') does not exist")
    assert "its STS endpoint sts.eu-wset-1.amazonaws.com does not resolve" in error
    assert "AWS STS: attempt" not in run.text  # a name that does not resolve is not retried


def test_a_connection_region_that_does_not_exist_names_the_connection(
    ado: AzureDevOps, job: AgentJob, tmp_path: Path
) -> None:
    conn = ado.add_connection("aws-typo")
    job.inputs(provider="aws", awsConnection=conn.id)
    job.endpoint(
        conn.id, url="https://sts.amazonaws.com", scheme="None", params={"roleArn": ROLE, "region": "eu-wset-1"}
    )
    error = assert_failed_cleanly(
        job.run(extra=_no_dns(tmp_path)), "Region 'eu-wset-1' (from the connection's 'region')"
    )
    assert "awsRegion" not in error.split(".")[0]


def test_a_connection_url_that_does_not_resolve_names_the_url(ado: AzureDevOps, job: AgentJob, tmp_path: Path) -> None:
    aws_job(job, ado, "https://sts.eu-wset-1.amazonaws.com")
    run = job.run(extra=_no_dns(tmp_path))
    error = assert_failed_cleanly(
        run, "The AWS connection's STS endpoint https://sts.eu-wset-1.amazonaws.com does not resolve"
    )
    assert "Fix the connection's URL" in error and "AWS STS: attempt" not in run.text


def test_region_disabled_without_a_region_names_the_endpoint(ado: AzureDevOps, job: AgentJob) -> None:
    app = Sts()
    app.trust(ado.issuer, keys_of(ado))
    app.disabled_regions.add(app.region)
    with Server(app) as server:
        run = aws_job(job, ado, server.url).run()
    error = assert_failed_cleanly(run, "RegionDisabledException", f"the region that serves {server.url}")
    assert "region ''" not in error and "no region is set" in error


def test_an_unreferenced_connection_prints_the_sentence_not_the_json(ado: AzureDevOps, job: AgentJob) -> None:
    conn = ado.add_connection("aws-hidden", referenced=False)
    job.inputs(provider="aws", awsConnection=conn.id)
    job.endpoint(conn.id, url="https://sts.amazonaws.com", scheme="None", params={"roleArn": ROLE})
    error = assert_failed_cleanly(job.run())
    assert (
        f"it says (HTTP 400): There is no explicit reference to service connection {conn.id} from current stage"
        in error
    )
    assert "{" not in error and '"value"' not in error and '"count"' not in error
    assert "Fix: choose the connection in this task's connection input" in error
    assert error.index("There is no explicit reference") < error.index("Fix:")


def test_sts_unreachable(ado: AzureDevOps, job: AgentJob) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run = aws_job(job, ado, f"http://127.0.0.1:{port}").run()
    assert_failed_cleanly(run, "Could not reach AWS STS", "after 5 attempt(s)")
    assert run.text.count("AWS STS: attempt") == 4


def test_hostile_error_body_cannot_run_commands(ado: AzureDevOps, job: AgentJob) -> None:
    def hostile(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("400 Bad Request", [("Content-Type", "text/xml")])
        body = (
            "<ErrorResponse><Error><Code>InvalidIdentityToken</Code><Message>bad ##vso[task.setvariable variable=PWNED]1 "
            "and ##vso[task.complete result=Succeeded]ok\n##vso[task.prependpath]/evil</Message></Error></ErrorResponse>"
        )
        return [body.encode()]

    with Server(hostile) as server:
        run = aws_job(job, ado, server.url).run()
    assert_failed_cleanly(run, "InvalidIdentityToken")
    assert "PWNED" not in run.variables
    assert run.completions == [("Failed", run.completions[0][1])]
    parsed = [cmd for line in (run.stdout + run.stderr).splitlines() if (cmd := parse_line(line))]
    commands = {cmd.area_event for cmd in parsed}
    assert commands <= {"task.setsecret", "task.logissue", "task.complete", "task.uploadsummary"}, commands
    # the run summary's command is the task's own: its data is the summary file it wrote in the agent's temp folder
    assert all(
        c.data.startswith(job.env["AGENT_TEMPDIRECTORY"]) for c in parsed if c.area_event == "task.uploadsummary"
    )


def test_traceback_only_with_system_debug(ado: AzureDevOps, job: AgentJob) -> None:
    aws_job(job, ado, "https://sts.amazonaws.com", awsRegion="not-a-region")
    quiet = job.run()
    assert "Traceback" not in quiet.stdout + quiet.stderr
    loud = job.run(extra={"SYSTEM_DEBUG": "true"})
    assert loud.failed
    assert any(line.startswith("##[debug]Traceback") for line in loud.log)


def test_python_killed_is_reported(job: AgentJob, tmp_path: Path) -> None:
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\nkill -9 $$\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    run = job.run(extra={"OIDC_CREDENTIALS_PYTHON": str(fake)})
    assert run.returncode == 0 and run.failed
    assert "was stopped by signal SIGKILL" in run.errors[0]


def test_no_python_names_what_to_install(job: AgentJob) -> None:
    run = job.run(extra={"OIDC_CREDENTIALS_PYTHON": os.devnull + "-missing"})
    assert run.returncode == 0 and run.failed
    assert "UsePythonVersion@0" in run.errors[0] and "not found" in run.errors[0]


def test_aws_path_imports_nothing_heavy(ado: AzureDevOps, job: AgentJob, moto_url: str) -> None:
    """Heavy imports are lazy: the AWS path loads neither azure-identity, msal nor jinja2, and reads the token's
    claims without PyJWT (which would pull in cryptography: about 25 ms of a 150 ms start-up).

    jinja2 renders the run summary, after the variables are set; without Agent.TempDirectory there is no
    summary, so the exchange itself is shown to need none of them.
    """
    aws_job(job, ado, moto_url)
    job.env.pop("AGENT_TEMPDIRECTORY")
    probe = (
        "import atexit, runpy, sys\n"
        "atexit.register(lambda: sys.__stderr__.write('MODULES ' + ' '.join(sorted(sys.modules)) + '\\n'))\n"
        f"runpy.run_path({str(ROOT / 'task' / 'entry.py')!r}, run_name='__main__')\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], env=job.env, capture_output=True, text=True, check=False)
    run = TaskRun.from_output(proc.returncode, proc.stdout, proc.stderr)
    assert not run.failed and run.variables["AWS_ACCESS_KEY_ID"]
    modules = next(line for line in proc.stderr.splitlines() if line.startswith("MODULES ")).split()[1:]
    assert "oidc_credentials.providers.aws" in modules and "requests" in modules
    heavy = [m for m in modules if m.split(".")[0] in ("azure", "msal", "jinja2", "google", "jwt", "cryptography")]
    assert heavy == []
