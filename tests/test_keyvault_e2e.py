"""The Key Vault provider end to end through the launcher, against the ADO, Entra and Key Vault stand-ins."""

from __future__ import annotations

import base64
import io
import os
import socket
import stat
import time
from pathlib import Path

import pytest
from oidc_credentials import __main__ as entry

from tests.conftest import Vaulted
from tests.harness import AgentJob, TaskRun, unregistered_secret_lines


def test_every_secret_with_exact_values(job: AgentJob, kv: Vaulted) -> None:
    values = {f"app-secret-{i:02d}": f"v{i};%AZP25]$(x)" for i in range(60)}
    for name, value in values.items():
        kv.vault.add(name, value)
    result = kv.job(job).run()
    assert not result.failed, result.text
    assert {k: v for k, v in result.variables.items()} == values
    assert result.secret_names == set(values)


def test_values_are_never_printed_unregistered(job: AgentJob, kv: Vaulted) -> None:
    kv.vault.add("db-password", "Pa55;w0rd%]")
    kv.vault.add("api-key", "ak_live_42")
    result = kv.job(job, secretsFilter="db-password,api-key").run()
    assert not result.failed
    assert unregistered_secret_lines(result.stdout, ["Pa55;w0rd%]", "ak_live_42"]) == []
    assert "Pa55" not in result.stderr and "ak_live_42" not in result.stderr


def test_names_and_globs(job: AgentJob, kv: Vaulted) -> None:
    for name in ("db-password", "db-user", "api-key", "api-key-old", "other"):
        kv.vault.add(name, f"value of {name}")
    result = kv.job(job, secretsFilter="API-KEY, db-*").run()
    assert not result.failed, result.text
    assert result.variables == {
        "api-key": "value of api-key",
        "db-password": "value of db-password",
        "db-user": "value of db-user",
    }


def test_names_alone_are_fetched_without_listing(job: AgentJob, kv: Vaulted) -> None:
    kv.vault.add("db-password", "x")
    kv.vault.add("other", "y")
    result = kv.job(job, secretsFilter="db-password").run()
    assert result.variables == {"db-password": "x"}
    authorised = [r["path"] for r in kv.vault.requests if "Authorization" in r["headers"]]
    assert authorised == ["/secrets/db-password"]


@pytest.mark.parametrize("filter_", ["db-password, nope-1, also-missing", "db-*, nope-1, also-missing"])
def test_missing_names_fail_all_at_once(job: AgentJob, kv: Vaulted, filter_: str) -> None:
    kv.vault.add("db-password", "x")
    result = kv.job(job, secretsFilter=filter_).run()
    assert result.failed and result.variables == {}
    assert "2 requested secret(s) do not exist" in result.errors[0] and "also-missing, nope-1" in result.errors[0]


def test_disabled_not_yet_valid_and_expired_are_skipped_and_named(job: AgentJob, kv: Vaulted) -> None:
    now = int(time.time())
    kv.vault.add("good", "1")
    kv.vault.add("off", "2", enabled=False)
    kv.vault.add("later", "3", nbf=now + 3600)
    kv.vault.add("gone", "4", exp=now - 3600)
    kv.vault.add("valid-window", "5", nbf=now - 60, exp=now + 3600)
    result = kv.job(job).run()
    assert not result.failed
    assert result.variables == {"good": "1", "valid-window": "5"}
    line = next(line for line in result.log if line.startswith("Skipped 3 secret(s)"))
    assert "gone (expired " in line and "later (not valid before " in line and "off (disabled)" in line
    fetched = {r["path"] for r in kv.vault.requests if r["path"].startswith("/secrets/")}
    assert fetched == {"/secrets/good", "/secrets/valid-window"}  # unusable values are never fetched


def test_an_explicitly_requested_disabled_secret_warns(job: AgentJob, kv: Vaulted) -> None:
    kv.vault.add("off", "2", enabled=False)
    result = kv.job(job, secretsFilter="off").run()
    assert not result.failed and result.variables == {}
    assert any("off (disabled)" in w for w in result.warnings)


