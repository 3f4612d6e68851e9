"""Google Cloud end to end: the launcher, the Azure DevOps stand-in and the GCP stand-in, then a later
step that uses what was emitted with google-auth (the credentials file) and the plain access token."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness import AgentJob, TaskRun, unregistered_secret_lines
from tests.standins.ado import AzureDevOps, Connection
from tests.standins.gcp import Google, WorkloadProvider
from tests.standins.server import LocalCA, Server

SA = "deployer@payments-prod.iam.gserviceaccount.com"
NUMBER = "123456789012"
PROVIDER = f"projects/{NUMBER}/locations/global/workloadIdentityPools/ado-pool/providers/ado-provider"


@dataclass
class GcpWorld:
    google: Google
    url: str
    provider: WorkloadProvider
    conn: Connection
    ado: AzureDevOps

    @property
    def principal(self) -> str:
        return self.provider.principal(self.ado.subject(self.conn))

    def job(self, job: AgentJob, *, service_account: str = SA, **inputs: str) -> AgentJob:
        job.inputs(provider="gcp", gcpConnection=self.conn.id, gcpIamCredentialsUrl=self.url, **inputs)
        params = {"workloadIdentityProvider": PROVIDER}
        if service_account:
            params["serviceAccount"] = service_account
        return job.endpoint(self.conn.id, url=self.url, scheme="None", params=params)


def make_world(ado: AzureDevOps, ca: LocalCA, universe: str = "googleapis.com") -> Iterator[GcpWorld]:
    google = Google(universe=universe)
    with Server(google, ca=ca) as server:
        google.base_url = server.url
        conn = ado.add_connection("gcp-prod")
        wp = google.add_provider(issuer=ado.issuer, keys=ado.public_pem, number=NUMBER)
        google.add_service_account(SA, members=[wp.principal(ado.subject(conn))])
        yield GcpWorld(google, server.url, wp, conn, ado)


@pytest.fixture
def gcp(ado: AzureDevOps, ca: LocalCA) -> Iterator[GcpWorld]:
    yield from make_world(ado, ca)


LATER_STEP = """
import json, os, sys
import google.auth, google.auth.transport.requests, requests
creds, project = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
creds.refresh(google.auth.transport.requests.Request())
bucket = os.environ["BUCKET_URL"]
via_file = requests.get(bucket, headers={"Authorization": "Bearer " + creds.token}, timeout=10).json()["caller"]
via_token = requests.get(bucket, headers={"Authorization": "Bearer " + os.environ["GOOGLE_OAUTH_ACCESS_TOKEN"]}, timeout=10).json()["caller"]
print(json.dumps({"project": project, "via_file": via_file, "via_token": via_token}))
"""


def later_step(run: TaskRun, world: GcpWorld, ca: LocalCA, tmp_path: Path) -> dict[str, Any]:
    """A script step: plain variables in its environment, the secret token mapped through env:."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "REQUESTS_CA_BUNDLE": ca.bundle}
    env.update({k: v for k, v in run.variables.items() if k not in run.secret_names})
    env["GOOGLE_OAUTH_ACCESS_TOKEN"] = run.variables["GOOGLE_OAUTH_ACCESS_TOKEN"]
    env["BUCKET_URL"] = world.url + "/storage/v1/b/artifacts/o"
    done = subprocess.run(
        [sys.executable, "-c", LATER_STEP], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def assert_clean(run: TaskRun) -> None:
    assert unregistered_secret_lines(run.stdout, list(run.secrets)) == []
    for secret in run.secrets:
        assert secret not in run.text


@pytest.mark.parametrize("refresh", [True, False], ids=["refreshing", "file-source"])
def test_impersonation_end_to_end(gcp: GcpWorld, job: AgentJob, ca: LocalCA, tmp_path: Path, refresh: bool) -> None:
    run = gcp.job(job, gcpTokenLifetime="1800", refreshCredentials=str(refresh).lower()).run()
    assert not run.failed, run.text
    assert run.secret_names == {"GOOGLE_OAUTH_ACCESS_TOKEN", "CLOUDSDK_AUTH_ACCESS_TOKEN"}
    assert run.variables["GOOGLE_OAUTH_ACCESS_TOKEN"] == run.variables["CLOUDSDK_AUTH_ACCESS_TOKEN"]
    assert run.variables["GOOGLE_CLOUD_PROJECT"] == run.variables["CLOUDSDK_CORE_PROJECT"] == "payments-prod"
    assert run.variables["GOOGLE_OAUTH_ACCESS_TOKEN_EXPIRY"].endswith("Z")
    path = Path(run.variables["GOOGLE_APPLICATION_CREDENTIALS"])
    assert run.variables["CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE"] == str(path)
    temp = Path(job.env["AGENT_TEMPDIRECTORY"])
    assert (path.parents[2] if refresh else path.parent.parent) == temp and stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["type"] == "external_account" and doc["audience"] == f"//iam.googleapis.com/{PROVIDER}"
    assert doc["service_account_impersonation"] == {"token_lifetime_seconds": 1800}
    assert doc["service_account_impersonation_url"].endswith(f"/serviceAccounts/{SA}:generateAccessToken")
    if refresh:  # google-auth runs the task's helper for a fresh OIDC token (an executable source)
        command = doc["credential_source"]["executable"]["command"].split()
        assert command[2:4] == ["helper", "gcp"] and Path(command[4]).parent == path.parent
        assert run.variables["GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES"] == "1"
    else:
        token_file = Path(doc["credential_source"]["file"])
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600 and not token_file.read_text().endswith("\n")
        assert "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES" not in run.variables
    assert f"{SA}" in run.text and "Impersonating" in run.text
    assert_clean(run)
    # what Google saw: the RFC 8693 form, then generateAccessToken with the federated token
    sts = next(r for r in gcp.google.requests if r["path"] == "/v1/token")
    assert "scope=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcloud-platform" in sts["body"]
    iam = next(r for r in gcp.google.requests if r["path"].endswith(":generateAccessToken"))
    assert json.loads(iam["body"])["lifetime"] == "1800s"

    seen = later_step(run, gcp, ca, tmp_path)
    assert seen == {"project": "payments-prod", "via_file": f"serviceAccount:{SA}", "via_token": f"serviceAccount:{SA}"}


def test_without_a_service_account_the_federated_token_is_the_output(
    gcp: GcpWorld, job: AgentJob, ca: LocalCA, tmp_path: Path
) -> None:
    run = gcp.job(job, service_account="", gcpProjectId="payments-prod").run()
    assert not run.failed, run.text
    assert "direct resource access" in run.text and gcp.principal in run.text
    doc = json.loads(Path(run.variables["GOOGLE_APPLICATION_CREDENTIALS"]).read_text())
    assert "service_account_impersonation_url" not in doc
    assert not any(r["path"].startswith("/v1/projects/") for r in gcp.google.requests)
    seen = later_step(run, gcp, ca, tmp_path)
    assert seen == {"project": "payments-prod", "via_file": gcp.principal, "via_token": gcp.principal}


def test_id_token_for_an_audience(gcp: GcpWorld, job: AgentJob) -> None:
    run = gcp.job(job, gcpIdTokenAudience="https://api.example.test", gcpIdTokenIncludeEmail="true").run()
    assert not run.failed, run.text
    assert "GOOGLE_ID_TOKEN" in run.secret_names
    claims = gcp.google.verify_id_token(run.variables["GOOGLE_ID_TOKEN"], "https://api.example.test")
    assert claims["email"] == SA


def test_a_non_default_universe(ado: AzureDevOps, ca: LocalCA, job: AgentJob, tmp_path: Path) -> None:
    for world in make_world(ado, ca, universe="local.test"):
        run = world.job(job, gcpUniverse="local.test").run()
        assert not run.failed, run.text
        doc = json.loads(Path(run.variables["GOOGLE_APPLICATION_CREDENTIALS"]).read_text())
        assert doc["universe_domain"] == "local.test" and doc["audience"] == f"//iam.local.test/{PROVIDER}"
        # AuthorizedSession: the client library's usual way, which honours the universe
        script = (
            "import google.auth, google.auth.transport.requests as r, os\n"
            "creds, _ = google.auth.default(scopes=['https://www.googleapis.com/auth/cloud-platform'])\n"
            "s = r.AuthorizedSession(creds)\n"
            "print(s.get(os.environ['BUCKET'], timeout=10).json()['caller'])\n"
        )
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "REQUESTS_CA_BUNDLE": ca.bundle,
            "GOOGLE_APPLICATION_CREDENTIALS": run.variables["GOOGLE_APPLICATION_CREDENTIALS"],
            "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES": run.variables["GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES"],
            "GOOGLE_CLOUD_PROJECT": "payments-prod",
            "BUCKET": world.url + "/storage/v1/b/artifacts/o",
        }
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"serviceAccount:{SA}"


