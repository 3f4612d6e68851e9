"""The run summary and the audit record: their structure, and that neither ever holds a secret value.

The unit tests render a RunRecord directly. The end-to-end tests run the task through the launcher for every
provider, on its success path and its failure paths, read the summary the task uploaded and the audit record it
wrote, and look in both for every secret value the run saw (the job access token, each OIDC token, every
credential issued, every vault value), raw, JSON-escaped, URL-encoded and base64-encoded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import jsonschema
import pytest
from oidc_credentials import audit, summary
from oidc_credentials.emit import RunRecord
from oidc_credentials.errors import ConfigError, ExchangeError
from oidc_credentials.http import RequestEvent

from tests import summary_screenshot
from tests.harness import AgentJob, TaskRun, parse_line
from tests.standins.ado import AzureDevOps
from tests.standins.entra import AzureWorld
from tests.standins.keyvault import KeyVault
from tests.standins.server import LocalCA, Server
from tests.standins.sts import Sts, keys_of

ROLE = "arn:aws:iam::123456789012:role/ado-deploy"


# -- helpers ----------------------------------------------------------------------------------------------------
def html_of(markdown_text: str) -> str:
    import markdown

    return markdown.markdown(markdown_text, extensions=["tables", "fenced_code"])


def encodings(value: str) -> set[str]:
    """Every form a secret could take in a text file."""
    raw = value.encode("utf-8")
    forms = {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        quote(value, safe=""),
        quote_plus(value),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }
    return {f for f in forms if len(f) >= 8}


def leaks(text: str, secrets: list[str]) -> list[str]:
    return sorted({form for s in secrets for form in encodings(s) if form in text})


@dataclass
class Records:
    run: TaskRun
    summary: str
    audit: dict  # type: ignore[type-arg]
    audit_text: str


def records_of(run: TaskRun) -> Records:
    uploads = [
        cmd.data
        for line in run.stdout.splitlines()
        if (cmd := parse_line(line)) and cmd.area_event == "task.uploadsummary"
    ]
    assert len(uploads) == 1, run.stdout
    audits = [line.split("Audit record: ", 1)[1] for line in run.log if line.startswith("Audit record: ")]
    assert len(audits) == 1, run.text
    text = Path(audits[0]).read_text(encoding="utf-8")
    doc = json.loads(text)
    jsonschema.validate(doc, audit.schema())
    return Records(run, Path(uploads[0]).read_text(encoding="utf-8"), doc, text)


def assert_no_secret(records: Records, secrets: list[str]) -> None:
    everything = [s for s in secrets if s]
    assert everything, "the test knows no secret to look for"
    assert leaks(records.summary, everything) == []
    assert leaks(records.audit_text, everything) == []


def test_the_leak_check_finds_every_form() -> None:
    secret = 'Pa55;w0rd%]/+x"é?>'
    forms = encodings(secret)
    assert len(forms) >= 6, forms
    for form in forms:
        assert form in leaks(f"before {form} after", [secret])
    assert leaks("nothing here", [secret]) == []


def record(**values: object) -> RunRecord:
    rec = RunRecord(version="1.0.0", provider="aws", connection_id="0f0e0d0c-0b0a-4909-8807-060504030201")
    for key, value in values.items():
        setattr(rec, key, value)
    return rec


# -- the summary, as Markdown and as a browser shows it ---------------------------------------------------------
def test_success_summary_structure() -> None:
    rec = summary_screenshot.success_record()  # the record the README's picture shows
    html = html_of(summary.render(rec))
    assert html.startswith("<h3>OidcCredentials AWS: credentials issued</h3>")
    assert "<th>Provider</th>" in html and "<th>aws</th>" in html
    rows = dict(re.findall(r"<tr>\s*<td>(.*?)</td>\s*<td>(.*?)</td>\s*</tr>", html, re.S))
    assert rows["Identity"] == "arn:aws:sts::123456789012:assumed-role/ado-deploy/ado-4242-1"
    assert rows["Expires"] == "2026-11-30T03:14:07Z"
    assert rows["Token subject (<code>sub</code>)"] == "<code>sc://fabrikam/Payments/aws-prod</code>"
    assert rows["Token id (<code>jti</code>)"] == "<code>9b2e4f60-3c1d-4a7b-8e5f-0d6c2a1b9e84</code>"
    assert rows["Secret variables"].count("<code>") == 3
    assert rows["Timings"] == "configure 0.004 s · exchange 0.212 s · emit 0.002 s"
    assert "What went wrong" not in html


def test_failure_summary_explains_with_the_catalogue() -> None:
    rec = record(token_sub="sc://fabrikam/Payments/aws-prod", timings={"configure": 0.01, "exchange": 0.2})
    rec.failed_phase = "exchange"
    rec.fail(
        ExchangeError(
            'AWS STS AssumeRoleWithWebIdentity failed: AccessDenied.\nThe role does not trust this token.\n{\n  "Effect": "Allow"\n}',
            service="AWS STS",
            status=403,
            code="AccessDenied",
        )
    )
    html = html_of(summary.render(rec))
    assert html.startswith("<h3>OidcCredentials AWS: failed</h3>")
    assert "<h4>What went wrong</h4>" in html
    assert "AWS STS refused with <code>AccessDenied</code> (HTTP 403), in the exchange phase." in html
    assert "A retry will not help until something is changed." in html
    assert "<strong>Fix:</strong> The trust policy must name" in html
    block = re.search(r'<pre><code class="language-text">(.*?)</code></pre>', html, re.S)
    assert block and "The role does not trust this token." in block.group(1) and "&quot;Effect&quot;" in block.group(1)
    assert "<td>Identity</td>" not in html


def test_hostile_values_cannot_break_the_markdown() -> None:
    rec = record(
        identity="a | b ` c <script>alert(1)</script> ##vso[task.complete]",
        token_sub="sc://o/p/``weird|conn``",
        secret_names=["db-password"],
    )
    rec.fail(ConfigError("bad ```\n# heading\n<img src=x onerror=alert(1)>"))
    text = summary.render(rec)
    html = html_of(text)
    assert "<script>" not in html and "<img" not in html
    assert "<h1>" not in html  # the explanation stays inside its fence
    rows = re.findall(r"<tr>", html)
    assert len(rows) == len([line for line in text.splitlines() if line.startswith("| ")])  # no row split by a |
    assert all(line.count(" | ") == 1 for line in text.splitlines() if line.startswith("| "))
    assert "weird" in html and "&lt;img src=x" in html


# -- the audit record ---------------------------------------------------------------------------------------------
def test_audit_document_is_valid_and_hashes_tokens() -> None:
    from oidc_credentials.agent import AgentEnv
    from oidc_credentials.oidc import Claims

    env = AgentEnv(
        {
            "SYSTEM_COLLECTIONURI": "https://dev.azure.com/fabrikam/",
            "SYSTEM_TEAMPROJECT": "Payments",
            "SYSTEM_DEFINITIONID": "12",
            "BUILD_BUILDID": "4242",
            "SYSTEM_JOBATTEMPT": "2",
        }
    )
    rec = record()
    trail = audit.AuditTrail(rec, env, "1.0.0")
    assert trail.user_agent == "OidcCredentials/1.0.0 (azure-pipelines; run fabrikam/4242/2)"
    assert trail.headers_for("https://sts.googleapis.com/v1/token", "Google STS")["X-Goog-Request-Reason"].startswith(
        "Azure Pipelines https://dev.azure.com/fabrikam/ project Payments definition 12 build 4242"
    )
    assert "X-Goog-Request-Reason" not in trail.headers_for("https://sts.amazonaws.com/", "AWS STS")
    assert "X-Goog-Request-Reason" in trail.headers_for("https://127.0.0.1:8443/v1/token", "Google STS")
    trail.on_token("header.payload.signature")
    trail.on_claims(Claims(iss="i", sub="s", aud="a", exp=1, iat=1, jti="j"))
    trail.on_request(RequestEvent("AWS STS", "POST", "https://sts.amazonaws.com/", 200, 0.0123, 1))
    doc = audit.document(rec, lambda text: text)
    jsonschema.validate(doc, audit.schema())
    assert doc["tokens"][0]["sha256"] == hashlib.sha256(b"header.payload.signature").hexdigest()
    assert doc["requests"] == [
        {
            "service": "AWS STS",
            "method": "POST",
            "url": "https://sts.amazonaws.com/",
            "status": 200,
            "duration_ms": 12.3,
            "attempt": 1,
        }
    ]
    assert doc["pipeline"] == {
        "organization_url": "https://dev.azure.com/fabrikam/",
        "project": "Payments",
        "definition_id": "12",
        "build_id": "4242",
        "job_attempt": "2",
    }
    assert doc["outcome"] == "succeeded" and doc["error"] is None


def test_audit_schema_refuses_a_token_field() -> None:
    doc = audit.document(record(), lambda text: text)
    doc["tokens"] = [{"sha256": "", "iss": "", "sub": "", "aud": "", "jti": "", "iat": "", "exp": "", "token": "x"}]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, audit.schema())


def test_audit_strings_are_redacted() -> None:
    rec = record(identity="user s3cr3t-value here")
    doc = audit.document(rec, lambda text: text.replace("s3cr3t-value", "***"))
    assert doc["identity"] == "user *** here"


# -- end to end, every provider, success and failure ------------------------------------------------------------
def aws_job(job: AgentJob, ado: AzureDevOps, sts_url: str, **inputs: str) -> AgentJob:
    conn = ado.add_connection("aws-prod")
    job.inputs(provider="aws", awsConnection=conn.id, **inputs)
    return job.endpoint(conn.id, url=sts_url, scheme="None", params={"roleArn": ROLE})


def base_secrets(run: TaskRun, ado: AzureDevOps) -> list[str]:
    return [*run.secrets, *ado.issued, ado.access_token]


def test_aws_success(ado: AzureDevOps, job: AgentJob, moto_url: str) -> None:
    run = aws_job(job, ado, moto_url, awsRegion="eu-west-1", publishAuditRecord="true").run()
    assert not run.failed, run.text
    rec = records_of(run)
    assert_no_secret(rec, base_secrets(run, ado) + [run.variables[n] for n in run.secret_names])
    assert "assumed-role/ado-deploy/ado-4242-1" in rec.summary and "`AWS_SECRET_ACCESS_KEY`" in rec.summary
    doc = rec.audit
    assert doc["outcome"] == "succeeded" and doc["provider"] == "aws"
    assert doc["correlation"]["aws_session_name"] == "ado-4242-1"
    assert [t["sub"] for t in doc["tokens"]] == ["sc://fabrikam/Payments/aws-prod"]
    assert len(doc["tokens"][0]["sha256"]) == 64
    assert [(r["service"], r["status"]) for r in doc["requests"]] == [("Azure DevOps", 200), ("AWS STS", 200)]
    assert all("?" not in r["url"] for r in doc["requests"])
    assert doc["pipeline"]["build_id"] == "4242" and doc["pipeline"]["job_attempt"] == "1"
    # the user agent the clouds see carries the run id
    assert (
        ado.requests[-1]["headers"]["User-Agent"].startswith("OidcCredentials/")
        and "/4242/1)" in (ado.requests[-1]["headers"]["User-Agent"])
    )
    uploads = [
        cmd for line in run.stdout.splitlines() if (cmd := parse_line(line)) and cmd.area_event == "artifact.upload"
    ]
    assert len(uploads) == 1 and uploads[0].properties["artifactname"].startswith("oidc-credentials-audit-")
    assert Path(uploads[0].data).is_file() and run.unknown_commands == []


def test_every_attempt_is_in_the_audit_record(ado: AzureDevOps, job: AgentJob, moto_url: str) -> None:
    ado.fail_next(1, 503)
    run = aws_job(job, ado, moto_url).run()
    assert not run.failed, run.text
    requests = records_of(run).audit["requests"]
    assert [(r["service"], r["status"], r["attempt"]) for r in requests] == [
        ("Azure DevOps", 503, 1),
        ("Azure DevOps", 200, 2),
        ("AWS STS", 200, 1),
    ]
    assert all(r["duration_ms"] >= 0 for r in requests)


def test_aws_access_denied(ado: AzureDevOps, job: AgentJob) -> None:
    app = Sts()
    app.trust(ado.issuer, keys_of(ado))
    app.add_role(ROLE, issuer_url=ado.issuer, sub="sc://fabrikam/Payments/aws-PROD")
    with Server(app) as server:
        run = aws_job(job, ado, server.url).run()
    assert run.failed
    rec = records_of(run)
    assert_no_secret(rec, base_secrets(run, ado))
    error = rec.audit["error"]
    assert (error["phase"], error["service"], error["code"], error["status"]) == (
        "exchange",
        "AWS STS",
        "AccessDenied",
        403,
    )
    assert error["retryable"] is False and error["fix"].startswith("The trust policy")
    assert "AccessDenied" in rec.summary and "What went wrong" in rec.summary


def test_aws_azure_devops_refusal(ado: AzureDevOps, job: AgentJob, moto_url: str) -> None:
    ado.fail_next(
        1, 400, '{"message": "There is no explicit reference to service connection aws-prod from current stage."}'
    )
    run = aws_job(job, ado, moto_url).run()
    assert run.failed
    rec = records_of(run)
    assert_no_secret(rec, base_secrets(run, ado))
    assert rec.audit["error"]["code"] == "NoExplicitReference" and rec.audit["tokens"] == []
    assert "connection input" in rec.summary


def test_a_disabled_connection_is_explained_from_the_catalogue(ado: AzureDevOps, job: AgentJob, moto_url: str) -> None:
    ado.fail_next(1, 400, '{"message": "Service connection aws-prod is disabled and cannot be used."}')
    run = aws_job(job, ado, moto_url).run()
    assert run.failed and "The service connection is disabled." in run.errors[0]
    assert "Fix: Enable it: Project settings > Service connections" in run.errors[0]
    rec = records_of(run)
    assert rec.audit["error"]["code"] == "ConnectionDisabled" and rec.audit["error"]["retryable"] is False
    assert "ConnectionDisabled" in rec.summary


def test_aws_preflight_refusal_sends_nothing_to_the_cloud(ado: AzureDevOps, job: AgentJob, moto_url: str) -> None:
    run = aws_job(job, ado, moto_url, expectSubject="sc://fabrikam/payments/aws-prod").run()
    assert run.failed and "only in letter case" in run.errors[0] and "character 15 is 'P'" in run.errors[0]
    rec = records_of(run)
    assert_no_secret(rec, base_secrets(run, ado))
    assert [r["service"] for r in rec.audit["requests"]] == ["Azure DevOps"]
    assert rec.audit["error"]["kind"] == "configuration" and rec.audit["error"]["phase"] == "exchange"


def test_azure_success(job: AgentJob, world: AzureWorld, ado: AzureDevOps) -> None:
    world.endpoint(job.inputs(provider="azure", azureConnection=world.connection_id))
    run = job.run()
    assert not run.failed, run.text
    rec = records_of(run)
    assert_no_secret(rec, base_secrets(run, ado) + [i["token"] for i in world.entra.issued])
    assert "`AZURE_ACCESS_TOKEN`" in rec.summary and world.app.client_id in rec.summary
    assert ("Microsoft Entra ID", 200) in [(r["service"], r["status"]) for r in rec.audit["requests"]]
    token_requests = [r for r in world.entra.requests if r["path"].endswith("/token")]
    assert token_requests and all(
        r["headers"]["User-Agent"] == rec.audit["correlation"]["user_agent"] for r in token_requests
    )
    # the Azure DevOps issuer retires for Azure connections: the run warns and keeps the notice
    warning = next(w for w in run.warnings if "2027-07-01" in w)
    assert (
        f"oidc-credentials trust azure --org {ado.collection_uri} --project " in warning
        and f"--connection azure-prod --dual-issuer --format az --app-id {world.app.client_id}" in warning
        and f"oidc-credentials doctor --org {ado.collection_uri} --project" in warning
    ), warning
    assert rec.audit["notices"] and "2027-07-01" in rec.summary


def test_azure_refused(job: AgentJob, world: AzureWorld, ado: AzureDevOps) -> None:
    world.app.federated.clear()
    world.entra.trust(world.app, issuer=world.issuer, subject=world.subject + "-renamed")
    world.endpoint(job.inputs(provider="azure", azureConnection=world.connection_id))
    run = job.run()
    assert run.failed
    rec = records_of(run)
    assert_no_secret(rec, base_secrets(run, ado))
    assert rec.audit["error"]["code"] == "AADSTS700213" and rec.audit["error"]["retryable"] is False


@pytest.fixture
def vault(world: AzureWorld, ca: LocalCA) -> Iterator[KeyVault]:
    kv = KeyVault(world.entra, world.tenant.tenant_id, authority=world.url)
    with Server(kv, ca=ca) as server:
        kv.base_url = server.url
        yield kv


VALUES = {
    "db-password": "Pa55;w0rd%]-db-0001",
    "api-key": "ak_live_4242424242",
    "tls-cert": "-----BEGIN CERT-----\nMIIBsecretline1\nMIIBsecretline2\n-----END CERT-----",
}


def keyvault_secrets(run: TaskRun, ado: AzureDevOps, world: AzureWorld) -> list[str]:
    lines = [line for value in VALUES.values() for line in value.splitlines() if len(line) >= 8]
    return base_secrets(run, ado) + [i["token"] for i in world.entra.issued] + list(VALUES.values()) + lines


@pytest.mark.parametrize("multiline", ["base64", "file", "fail"])
def test_keyvault_paths(job: AgentJob, world: AzureWorld, ado: AzureDevOps, vault: KeyVault, multiline: str) -> None:
    vault.grant(world.app.client_id)
    for name, value in VALUES.items():
        vault.add(name, value)
    world.endpoint(
        job.inputs(
            provider="keyvault",
            azureConnection=world.connection_id,
            keyVault=vault.base_url,
            multilineSecrets=multiline,
        )
    )
    run = job.run()
    assert run.failed == (multiline == "fail"), run.text
    rec = records_of(run)
    assert_no_secret(rec, keyvault_secrets(run, ado, world))
    if not run.failed:
        assert "`db-password`" in rec.summary and "`api-key`" in rec.summary
        assert "db-password" in rec.audit["secret_names"]
        assert any(r["service"] == "Azure Key Vault" and r["status"] == 200 for r in rec.audit["requests"])


def test_keyvault_forbidden(job: AgentJob, world: AzureWorld, ado: AzureDevOps, vault: KeyVault) -> None:
    for name, value in VALUES.items():
        vault.add(name, value)
    world.endpoint(job.inputs(provider="keyvault", azureConnection=world.connection_id, keyVault=vault.base_url))
    run = job.run()
    assert run.failed
    rec = records_of(run)
    assert_no_secret(rec, keyvault_secrets(run, ado, world))
    assert rec.audit["error"]["code"] == "ForbiddenByRbac" and "Key Vault Secrets User" in rec.summary


def test_readme_documents_every_audit_field() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Run summary and audit record") : readme.index("## Error catalogue")]
    for name in audit.schema()["properties"]:
        assert f"| `{name}` |" in section, name
    assert "docs/summary-success.png" in section and "docs/summary-failure.png" in section
    for picture in ("summary-success.png", "summary-failure.png"):
        assert (Path(__file__).resolve().parent.parent / "docs" / picture).is_file()


def test_entra_transient_refusals_are_retried_with_a_fresh_token(
    job: AgentJob, world: AzureWorld, ado: AzureDevOps
) -> None:
    world.entra.queue_error(400, 50166, "invalid_request", "AADSTS50166: Request to External OIDC endpoint failed.")
    world.entra.queue_error(400, 90061, "invalid_request", "AADSTS90061: Request to External OIDC endpoint failed.")
    world.endpoint(job.inputs(provider="azure", azureConnection=world.connection_id))
    run = job.run()
    assert not run.failed, run.text
    assert len(ado.issued) == 3  # a fresh Azure DevOps token for each attempt
    assert [w for w in run.warnings if "which passes; retrying with a fresh token" in w] == [
        "Microsoft Entra ID answered AADSTS50166, which passes; retrying with a fresh token in 0.5 s.",
        "Microsoft Entra ID answered AADSTS90061, which passes; retrying with a fresh token in 1.0 s.",
    ]
    statuses = [r["status"] for r in records_of(run).audit["requests"] if r["service"] == "Microsoft Entra ID"]
    assert statuses[-3:] == [400, 400, 200]


def test_entra_codes_explained_only_by_the_catalogue(job: AgentJob, world: AzureWorld, ado: AzureDevOps) -> None:
    world.entra.queue_error(
        400,
        7000229,
        "invalid_client",
        "AADSTS7000229: The client application is missing service principal in the tenant.",
    )
    world.endpoint(job.inputs(provider="azure", azureConnection=world.connection_id))
    run = job.run()
    assert run.failed and len(ado.issued) == 1  # not retried
    assert "The app has no service principal in the tenant. Fix: Create it: az ad sp create" in run.errors[0]
    assert records_of(run).audit["error"]["code"] == "AADSTS7000229"


def fake_run(monkeypatch: pytest.MonkeyPatch, **extra: str) -> TaskRun:
    """The fake provider's "ok" run in process (no cloud), with ``extra`` in its environment."""
    import io

    from oidc_credentials import __main__ as entry
    from oidc_credentials.providers import PROVIDERS

    from tests.fake_provider import fake_env

    monkeypatch.setitem(PROVIDERS, "fake", "tests.fake_provider")
    out, err = io.StringIO(), io.StringIO()
    code = entry.main(fake_env("ok", **extra), out, err)
    return TaskRun.from_output(code, out.getvalue(), err.getvalue())


