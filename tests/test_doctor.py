"""`oidc-credentials doctor`: per connection, what will break and the fix, read through the azure-devops SDK
from the REST stand-in."""

from __future__ import annotations

import json
from pathlib import Path

from oidc_credentials.commands import doctor as doctor_command
from oidc_credentials.commands import trust as trust_command

from tests.cli_harness import (
    Result,
    org_fixture,  # noqa: F401 - the `org` fixture
    run_command,
)
from tests.standins.ado import AzureDevOps
from tests.standins.ado_rest import Organisation

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
APP = "11111111-2222-3333-4444-555555555555"


def doctor(org: Organisation, *argv: str) -> Result:
    return run_command(doctor_command, ["--org", org.url, "--project", "Payments", *argv])


def section(result: Result, name: str) -> str:
    """The lines doctor printed for one connection."""
    lines = result.out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"Payments/{name} ("))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")), len(lines))
    return "\n".join(lines[start:end])


def arm(ado: AzureDevOps, name: str, *, entra: bool, app: str = APP) -> dict[str, str]:
    conn = ado.add_connection(name, issuer="entra" if entra else "vstoken", tenant_id=TENANT)
    return {
        "serviceprincipalid": app,
        "tenantid": TENANT,
        "workloadIdentityFederationIssuerType": "EntraID" if entra else "AzureDevOps",
        "workloadIdentityFederationIssuer": f"https://login.microsoftonline.com/{TENANT}/v2.0" if entra else ado.issuer,
        "workloadIdentityFederationSubject": ado.subject(conn),
    }


def test_each_kind_of_breakage_is_named_with_its_fix(org: Organisation, ado: AzureDevOps, tmp_path: Path) -> None:
    org.add_endpoint("Payments", "arm-old", parameters=arm(ado, "arm-old", entra=False), all_pipelines=True)
    org.add_endpoint(
        "Payments", "arm-new", parameters=arm(ado, "arm-new", entra=True, app="app-2"), pipelines=(3,), approvals=1
    )
    org.add_endpoint(
        "Payments",
        "broken",
        type="OidcCredentialsAws",
        scheme="None",
        parameters={"roleArn": "x"},
        ready=False,
        approvals=1,
    )
    long_name = "gcp-" + "x" * 120
    org.add_endpoint("Payments", long_name, type="OidcCredentialsGcp", scheme="None", pipelines=(3,), approvals=1)
    credentials = tmp_path / "fic.json"
    credentials.write_text(json.dumps([{"name": f"c{i}"} for i in range(18)]))
    result = doctor(org, "--federated-credentials", f"app-2={credentials}")
    assert result.code == 3, result.err
    old = section(result, "arm-old")
    assert "uses the Azure DevOps issuer, which Azure stops accepting on 2027-07-01" in old
    assert f"oidc-credentials trust azure --org {org.url} --project Payments --connection arm-old --dual-issuer" in old
    assert f"--app-id {APP}" in old
    assert "open to all pipelines" in old and "no approvals or checks" in old
    new = section(result, "arm-new")
    assert "Azure DevOps issuer" not in new and "open to all" not in new and "no approvals" not in new
    assert "near its limit: 18 federated credentials (at most 20)" in new
    assert "PROBLEM: the connection is not ready" in section(result, "broken")
    assert "bytes; Google keeps at most 127" in section(result, long_name)
    assert result.out.splitlines()[-1] == "4 connection(s) checked: 2 problem(s) will break deployments"
    assert "##vso[" not in result.out


def test_sovereign_clouds_keep_the_azure_devops_issuer(org: Organisation, ado: AzureDevOps) -> None:
    endpoint = org.add_endpoint(
        "Payments", "arm-gov", parameters=arm(ado, "arm-gov", entra=False), pipelines=(1,), approvals=1
    )
    endpoint["data"] = {"environment": "AzureUSGovernment"}
    result = doctor(org)
    assert result.code == 0 and "2027-07-01" not in result.out