# -- errors: pool admission (STS) -----------------------------------------------------------------


def failed(run: TaskRun) -> str:
    assert run.failed, run.text
    assert not run.variables, "nothing is set when the exchange fails"
    assert_clean(run)
    return run.errors[0]


def no_files(job: AgentJob) -> None:
    temp = Path(job.env["AGENT_TEMPDIRECTORY"])
    assert not list(temp.rglob("gcp-*")), "no file is left behind"


def test_unknown_provider_is_explained(gcp: GcpWorld, job: AgentJob) -> None:
    gcp.provider.enabled = False
    message = failed(gcp.job(job).run())
    assert "pool admission" in message and "invalid_target" in message
    assert "NUMBER" in message and "providers list" in message
    no_files(job)


def test_issuer_mismatch_is_explained(gcp: GcpWorld, job: AgentJob, ado: AzureDevOps) -> None:
    gcp.provider.issuer = "https://vstoken.dev.azure.com/someone-else"
    message = failed(gcp.job(job).run())
    assert "pool admission" in message and f"--issuer-uri={ado.issuer}" in message


def test_audience_mismatch_is_explained(gcp: GcpWorld, job: AgentJob) -> None:
    gcp.provider.allowed_audiences = ["https://iam.googleapis.com/" + PROVIDER]
    message = failed(gcp.job(job).run())
    assert "allowed audiences" in message and "--allowed-audiences=api://AzureADTokenExchange" in message


