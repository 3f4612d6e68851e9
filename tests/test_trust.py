"""`oidc-credentials trust`: each rendered form is accepted by its target, and bad facts are refused."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import hcl2
import pytest
import yaml
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from oidc_credentials.commands import trust as trust_command

from tests.cli_harness import Result, run_command
from tests.standins.ado import AzureDevOps
from tests.standins.server import Server
from tests.standins.sts import Sts, keys_of

ACCOUNT = "123456789012"


def parse_hcl(text: str) -> Any:
    """python-hcl2's tree with labels and strings unquoted and its block markers dropped."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {plain(k): plain(v) for k, v in value.items() if k != "__is_block__"}
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
            return value[1:-1]
        return value

    return plain(hcl2.loads(text))


def trust(*argv: str) -> Result:
    return run_command(trust_command, list(argv))


def names(ado: AzureDevOps, connection: str) -> list[str]:
    return ["--org-id", ado.org_id, "--org-name", ado.org, "--project", ado.project, "--connection", connection]


@pytest.fixture
def sts(ado: AzureDevOps) -> Iterator[tuple[Sts, str]]:
    app = Sts()
    app.trust(ado.issuer, keys_of(ado))
    with Server(app) as server:
        yield app, server.url


def assume(url: str, role: str, token: str) -> dict[str, Any]:
    client = boto3.client(
        "sts",
        endpoint_url=url,
        region_name="us-east-1",
        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}),
    )
    answer: dict[str, Any] = client.assume_role_with_web_identity(
        RoleArn=role, RoleSessionName="ado-1", WebIdentityToken=token
    )
    return answer


# ------------------------------------------------------------------------------------------------- AWS


def test_aws_policy_is_iam_json_that_sts_accepts_for_the_connection_only(
    ado: AzureDevOps, sts: tuple[Sts, str], tmp_path: Path
) -> None:
    conn = ado.add_connection("aws-prod")
    token_file = tmp_path / "token"
    token_file.write_text(ado.token_for(conn))
    result = trust("aws", "--token-file", str(token_file), "--account-id", ACCOUNT)
    assert result.code == 0, result.err
    policy = json.loads(result.out)
    assert set(policy) == {"Version", "Statement"} and policy["Version"] == "2012-10-17"
    [statement] = policy["Statement"]
    assert set(statement) == {"Sid", "Effect", "Principal", "Action", "Condition"}
    assert statement["Principal"] == {
        "Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/vstoken.dev.azure.com/{ado.org_id}"
    }
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {
        "StringEquals": {
            f"vstoken.dev.azure.com/{ado.org_id}:aud": "api://AzureADTokenExchange",
            f"vstoken.dev.azure.com/{ado.org_id}:sub": f"sc://{ado.org}/{ado.project}/aws-prod",
        }
    }
    app, url = sts
    role = f"arn:aws:iam::{ACCOUNT}:role/ado-aws-prod"
    app.add_role_with_policy(role, policy)
    answer = assume(url, role, ado.token_for(conn))
    assert answer["SubjectFromWebIdentityToken"] == f"sc://{ado.org}/{ado.project}/aws-prod"
    for other in (ado.add_connection("aws-prod-2"), ado.add_connection("AWS-PROD")):
        with pytest.raises(ClientError) as info:
            assume(url, role, ado.token_for(other))
        assert info.value.response["Error"]["Code"] == "AccessDenied"


def _cfn_loader() -> type[yaml.SafeLoader]:
    class Loader(yaml.SafeLoader):
        pass

    for tag in ("!Ref", "!GetAtt", "!Sub"):
        Loader.add_constructor(tag, lambda loader, node, tag=tag: {tag: loader.construct_scalar(node)})
    return Loader


def test_aws_cloudformation_template(ado: AzureDevOps) -> None:
    result = trust("aws", "--format", "cloudformation", *names(ado, "aws-prod"), "--max-session-duration", "7200")
    assert result.code == 0, result.err
    template = yaml.load(result.out, Loader=_cfn_loader())  # noqa: S506 - a SafeLoader subclass
    provider = template["Resources"]["AzureDevOpsOidcProvider"]
    assert provider["Type"] == "AWS::IAM::OIDCProvider"
    assert provider["Properties"] == {"Url": ado.issuer, "ClientIdList": ["api://AzureADTokenExchange"]}
    role = template["Resources"]["ConnectionRole"]["Properties"]
    assert role["MaxSessionDuration"] == 7200 and role["RoleName"] == "ado-aws-prod"
    [statement] = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Federated": {"!Ref": "AzureDevOpsOidcProvider"}}
    assert (
        statement["Condition"]["StringEquals"][f"vstoken.dev.azure.com/{ado.org_id}:sub"]
        == f"sc://{ado.org}/{ado.project}/aws-prod"
    )
    existing = trust("aws", "--format", "cloudformation", "--provider-exists", *names(ado, "aws-prod"))
    parsed = yaml.load(existing.out, Loader=_cfn_loader())  # noqa: S506
    assert "AzureDevOpsOidcProvider" not in parsed["Resources"]