def test_a_summary_that_cannot_be_written_never_changes_the_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x", encoding="utf-8")
    run = fake_run(monkeypatch, AGENT_TEMPDIRECTORY=str(blocker))
    assert run.returncode == 0 and not run.failed and run.variables["FAKE_SECRET"] == "s3cr3t-value"
    assert any(w.startswith("Could not write the run summary") for w in run.warnings)
    assert any(w.startswith("Could not write the audit record") for w in run.warnings)
    assert "task.uploadsummary" not in run.stdout


def test_no_temp_folder_no_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    run = fake_run(monkeypatch)
    assert run.returncode == 0 and "task.uploadsummary" not in run.stdout and "Audit record" not in run.text


# -- Google Cloud and Vault: the same proof ---------------------------------------------------------------------
@pytest.fixture
def gcp(ado: AzureDevOps, ca: LocalCA) -> Iterator[Any]:
    from tests.test_gcp import make_world

    yield from make_world(ado, ca)


def gcp_secrets(run: TaskRun, ado: AzureDevOps, world: Any) -> list[str]:
    return base_secrets(run, ado) + list(world.google.tokens)


@pytest.mark.parametrize("path", ["success", "issuer", "binding", "lifetime"])
def test_gcp_paths(gcp: Any, job: AgentJob, ado: AzureDevOps, path: str) -> None:
    from tests.test_gcp import SA

    inputs: dict[str, str] = {}
    if path == "issuer":
        gcp.provider.issuer = "https://vstoken.dev.azure.com/someone-else"
    elif path == "binding":
        gcp.google.accounts[SA].token_creators.clear()
    elif path == "lifetime":
        inputs["gcpTokenLifetime"] = "7200"
    run = gcp.job(job, **inputs).run()
    assert run.failed == (path != "success"), run.text
    rec = records_of(run)
    assert_no_secret(rec, gcp_secrets(run, ado, gcp))
    services = {r["service"] for r in rec.audit["requests"]}
    assert "Google STS" in services
    if path == "success":
        assert SA in rec.summary and "`GOOGLE_OAUTH_ACCESS_TOKEN`" in rec.summary
        assert "Google IAM Credentials" in services
    else:
        error = rec.audit["error"]
        expected = {"issuer": "invalid_grant", "binding": "PERMISSION_DENIED", "lifetime": "INVALID_ARGUMENT"}[path]
        assert error["code"] == expected and error["retryable"] is False and error["fix"], error


