"""Vault end to end against a REAL OpenBao server (Vault's API): JWT login with the Azure DevOps
stand-in's token, KV v2 and v1 reads, the variables a later step uses, revocation, and every error."""

from __future__ import annotations

import base64
import json
import socket
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness import ROOT, AgentJob, TaskRun, unregistered_secret_lines
from tests.openbao import OpenBao, start
from tests.standins.ado import AzureDevOps, Connection

ROLE = "ado-pipeline"
DB_PASSWORD = "s3cr3t;%]x=1"
API_KEY = "kv1-api-key-0123456789"
POLICY = """
path "secret/data/ado/*" { capabilities = ["read"] }
path "kv1/legacy" { capabilities = ["read"] }
"""
POST_JS = ROOT / "task" / "post.js"
SECRETS = """
secret/ado/app db_password | DB_PASSWORD
secret/data/ado/app user | APP_USER
kv1/legacy api_key | LEGACY_API_KEY
# the whole secret as JSON
secret/ado/app | APP_JSON
"""


@dataclass
class VaultWorld:
    bao: OpenBao
    ado: AzureDevOps
    conn: Connection

    @property
    def subject(self) -> str:
        return self.ado.subject(self.conn)

    def role(self, **settings: Any) -> None:
        role = {
            "bound_audiences": ["api://AzureADTokenExchange"],
            "bound_subject": self.subject,
            "token_policies": ["ado-read"],
            "token_ttl": "15m",
        }
        role.update(settings)
        role = {k: v for k, v in role.items() if v is not None}
        self.bao.ok("DELETE", f"auth/jwt/role/{ROLE}")
        self.bao.ok("POST", f"auth/jwt/role/{ROLE}", {"role_type": "jwt", "user_claim": "sub", **role})

    def job(self, job: AgentJob, *, url: str = "", secrets: str = SECRETS, **inputs: str) -> AgentJob:
        job.inputs(provider="vault", vaultConnection=self.conn.id, vaultSecrets=secrets, **inputs)
        return job.endpoint(
            self.conn.id, url=url or self.bao.addr, scheme="None", params={"role": ROLE, "mountPath": "jwt"}
        )


def make_world(openbao: OpenBao, ado: AzureDevOps) -> VaultWorld:
    """OpenBao set up for the stand-in's org: KV v2 and v1 secrets, a read policy, JWT auth and a role."""
    openbao.kv("kv1", 1)
    openbao.put("secret", "ado/app", {"db_password": DB_PASSWORD, "user": "app-user-7"})
    openbao.put("kv1", "legacy", {"api_key": API_KEY})
    openbao.policy("ado-read", POLICY)
    conn = ado.add_connection("vault-prod")
    openbao.configure_jwt("jwt", ado.issuer, [ado.public_pem()])
    world = VaultWorld(openbao, ado, conn)
    world.role()
    return world


@pytest.fixture
def vw(openbao: OpenBao, ado: AzureDevOps) -> VaultWorld:
    return make_world(openbao, ado)


def assert_clean(run: TaskRun) -> None:
    assert unregistered_secret_lines(run.stdout, list(run.secrets)) == []
    for secret in run.secrets:
        assert secret not in run.text


