"""``oidc-credentials verify`` against the Azure DevOps stand-in: exit codes, output, never the token."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from oidc_credentials import cli
from oidc_credentials.claims import VSTOKEN_BASE

from tests.standins.ado import AzureDevOps
from tests.standins.server import LocalCA


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["verify", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def base(ado: AzureDevOps, ca: LocalCA) -> list[str]:
    return [
        "--organization-id",
        ado.org_id,
        "--ca-bundle",
        ca.bundle,
        "--metadata-url",
        f"{VSTOKEN_BASE}={ado.base_url}",
    ]


def token_file(tmp_path: Path, token: str) -> str:
    path = tmp_path / "token.jwt"
    path.write_text(token + "\n", encoding="utf-8")
    return str(path)


def test_verified(ado: AzureDevOps, base: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token = ado.pipeline_token()
    code, out, err = run(capsys, "--token-file", token_file(tmp_path, token), "--kind", "pipeline", *base)
    assert code == 0 and err == ""
    assert out.startswith(f"verified: pipeline token of organisation {ado.org_id}\n")
    assert "subject             p://fabrikam/Payments/deploy" in out and "repository_ref      refs/heads/main" in out
    assert token not in out and token.split(".")[1] not in out


def test_json(ado: AzureDevOps, base: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conn = ado.add_connection("aws-prod")
    path = token_file(tmp_path, ado.token_for(conn))
    code, out, _ = run(capsys, "--token-file", path, "--subject", "sc://fabrikam/Payments/aws-prod", "--json", *base)
    fields = json.loads(out)
    assert code == 0 and fields["kind"] == "service-connection" and fields["connection_name"] == "aws-prod"
    assert len(fields["token_sha256"]) == 64


def test_refused_with_one_reason(
    ado: AzureDevOps, base: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = token_file(tmp_path, ado.pipeline_token())
    code, out, err = run(capsys, "--token-file", path, "--kind", "service-connection", *base)
    assert code == 1 and out == "" and len(err.splitlines()) == 1
    assert err.startswith(
        "refused: sub: expected a service-connection token (sc://…), presented 'p://fabrikam/Payments/deploy' "
        "(a pipeline token) [token sha256 "
    )


def test_policy_file_in_audit_mode(
    ado: AzureDevOps, base: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        f'kind = "pipeline"\nmode = "audit"\n[[allow]]\nname = "main"\nproject_id = "{ado.project_id}"\n'
        'repository_ref = "refs/heads/main"\n',
        encoding="utf-8",
    )
    path = token_file(tmp_path, ado.pipeline_token(rpo_ref="refs/heads/feature"))
    code, out, err = run(capsys, "--token-file", path, "--rules", str(policy), *base)
    assert code == 0 and out.startswith("verified: pipeline token")
    assert "audit: would be refused: rpo_ref: expected 'refs/heads/main' (rule 'main')" in err
    code, _, err = run(capsys, "--token-file", path, "--rules", str(policy), "--mode", "enforce", *base)
    assert code == 1 and err.startswith("refused: rpo_ref")


def test_name_rules_warn_once(
    ado: AzureDevOps, base: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('kind = "pipeline"\n[[allow]]\nname = "n"\nproject_name = "Payments"\n', encoding="utf-8")
    code, _, err = run(
        capsys, "--token-file", token_file(tmp_path, ado.pipeline_token()), "--rules", str(policy), *base
    )
    assert (
        code == 0 and err.count("prefer project_id") == 1 and err.startswith("warning: rule 'n' matches project_name")
    )


def test_usage_errors(ado: AzureDevOps, base: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = token_file(tmp_path, ado.pipeline_token())
    code, _, err = run(capsys, "--token-file", path, *base)
    assert code == 2 and err.startswith("oidc-credentials: error: Say which tokens to accept: --kind pipeline or")
    code, _, err = run(capsys, "--token-file", path, "--kind", "pipeline")
    assert code == 2 and "Name at least one organisation id" in err and len(err.splitlines()) == 1
    code, _, err = run(capsys, "--token-file", str(tmp_path / "missing"), "--kind", "pipeline", *base)
    assert code == 2 and "Cannot read the token file" in err
    code, _, err = run(capsys, "--kind", "pipeline", *base)
    assert code == 2 and "--token-file" in err


def test_untrusted_text_is_neutralised(
    ado: AzureDevOps, base: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused token's claims reach stderr, where the agent looks for logging commands: they are defused."""
    token = ado.mint({"iss": "##vso[task.setvariable variable=X]pwned", "aud": "a", "sub": "s"})
    code, _, err = run(capsys, "--token-file", token_file(tmp_path, token), "--kind", "pipeline", *base)
    assert code == 1 and "##vso[" not in err and "presented '##vso(task.setvariable" in err


@pytest.mark.skipif(not (Path(sys.executable).parent / "oidc-credentials").exists(), reason="not pip-installed")
def test_the_installed_script_verifies_a_token_from_stdin(ado: AzureDevOps, base: list[str]) -> None:
    script = shutil.which("oidc-credentials", path=str(Path(sys.executable).parent))
    assert script
    token = ado.pipeline_token()
    argv = [script, "verify", "--token-file", "-", "--kind", "pipeline", *base]
    proc = subprocess.run(argv, input=token, capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("verified: pipeline token of organisation") and token not in proc.stdout
    proc = subprocess.run(
        [*argv[: -len(base)], "--subject", "p://fabrikam/Payments/other", *base],
        input=token,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 1 and proc.stderr.startswith("refused: sub: expected 'p://fabrikam/Payments/other'")
