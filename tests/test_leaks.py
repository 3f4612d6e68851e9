"""No leak: everything the task writes (stdout, stderr, every file it leaves, the run summary and audit record
when there are any) is scanned, on the success and failure paths of every provider, with System.Debug on and
off, for every secret the scenario knows, raw and in the forms a tool prints (base64, URL-encoded,
JSON-escaped). Failure paths include hostile services that echo the request (credentials and all) back.

Only the commands the agent consumes without echoing them (``task.setsecret``, ``task.setvariable``,
``task.settaskvariable``) may hold a secret. The task never sets ``SYSTEM_UNSAFEALLOWMULTILINESECRET``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from tests.conftest import Vaulted
from tests.harness import AgentJob, TaskRun, files_left, parse_line
from tests.standins.ado import AzureDevOps
from tests.standins.entra import AzureWorld
from tests.standins.gcp import Google
from tests.standins.server import Fault, LocalCA, Server
from tests.standins.sts import Sts, keys_of

ROLE = "arn:aws:iam::123456789012:role/ado-deploy"
ECHO = Fault(status=400, body='{"error": "invalid_request", "error_description": "you sent: {request}"}')
CONSUMED = ("task.setsecret", "task.setvariable", "task.settaskvariable")
#: counted for the README's figures
SCANNED = {"runs": 0, "secrets": 0, "forms": 0}


def forms(secret: str) -> set[str]:
    raw = secret.encode()
    found = {
        secret,
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
    }
    return {f for f in found if len(f) >= 8}


def written(run: TaskRun, temp: Path) -> dict[str, str]:
    """Everything the task wrote that a person or tool may read: the log, and every file it left except the
    credential files it was asked to write (listed in its post-job state, private and removed after the job)."""
    log = [line for line in run.stdout.splitlines() if not ((c := parse_line(line)) and c.area_event in CONSUMED)]
    out = {"stdout": "\n".join(log), "stderr": run.stderr}
    intended: set[str] = set()
    for state in run.task_variables.values():
        if Path(state).is_file():
            intended |= set(json.loads(Path(state).read_text()).get("files", []))
    for path in temp.rglob("*"):
        if path.is_file() and str(path) not in intended:
            out[str(path)] = path.read_text(errors="replace")
    return out


def assert_no_leak(run: TaskRun, temp: Path, secrets: list[str]) -> None:
    assert "SYSTEM_UNSAFEALLOWMULTILINESECRET" not in run.stdout
    secrets = [s for s in dict.fromkeys(secrets) if s and len(s) >= 8]
    assert secrets, "the scenario knows no secret: the scan would prove nothing"
    texts = written(run, temp)
    leaks = [
        (where, secret[:6] + "…", form[:6] + "…")
        for secret in secrets
        for form in forms(secret)
        for where, text in texts.items()
        if form in text
    ]
    assert leaks == [], leaks
    SCANNED["runs"] += 1
    SCANNED["secrets"] += len(secrets)
    SCANNED["forms"] += sum(len(forms(s)) for s in secrets) * len(texts)


@dataclass
class Scenario:
    job: AgentJob
    ado: AzureDevOps
    #: secrets the scenario plants or a service issues, besides the job's and what the run registered
    planted: list[str] = field(default_factory=list)
    issued: Callable[[], list[str]] = list

    def known(self, run: TaskRun) -> list[str]:
        return [self.ado.access_token, *self.ado.issued, *self.planted, *self.issued(), *run.secrets]

    def run(self, debug: bool) -> TaskRun:
        self.job.env["SYSTEM_DEBUG"] = "true" if debug else "false"
        return self.job.run(timeout=120)


@pytest.fixture
def aws(ado: AzureDevOps, job: AgentJob) -> Iterator[tuple[Scenario, Server]]:
    app = Sts()
    app.trust(ado.issuer, keys_of(ado))
    app.add_role(ROLE, issuer_url=ado.issuer, sub="sc://fabrikam/Payments/aws-prod")
    with Server(app) as server:
        conn = ado.add_connection("aws-prod")
        job.inputs(provider="aws", awsConnection=conn.id)
        job.endpoint(conn.id, url=server.url, scheme="None", params={"roleArn": ROLE})
        yield Scenario(job, ado), server


@pytest.fixture
def azure(ado: AzureDevOps, job: AgentJob, world: AzureWorld) -> Scenario:
    world.endpoint(job.inputs(provider="azure", azureConnection=world.connection_id))
    return Scenario(job, ado, issued=lambda: [i["token"] for i in world.entra.issued])


PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n"
KV_VALUES = {"db-password": 'Pa55;w0rd%]"\\/+é', "api-key": "ak_live_0123456789abcdef", "tls-key": PEM}


@pytest.fixture
def keyvault(ado: AzureDevOps, job: AgentJob, kv: Vaulted) -> Scenario:
    for name, value in KV_VALUES.items():
        kv.vault.add(name, value)
    kv.job(job, multilineSecrets="base64")
    planted = [*KV_VALUES.values(), *[line for line in PEM.splitlines() if len(line) > 20]]
    return Scenario(job, ado, planted=planted, issued=lambda: [i["token"] for i in kv.world.entra.issued])


@pytest.fixture
def gcp(ado: AzureDevOps, ca: LocalCA, job: AgentJob) -> Iterator[tuple[Scenario, Server]]:
    google = Google()
    with Server(google, ca=ca) as server:
        google.base_url = server.url
        conn = ado.add_connection("gcp-prod")
        provider = "projects/123456789012/locations/global/workloadIdentityPools/ado-pool/providers/ado-provider"
        sa = "deployer@payments-prod.iam.gserviceaccount.com"
        wp = google.add_provider(issuer=ado.issuer, keys=ado.public_pem, number="123456789012")
        google.add_service_account(sa, members=[wp.principal(ado.subject(conn))])
        job.inputs(provider="gcp", gcpConnection=conn.id, gcpIamCredentialsUrl=server.url)
        job.endpoint(
            conn.id, url=server.url, scheme="None", params={"workloadIdentityProvider": provider, "serviceAccount": sa}
        )
        yield Scenario(job, ado, issued=lambda: list(google.tokens)), server


def temp_of(scenario: Scenario) -> Path:
    return Path(scenario.job.env["AGENT_TEMPDIRECTORY"])


DEBUG = pytest.mark.parametrize("debug", [False, True], ids=["quiet", "debug"])


@DEBUG
def test_aws(aws: tuple[Scenario, Server], debug: bool) -> None:
    scenario, _ = aws
    run = scenario.run(debug)
    assert not run.failed, run.text
    assert_no_leak(run, temp_of(scenario), scenario.known(run))


@DEBUG
@pytest.mark.parametrize("where", ["ado", "sts"])
def test_aws_echoing_service_fails_without_leaking(aws: tuple[Scenario, Server], debug: bool, where: str) -> None:
    scenario, sts = aws
    server = scenario.ado.server if where == "ado" else sts  # type: ignore[attr-defined]
    server.fail_next(1, ECHO)
    run = scenario.run(debug)
    assert run.failed and run.variables == {}
    assert_no_leak(run, temp_of(scenario), scenario.known(run))


@DEBUG
def test_azure(azure: Scenario, debug: bool) -> None:
    run = azure.run(debug)
    assert not run.failed, run.text
    assert_no_leak(run, temp_of(azure), azure.known(run))


@DEBUG
def test_azure_echoing_entra_fails_without_leaking(azure: Scenario, world: AzureWorld, debug: bool) -> None:
    world.entra.server.fail_next(3, ECHO)  # type: ignore[attr-defined]
    run = azure.run(debug)
    assert run.failed and run.variables == {}
    assert_no_leak(run, temp_of(azure), azure.known(run))


@DEBUG
def test_keyvault(keyvault: Scenario, debug: bool) -> None:
    run = keyvault.run(debug)
    assert not run.failed, run.text
    assert_no_leak(run, temp_of(keyvault), keyvault.known(run))


@DEBUG
def test_keyvault_echoing_vault_after_a_read_fails_without_leaking(
    keyvault: Scenario, kv: Vaulted, debug: bool
) -> None:
    """One value is already read when the vault turns hostile and echoes the bearer token back."""
    keyvault.job.env["INPUT_SECRETSFILTER"] = "api-key,db-password"
    kv.vault.server.fail_next(1, Fault(**{**vars(ECHO), "path": "/secrets/db-password"}))  # type: ignore[attr-defined]
    run = keyvault.run(debug)
    assert run.failed and run.variables == {}
    assert_no_leak(run, temp_of(keyvault), keyvault.known(run))


@DEBUG
def test_gcp(gcp: tuple[Scenario, Server], debug: bool) -> None:
    scenario, _ = gcp
    run = scenario.run(debug)
    assert not run.failed, run.text
    assert_no_leak(run, temp_of(scenario), scenario.known(run))


@DEBUG
@pytest.mark.parametrize("path", ["/v1/token", ":generateAccessToken"])
def test_gcp_echoing_google_fails_without_leaking(gcp: tuple[Scenario, Server], debug: bool, path: str) -> None:
    scenario, server = gcp
    server.fail_next(1, Fault(**{**vars(ECHO), "path": path}))
    run = scenario.run(debug)
    assert run.failed and run.variables == {}
    assert_no_leak(run, temp_of(scenario), scenario.known(run))
    assert files_left(temp_of(scenario)) == []


@pytest.fixture(scope="module", autouse=True)
def _report_figures() -> Iterator[None]:
    yield
    import sys

    sys.__stdout__.write(f"\nleak scan figures: {SCANNED}\n")


@DEBUG
@pytest.mark.parametrize("secrets", ["ok", "missing"])
def test_vault(openbao, ado: AzureDevOps, job: AgentJob, debug: bool, secrets: str) -> None:  # type: ignore[no-untyped-def]
    from tests.test_vault import API_KEY, DB_PASSWORD, SECRETS, make_world

    world = make_world(openbao, ado)
    world.job(
        job, secrets=SECRETS if secrets == "ok" else SECRETS + "\nsecret/data/ado/nothing-here db_password | NOPE"
    )
    scenario = Scenario(job, ado, planted=[DB_PASSWORD, API_KEY])
    run = scenario.run(debug)
    assert run.failed is (secrets == "missing"), run.text
    assert_no_leak(run, temp_of(scenario), scenario.known(run))