def test_login_read_use_and_revoke(vw: VaultWorld, job: AgentJob) -> None:
    run = vw.job(job).run()
    assert not run.failed, run.text
    assert run.variables["VAULT_ADDR"] == vw.bao.addr and "VAULT_ADDR" not in run.secret_names
    assert run.secret_names == {"VAULT_TOKEN", "DB_PASSWORD", "APP_USER", "LEGACY_API_KEY", "APP_JSON"}
    assert run.variables["DB_PASSWORD"] == DB_PASSWORD
    assert run.variables["APP_USER"] == "app-user-7"
    assert run.variables["LEGACY_API_KEY"] == API_KEY
    assert run.variables["APP_JSON"] == '{"db_password":"s3cr3t;%]x=1","user":"app-user-7"}'
    assert_clean(run)
    assert "policies ado-read, default" in run.text and "revoked when the job ends" in run.text

    # a later step: the emitted token reads a secret itself
    token = run.variables["VAULT_TOKEN"]
    status, body = vw.bao.api("GET", "secret/data/ado/app", token=token)
    assert status == 200 and body is not None and body["data"]["data"]["db_password"] == DB_PASSWORD
    # and may read nothing else
    assert vw.bao.api("GET", "kv1/other", token=token)[0] == 403

    # the end of the job: the post-job step (task/post.js) revokes it, and Vault then rejects it
    # a later step re-pointed VAULT_ADDR: the post-job step still uses the connection's address
    done = post_step(job, run, VAULT_ADDR="http://127.0.0.1:9")
    assert not done.failed, done.text
    assert f"Revoked the job's Vault token at {vw.bao.addr}" in done.text
    assert vw.bao.api("GET", "auth/token/lookup-self", token=token)[0] == 403
    assert vw.bao.api("GET", "secret/data/ado/app", token=token)[0] == 403
    assert not list(Path(job.env["AGENT_TEMPDIRECTORY"]).rglob("state.json"))


def post_step(job: AgentJob, run: TaskRun, **extra: str) -> TaskRun:
    """The agent's post-job step for this task: its task variables, the job's variables (secret ones as SECRET_*)."""
    env = {k: v for k, v in job.env.items() if not k.startswith("INPUT_")}
    env.update({f"VSTS_TASKVARIABLE_{k}": v for k, v in run.task_variables.items()})
    for name, value in run.variables.items():
        env[("SECRET_" if name in run.secret_names else "") + name.upper()] = value
    env.update(extra)
    proc = subprocess.run(["node", str(POST_JS)], env=env, capture_output=True, text=True, timeout=60, check=False)
    return TaskRun.from_output(proc.returncode, proc.stdout, proc.stderr)


def test_no_secrets_gives_the_token_only(vw: VaultWorld, job: AgentJob) -> None:
    run = vw.job(job, secrets="").run()
    assert not run.failed, run.text
    assert set(run.variables) == {"VAULT_ADDR", "VAULT_TOKEN"}
    assert vw.bao.api("GET", "auth/token/lookup-self", token=run.variables["VAULT_TOKEN"])[0] == 200


# -- errors: login ----------------------------------------------------------------------------------


def failed(run: TaskRun) -> str:
    assert run.failed, run.text
    assert not run.variables, "nothing is set when the task fails"
    assert_clean(run)
    return run.errors[0]


def test_role_not_found(vw: VaultWorld, job: AgentJob) -> None:
    vw.bao.ok("DELETE", f"auth/jwt/role/{ROLE}")
    message = failed(vw.job(job).run())
    assert f'role "{ROLE}" could not be found' in message
    assert f"vault write auth/jwt/role/{ROLE} role_type=jwt" in message and f"bound_subject={vw.subject}" in message


def test_no_audience_bound(vw: VaultWorld, job: AgentJob) -> None:
    vw.role(bound_audiences=None)
    message = failed(vw.job(job).run())
    assert "no audiences bound" in message and "bound_audiences=api://AzureADTokenExchange" in message


def test_audience_mismatch(vw: VaultWorld, job: AgentJob) -> None:
    vw.role(bound_audiences=["https://vault.example.com"])
    message = failed(vw.job(job).run())
    assert (
        "invalid audience" in message and f"auth/jwt/role/{ROLE} bound_audiences=api://AzureADTokenExchange" in message
    )


@pytest.mark.parametrize("binding", ["bound_subject", "bound_claims"])
def test_claim_mismatch_shows_the_tokens_subject(vw: VaultWorld, job: AgentJob, binding: str) -> None:
    if binding == "bound_subject":
        vw.role(bound_subject="sc://fabrikam/Payments/another-connection")
    else:
        vw.role(bound_subject=None, bound_claims={"sub": "sc://other-org/*"}, bound_claims_type="glob")
    message = failed(vw.job(job).run())
    assert f"its sub is {vw.subject}" in message and "Vault says:" in message


