"""Every HTTP call through a real authenticating proxy, with direct egress impossible (see tests/proxy.py).

The task runs as the agent runs it (``node task/launcher.js``) inside a network namespace whose only way
out is tinyproxy (Basic authentication). Each provider's whole flow goes through it: Azure DevOps (OIDC
token), AWS STS (moto, plain HTTP), Entra (azure-identity's own transport), Key Vault, Google STS and IAM,
Vault (real OpenBao) and Vault's post-job revocation, with the stand-ins' private CA as the custom CA
bundle (REQUESTS_CA_BUNDLE) verified inside the CONNECT tunnels. The proxy's own log proves which
requests went through it. Agent.ProxyBypassList (regular expressions, matched against the URL) and
NO_PROXY send a request direct, which here must fail: that is how the tests show they were honoured.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from tests.conftest import Vaulted
from tests.harness import LAUNCHER, ROOT, AgentJob, TaskRun, parse_line
from tests.helperjob import AwsHelperJob
from tests.openbao import OpenBao
from tests.proxy import Namespace, TinyProxy, ensure_tinyproxy
from tests.standins.ado import AzureDevOps
from tests.standins.entra import AzureWorld
from tests.test_aws_e2e import aws_job as aws_step
from tests.test_gcp import GcpWorld, gcp  # noqa: F401 - the Google Cloud stand-in fixture
from tests.test_helper import aws_job, expire_cache  # noqa: F401 - the refreshing AWS profile's job fixture
from tests.test_vault import make_world as vault_world

POST_JS = ROOT / "task" / "post.js"


@dataclass
class Egress:
    ns: Namespace
    proxy: TinyProxy

    def agent_proxy(self, *, password: str = "", bypass: list[str] | None = None) -> dict[str, str]:
        """The variables the agent gives a task when it is configured with a proxy (Agent.Proxy*)."""
        env = {
            "AGENT_PROXYURL": self.proxy.url,
            "AGENT_PROXYUSERNAME": self.proxy.user,
            "AGENT_PROXYPASSWORD": password or self.proxy.password,
        }
        if bypass is not None:
            env["AGENT_PROXYBYPASSLIST"] = json.dumps(bypass)
        return env

    def standard_proxy(self, **extra: str) -> dict[str, str]:
        url = f"http://{self.proxy.user}:{self.proxy.password}@{self.proxy.host}:{self.proxy.port}"
        return {"HTTPS_PROXY": url, "HTTP_PROXY": url, **extra}

    def run(self, job: AgentJob, env: dict[str, str], *, script: str = str(LAUNCHER)) -> TaskRun:
        proc = subprocess.run(
            self.ns.argv("node", script),
            env=dict(job.env, **env),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        return TaskRun.from_output(proc.returncode, proc.stdout, proc.stderr)

    def served(self, url: str) -> bool:
        """Whether the proxy served a request to ``url``'s host and port (CONNECT for https, GET/POST for http)."""
        parts = urlsplit(url)
        where = f"{parts.hostname}:{parts.port}"
        seen = self.proxy.requests_seen()
        return f": CONNECT {where} " in seen or f" http://{where}/" in seen


@pytest.fixture(scope="module")
def egress() -> Iterator[Egress]:
    binary, why = ensure_tinyproxy()
    if not binary:
        pytest.skip(why)
    ns = Namespace()
    try:
        ns.start()
    except (RuntimeError, OSError) as exc:
        ns.stop()
        pytest.skip(f"this machine refuses to create a network namespace (needs root): {exc}")
    proxy = TinyProxy(binary, ns.host_ip)
    try:
        proxy.start()
        yield Egress(ns, proxy)
    finally:
        proxy.stop()
        ns.stop()


def assert_password_never_printed(run: TaskRun, password: str) -> None:
    """The password appears only in the agent's masking command, and that comes before any other output."""
    lines = (run.stdout + "\n" + run.stderr).splitlines()
    for index, line in enumerate(lines):
        if password in line:
            cmd = parse_line(line)
            assert cmd is not None and cmd.area_event == "task.setsecret" and cmd.data == password, line
            assert all(parse_line(before) is not None for before in lines[:index]), lines[: index + 1]
    assert any((c := parse_line(line)) and c.area_event == "task.setsecret" and c.data == password for line in lines)
    assert password not in run.text


