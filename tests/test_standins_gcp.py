"""Fidelity of the GCP stand-in, checked with Google's own client library: google-auth (>= 2.17, which
accepts non-googleapis.com URLs) given an external_account file obtains tokens from the stand-in, and
reports the stand-in's refusals the way it reports Google's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.standins.ado import AzureDevOps
from tests.standins.gcp import Google, WorkloadProvider
from tests.standins.server import Server

google_auth = pytest.importorskip("google.auth", minversion="2.17")
from google.auth import exceptions, identity_pool  # noqa: E402
from google.auth.transport.requests import Request  # noqa: E402

SA = "deployer@payments-prod.iam.gserviceaccount.com"


@pytest.fixture
def stage(ado: AzureDevOps, tmp_path: Path) -> Iterator[tuple[Google, str, WorkloadProvider, str]]:
    google = Google()
    with Server(google) as server:
        conn = ado.add_connection("gcp-prod")
        wp = google.add_provider(issuer=ado.issuer, keys=ado.public_pem)
        google.add_service_account(SA, members=[wp.principal(ado.subject(conn))])
        token_file = tmp_path / "token.jwt"
        token_file.write_text(ado.token_for(conn))
        yield google, server.url, wp, str(token_file)


def credentials(url: str, wp: WorkloadProvider, token_file: str, tmp_path: Path, **extra: Any) -> Any:
    doc = {
        "type": "external_account",
        "audience": f"//iam.googleapis.com/{wp.name}",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": f"{url}/v1/token",
        "credential_source": {"file": token_file},
        **extra,
    }
    path = tmp_path / "creds.json"
    path.write_text(json.dumps(doc))
    return identity_pool.Credentials.from_file(str(path), scopes=["https://www.googleapis.com/auth/cloud-platform"])


def impersonating(url: str, wp: WorkloadProvider, token_file: str, tmp_path: Path, lifetime: int = 3600) -> Any:
    return credentials(
        url,
        wp,
        token_file,
        tmp_path,
        service_account_impersonation_url=f"{url}/v1/projects/-/serviceAccounts/{SA}:generateAccessToken",
        service_account_impersonation={"token_lifetime_seconds": lifetime},
    )


def test_google_auth_gets_a_federated_token(stage: Any, tmp_path: Path) -> None:
    google, url, wp, token_file = stage
    creds = credentials(url, wp, token_file, tmp_path)
    creds.refresh(Request())
    assert google.who(creds.token).principal.startswith("principal://iam.googleapis.com/projects/")
    sent = google.requests[-1]
    assert sent["path"] == "/v1/token" and "google-byoid-sdk" in sent["headers"]["X-Goog-Api-Client"]


def test_google_auth_impersonates(stage: Any, tmp_path: Path) -> None:
    google, url, wp, token_file = stage
    creds = impersonating(url, wp, token_file, tmp_path, lifetime=1200)
    creds.refresh(Request())
    issued = google.who(creds.token)
    assert issued is not None and issued.principal == f"serviceAccount:{SA}"
    assert json.loads(google.requests[-1]["body"])["lifetime"] == "1200s"
    assert creds.expiry is not None  # google-auth parsed the stand-in's expireTime


def test_google_auth_reports_a_refused_exchange(stage: Any, tmp_path: Path) -> None:
    _, url, wp, token_file = stage
    wp.condition = lambda claims: False
    with pytest.raises(exceptions.OAuthError, match="unauthorized_client"):
        credentials(url, wp, token_file, tmp_path).refresh(Request())
    wp.condition = None
    wp.issuer = "https://elsewhere.example"
    with pytest.raises(exceptions.OAuthError, match="invalid_grant"):
        credentials(url, wp, token_file, tmp_path).refresh(Request())


def test_google_auth_reports_a_refused_impersonation(stage: Any, tmp_path: Path) -> None:
    google, url, wp, token_file = stage
    google.accounts[SA].token_creators.clear()
    creds = impersonating(url, wp, token_file, tmp_path)
    with pytest.raises(exceptions.RefreshError, match="iam.serviceAccounts.getAccessToken"):
        creds.refresh(Request())