def test_untrusted_issuer(vw: VaultWorld, job: AgentJob) -> None:
    vw.bao.configure_jwt("jwt", "https://vstoken.dev.azure.com/another-org", [vw.ado.public_pem()])
    message = failed(vw.job(job).run())
    assert "invalid issuer" in message and f"bound_issuer={vw.ado.issuer}" in message


def test_unreachable_server(vw: VaultWorld, job: AgentJob) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    message = failed(vw.job(job, url=f"http://127.0.0.1:{port}").run(timeout=120))
    assert "Could not reach Vault" in message and "running and reachable" in message


# -- errors: reading ------------------------------------------------------------------------------


def test_permission_denied_names_the_path_and_capability(vw: VaultWorld, job: AgentJob) -> None:
    vw.bao.put("secret", "team/other", {"x": "y"})
    run = vw.job(job, secrets="secret/team/other x | OTHER").run()
    message = failed(run)
    assert 'path "secret/data/team/other" { capabilities = ["read"] }' in message
    assert "Revoked the Vault token" in run.text  # no live token is left behind by a failed task


def test_kv1_path_written_the_kv2_way(vw: VaultWorld, job: AgentJob) -> None:
    message = failed(vw.job(job, secrets="kv1/data/legacy api_key | KEY").run())
    assert "kv1/ is KV version 1" in message and "write the path as kv1/legacy" in message


def test_kv2_metadata_path(vw: VaultWorld, job: AgentJob) -> None:
    vw.bao.policy("ado-read", POLICY + 'path "secret/metadata/ado/*" { capabilities = ["read"] }\n')
    message = failed(vw.job(job, secrets="secret/metadata/ado/app user | U").run())
    assert "secret/ is KV version 2" in message and "secret/ado/app" in message


def test_missing_field_lists_the_fields(vw: VaultWorld, job: AgentJob) -> None:
    message = failed(vw.job(job, secrets="secret/ado/app password | P").run())
    assert "has no field 'password'" in message and "db_password, user" in message
    assert DB_PASSWORD not in message


# -- the author's variable names are checked before anything is sent --------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("secret/ado/app user | System.CollectionUri", "agent's namespaces"),
        ("secret/ado/app user | AGENT_PROXYURL", "agent's namespaces"),
        ("secret/ado/app user | TF_BUILD", "agent's namespaces"),
        ("secret/ado/app user | Build-SourcesDirectory", "letters, digits"),
        ("secret/ado/app user | secret_x", "reserved by the agent"),
        ("secret/ado/app user | VAULT_TOKEN", "the task sets it itself"),
        ("secret/ado/app user", "name the variable after '|'"),
        ("secret/ado/app user extra | X", "'<path> <field> | <VARIABLE>'"),
        ("secret/ado/app user | A_B\nsecret/ado/app user | a.b", "both set"),
        ("../sys/seal x | X", "is not a secret path"),
    ],
)
def test_bad_secret_lines_are_refused_before_sending(vw: VaultWorld, job: AgentJob, line: str, expected: str) -> None:
    run = vw.job(job, secrets=line).run()
    message = failed(run)
    assert expected in message
    assert not any(r["path"].endswith("/oidctoken") for r in vw.ado.requests), "nothing was sent"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://vault.example.com:8200", "must be https"),
        ("https://evil.example\\@vault.example.com", "backslash"),
        ("https://user:pw@vault.example.com", "user information"),
        ("https://vault.example.com\n.evil", "whitespace"),
    ],
)
def test_an_unsafe_vault_address_is_refused_before_sending(
    vw: VaultWorld, job: AgentJob, url: str, reason: str
) -> None:
    message = failed(vw.job(job, url=url).run())
    assert "Vault connection's URL" in message and reason in message
    assert not any(r["path"].endswith("/oidctoken") for r in vw.ado.requests), "not even the OIDC token was asked for"


# -- a second, TLS server: Vault's own CA, then sealed ---------------------------------------------


@pytest.fixture(scope="module")
def tls_bao() -> Iterator[OpenBao]:
    server = start(tls=True)
    try:
        yield server
    finally:
        server.stop()