def test_environment_safe_aliases(job: AgentJob, kv: Vaulted) -> None:
    kv.vault.add("my-db-password", "p")
    kv.vault.add("APIKEY", "k")
    result = kv.job(job, secretsEnvironmentAliases="true").run()
    assert result.variables == {"APIKEY": "k", "my-db-password": "p", "MY_DB_PASSWORD": "p"}
    assert result.secret_names == {"APIKEY", "my-db-password", "MY_DB_PASSWORD"}


def test_reserved_names_are_skipped_with_a_warning(job: AgentJob, kv: Vaulted) -> None:
    kv.vault.add("secret-key", "s")
    kv.vault.add("fine", "f")
    result = kv.job(job).run()
    assert not result.failed and result.variables == {"fine": "f"}
    assert any("secret-key" in w and "reserved" in w for w in result.warnings)
    failed = kv.job(job, secretsFilter="secret-key").run()
    assert failed.failed and "secret-key cannot become pipeline variables" in failed.errors[0]


PEM = (
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\r\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n"
)


def test_multiline_fails_by_default_naming_the_secret(job: AgentJob, kv: Vaulted) -> None:
    kv.vault.add("tls-key", PEM)
    kv.vault.add("plain", "p")
    result = kv.job(job).run()
    assert result.failed and result.variables == {}
    assert "Secret(s) tls-key hold several lines" in result.errors[0] and "'multilineSecrets'" in result.errors[0]
    assert "MIIEvQ" not in result.stdout + result.stderr


