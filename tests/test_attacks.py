"""Attacks on the shipped task, run through the real launcher against the stand-ins.

Each test tries one way to make a credential leave for the wrong host, to shadow what later steps
believe about the agent, to pick a tool's variable from a vault, to hold the task with an answer that
never ends, or to damage the log; and proves the attack failed: an attacker server on 127.0.0.1
received nothing, nothing was set, no file was left.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from oidc_credentials.secret_vars import agent_key
from werkzeug.wrappers import Request, Response

from tests.conftest import Vaulted, make_job
from tests.harness import AgentJob, TaskRun, files_left, unregistered_secret_lines
from tests.standins.ado import AzureDevOps
from tests.standins.entra import AzureWorld, Entra, wire
from tests.standins.keyvault import KeyVault
from tests.standins.server import LocalCA, Server


@dataclass
class Attacker:
    """Answers everything with 200 and records what it got: the tests assert it got nothing."""

    url: str = ""
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.requests.append({"path": request.full_path, "headers": dict(request.headers), "body": request.get_data()})
        return Response('{"oidcToken": "x", "value": []}', 200, {"Content-Type": "application/json"})(
            environ, start_response
        )


@pytest.fixture
def attacker(ca: LocalCA) -> Iterator[Attacker]:
    app = Attacker()
    with Server(app, ca=ca) as server:
        app.url, app.port = server.url, server.port
        yield app


def assert_refused(run: TaskRun, attacker: Attacker, *fragments: str, temp: Path | None = None) -> None:
    """Failed cleanly, the attacker got nothing, nothing set, no file left."""
    assert run.returncode == 0 and run.failed, run.stdout + run.stderr
    assert attacker.requests == [], attacker.requests
    assert run.variables == {} and run.output_variables == {}
    assert "Traceback" not in run.stdout + run.stderr
    for fragment in fragments:
        assert fragment in run.errors[0], run.errors[0]
    if temp is not None:
        assert files_left(temp) == []


# -- 1, 2: the job access token goes to the job's collection origin, exactly --------------------------------
def oidc_variants(ado: AzureDevOps, attacker: Attacker) -> dict[str, str]:
    path = ado.oidc_request_uri[len(ado.base_url) :]
    a, v = attacker.port, ado.base_url.rsplit(":", 1)[1]
    return {
        "backslash": f"https://127.0.0.1:{a}\\@127.0.0.1:{v}{path}",
        "userinfo": f"https://127.0.0.1:{v}@127.0.0.1:{a}{path}",
        "userinfo-other-way": f"https://127.0.0.1:{a}@127.0.0.1:{v}{path}",
        "percent-encoded-slash": f"https://127.0.0.1:{a}%2F@127.0.0.1:{v}{path}",
        "percent-encoded-backslash": f"https://127.0.0.1:{a}%5C@127.0.0.1:{v}{path}",
        "tab": f"https://127.0.0.1:{a}\t@127.0.0.1:{v}{path}",
        "newline": f"https://127.0.0.1:{a}\n@127.0.0.1:{v}{path}",
        "ipv6-mapped": f"https://[::ffff:127.0.0.1]:{a}{path}",
        "ipv6-loopback": f"https://[::1]:{a}{path}",
        "other-port": f"https://127.0.0.1:{a}{path}",
        "trailing-dot-other-port": f"https://127.0.0.1.:{a}{path}",
        "upper-case-scheme-other-port": f"HTTPS://127.0.0.1:{a}{path}",
        "plain-http": f"http://127.0.0.1:{a}{path}",
        "zero-width-space": f"https://127.0.0.1:{a}\u200b@127.0.0.1:{v}{path}",
        "decimal-ip": f"https://2130706433:{a}{path}",
    }


@pytest.mark.parametrize(
    "variant",
    [
        "backslash",
        "userinfo",
        "userinfo-other-way",
        "percent-encoded-slash",
        "percent-encoded-backslash",
        "tab",
        "newline",
        "ipv6-mapped",
        "ipv6-loopback",
        "other-port",
        "trailing-dot-other-port",
        "upper-case-scheme-other-port",
        "plain-http",
        "zero-width-space",
        "decimal-ip",
    ],
)
def test_oidc_request_uri_cannot_send_the_access_token_elsewhere(
    ado: AzureDevOps, job: AgentJob, attacker: Attacker, world: AzureWorld, variant: str
) -> None:
    world.endpoint(job.inputs(provider="azure", azureConnection=world.connection_id))
    job.env["SYSTEM_OIDCREQUESTURI"] = oidc_variants(ado, attacker)[variant]
    run = job.run()
    assert_refused(run, attacker, "Refusing to send the job access token")
    assert ado.requests == []  # nothing was sent anywhere
    assert ado.access_token not in run.stdout + run.stderr


def test_overriding_the_collection_uri_too_does_not_move_the_token(
    ado: AzureDevOps, job: AgentJob, attacker: Attacker, world: AzureWorld
) -> None:
    """A step can override ordinary variables; the SystemVssConnection endpoint decides."""
    world.endpoint(job.inputs(provider="azure", azureConnection=world.connection_id))
    job.env["SYSTEM_COLLECTIONURI"] = attacker.url + "/fabrikam/"
    job.env["SYSTEM_TEAMFOUNDATIONCOLLECTIONURI"] = attacker.url + "/fabrikam/"
    job.env["SYSTEM_OIDCREQUESTURI"] = attacker.url + ado.oidc_request_uri[len(ado.base_url) :]
    run = job.run()
    assert_refused(run, attacker, "Refusing to send the job access token", "SystemVssConnection")


def test_same_origin_spelled_differently_is_accepted(ado: AzureDevOps, job: AgentJob, world: AzureWorld) -> None:
    """Letter case does not make another host: no false refusal (trailing dots: test_oidc)."""
    world.endpoint(job.inputs(provider="azure", azureConnection=world.connection_id))
    port = ado.base_url.rsplit(":", 1)[1]
    job.env["SYSTEM_OIDCREQUESTURI"] = "HTTPS://LocalHost:" + port + ado.oidc_request_uri[len(ado.base_url) :]
    job.env["SYSTEM_COLLECTIONURI"] = job.env["ENDPOINT_URL_SYSTEMVSSCONNECTION"] = (
        f"https://localhost:{port}/fabrikam/"
    )
    run = job.run()
    assert not run.failed, run.text
    assert run.variables["AZURE_ACCESS_TOKEN"]


# -- 1: Key Vault nextLinks and the Entra authority ----------------------------------------------------------
@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("https://127.0.0.1:{a}\\@127.0.0.1:{v}", "backslash"),
        ("https://127.0.0.1:{v}@127.0.0.1:{a}", "user information"),
        ("https://127.0.0.1:{a}%40127.0.0.1:{v}", "does not follow"),
        ("https://127.0.0.1:{a}\t.127.0.0.1:{v}", "whitespace"),
        ("https://127.0.0.1:{a}", "another origin (127.0.0.1:{a})"),
        ("https://[::1]:{a}", "another origin ([::1]:{a})"),
        ("http://127.0.0.1:{a}", "plain http"),
        ("http://127.0.0.1:{v}", "plain http"),
    ],
)
def test_a_next_link_never_carries_the_vault_token_elsewhere(
    job: AgentJob, kv: Vaulted, attacker: Attacker, prefix: str, message: str
) -> None:
    for i in range(30):
        kv.vault.add(f"s-{i:02d}", f"value-{i}")
    real = kv.vault.base_url
    kv.vault.base_url = prefix.format(a=attacker.port, v=kv.port)  # the vault's links now point there
    run = kv.job(job, keyVault=real).run()
    assert_refused(
        run, attacker, "nextLink", message.format(a=attacker.port), temp=Path(job.env["AGENT_TEMPDIRECTORY"])
    )
    listings = [r for r in kv.vault.requests if r["path"] == "/secrets"]
    assert len(listings) == 1  # the first page, from the vault itself; its link was not followed


@pytest.mark.parametrize(
    "authority",
    ["https://127.0.0.1:{a}\\@127.0.0.1:{e}/", "https://127.0.0.1:{e}@127.0.0.1:{a}/", "http://evil.example/"],
)
def test_the_entra_authority_is_checked_like_every_destination(
    job: AgentJob, world: AzureWorld, attacker: Attacker, authority: str
) -> None:
    port = world.url.rsplit(":", 1)[1]
    job.inputs(provider="azure", azureConnection=world.connection_id)
    world.endpoint(job, activeDirectoryAuthority=authority.format(a=attacker.port, e=port))
    run = job.run()
    assert_refused(run, attacker, "activeDirectoryAuthority")


# -- 3: vault names never shadow the agent's variables -------------------------------------------------------
PROTECTED = [
    "System-CollectionUri",
    "SYSTEM-OIDCREQUESTURI",
    "system-accesstoken",
    "Agent-ProxyUrl",
    "Build-SourceBranch",
    "Release-ReleaseId",
    "Pipeline-Workspace",
    "Environment-Name",
    "Resources-Pipeline-Run",
    "Task-DisplayName",
    "TF-BUILD",
    "Common-TestResultsDirectory",
    "endpoint-url",
    "input-provider",
    "secret-key",
    "path",
    "securefile-name",
]


def test_no_vault_name_shadows_the_agents_namespaces(job: AgentJob, kv: Vaulted) -> None:
    for name in PROTECTED:
        kv.vault.add(name, "https://attacker.example/value")
    kv.vault.add("fine", "fine-value")
    run = kv.job(job, secretsEnvironmentAliases="true").run()
    assert not run.failed, run.text
    assert run.variables == {"fine": "fine-value"}
    for name in run.variables:
        assert not agent_key(name).startswith(("system_", "agent_", "build_", "release_", "pipeline_", "task_"))
    warning = next(w for w in run.warnings if w.startswith("Not set"))
    assert all(name in warning for name in PROTECTED)


@pytest.mark.parametrize("name", ["System-CollectionUri", "Agent-ProxyUrl", "TF-BUILD", "Task-DisplayName"])
def test_asking_for_a_protected_name_fails_and_sets_nothing(job: AgentJob, kv: Vaulted, name: str) -> None:
    kv.vault.add(name, "https://attacker.example/")
    kv.vault.add("fine", "x")
    run = kv.job(job, secretsFilter=f"{name},fine", secretsEnvironmentAliases="true").run()
    assert run.failed and run.variables == {}
    assert f"{name} cannot become pipeline variables" in run.errors[0]


# -- 4: vault names never choose a tool's variable ------------------------------------------------------------
def test_multiline_files_never_set_a_tools_variable(job: AgentJob, kv: Vaulted) -> None:
    for name in ("ssl-cert", "pip-config", "aws-config", "requests-ca-bundle", "kubeconfig"):
        kv.vault.add(name, "[global]\nindex-url = https://attacker.example/simple\n")
    run = kv.job(job, multilineSecrets="file", secretsEnvironmentAliases="true").run()
    assert not run.failed, run.text
    plain = {n for n in run.variables if n not in run.secret_names}
    assert plain == {
        "KEYVAULT_FILE_SSL_CERT",
        "KEYVAULT_FILE_PIP_CONFIG",
        "KEYVAULT_FILE_AWS_CONFIG",
        "KEYVAULT_FILE_REQUESTS_CA_BUNDLE",
        "KEYVAULT_FILE_KUBECONFIG",
    }
    for tool in ("SSL_CERT_FILE", "PIP_CONFIG_FILE", "AWS_CONFIG_FILE", "REQUESTS_CA_BUNDLE", "KUBECONFIG"):
        assert tool not in run.variables
    for path in (run.variables[n] for n in plain):
        assert Path(path).is_relative_to(job.env["AGENT_TEMPDIRECTORY"])


# -- 5: an answer that never ends -----------------------------------------------------------------------------
@pytest.fixture
def slow_ado(ca: LocalCA) -> Iterator[tuple[AzureDevOps, Server]]:
    app = AzureDevOps()
    with Server(app, ca=ca) as server:
        app.base_url = server.url
        yield app, server


def timed(job: AgentJob) -> tuple[TaskRun, float]:
    started = time.monotonic()
    run = job.run(timeout=90)
    return run, time.monotonic() - started


@pytest.mark.parametrize("body_only", [False, True], ids=["dribbled-headers", "dribbled-body"])
def test_a_dribbled_oidc_answer_cannot_hold_the_task(
    slow_ado: tuple[AzureDevOps, Server], ca: LocalCA, tmp_path: Path, body_only: bool
) -> None:
    ado, server = slow_ado
    entra = Entra(ca_bundle=ca.bundle)
    with Server(entra, ca=ca) as entra_server:
        entra.base_url = entra_server.url
        world = wire(entra, ado, url=entra_server.url)
        job = make_job(ado, ca, tmp_path)
        world.endpoint(job.inputs(provider="azure", azureConnection=world.connection_id, timeoutSeconds="10"))
        server.dribble(2.0, body_only=body_only)
        run, elapsed = timed(job)
    assert run.failed and run.variables == {}
    assert "Azure DevOps" in run.errors[0] and "timeoutSeconds" in run.errors[0], run.errors
    assert elapsed < 30, elapsed  # 10 s deadline plus start-up, never the minutes a dribble would take
    assert files_left(tmp_path / "agent-temp") == []


def test_a_dribbled_key_vault_answer_fails_naming_key_vault_and_leaves_no_file(
    world: AzureWorld, ca: LocalCA, job: AgentJob
) -> None:
    vault = KeyVault(world.entra, world.tenant.tenant_id, authority=world.url)
    vault.grant(world.app.client_id)
    vault.add("tls-key", "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----\n")
    with Server(vault, ca=ca) as server:
        vault.base_url = server.url
        world.endpoint(
            job.inputs(
                provider="keyvault",
                azureConnection=world.connection_id,
                keyVault=server.url,
                multilineSecrets="file",
                timeoutSeconds="10",
            )
        )
        server.dribble(2.0, body_only=True)
        run, elapsed = timed(job)
    assert run.failed and run.variables == {}
    assert "Azure Key Vault" in run.errors[0] and "timeoutSeconds" in run.errors[0], run.errors
    assert elapsed < 30, elapsed
    assert files_left(Path(job.env["AGENT_TEMPDIRECTORY"])) == []


def test_a_dribbled_entra_answer_fails_naming_entra(ado: AzureDevOps, ca: LocalCA, job: AgentJob) -> None:
    entra = Entra(ca_bundle=ca.bundle)
    with Server(entra, ca=ca) as server:
        entra.base_url = server.url
        world = wire(entra, ado, url=server.url)
        world.endpoint(job.inputs(provider="azure", azureConnection=world.connection_id, timeoutSeconds="10"))
        server.dribble(2.0)
        run, elapsed = timed(job)
    assert run.failed and run.variables == {}
    assert "Microsoft Entra ID" in run.errors[0] and "timeoutSeconds" in run.errors[0], run.errors
    assert elapsed < 30, elapsed


# -- 6: registration never damages the log --------------------------------------------------------------------
def test_trivial_fragments_of_a_multiline_secret_are_not_registered(job: AgentJob, kv: Vaulted) -> None:
    value = '{\n  "key": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",\n  "n": 1,\n "a"\n}\n \n-\n'
    kv.vault.add("json-key", value)
    run = kv.job(job, multilineSecrets="base64").run()
    assert not run.failed, run.text
    for trivial in ("{", "}", " ", "", "-", '"a"'):
        assert trivial not in run.secrets
    assert '"key": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",' in run.secrets
    assert unregistered_secret_lines(run.stdout, ["MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"]) == []


# -- 1: the OIDC token as a form field (AWS STS) ----------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{a}\\@127.0.0.1:{m}",
        "http://127.0.0.1:{m}@127.0.0.1:{a}",
        "http://127.0.0.1:{a}%2F@127.0.0.1:{m}",
        "http://127.0.0.1:{a}\t@127.0.0.1:{m}",
        "https://sts.amazonaws.com\\@127.0.0.1:{a}",
    ],
)
def test_the_sts_url_cannot_send_the_oidc_token_elsewhere(
    ado: AzureDevOps, job: AgentJob, moto_url: str, attacker: Attacker, url: str
) -> None:
    from tests.test_aws_e2e import aws_job

    sts = url.format(a=attacker.port, m=moto_url.rsplit(":", 1)[1])
    run = aws_job(job, ado, sts).run()
    assert_refused(run, attacker, "The AWS connection's URL must be an https STS endpoint")
    assert ado.issued == []  # not even an OIDC token was requested


@pytest.mark.parametrize("value", ["0", "5", "99999", "soon"])
def test_an_unusable_timeout_fails_before_anything_is_sent(
    ado: AzureDevOps, job: AgentJob, world: AzureWorld, value: str
) -> None:
    world.endpoint(job.inputs(provider="azure", azureConnection=world.connection_id, timeoutSeconds=value))
    run = job.run()
    assert run.failed and run.variables == {} and "Input 'timeoutSeconds'" in run.errors[0]
    assert ado.requests == []