def test_a_healthy_connection_exits_zero(org: Organisation, ado: AzureDevOps) -> None:
    org.add_endpoint("Payments", "arm-new", parameters=arm(ado, "arm-new", entra=True), pipelines=(3,), approvals=1)
    org.add_endpoint("Payments", "other", all_pipelines=True)
    result = doctor(org, "--connection", "ARM-NEW")
    assert result.code == 0, result.out + result.err
    assert "  ok" in result.out and "other" not in result.out


def test_app_at_its_federated_credential_limit_counts_the_organisations_connections(
    org: Organisation, ado: AzureDevOps
) -> None:
    for i in range(20):
        org.add_endpoint(
            "Payments", f"arm-{i}", parameters=arm(ado, f"arm-{i}", entra=True), pipelines=(1,), approvals=1
        )
    result = doctor(org)
    assert result.code == 3
    assert f"the Entra app {APP} is at its limit: 20 connections of this organisation federate with it" in result.out


def test_token_against_the_connection_and_a_saved_trust(org: Organisation, ado: AzureDevOps, tmp_path: Path) -> None:
    org.add_endpoint("Payments", "aws-prod", type="OidcCredentialsAws", scheme="None", pipelines=(1,), approvals=1)
    token = tmp_path / "token"
    token.write_text(ado.token_for(ado.add_connection("aws-prod")))
    policy = tmp_path / "policy.json"
    rendered = run_command(
        trust_command,
        ["aws", "--account-id", "123456789012", "--org-id", ado.org_id, "--org-name", ado.org,
         "--project", "payments", "--connection", "aws-prod", "--out", str(policy)],
    )  # fmt: skip
    assert rendered.code == 0, rendered.err
    result = doctor(org, "--token-file", str(token), "--trust", str(policy))
    assert result.code == 3
    assert (
        "IAM trust statement AzureDevOpsServiceConnection would refuse the token: subject differs only in letter case at character"
        in result.out
    )
    good = tmp_path / "good.json"
    assert (
        run_command(
            trust_command, ["aws", "--account-id", "123456789012", "--token-file", str(token), "--out", str(good)]
        ).code
        == 0
    )
    assert doctor(org, "--token-file", str(token), "--trust", str(good)).code == 0
    # the connection renamed since the token (and the trust) were made
    [endpoint] = org.endpoints.values()
    endpoint["name"] = "aws-production"
    renamed = doctor(org, "--token-file", str(token), "--trust", str(good))
    assert renamed.code == 3 and "does not belong to this connection as it is named now: subject differs" in renamed.out


def test_errors_are_one_line(org: Organisation, tmp_path: Path) -> None:
    missing = doctor(org, "--connection", "nope")
    assert missing.code == 1 and missing.err.strip() == (
        "oidc-credentials: error: --connection nope: no such connection in the projects given."
    )
    bad_trust = tmp_path / "t.json"
    bad_trust.write_text("{}")
    result = doctor(org, "--token-file", str(bad_trust), "--trust", str(bad_trust))
    assert result.code == 1 and result.err.count("\n") == 1


def test_the_dual_issuer_fix_it_prints_runs(org: Organisation, ado: AzureDevOps) -> None:
    import re
    import shlex

    org.add_endpoint("Payments", "arm-old", parameters=arm(ado, "arm-old", entra=False), pipelines=(1,), approvals=1)
    result = doctor(org)
    command = re.search(r"\(oidc-credentials (trust azure [^)]*)\)", result.out)
    assert command, result.out
    fix = run_command(trust_command, shlex.split(command[1])[1:])
    assert fix.code == 0, fix.err
    lines = [line for line in fix.out.splitlines() if line.startswith("az ad app federated-credential create")]
    assert len(lines) == 2 and f"--id {APP}" in lines[0]
    assert f"https://login.microsoftonline.com/{TENANT}/v2.0" in lines[1]