def test_aws_cloudformation_passes_cfn_lint(ado: AzureDevOps) -> None:
    """AWS's own template linter (resource schemas, intrinsic functions) finds no error or warning."""
    from cfnlint.api import lint_all

    for extra in ([], ["--provider-exists"]):
        result = trust("aws", "--format", "cloudformation", *names(ado, "aws-prod"), *extra)
        serious = [m for m in lint_all(result.out) if m.rule.id[0] in "EW"]
        assert serious == [], serious
    broken = result.out.replace("MaxSessionDuration: 3600", "MaxSessionDuration: 60")
    assert [m.rule.id for m in lint_all(broken) if m.rule.id[0] == "E"]  # the linter does catch a bad value


def test_aws_terraform_parses_as_hcl(ado: AzureDevOps) -> None:
    result = trust("aws", "--format", "terraform", *names(ado, "prod ${danger} %{x}"), "--role-name", "deploy")
    assert result.code == 0, result.err
    doc = parse_hcl(result.out)
    provider = doc["resource"][0]["aws_iam_openid_connect_provider"]["azure_devops"]
    assert provider["url"] == ado.issuer
    policy = doc["data"][0]["aws_iam_policy_document"]["connection_trust"]
    conditions = {c["variable"]: c for c in policy["statement"][0]["condition"]}
    sub = conditions[f"vstoken.dev.azure.com/{ado.org_id}:sub"]
    assert sub["test"] == "StringEquals"
    # template sequences in a name are escaped, so Terraform keeps them literally
    assert "$${danger}" in sub["values"][0] and "%%{x}" in sub["values"][0]
    role = doc["resource"][1]["aws_iam_role"]["connection"]
    assert role["name"] == "deploy" and role["max_session_duration"] == 3600


def test_aws_json_without_account_names_the_flag(ado: AzureDevOps) -> None:
    result = trust("aws", *names(ado, "aws-prod"))
    assert result.code == 1 and "missing --account-id" in result.err and result.out == ""


# ----------------------------------------------------------------------------------------------- Azure

#: Microsoft Graph federatedIdentityCredential: required properties and their documented limits
GRAPH_FIC_SCHEMA = {
    "type": "object",
    "required": ["name", "issuer", "subject", "audiences"],
    "properties": {
        "name": {"type": "string", "minLength": 3, "maxLength": 120, "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]*$"},
        "issuer": {"type": "string", "format": "uri", "maxLength": 600},
        "subject": {"type": "string", "minLength": 1, "maxLength": 600},
        "audiences": {"type": "array", "minItems": 1, "maxItems": 1, "items": {"type": "string", "maxLength": 600}},
        "description": {"type": "string", "maxLength": 600},
    },
    "additionalProperties": False,
}


def test_entra_credential_matches_graph_schema_for_both_issuers(ado: AzureDevOps, tmp_path: Path) -> None:
    import jsonschema

    tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    legacy = ado.add_connection("arm-prod")
    modern = ado.add_connection("arm-new", issuer="entra", tenant_id=tenant)
    for conn in (legacy, modern):
        path = tmp_path / conn.name
        path.write_text(ado.token_for(conn))
        result = trust("azure", "--token-file", str(path))
        assert result.code == 0, result.err
        credential = json.loads(result.out)
        jsonschema.validate(credential, GRAPH_FIC_SCHEMA)
        assert credential["subject"] == ado.subject(conn)
    dual = trust("azure", *names(ado, "arm-prod"), "--dual-issuer", "--tenant-id", tenant, "--connection-id", modern.id)
    assert dual.code == 0, dual.err
    both = json.loads(dual.out)
    for credential in both:
        jsonschema.validate(credential, GRAPH_FIC_SCHEMA)
    assert [c["issuer"] for c in both] == [ado.issuer, f"https://login.microsoftonline.com/{tenant}/v2.0"]
    # the Entra issuer's subject is predicted exactly as the service writes it
    assert both[1]["subject"] == ado.subject(modern)
    az = trust(
        "azure",
        "--format",
        "az",
        "--token-file",
        str(tmp_path / "arm-prod"),
        "--app-id",
        "00000000-0000-0000-0000-000000000001",
    )
    assert (
        az.out.count("az ad app federated-credential create --id 00000000-0000-0000-0000-000000000001 --parameters ")
        == 1
    )


