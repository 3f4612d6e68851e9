"""Every fault class at Vault, which runs as a real OpenBao server with no fault knobs of its own: a forwarding
proxy on 127.0.0.1 (the stand-ins' server and its fault middleware in front of OpenBao) injects them at the JWT
login and at the KV read, as tests/test_faults.py does at every stand-in.

What is worth retrying is retried and the run succeeds; the rest fails at once with one clear error, one
request, no variable set and no file left but the summary and audit record.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.harness import AgentJob
from tests.openbao import OpenBao
from tests.standins.ado import AzureDevOps
from tests.standins.server import Fault, LocalCA, Server
from tests.test_faults import FAIL_FAST, RETRIED, assert_failed_cleanly
from tests.test_leaks import Scenario, assert_no_leak, temp_of

SOAK = bool(os.environ.get("OIDC_CREDENTIALS_SOAK"))
pytestmark = pytest.mark.soak
#: counted for the README's figures
INJECTED = {"faults": 0, "runs": 0}

#: where the faults land: the JWT login and the KV v2 read
PATHS = {"login": "/v1/auth/jwt/login", "kv-read": "/v1/secret/data/"}
#: hop-by-hop headers a proxy does not pass on (RFC 9110 §7.6.1), and what the WSGI server sets itself
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length", "host"}


class Forward:
    """A WSGI app that passes each request on to ``target`` and its answer back, as a reverse proxy does."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._session = requests.Session()
        self._session.trust_env = False  # loopback only, whatever the environment says

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_") and key[5:].replace("_", "-").lower() not in HOP
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        query = environ.get("QUERY_STRING", "")
        url = self.target + environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
        answer = self._session.request(environ["REQUEST_METHOD"], url, data=body, headers=headers, timeout=30)
        passed = [(k, v) for k, v in answer.headers.items() if k.lower() not in HOP | {"content-encoding"}]
        passed.append(("Content-Length", str(len(answer.content))))
        start_response(f"{answer.status_code} {answer.reason}", passed)
        return [answer.content]


@pytest.fixture
def fronted(openbao: OpenBao) -> Iterator[Server]:
    with Server(Forward(openbao.addr)) as server:
        yield server


@pytest.fixture
def vault(openbao: OpenBao, ado: AzureDevOps, job: AgentJob, fronted: Server) -> Scenario:
    from tests.test_vault import API_KEY, DB_PASSWORD, make_world

    make_world(openbao, ado).job(job, url=fronted.url)
    return Scenario(job, ado, planted=[DB_PASSWORD, API_KEY])


def test_the_proxy_passes_vault_through_unchanged(openbao: OpenBao, vault: Scenario, fronted: Server) -> None:
    """The baseline the fault tests build on: through the proxy, with no fault, the run succeeds (and its token
    is live until the post-job step: what the permanent-fault tests check is not left behind)."""
    from tests.test_vault import DB_PASSWORD

    live = _live_tokens(openbao)
    run = vault.run(False)
    assert len(_live_tokens(openbao) - live) == 1
    openbao.ok("POST", "auth/token/revoke", {"token": run.variables["VAULT_TOKEN"]})  # the post-job step's work
    assert not run.failed, run.text
    assert run.variables["DB_PASSWORD"] == DB_PASSWORD
    assert fronted.faults.requests >= 2 and fronted.faults.injected == 0
    assert_no_leak(run, temp_of(vault), vault.known(run))


def _inject(server: Server, where: str, count: int, fault: Fault) -> None:
    server.fail_next(count, Fault(**{**vars(fault), "path": PATHS[where]}))
    INJECTED["faults"] += count


@pytest.mark.parametrize("kind", list(RETRIED))
@pytest.mark.parametrize("where", list(PATHS))
def test_transient_faults_at_vault_are_retried(vault: Scenario, fronted: Server, where: str, kind: str) -> None:
    if not SOAK and list(RETRIED).index(kind) % len(PATHS) != list(PATHS).index(where):
        pytest.skip("make test runs half the faults at each place; make soak runs every fault at both")
    count, fault = RETRIED[kind]
    _inject(fronted, where, count, fault)
    began = time.monotonic()
    run = vault.run(False)
    INJECTED["runs"] += 1
    assert not run.failed, run.text
    assert fronted.faults.injected == count
    assert "retrying in" in run.text
    assert time.monotonic() - began < 60
    if kind == "429-retry-after":
        assert "retrying in 1." in run.text or "retrying in 2." in run.text  # Retry-After: 1 honoured
    assert_no_leak(run, temp_of(vault), vault.known(run))


@pytest.mark.parametrize("kind", list(FAIL_FAST))
@pytest.mark.parametrize("where", list(PATHS))
def test_permanent_faults_at_vault_fail_at_once(
    openbao: OpenBao, vault: Scenario, fronted: Server, where: str, kind: str
) -> None:
    if not SOAK and list(FAIL_FAST).index(kind) % len(PATHS) != list(PATHS).index(where):
        pytest.skip("make test runs half the faults at each place; make soak runs every fault at both")
    live = _live_tokens(openbao)
    _inject(fronted, where, 5, FAIL_FAST[kind])
    began = time.monotonic()
    run = vault.run(False)
    INJECTED["runs"] += 1
    assert_failed_cleanly(run, vault)
    assert fronted.faults.injected == 1, "a permanent fault is not retried"
    assert "retrying" not in run.text
    assert time.monotonic() - began < 30
    assert "##vso[" not in run.errors[0] and "##[" not in run.errors[0]
    assert_no_leak(run, temp_of(vault), vault.known(run))
    assert _live_tokens(openbao) == live, "a token issued before the failure is revoked at once"


def _live_tokens(openbao: OpenBao) -> set[str]:
    """The accessors of every live token on the server."""
    status, body = openbao.api("LIST", "auth/token/accessors")
    assert status == 200 and body is not None, body
    return set(body["data"]["keys"])


def test_latency_at_vault_past_the_deadline_is_bounded(vault: Scenario, fronted: Server) -> None:
    _inject(fronted, "kv-read", 20, Fault(status=503, delay=6.0))
    vault.job.env["INPUT_TIMEOUTSECONDS"] = "10"
    began = time.monotonic()
    run = vault.run(False)
    took = time.monotonic() - began
    INJECTED["runs"] += 1
    assert_failed_cleanly(run, vault)
    assert took < 10 + 15, f"the task's deadline (10 s) bounds the run; it took {took:.1f} s"
    assert_no_leak(run, temp_of(vault), vault.known(run))


def test_tls_at_vault_the_agent_does_not_trust_fails_at_once(
    openbao: OpenBao, ado: AzureDevOps, job: AgentJob, tmp_path: Path
) -> None:
    """Vault answers with a certificate from a CA the agent does not trust."""
    from tests.test_vault import make_world

    with Server(Forward(openbao.addr), ca=LocalCA(str(tmp_path / "foreign-ca"))) as impostor:
        make_world(openbao, ado).job(job, url=impostor.url)
        scenario = Scenario(job, ado)
        run = scenario.run(False)
    INJECTED["runs"] += 1
    INJECTED["faults"] += 1
    assert_failed_cleanly(run, scenario)
    assert "TLS verification failed" in run.errors[0] and "REQUESTS_CA_BUNDLE" in run.errors[0]
    assert "retrying" not in run.text


@pytest.fixture(scope="module", autouse=True)
def _report_figures() -> Iterator[None]:
    yield
    import sys

    sys.__stdout__.write(f"\nvault fault figures: {INJECTED}\n")