def test_vault_over_tls_with_its_own_ca_then_sealed(tls_bao: OpenBao, ado: AzureDevOps, job: AgentJob) -> None:
    vw = make_world(tls_bao, ado)
    pem = Path(tls_bao.ca_path).read_text()
    # the job trusts the test CA (Azure DevOps stand-in), which did not sign Vault's certificate
    denied = vw.job(job, secrets="secret/ado/app user | APP_USER").run()
    assert "TLS verification failed for Vault" in failed(denied)

    run = vw.job(job, secrets="secret/ado/app user | APP_USER", vaultCaCertificate=pem).run()
    assert not run.failed, run.text
    assert run.variables["APP_USER"] == "app-user-7"
    ca_file = Path(run.variables["VAULT_CACERT"])
    assert ca_file.read_text().strip() == pem.strip() and ca_file.is_relative_to(job.env["AGENT_TEMPDIRECTORY"])
    # the post-job step deletes the CA file before its hook runs, and still revokes over TLS
    done = post_step(job, run)
    assert "Revoked the job's Vault token" in done.text and not ca_file.exists()
    assert tls_bao.api("GET", "auth/token/lookup-self", token=run.variables["VAULT_TOKEN"])[0] == 403
    run = vw.job(job, secrets="secret/ado/app user | APP_USER", vaultCaCertificate=pem).run()
    ca_file = Path(run.variables["VAULT_CACERT"])

    tls_bao.seal()
    try:
        message = failed(vw.job(job, vaultCaCertificate=pem).run(timeout=120))
        assert "sealed" in message and "unseal" in message
        # the failed run left no file of its own, and did not touch the earlier step's
        assert list(Path(job.env["AGENT_TEMPDIRECTORY"]).rglob("vault-ca-*")) == [ca_file]
    finally:
        tls_bao.unseal()


def test_namespace_is_sent_and_exported(openbao: OpenBao, ado: AzureDevOps, job: AgentJob) -> None:
    """A role and secret that exist only in namespace team-a: found only through X-Vault-Namespace."""
    conn = ado.add_connection("vault-team-a")
    openbao.configure_jwt("jwt", ado.issuer, [ado.public_pem()])  # the root namespace trusts the token too
    if openbao.api("GET", "sys/namespaces/team-a")[0] != 200:
        openbao.ok("POST", "sys/namespaces/team-a")
        openbao.ok("POST", "team-a/sys/auth/jwt", {"type": "jwt"})
        openbao.ok("POST", "team-a/sys/mounts/kv", {"type": "kv", "options": {"version": "2"}})
    openbao.ok("POST", "team-a/kv/data/app", {"data": {"token": "team-a-secret-value"}})
    openbao.ok("PUT", "team-a/sys/policies/acl/read", {"policy": 'path "kv/data/app" { capabilities = ["read"] }'})
    openbao.ok(
        "POST", "team-a/auth/jwt/config", {"bound_issuer": ado.issuer, "jwt_validation_pubkeys": [ado.public_pem()]}
    )
    openbao.ok(
        "POST",
        "team-a/auth/jwt/role/team-role",
        {
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_audiences": ["api://AzureADTokenExchange"],
            "bound_subject": ado.subject(conn),
            "token_policies": ["read"],
        },
    )
    job.inputs(provider="vault", vaultConnection=conn.id, vaultSecrets="kv/app token | TEAM_TOKEN")
    job.endpoint(conn.id, url=openbao.addr, scheme="None", params={"role": "team-role", "namespace": "team-a"})
    run = job.run()
    assert not run.failed, run.text
    assert run.variables["VAULT_NAMESPACE"] == "team-a" and run.variables["TEAM_TOKEN"] == "team-a-secret-value"
    assert "namespace 'team-a'" in run.text
    # without the namespace the same role does not exist
    job.env[f"ENDPOINT_AUTH_PARAMETER_{conn.id}_NAMESPACE"] = ""
    job.endpoint(conn.id, url=openbao.addr, scheme="None", params={"role": "team-role"})
    assert "could not be found" in failed(job.run())