def test_entra_managed_identity_command(ado: AzureDevOps) -> None:
    result = trust(
        "azure", "--format", "az", *names(ado, "arm-mi"), "--identity", "deploy-id", "--resource-group", "rg-ci"
    )
    assert result.code == 0, result.err
    assert result.out.splitlines()[1] == (
        "az identity federated-credential create --name ado-arm-mi --identity-name deploy-id --resource-group rg-ci "
        f"--issuer {ado.issuer} --subject sc://{ado.org}/{ado.project}/arm-mi --audiences api://AzureADTokenExchange"
    )
    missing = trust("azure", "--format", "az", *names(ado, "arm-mi"), "--identity", "deploy-id")
    assert missing.code == 1 and "missing --resource-group" in missing.err


# ------------------------------------------------------------------------------------------------- GCP


def test_gcp_terraform_and_gcloud(ado: AzureDevOps) -> None:
    flags = ["--project-number", "123456789012", "--service-account", "deploy@p.iam.gserviceaccount.com"]
    tf = trust("gcp", "--format", "terraform", *names(ado, "gcp-prod"), *flags)
    assert tf.code == 0, tf.err
    doc = parse_hcl(tf.out)
    provider = doc["resource"][1]["google_iam_workload_identity_pool_provider"]["connection"]
    assert (
        provider["attribute_mapping"] == {'"google.subject"': '"assertion.sub"'}
        or provider["attribute_mapping"] == {"google.subject": "assertion.sub"}
        or json.dumps(provider["attribute_mapping"]).count("assertion.sub") == 1
    )
    assert f"sc://{ado.org}/{ado.project}/gcp-prod" in provider["attribute_condition"]
    assert provider["oidc"][0]["issuer_uri"] == ado.issuer
    member = doc["resource"][2]["google_service_account_iam_member"]["connection"]["member"]
    assert member.endswith(f"workloadIdentityPools/azure-devops/subject/sc://{ado.org}/{ado.project}/gcp-prod")
    gcloud = trust("gcp", *names(ado, "gcp-prod"), *flags)
    assert "gcloud iam workload-identity-pools providers create-oidc ado-gcp-prod" in gcloud.out
    assert "--attribute-mapping=google.subject=assertion.sub " in gcloud.out


def test_gcp_subject_over_127_bytes_maps_a_short_unique_part(ado: AzureDevOps, tmp_path: Path) -> None:
    conn = ado.add_connection("gcp-entra", issuer="entra", tenant_id="72f988bf-86f1-41af-91ab-2d7cd011db47")
    path = tmp_path / "token"
    path.write_text(ado.token_for(conn))
    assert len(ado.subject(conn).encode()) > 127
    result = trust(
        "gcp", "--token-file", str(path), "--project-number", "1", "--service-account", "a@b.c", "--format", "terraform"
    )
    assert result.code == 0, result.err
    assert "assertion.sub.split('/sc/')[1]" in result.out
    assert f"/subject/{ado.org_id}/{conn.id}" in result.out  # the principal is the mapped value
    assert json.dumps(ado.subject(conn))[1:-1] in result.out  # the condition still pins the whole subject
    long_name = "c" * 140
    refused = trust("gcp", *names(ado, long_name), "--project-number", "1", "--service-account", "a@b.c")
    assert refused.code == 1 and "127" in refused.err


# -------------------------------------------------------------------------------------- refusals, sources


@pytest.mark.parametrize(
    "subject", ["sc://fabrikam/Payments/*", "sc://fabrikam/*/deploy", "sc://fabrikam/Payments/de?loy"]
)
def test_wildcard_subject_is_refused_with_the_reason(subject: str) -> None:
    for cloud, extra in (("aws", ["--account-id", ACCOUNT]), ("azure", []), ("vault", ["--policy", "p"])):
        result = trust(cloud, "--issuer", "https://vstoken.dev.azure.com/x", "--subject", subject, *extra)
        assert result.code == 1 and result.out == ""
        assert "refusing the wildcard subject" in result.err and "Name exactly one connection" in result.err


def test_missing_facts_are_named_by_flag() -> None:
    assert "missing --issuer (or --org-id)" in trust("azure").err
    partial = trust("azure", "--org-id", "x", "--project", "P")
    assert "missing --org-name and --connection" in partial.err
    assert "missing --policy" in trust("vault", "--org-id", "x", "--subject", "sc://a/b/c").err
    assert "missing --project-number" in trust("gcp", "--org-id", "x", "--subject", "sc://a/b/c").err


def test_token_beats_flags_and_the_disagreement_is_warned(ado: AzureDevOps, tmp_path: Path) -> None:
    conn = ado.add_connection("Deploy")
    path = tmp_path / "token.json"
    path.write_text(json.dumps({"oidcToken": ado.token_for(conn)}))
    result = trust("azure", "--token-file", str(path), *names(ado, "deploy"))
    assert result.code == 0, result.err
    assert json.loads(result.out)["subject"] == f"sc://{ado.org}/{ado.project}/Deploy"
    assert "differs only in letter case at character" in result.err


