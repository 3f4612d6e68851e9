"""`oidc-credentials connection create`: the connection appears in the project (through the azure-devops SDK,
against the REST stand-in) and the trust printed for it admits its token, and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from oidc_credentials.commands import connection as connection_command

from tests.cli_harness import (
    Result,
    org_fixture,  # noqa: F401 - the `org` fixture
    run_command,
)
from tests.standins.ado import AzureDevOps
from tests.standins.ado_rest import Organisation
from tests.standins.server import Server
from tests.standins.sts import Sts, keys_of

ROLE = "arn:aws:iam::123456789012:role/deploy"


def create(*argv: str) -> Result:
    return run_command(connection_command, ["create", *argv])


def test_create_aws_connection_then_its_trust_admits_its_token(org: Organisation, ado: AzureDevOps) -> None:
    result = create(
        "aws", "--org", org.url, "--project", "payments", "--name", "aws-prod", "--role-arn", ROLE,
        "--region", "eu-west-1", "--authorize-pipeline", "7", "--authorize-pipeline", "9",
    )  # fmt: skip
    assert result.code == 0, result.err
    [endpoint] = org.endpoints.values()
    assert endpoint["type"] == "OidcCredentialsAws" and endpoint["url"] == "https://sts.amazonaws.com"
    assert endpoint["authorization"] == {"scheme": "None", "parameters": {"roleArn": ROLE, "region": "eu-west-1"}}
    assert endpoint["serviceEndpointProjectReferences"][0]["projectReference"]["name"] == ado.project
    permissions = org.permissions[endpoint["id"]]
    assert [p["id"] for p in permissions["pipelines"]] == [7, 9] and "allPipelines" not in permissions
    policy = json.loads(result.out)
    [statement] = policy["Statement"]
    assert (
        statement["Principal"]["Federated"]
        == f"arn:aws:iam::123456789012:oidc-provider/vstoken.dev.azure.com/{ado.org_id}"
    )
    assert f"id {endpoint['id']}" in result.err and "7, 9" in result.err
    sts = Sts()
    sts.trust(ado.issuer, keys_of(ado))
    sts.add_role_with_policy(ROLE, policy)
    with Server(sts) as server:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config
        from botocore.exceptions import ClientError

        client = boto3.client(
            "sts", endpoint_url=server.url, region_name="us-east-1", config=Config(signature_version=UNSIGNED)
        )
        token = ado.token_for(ado.add_connection("aws-prod"))
        answer = client.assume_role_with_web_identity(RoleArn=ROLE, RoleSessionName="ado-1", WebIdentityToken=token)
        assert answer["AssumedRoleUser"]["Arn"].endswith(":assumed-role/deploy/ado-1")
        with pytest.raises(ClientError, match="AccessDenied"):
            client.assume_role_with_web_identity(
                RoleArn=ROLE, RoleSessionName="ado-1", WebIdentityToken=ado.token_for(ado.add_connection("aws-dev"))
            )


def test_create_gcp_and_vault_connections(org: Organisation, tmp_path: Path) -> None:
    provider = "projects/123456789012/locations/global/workloadIdentityPools/azure-devops/providers/payments"
    gcp = create(
        "gcp", "--org", org.url, "--project", "Payments", "--name", "gcp-prod",
        "--workload-identity-provider", provider, "--service-account", "deploy@p.iam.gserviceaccount.com",
        "--format", "terraform", "--out", str(tmp_path / "gcp.tf"),
    )  # fmt: skip
    assert gcp.code == 0, gcp.err
    text = (tmp_path / "gcp.tf").read_text()
    assert 'workload_identity_pool_provider_id = "payments"' in text and 'google_iam_workload_identity_pool" ' in text
    vault = create(
        "vault", "--org", org.url, "--project", "Payments", "--name", "vault-prod", "--vault-addr",
        "https://vault.example.com:8200", "--role", "deploy", "--mount", "azure-devops", "--policy", "ci",
        "--format", "json",
    )  # fmt: skip
    assert vault.code == 0, vault.err
    assert set(json.loads(vault.out)) == {"auth/azure-devops/config", "auth/azure-devops/role/deploy"}
    by_name = {e["name"]: e for e in org.endpoints.values()}
    assert by_name["gcp-prod"]["authorization"]["parameters"] == {
        "workloadIdentityProvider": provider,
        "serviceAccount": "deploy@p.iam.gserviceaccount.com",
    }
    assert by_name["vault-prod"]["type"] == "OidcCredentialsVault"
    assert by_name["vault-prod"]["authorization"]["parameters"] == {"role": "deploy", "mountPath": "azure-devops"}
    assert "no pipeline may use it yet" in vault.err


def test_refusals_leave_nothing_behind(org: Organisation) -> None:
    bad_arn = create("aws", "--org", org.url, "--project", "Payments", "--name", "x", "--role-arn", "deploy")
    assert bad_arn.code == 1 and "--role-arn deploy" in bad_arn.err and not org.requests
    wildcard = create("aws", "--org", org.url, "--project", "Payments", "--name", "prod-*", "--role-arn", ROLE)
    assert wildcard.code == 1 and "refusing the wildcard subject" in wildcard.err
    assert org.endpoints == {}
    first = create("aws", "--org", org.url, "--project", "Payments", "--name", "dup", "--role-arn", ROLE)
    assert first.code == 0
    again = create("aws", "--org", org.url, "--project", "Payments", "--name", "DUP", "--role-arn", ROLE)
    assert again.code == 1 and again.out == "" and "already exists" in again.err
    assert again.err.count("\n") == 1 and "Traceback" not in again.err
    missing = create("aws", "--org", org.url, "--project", "Nope", "--name", "x", "--role-arn", ROLE)
    assert missing.code == 1 and "TF200016" in missing.err


def test_credentials_are_required_and_checked(org: Organisation, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_DEVOPS_EXT_PAT")
    none = create("aws", "--org", org.url, "--project", "Payments", "--name", "x", "--role-arn", ROLE)
    assert none.code == 1 and "no Azure DevOps credentials: set AZURE_DEVOPS_EXT_PAT" in none.err
    monkeypatch.setenv("AZURE_DEVOPS_EXT_PAT", "wrong")
    wrong = create("aws", "--org", org.url, "--project", "Payments", "--name", "x", "--role-arn", ROLE)
    assert wrong.code == 1 and "refused the credentials" in wrong.err and "wrong" not in wrong.err
    monkeypatch.delenv("AZURE_DEVOPS_EXT_PAT")
    org.bearer = "entra-access-token"
    monkeypatch.setenv("AZURE_DEVOPS_TOKEN", "entra-access-token")
    ok = create("aws", "--org", org.url, "--project", "Payments", "--name", "x", "--role-arn", ROLE)
    assert ok.code == 0, ok.err


def test_help_on_every_level() -> None:
    for argv in (["--help"], ["create", "--help"], ["create", "aws", "--help"], ["create", "vault", "--help"]):
        result = run_command(connection_command, argv)
        assert result.code == 0 and "usage:" in result.out
    assert "--authorize-pipeline" in run_command(connection_command, ["create", "gcp", "--help"]).out


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://dev.azure.com/fabrikam", "fabrikam"),
        ("https://dev.azure.com/fabrikam/", "fabrikam"),
        ("https://fabrikam.visualstudio.com/", "fabrikam"),
    ],
)
def test_organisation_name_from_its_url(url: str, name: str) -> None:
    from oidc_credentials.ado_admin import org_name_of

    assert org_name_of(url) == name


def test_bad_organisation_url_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_DEVOPS_EXT_PAT", "x")
    for url in ("dev.azure.com/fabrikam", "https://dev.azure.com/"):
        result = create("aws", "--org", url, "--project", "P", "--name", "n", "--role-arn", ROLE)
        assert result.code == 1 and f"--org {url}: give the organisation URL" in result.err


def test_unreachable_organisation_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AZURE_DEVOPS_EXT_PAT", "x")
    result = create(
        "aws", "--org", f"http://127.0.0.1:{port}/fabrikam", "--project", "P", "--name", "n", "--role-arn", ROLE
    )
    assert result.code == 1 and result.err.startswith("oidc-credentials: error: Azure DevOps could not")
    assert "cannot connect (check the URL, the network and any proxy" in result.err
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