def test_attribute_condition_is_explained(gcp: GcpWorld, job: AgentJob, ado: AzureDevOps) -> None:
    gcp.provider.condition = lambda claims: claims["sub"].startswith("sc://other-org/")
    message = failed(gcp.job(job).run())
    assert "unauthorized_client" in message and "attribute condition" in message
    assert f"assertion.sub == '{ado.subject(gcp.conn)}'" in message


def test_entra_subject_over_127_bytes_is_detected_before_the_call(
    gcp: GcpWorld, job: AgentJob, ado: AzureDevOps
) -> None:
    conn = ado.add_connection("gcp-entra", issuer="entra", tenant_id="ff882432-09b0-437b-bd22-ca13c0037ded")
    gcp.provider.issuer = f"https://login.microsoftonline.com/{conn.tenant_id}/v2.0"
    gcp.provider.keys = lambda: ado.entra_key.private.public_key()  # Entra signs with its own key
    gcp.provider.allowed_audiences = ["fb60f99c-7a34-4190-8149-302f77469936"]
    gcp.conn = conn
    run = gcp.job(job).run()
    message = failed(run)
    warning = next(w for w in run.warnings if "127-byte" in w)
    assert run.text.index(warning[:40]) < run.text.index("##[error]")  # said before Google answered
    assert "google.subject=assertion.sub.split('/sc/')[1]" in message and "138 bytes" in message
    assert "exceeds the 127 bytes limit" in message  # Google's own words, then the fix

    # with the mapping fix in place the same connection works (the warning stays as a reminder)
    gcp.provider.mapping = lambda claims: claims["sub"].split("/sc/")[1]
    short = gcp.provider.principal(ado.subject(conn).split("/sc/")[1])
    gcp.google.accounts[SA].token_creators.add(short)
    job.env.pop("INPUT_GCPCONNECTION")
    second = gcp.job(job).run()
    assert not second.failed, second.text


# -- errors: impersonation (IAM Credentials) ------------------------------------------------------