def ok(run: TaskRun) -> None:
    assert run.returncode == 0 and not run.failed, run.stdout + run.stderr
    assert run.unknown_commands == []


# ---------------------------------------------------------------------------------- the method itself


def test_a_direct_request_fails(egress: Egress, ado: AzureDevOps, job: AgentJob, moto_url: str) -> None:
    """Without a proxy the task cannot reach the stand-ins: the namespace has no direct way out."""
    run = egress.run(aws_step(job, ado, moto_url), {})
    assert run.failed and run.variables == {}
    assert len(run.errors) == 1 and "Could not reach Azure DevOps" in run.errors[0], run.errors
    assert "Connection refused" in run.errors[0] or "ConnectionError" in run.errors[0]
    assert not egress.served(ado.base_url)


# ------------------------------------------------------------------------- every provider, agent proxy


def test_aws_through_the_agent_proxy(egress: Egress, ado: AzureDevOps, job: AgentJob, moto_url: str) -> None:
    run = egress.run(aws_step(job, ado, moto_url, awsRegion="eu-west-1"), egress.agent_proxy())
    ok(run)
    assert run.variables["AWS_ACCESS_KEY_ID"]
    assert egress.served(ado.base_url) and egress.served(moto_url)
    assert_password_never_printed(run, egress.proxy.password)


def test_google_cloud_through_the_agent_proxy(egress: Egress, gcp: GcpWorld, job: AgentJob) -> None:  # noqa: F811
    run = egress.run(gcp.job(job), egress.agent_proxy())
    ok(run)
    assert run.variables["GOOGLE_OAUTH_ACCESS_TOKEN"]
    assert egress.served(gcp.ado.base_url) and egress.served(gcp.url)
    assert_password_never_printed(run, egress.proxy.password)


def test_azure_through_the_agent_proxy_including_azure_identitys_transport(
    egress: Egress, world: AzureWorld, job: AgentJob
) -> None:
    world.endpoint(job.inputs(provider="azure", azureConnection=world.connection_id))
    run = egress.run(job, egress.agent_proxy())
    ok(run)
    assert run.variables["AZURE_ACCESS_TOKEN"]
    assert egress.served(world.url)  # Entra's token endpoint, reached by azure-identity's own transport
    assert_password_never_printed(run, egress.proxy.password)


def test_key_vault_through_the_agent_proxy(egress: Egress, kv: Vaulted, job: AgentJob) -> None:
    kv.vault.add("db-password", "kv-value-1")
    run = egress.run(kv.job(job), egress.agent_proxy())
    ok(run)
    assert run.variables["db-password"] == "kv-value-1"
    assert egress.served(kv.vault.base_url) and egress.served(kv.world.url)
    assert_password_never_printed(run, egress.proxy.password)


def test_vault_and_its_post_job_revocation_through_the_agent_proxy(
    egress: Egress, openbao: OpenBao, ado: AzureDevOps, job: AgentJob
) -> None:
    world = vault_world(openbao, ado)
    run = egress.run(world.job(job), egress.agent_proxy())
    ok(run)
    token = run.variables["VAULT_TOKEN"]
    assert egress.served(openbao.addr)
    assert_password_never_printed(run, egress.proxy.password)
    post_env = dict(
        egress.agent_proxy(),
        VSTS_TASKVARIABLE_OIDC_CREDENTIALS_STATE=run.task_variables["OIDC_CREDENTIALS_STATE"],
        SECRET_VAULT_TOKEN=token,
    )
    done = egress.run(job, post_env, script=str(POST_JS))
    ok(done)
    assert "Revoked the job's Vault token" in done.text
    assert openbao.api("GET", "auth/token/lookup-self", token=token)[0] == 403
    assert_password_never_printed(done, egress.proxy.password)


# ------------------------------------------------------------------- standard variables, bypass, auth


def test_https_proxy_and_http_proxy_variables(egress: Egress, ado: AzureDevOps, job: AgentJob, moto_url: str) -> None:
    run = egress.run(aws_step(job, ado, moto_url), egress.standard_proxy())
    ok(run)
    assert egress.served(ado.base_url) and egress.served(moto_url)
    assert_password_never_printed(run, egress.proxy.password)


