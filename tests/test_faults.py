"""Every fault class at every service, through the real launcher: the stand-ins answer with 429 (with and
without ``Retry-After``), bursts of 5xx, connection resets, HTML error pages, malformed and truncated bodies,
wrong content types, latency past the deadline, and TLS the agent does not trust.

Each is classified: what is worth retrying is retried (and the run succeeds), the rest fails at once with one
clear error; the whole run stays within the task's deadline; a failed run sets no variable and leaves no file.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import TaskRun, files_left
from tests.standins.server import Fault, LocalCA, Server
from tests.test_leaks import Scenario, temp_of
from tests.test_leaks import aws as aws  # fixtures shared with the leak scans
from tests.test_leaks import azure as azure
from tests.test_leaks import gcp as gcp
from tests.test_leaks import keyvault as keyvault

SOAK = bool(os.environ.get("OIDC_CREDENTIALS_SOAK"))
pytestmark = pytest.mark.soak
#: counted for the README's figures
INJECTED = {"faults": 0, "runs": 0}

#: service -> (scenario fixture, which server, the path its faults hit)
SERVICES = {
    "ado": ("aws", "ado", "/oidctoken"),
    "sts": ("aws", "own", ""),
    "entra": ("azure", "entra", "/oauth2/v2.0/token"),
    "keyvault": ("keyvault", "vault", "/secrets"),
    "gcp-sts": ("gcp", "own", "/v1/token"),
    "gcp-iam": ("gcp", "own", ":generateAccessToken"),
}

HTML = "<html><head><title>502 Bad Gateway</title></head><body>##vso[task.complete result=Failed]</body></html>"
RETRIED = {
    "429-retry-after": (2, Fault(status=429, body='{"error":"throttled"}', headers={"Retry-After": "1"})),
    "429-bare": (2, Fault(status=429, body="Too Many Requests", content_type="text/plain")),
    "5xx-burst": (3, Fault(status=503, body=HTML)),
    "500-html": (1, Fault(status=500, body=HTML)),
    "504-gateway": (1, Fault(status=504, body="")),
    "reset": (2, Fault(reset=True)),
}
FAIL_FAST = {
    "400-html": Fault(status=400, body=HTML),
    "200-truncated-json": Fault(status=200, body='{"value": [{"id": "https://x', content_type="application/json"),
    "200-html-wrong-type": Fault(status=200, body=HTML, content_type="text/html"),
    "200-json-array": Fault(status=200, body="[1, 2, 3]", content_type="application/json"),
    "200-xml": Fault(status=200, body="<?xml version='1.0'?><Error><Code>x</Code>", content_type="text/xml"),
    "403-json": Fault(status=403, body='{"error": {"code": "Forbidden", "message": "##[error]no"}}'),
}


def _setup(request: pytest.FixtureRequest, service: str) -> tuple[Scenario, Server]:
    fixture, which, _path = SERVICES[service]
    value = request.getfixturevalue(fixture)
    scenario, own = value if isinstance(value, tuple) else (value, None)
    if which == "own":
        server = own
    elif which == "ado":
        server = scenario.ado.server  # type: ignore[attr-defined]
    elif which == "entra":
        server = request.getfixturevalue("world").entra.server
    else:
        server = request.getfixturevalue("kv").vault.server
    assert server is not None
    return scenario, server


def _inject(server: Server, service: str, count: int, fault: Fault) -> None:
    server.fail_next(count, Fault(**{**vars(fault), "path": SERVICES[service][2]}))
    INJECTED["faults"] += count


def _files(scenario: Scenario) -> list[Path]:
    return files_left(temp_of(scenario))  # the summary and audit record stay (and test_leaks scans them)


def assert_failed_cleanly(run: TaskRun, scenario: Scenario) -> None:
    assert run.returncode == 0 and run.failed, run.text
    assert len(run.errors) == 1, run.errors
    assert run.variables == {} and run.output_variables == {}
    assert _files(scenario) == [], "a failed run leaves no file"
    assert "Traceback" not in run.stdout + run.stderr
    assert run.unknown_commands == []
    assert run.completions[-1][0] == "Failed"


@pytest.mark.parametrize("kind", list(RETRIED))
@pytest.mark.parametrize("service", list(SERVICES))
def test_transient_faults_are_retried(request: pytest.FixtureRequest, service: str, kind: str) -> None:
    if not SOAK and list(RETRIED).index(kind) != list(SERVICES).index(service) % len(RETRIED):
        pytest.skip("make test runs one fault per service; make soak runs every fault at every service")
    scenario, server = _setup(request, service)
    count, fault = RETRIED[kind]
    _inject(server, service, count, fault)
    began = time.monotonic()
    run = scenario.run(False)
    INJECTED["runs"] += 1
    assert not run.failed, run.text
    assert server.faults.injected == count
    if service != "entra":  # azure-identity retries Entra itself, without a log line
        assert "retrying in" in run.text
    assert time.monotonic() - began < 60
    if kind == "429-retry-after" and service != "entra":
        assert "retrying in 1." in run.text or "retrying in 2." in run.text  # Retry-After: 1 honoured


@pytest.mark.parametrize("service", ["ado", "keyvault", "gcp-sts"])
def test_a_connection_cut_during_tls_is_retried_not_called_a_certificate_problem(
    request: pytest.FixtureRequest, service: str
) -> None:
    """A reset that lands in the TLS layer (SSLEOFError) is a dropped connection, retried like any other."""
    scenario, server = _setup(request, service)
    _inject(server, service, 3, Fault(reset=True))
    run = scenario.run(False)
    INJECTED["runs"] += 1
    assert not run.failed, run.text
    assert "TLS verification failed" not in run.text and server.faults.injected == 3


@pytest.mark.parametrize("kind", list(FAIL_FAST))
@pytest.mark.parametrize("service", list(SERVICES))
def test_permanent_faults_fail_at_once(request: pytest.FixtureRequest, service: str, kind: str) -> None:
    if not SOAK and list(FAIL_FAST).index(kind) != list(SERVICES).index(service) % len(FAIL_FAST):
        pytest.skip("make test runs one fault per service; make soak runs every fault at every service")
    scenario, server = _setup(request, service)
    _inject(server, service, 5, FAIL_FAST[kind])
    began = time.monotonic()
    run = scenario.run(False)
    INJECTED["runs"] += 1
    assert_failed_cleanly(run, scenario)
    assert server.faults.injected == 1, "a permanent fault is not retried"
    assert "retrying" not in run.text
    assert time.monotonic() - began < 30
    assert "##vso[" not in run.errors[0] and "##[" not in run.errors[0]


@pytest.mark.parametrize("service", list(SERVICES))
def test_latency_past_the_deadline_is_bounded(request: pytest.FixtureRequest, service: str) -> None:
    if not SOAK and service != "keyvault":
        pytest.skip("make soak runs every service")
    scenario, server = _setup(request, service)
    _inject(server, service, 20, Fault(status=503, delay=6.0))
    scenario.job.env["INPUT_TIMEOUTSECONDS"] = "10"
    began = time.monotonic()
    run = scenario.run(False)
    took = time.monotonic() - began
    INJECTED["runs"] += 1
    assert_failed_cleanly(run, scenario)
    assert took < 10 + 15, f"the task's deadline (10 s) bounds the run; it took {took:.1f} s"


@pytest.fixture
def foreign_ca(tmp_path: Path) -> LocalCA:
    return LocalCA(str(tmp_path / "foreign-ca"))


@pytest.mark.parametrize("service", ["ado", "entra", "keyvault", "gcp-sts"])
def test_tls_the_agent_does_not_trust_fails_at_once(
    request: pytest.FixtureRequest, service: str, foreign_ca: LocalCA
) -> None:
    scenario, server = _setup(request, service)
    if service == "ado":
        scenario.job.env["REQUESTS_CA_BUNDLE"] = foreign_ca.bundle  # the agent trusts another CA
    else:
        # the service answers with a certificate from a CA the agent does not trust
        app = server.faults.app
        impostor = Server(app, ca=foreign_ca)
        request.addfinalizer(impostor.stop)
        for key, value in list(scenario.job.env.items()):
            if server.url in value:
                scenario.job.env[key] = value.replace(server.url, impostor.url)
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

    sys.__stdout__.write(f"\nfault figures: {INJECTED}\n")


def _tls_error(inner: BaseException) -> BaseException:
    """What requests raises for a TLS failure: SSLError around urllib3's MaxRetryError around its SSLError."""
    import requests
    import urllib3

    reason = urllib3.exceptions.SSLError(inner)
    return requests.exceptions.SSLError(urllib3.exceptions.MaxRetryError(None, "/v1/token", reason=reason))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("inner", "retried"),
    [
        (ssl.SSLEOFError(8, "EOF occurred in violation of protocol (_ssl.c:2427)"), True),
        (ssl.SSLZeroReturnError(6, "TLS/SSL connection has been closed (EOF)"), True),
        (ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), False),
    ],
)
def test_tls_errors_are_classified(monkeypatch: pytest.MonkeyPatch, inner: BaseException, retried: bool) -> None:
    """Regression: a connection cut inside TLS was reported as a certificate problem and not retried."""
    from oidc_credentials.errors import ExchangeError
    from oidc_credentials.http import Http

    http = Http({}, sleep=lambda _s: None, jitter=lambda: 0.0)
    calls = []

    def fail(*_a: object, **_k: object) -> None:
        calls.append(1)
        raise _tls_error(inner)

    monkeypatch.setattr(http._session, "request", fail)
    with pytest.raises(ExchangeError) as caught:
        http.request("POST", "https://sts.googleapis.com/v1/token", service="Google STS")
    assert ("TLS verification failed" in caught.value.message) is not retried
    assert len(calls) == (5 if retried else 1)


def test_a_throttled_request_gets_more_attempts_than_a_failing_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression (found by the load test): 30 % throttling ran five attempts out for about one request in 400."""
    from oidc_credentials.http import THROTTLED_ATTEMPTS, Http

    class Raw:
        def __init__(self, status: int) -> None:
            self.status_code, self.text, self.headers, self.content = status, "", {}, b""

    for status, expected in ((429, THROTTLED_ATTEMPTS), (503, 5)):
        http = Http({}, sleep=lambda _s: None, jitter=lambda: 0.0)
        calls: list[int] = []
        monkeypatch.setattr(http._session, "request", lambda *_a, _s=status, _c=calls, **_k: _c.append(1) or Raw(_s))
        assert http.request("GET", "https://vault.example/secrets", service="Key Vault").status == status
        assert len(calls) == expected