def test_missing_impersonation_binding_names_the_exact_command(gcp: GcpWorld, job: AgentJob) -> None:
    gcp.google.accounts[SA].token_creators.clear()
    message = failed(gcp.job(job).run())
    assert "(impersonation)" in message and "iam.serviceAccounts.getAccessToken" in message
    assert (
        f"gcloud iam service-accounts add-iam-policy-binding {SA} --role roles/iam.workloadIdentityUser "
        f"--member {gcp.principal}"
    ) in message
    assert "pool admission" not in message
    no_files(job)


def test_unknown_service_account_is_explained(gcp: GcpWorld, job: AgentJob) -> None:
    message = failed(gcp.job(job, gcpServiceAccount="nobody@payments-prod.iam.gserviceaccount.com").run())
    assert "does not exist" in message and "nobody@payments-prod" in message


def test_lifetime_over_an_hour_is_explained(gcp: GcpWorld, job: AgentJob) -> None:
    message = failed(gcp.job(job, gcpTokenLifetime="7200").run())
    assert "7200 s" in message and "allowServiceAccountCredentialLifetimeExtension" in message


def test_disabled_credentials_api_is_explained(gcp: GcpWorld, job: AgentJob) -> None:
    gcp.google.disabled_apis.add("iamcredentials.googleapis.com")
    message = failed(gcp.job(job).run())
    assert "gcloud services enable iamcredentials.googleapis.com" in message


# -- configuration mistakes: refused before anything is sent --------------------------------------


@pytest.mark.parametrize(
    ("params", "inputs", "expected"),
    [
        ({"workloadIdentityProvider": ""}, {}, "has no 'workloadIdentityProvider'"),
        (
            {"workloadIdentityProvider": PROVIDER.replace(NUMBER, "payments-prod")},
            {},
            "project NUMBER",
        ),
        ({"workloadIdentityProvider": PROVIDER, "serviceAccount": "not-an-email"}, {}, "service account email"),
        ({"workloadIdentityProvider": PROVIDER}, {"gcpIdTokenAudience": "x"}, "needs a service account"),
        ({"workloadIdentityProvider": PROVIDER, "serviceAccount": SA}, {"gcpTokenLifetime": "60"}, "from 600 to 43200"),
        ({"workloadIdentityProvider": PROVIDER}, {"gcpIamCredentialsUrl": "http://iam.example.test"}, "https URL"),
        (
            {"workloadIdentityProvider": PROVIDER},
            {"gcpIamCredentialsUrl": "https://evil.example\\@iamcredentials.googleapis.com"},
            "plain https URL",
        ),
    ],
)
def test_configuration_mistakes_are_refused_before_sending(
    gcp: GcpWorld, job: AgentJob, params: dict[str, str], inputs: dict[str, str], expected: str
) -> None:
    job.inputs(provider="gcp", gcpConnection=gcp.conn.id, **{"gcpIamCredentialsUrl": gcp.url, **inputs})
    job.endpoint(gcp.conn.id, url=gcp.url, scheme="None", params=params)
    message = failed(job.run())
    assert expected in message
    assert gcp.google.requests == [] and not any(r["path"].endswith("/oidctoken") for r in gcp.ado.requests)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://sts.googleapis.com", "must be https"),
        ("https://evil.example\\@sts.googleapis.com", "backslash"),
        ("https://user@sts.googleapis.com", "user information"),
        ("https://sts.googleapis.com%2f@evil.example", "user information"),
        ("https://sts.googleapis.com\t.evil.example", "whitespace"),
    ],
)
def test_an_unsafe_sts_url_is_refused_before_sending(gcp: GcpWorld, job: AgentJob, url: str, reason: str) -> None:
    job.inputs(provider="gcp", gcpConnection=gcp.conn.id)
    job.endpoint(gcp.conn.id, url=url, scheme="None", params={"workloadIdentityProvider": PROVIDER})
    message = failed(job.run())
    assert "STS endpoint" in message and reason in message
    assert not any(r["path"].endswith("/oidctoken") for r in gcp.ado.requests), "not even the OIDC token was asked for"