def test_no_proxy_sends_a_request_direct(egress: Egress, ado: AzureDevOps, job: AgentJob, moto_url: str) -> None:
    """NO_PROXY naming the stand-ins' address: requests go direct, which here cannot work. (NO_PROXY matches
    host names and addresses, not ports, in requests as in curl.)"""
    run = egress.run(aws_step(job, ado, moto_url), egress.standard_proxy(NO_PROXY="127.0.0.1"))
    assert run.failed and run.variables == {}, run.text
    assert len(run.errors) == 1 and "Could not reach Azure DevOps" in run.errors[0], run.errors
    assert not egress.served(ado.base_url)


def test_the_agent_bypass_list_is_regular_expressions(
    egress: Egress, ado: AzureDevOps, job: AgentJob, moto_url: str
) -> None:
    """Agent.ProxyBypassList holds regular expressions matched against the URL, as the agent's task library
    does: the one matching STS's port sends it direct (and fails here); Azure DevOps still goes through."""
    port = urlsplit(moto_url).port
    run = egress.run(aws_step(job, ado, moto_url), egress.agent_proxy(bypass=[rf"^http://127\.0\.0\.\d+:{port}"]))
    assert run.failed and run.variables == {}, run.text
    assert len(run.errors) == 1 and "Could not reach AWS STS" in run.errors[0], run.errors
    assert egress.served(ado.base_url)
    assert_password_never_printed(run, egress.proxy.password)


def test_a_wrong_proxy_password_is_explained_and_never_printed(
    egress: Egress, ado: AzureDevOps, job: AgentJob, moto_url: str
) -> None:
    wrong = "wrong-proxy-password-42"
    run = egress.run(aws_step(job, ado, moto_url), egress.agent_proxy(password=wrong))
    assert run.failed and run.variables == {}
    assert len(run.errors) == 1, run.errors
    assert run.errors[0].startswith(f"The proxy {egress.proxy.url} refused the request to Azure DevOps at "), run.errors
    assert "did not accept the proxy credentials" in run.errors[0] and "Agent.ProxyPassword" in run.errors[0]
    assert "attempt" not in run.text  # refused for good: not retried
    assert_password_never_printed(run, wrong)


def test_without_the_custom_ca_bundle_tls_through_the_proxy_is_refused(
    egress: Egress, ado: AzureDevOps, job: AgentJob, moto_url: str
) -> None:
    """The stand-ins' certificates come from a private CA: trusted only through REQUESTS_CA_BUNDLE."""
    aws_step(job, ado, moto_url)
    del job.env["REQUESTS_CA_BUNDLE"]
    run = egress.run(job, egress.agent_proxy())
    assert run.failed and run.variables == {}
    assert len(run.errors) == 1 and "TLS verification failed for Azure DevOps" in run.errors[0], run.errors
    assert "REQUESTS_CA_BUNDLE" in run.errors[0]


# ------------------------------------------------------------------------------ the credential helper


@pytest.mark.parametrize("how", ["agent proxy", "HTTPS_PROXY"])
def test_the_aws_credential_helper_refreshes_through_the_proxy(
    egress: Egress,
    aws_job: AwsHelperJob,  # noqa: F811
    how: str,
) -> None:
    """A later step's SDK runs the profile's credential_process after the cache expired: the fresh OIDC token
    and the STS exchange go through the proxy, and without it they cannot go anywhere."""
    aws_job.start()
    expire_cache(aws_job)
    argv = egress.ns.argv(*shlex.split(aws_job.credential_process))
    proxy = egress.agent_proxy() if how == "agent proxy" else egress.standard_proxy()

    def helper(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
        env = aws_job.step_env(**extra)
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)

    direct = helper({})
    assert direct.returncode != 0 and "Could not reach Azure DevOps" in direct.stderr, direct.stderr
    done = helper(proxy)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["AccessKeyId"]
    assert egress.served(aws_job.ado.base_url) and egress.served(aws_job.sts_url)
    assert egress.proxy.password not in done.stdout + done.stderr + direct.stdout + direct.stderr