def test_fixture_trusts_the_stand_in_by_its_jwks_url(
    openbao: OpenBao, ado: AzureDevOps, ca: Any, job: AgentJob
) -> None:
    """configure_jwt with a JWKS URL: OpenBao fetches the stand-in's keys over https (its CA given)."""
    conn = ado.add_connection("vault-jwks")
    openbao.configure_jwt(
        "jwt-jwks",
        ado.issuer,
        f"{ado.base_url}/.well-known/jwks",
        jwks_ca_pem=Path(ca.bundle).read_text(),
        roles={"r": {"bound_audiences": ["api://AzureADTokenExchange"], "bound_subject": ado.subject(conn)}},
    )
    job.inputs(provider="vault", vaultConnection=conn.id, vaultMountPath="jwt-jwks")
    job.endpoint(conn.id, url=openbao.addr, scheme="None", params={"role": "r"})
    run = job.run()
    assert not run.failed, run.text
    assert openbao.api("GET", "auth/token/lookup-self", token=run.variables["VAULT_TOKEN"])[0] == 200


# -- parsing, without the network ------------------------------------------------------------------


def test_secret_lines_parse_comments_separators_and_forms() -> None:
    from oidc_credentials.providers.vault import SecretRef, parse_secrets

    refs = parse_secrets(
        "# comment\n\nsecret/app  db_password | DB_PASSWORD ;\n  secret/data/app | APP_JSON\nkv1/x/y key|K.Y\n"
    )
    assert refs == (
        SecretRef(3, "secret/app", "db_password", "DB_PASSWORD"),
        SecretRef(4, "secret/data/app", "", "APP_JSON"),
        SecretRef(5, "kv1/x/y", "key", "K.Y"),
    )


def test_post_step_revokes_only_its_own_token(vw: VaultWorld, job: AgentJob) -> None:
    """Two Vault steps in one job: VAULT_TOKEN then holds the second token. The first step's post-job hook
    recognises (by the accessor's fingerprint) that it is not its own token and leaves it alone."""
    first = vw.job(job, secrets="").run()
    second = vw.job(job, secrets="").run()
    assert not first.failed and not second.failed
    later = second.variables["VAULT_TOKEN"]
    done = post_step(job, first, SECRET_VAULT_TOKEN=later)
    assert not done.failed and any("VAULT_TOKEN now holds another Vault token" in w for w in done.warnings)
    status, looked = vw.bao.api("GET", "auth/token/lookup-self", token=later)
    assert status == 200 and looked is not None
    state = Path(second.task_variables["OIDC_CREDENTIALS_STATE"]).read_text()
    assert later not in state and looked["data"]["accessor"] not in state  # neither the token nor its accessor
    assert json.loads(state)["post"]["vault"]["address"] == vw.bao.addr
    done = post_step(job, second)
    assert "Revoked the job's Vault token" in done.text
    assert vw.bao.api("GET", "auth/token/lookup-self", token=later)[0] == 403


PEM = "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8w\nggE7AgEAAkEAq7BFUpkGp3+5dAQf3x7n\n-----END PRIVATE KEY-----\n"


@pytest.mark.parametrize("mode", ["fail", "base64", "file"])
def test_multi_line_values_follow_the_shared_policy(vw: VaultWorld, job: AgentJob, mode: str) -> None:
    vw.bao.put("secret", "ado/tls", {"key": PEM})
    run = vw.job(job, secrets="secret/ado/tls key | TLS_KEY", vaultMultilineSecrets=mode).run()
    if mode == "fail":
        message = failed(run)
        assert "spans several lines" in message and "vaultMultilineSecrets" in message and "PRIVATE" not in message
        return
    assert not run.failed, run.text
    assert_clean(run)
    assert "MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8w" in run.secrets  # each line that matters is registered
    if mode == "base64":
        assert base64.b64decode(run.variables["TLS_KEY"]).decode() == PEM and "TLS_KEY" in run.secret_names
    else:
        path = Path(run.variables["VAULT_FILE_TLS_KEY"])
        assert path.read_text() == PEM and stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.is_relative_to(job.env["AGENT_TEMPDIRECTORY"]) and "TLS_KEY" not in run.variables