def test_gcp_requests_carry_the_request_reason(gcp: Any, job: AgentJob) -> None:
    run = gcp.job(job).run()
    assert not run.failed, run.text
    reasons = {r["headers"].get("X-Goog-Request-Reason") for r in gcp.google.requests if "headers" in r}
    assert reasons == {records_of(run).audit["correlation"]["gcp_request_reason"]}


@pytest.fixture
def vw(openbao: Any, ado: AzureDevOps) -> Any:
    from tests.test_vault import make_world

    return make_world(openbao, ado)


@pytest.mark.parametrize("path", ["success", "role", "audience", "subject"])
def test_vault_paths(vw: Any, job: AgentJob, ado: AzureDevOps, path: str) -> None:
    from tests.test_vault import API_KEY, DB_PASSWORD, ROLE

    if path == "role":
        vw.bao.ok("DELETE", f"auth/jwt/role/{ROLE}")
    elif path == "audience":
        vw.role(bound_audiences=["https://vault.example.com"])
    elif path == "subject":
        vw.role(bound_subject="sc://fabrikam/Payments/another-connection")
    run = vw.job(job).run()
    assert run.failed == (path != "success"), run.text
    rec = records_of(run)
    assert_no_secret(rec, [*base_secrets(run, ado), DB_PASSWORD, API_KEY, "app-user-7"])
    if path == "success":
        assert "`VAULT_TOKEN`" in rec.summary and "`DB_PASSWORD`" in rec.summary
        assert any(r["service"] == "Vault" and r["status"] == 200 for r in rec.audit["requests"])
    else:
        expected = {"role": "RoleNotFound", "audience": "AudienceMismatch", "subject": "ClaimMismatch"}[path]
        assert rec.audit["error"]["code"] == expected and rec.audit["error"]["retryable"] is False