def test_unreadable_token_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "t"
    bad.write_text("not a token")
    result = trust("aws", "--token-file", str(bad))
    assert result.code == 1 and result.err.count("\n") == 1 and "not a JWT" in result.err
    assert "Traceback" not in result.err


def test_output_never_carries_a_logging_command(tmp_path: Path) -> None:
    result = trust(
        "vault",
        "--issuer",
        "https://vstoken.dev.azure.com/x",
        "--subject",
        "sc://a/b/##vso[task.setvariable variable=X]1",
        "--policy",
        "p",
    )
    assert result.code == 0, result.err
    assert "##vso[" not in result.out + result.err
    out = tmp_path / "trust.sh"
    exact = trust(
        "vault",
        "--issuer",
        "https://vstoken.dev.azure.com/x",
        "--subject",
        "sc://a/b/##vso[x]",
        "--policy",
        "p",
        "--out",
        str(out),
    )
    assert exact.code == 0 and "sc://a/b/##vso[x]" in out.read_text() and exact.out == ""


def test_vault_terraform_parses_as_hcl(ado: AzureDevOps) -> None:
    result = trust("vault", "--format", "terraform", *names(ado, "vault-prod"), "--policy", "a", "--policy", "b")
    assert result.code == 0, result.err
    doc = parse_hcl(result.out)
    backend = doc["resource"][0]["vault_jwt_auth_backend"]["azure_devops"]
    assert backend["bound_issuer"] == ado.issuer and backend["type"] == "jwt"
    role = doc["resource"][1]["vault_jwt_auth_backend_role"]["connection"]
    assert role["bound_subject"] == f"sc://{ado.org}/{ado.project}/vault-prod"
    assert role["bound_audiences"] == ["api://AzureADTokenExchange"] and role["token_policies"] == ["a", "b"]
    assert (role["token_ttl"], role["token_max_ttl"]) == (900, 3600)


def test_vault_ttl_checks() -> None:
    base = ["vault", "--issuer", "https://vstoken.dev.azure.com/x", "--subject", "sc://a/b/c", "--policy", "p"]
    assert "--ttl 2h is longer than --max-ttl 1h" in trust(*base, "--ttl", "2h").err
    assert "give a duration such as 900, 15m or 1h" in trust(*base, "--ttl", "soon").err


# ------------------------------------------------------------------------- through the real entry point


def test_cli_help_on_every_level_version_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    from oidc_credentials import __version__, cli

    levels = [
        ["trust", "--help"],
        *(["trust", cloud, "--help"] for cloud in ("aws", "azure", "gcp", "vault")),
        ["connection", "--help"],
        ["connection", "create", "--help"],
        *(["connection", "create", cloud, "--help"] for cloud in ("aws", "gcp", "vault")),
        ["doctor", "--help"],
    ]
    for argv in levels:
        assert cli.main(argv) == 0, argv
        out = capsys.readouterr().out
        assert out.startswith(f"usage: oidc-credentials {argv[0]}") and "##vso[" not in out, argv
    assert cli.main(["--version"]) == 0 and capsys.readouterr().out.strip() == f"oidc-credentials {__version__}"
    assert cli.main(["trust"]) == 2  # a cloud is required: usage error
    assert cli.main(["trust", "aws", "--format", "yaml"]) == 2
    usage = capsys.readouterr().err
    assert usage.count("\n") == 2 and "invalid choice: 'yaml'" in usage
    assert cli.main(["trust", "aws", "--issuer", "https://vstoken.dev.azure.com/x", "--subject", "sc://a/b/*"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("oidc-credentials: error: refusing the wildcard subject") and err.count("\n") == 1


@pytest.mark.skipif(not (Path(sys.executable).parent / "oidc-credentials").exists(), reason="not pip-installed")
def test_installed_script_renders_a_trust(ado: AzureDevOps, tmp_path: Path) -> None:
    import subprocess

    conn = ado.add_connection("aws-prod")
    token = tmp_path / "token"
    token.write_text(ado.token_for(conn))
    script = str(Path(sys.executable).parent / "oidc-credentials")
    proc = subprocess.run(
        [script, "trust", "aws", "--token-file", str(token), "--account-id", ACCOUNT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["Statement"][0]["Condition"]["StringEquals"][
        f"vstoken.dev.azure.com/{ado.org_id}:sub"
    ] == ado.subject(conn)
    for part in token.read_text().split("."):  # the token itself is never printed
        assert part not in proc.stdout + proc.stderr