def test_multiline_as_base64(job: AgentJob, kv: Vaulted) -> None:
    kv.vault.add("tls-key", PEM)
    result = kv.job(job, multilineSecrets="base64").run()
    assert not result.failed
    assert base64.b64decode(result.variables["tls-key"]).decode() == PEM and "tls-key" in result.secret_names
    for line in ("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "BKcwggSjAgEAAoIBAQC7", "-----BEGIN PRIVATE KEY-----"):
        assert line in result.secrets


def test_multiline_as_a_private_file(job: AgentJob, kv: Vaulted) -> None:
    kv.vault.add("tls-key", PEM)
    kv.vault.add("plain", "p")
    result = kv.job(job, multilineSecrets="file").run()
    assert not result.failed, result.text
    path = Path(result.variables["KEYVAULT_FILE_TLS_KEY"])
    assert "KEYVAULT_FILE_TLS_KEY" not in result.secret_names and "tls-key" not in result.variables
    assert "TLS_KEY_FILE" not in result.variables  # a name chosen by the vault never picks a tool's variable
    assert path.read_bytes() == PEM.encode() and path.is_relative_to(job.env["AGENT_TEMPDIRECTORY"])
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for line in ("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "BKcwggSjAgEAAoIBAQC7", "-----END PRIVATE KEY-----"):
        assert line in result.secrets
    # each line was registered before the path variable (or anything else) was printed
    assert result.stdout.index("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC") < result.stdout.index(
        "variable=KEYVAULT_FILE_TLS_KEY"
    )
    assert result.variables["plain"] == "p"


def test_429_retry_after_is_honoured(job: AgentJob, kv: Vaulted) -> None:
    kv.vault.add("a", "1")
    kv.vault.throttle_next(1, retry_after=1)
    started = time.monotonic()
    result = kv.job(job).run()
    assert not result.failed and result.variables == {"a": "1"}
    assert any("attempt 1 of 10 failed (HTTP 429); retrying in 1.0 s" in line for line in result.log)
    assert time.monotonic() - started >= 1.0


def test_concurrency_is_bounded(job: AgentJob, kv: Vaulted) -> None:
    for i in range(30):
        kv.vault.add(f"s-{i:02d}", str(i))
    kv.vault.latency = 0.05
    result = kv.job(job, keyVaultConcurrency="4").run()
    assert not result.failed and len(result.variables) == 30
    assert 2 <= kv.vault.max_values_in_flight <= 4
    assert kv.vault.max_in_flight <= 5  # the values plus the listing, which runs alongside them


def test_a_nextlink_to_another_origin_is_not_followed(job: AgentJob, kv: Vaulted) -> None:
    for i in range(30):
        kv.vault.add(f"s-{i:02d}", str(i))
    real = kv.vault.base_url
    kv.vault.base_url = "https://127.0.0.1:9"  # the vault now names another origin in its links
    result = kv.job(job, keyVault=real).run()
    assert result.failed and result.variables == {}
    assert "sent a nextLink to another origin (127.0.0.1:9)" in result.errors[0]


def test_rbac_refusal(job: AgentJob, kv: Vaulted) -> None:
    kv.vault.role_assignments.clear()
    kv.vault.add("a", "1")
    result = kv.job(job).run()
    assert result.failed and result.variables == {}
    client = kv.world.app.client_id
    assert (
        f'az role assignment create --role "Key Vault Secrets User" --assignee {client} --scope {kv.vault.resource_id.lower()}'
        in result.errors[0]
    )


def test_access_policy_refusal(job: AgentJob, kv: Vaulted) -> None:
    kv.vault.rbac = False
    kv.vault.access_policies[kv.world.app.client_id] = {"list"}
    kv.vault.add("a", "1")
    result = kv.job(job).run()
    assert result.failed and "refused to read secret 'a' (HTTP 403 AccessDenied)" in result.errors[0]
    assert (
        f"az keyvault set-policy --name kv-payments --spn {kv.world.app.client_id} --secret-permissions get list"
        in result.errors[0]
    )


def test_firewall_refusal(job: AgentJob, kv: Vaulted) -> None:
    kv.vault.allowed_ips = {"203.0.113.9"}
    kv.vault.add("a", "1")
    result = kv.job(job).run()
    assert result.failed and "Client address is not authorized" in result.errors[0]
    assert "az keyvault network-rule add --name kv-payments --ip-address 127.0.0.1" in result.errors[0]


def test_a_vault_in_another_tenant(job: AgentJob, kv: Vaulted) -> None:
    kv.vault.tenant_id = "99999999-2222-4333-8444-555555555555"
    kv.vault.add("a", "1")
    result = kv.job(job).run()
    assert result.failed and "AKV10032" in result.errors[0]


def test_a_vault_that_does_not_exist(job: AgentJob, kv: Vaulted, monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def resolve(host: str, *args: object, **kwargs: object) -> object:
        if host.endswith(".vault.azure.net"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    kv.job(job, keyVault="kv-gone")
    out, err = io.StringIO(), io.StringIO()
    env = {k: v for k, v in job.env.items() if k != "OIDC_CREDENTIALS_PYTHON"}
    entry.main(env, out, err)
    result = TaskRun.from_output(0, out.getvalue(), err.getvalue())
    assert result.failed and result.variables == {}
    assert "Key vault 'kv-gone' was not found: kv-gone.vault.azure.net does not resolve" in result.errors[0]
    assert not kv.world.entra.requests  # nothing was exchanged for a vault that is not there


def test_the_env_hint_is_yaml_to_paste_listing_every_secret_once(job: AgentJob, kv: Vaulted) -> None:
    import yaml

    for name in ("api-key", "db-password", "x1"):
        kv.vault.add(name, f"value of {name}")
    result = kv.job(job, secretsEnvironmentAliases="true").run()
    assert not result.failed, result.text
    start = result.log.index("env:")
    block = "\n".join(line for line in result.log[start:] if line == "env:" or line.startswith("  "))
    assert yaml.safe_load(block) == {"env": {"API_KEY": "$(api-key)", "DB_PASSWORD": "$(db-password)", "X1": "$(x1)"}}


@pytest.mark.parametrize(
    ("setting", "name_fails", "glob_fails"),
    [("", True, False), ("names", True, False), ("all", True, True), ("none", False, False)],
)
def test_fail_on_missing_secrets(job: AgentJob, kv: Vaulted, setting: str, name_fails: bool, glob_fails: bool) -> None:
    kv.vault.add("present", "p")
    extra = {"failOnMissingSecrets": setting} if setting else {}
    by_name = kv.job(job, secretsFilter="present,absent", **extra).run()
    assert by_name.failed == name_fails, by_name.text
    assert any("absent" in line for line in by_name.errors + by_name.warnings)
    by_glob = kv.job(job, secretsFilter="present,nothing-*", **extra).run()
    assert by_glob.failed == glob_fails, by_glob.text
    assert any("'nothing-*' matched no secret" in line for line in by_glob.errors + by_glob.warnings)
    for run in (by_name, by_glob):
        assert run.variables == ({} if run.failed else {"present": "p"})