@pytest.mark.skipif(shutil.which("gcloud") is None, reason="gcloud is not installed on this machine")
@pytest.mark.parametrize("service_account", [SA, ""], ids=["impersonated", "federated"])
def test_gcloud_uses_the_credentials_file(
    gcp: GcpWorld, job: AgentJob, ca: LocalCA, tmp_path: Path, service_account: str
) -> None:
    """gcloud, a real consumer: only the plain variable that points at the file, nothing mapped."""
    run = gcp.job(job, service_account=service_account).run()
    assert not run.failed, run.text
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "REQUESTS_CA_BUNDLE": ca.bundle,
        "CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE": run.variables["CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE"],
        # a plain variable too: the credentials file's executable source runs the task's helper
        "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES": run.variables["GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES"],
    }
    done = subprocess.run(
        ["gcloud", "auth", "print-access-token"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    issued = gcp.google.who(done.stdout.strip())
    assert issued is not None
    assert issued.principal == (f"serviceAccount:{SA}" if service_account else gcp.principal)
    # the secret CLOUDSDK_AUTH_ACCESS_TOKEN, mapped into a script, is what gcloud then uses
    env["CLOUDSDK_AUTH_ACCESS_TOKEN"] = run.variables["CLOUDSDK_AUTH_ACCESS_TOKEN"]
    del env["CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE"]
    done = subprocess.run(
        ["gcloud", "auth", "print-access-token"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == run.variables["GOOGLE_OAUTH_ACCESS_TOKEN"], done.stderr


# -- configuration, without the network ---------------------------------------------------------------


def configured(url: str = "", **inputs: str) -> Any:
    from oidc_credentials.agent import AgentEnv, Endpoint
    from oidc_credentials.providers import gcp

    env = {"AGENT_TEMPDIRECTORY": "/agent/_temp", **{"INPUT_" + k.upper(): v for k, v in inputs.items()}}
    params = {"WORKLOADIDENTITYPROVIDER": f"//iam.googleapis.com/{PROVIDER}"}  # the audience form is accepted
    return gcp.configure(AgentEnv(env), Endpoint("id", url, "None", params))


def test_configuration_defaults_and_forms() -> None:
    config = configured()
    assert config.provider == PROVIDER and config.audience == f"//iam.googleapis.com/{PROVIDER}"
    assert config.token_url == "https://sts.googleapis.com/v1/token"
    assert config.iam_url == "https://iamcredentials.googleapis.com"
    assert config.scopes == ("https://www.googleapis.com/auth/cloud-platform",) and config.lifetime == 3600
    assert configured("https://sts.googleapis.com/v1/token/").token_url == "https://sts.googleapis.com/v1/token"
    other = configured(gcpUniverse="s3nsapis.fr")
    assert (
        other.token_url == "https://sts.s3nsapis.fr/v1/token" and other.iam_url == "https://iamcredentials.s3nsapis.fr"
    )
    assert other.audience == f"//iam.s3nsapis.fr/{PROVIDER}"
    scoped = configured(
        gcpServiceAccount=SA, gcpScopes="devstorage.read_only\nhttps://www.googleapis.com/auth/bigquery"
    )
    assert scoped.scopes == (
        "https://www.googleapis.com/auth/devstorage.read_only",
        "https://www.googleapis.com/auth/bigquery",
    )
    assert scoped.project == "payments-prod"  # from the service account's email


def test_credentials_file_for_each_case() -> None:
    from oidc_credentials.providers import gcp

    direct = gcp.credentials_file(configured(), "/t/token.jwt")
    assert direct["credential_source"] == {"file": "/t/token.jwt"} and "universe_domain" not in direct
    assert direct["token_info_url"] == "https://sts.googleapis.com/v1/introspect"
    assert "service_account_impersonation_url" not in direct
    impersonated = gcp.credentials_file(configured(gcpServiceAccount=SA, gcpTokenLifetime="900"), "/t/token.jwt")
    assert impersonated["service_account_impersonation_url"] == (
        f"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{SA}:generateAccessToken"
    )
    assert impersonated["service_account_impersonation"] == {"token_lifetime_seconds": 900}
    assert gcp.credentials_file(configured(gcpUniverse="s3nsapis.fr"), "/t")["universe_domain"] == "s3nsapis.fr"
