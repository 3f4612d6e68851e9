"""The retrying HTTP layer against a real local server: retries, backoff, Retry-After, deadline."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from oidc_credentials.errors import ExchangeError
from oidc_credentials.http import Http, RetryPolicy, retry_after_seconds
from werkzeug.wrappers import Request, Response

from tests.standins.server import LocalCA, Server


class Scripted:
    """Answers each request with the next (status, headers, body) of a script."""

    def __init__(self, *answers: tuple[int, dict[str, str], str]) -> None:
        self.answers = list(answers)
        self.seen: list[Request] = []

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
        request.get_data()
        self.seen.append(request)
        status, headers, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return Response(body, status, headers)(environ, start_response)


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make_http(sleeps: list[float], **env: str) -> Http:
    return Http(env, sleep=sleeps.append, jitter=lambda: 1.0)


@pytest.fixture
def server() -> Iterator[tuple[Server, Scripted]]:
    app = Scripted((200, {}, "ok"))
    with Server(app) as srv:
        yield srv, app


def test_retries_5xx_then_succeeds(server: tuple[Server, Scripted], sleeps: list[float]) -> None:
    srv, app = server
    app.answers = [(503, {}, "busy"), (502, {}, "bad gateway"), (200, {}, "ok")]
    logs: list[str] = []
    http = Http({}, sleep=sleeps.append, jitter=lambda: 1.0, log=logs.append)
    resp = http.request("POST", srv.url, service="Test", data={"a": "b"})
    assert resp.status == 200 and resp.text == "ok"
    assert len(app.seen) == 3
    assert sleeps == [0.5, 1.0]  # base 0.5 * 2**n with jitter pinned to 1
    assert "Test: attempt 1 of 5 failed (HTTP 503); retrying in 0.5 s." in logs


def test_no_retry_on_4xx(server: tuple[Server, Scripted], sleeps: list[float]) -> None:
    srv, app = server
    app.answers = [(403, {}, "denied")]
    resp = make_http(sleeps).request("POST", srv.url, service="Test")
    assert resp.status == 403
    assert len(app.seen) == 1 and sleeps == []


def test_retry_if_recognises_body(server: tuple[Server, Scripted], sleeps: list[float]) -> None:
    srv, app = server
    app.answers = [(400, {}, "Throttling"), (200, {}, "ok")]
    resp = make_http(sleeps).request("POST", srv.url, service="Test", retry_if=lambda r: "Throttling" in r.text)
    assert resp.status == 200 and len(app.seen) == 2


def test_honours_retry_after(server: tuple[Server, Scripted], sleeps: list[float]) -> None:
    srv, app = server
    app.answers = [(429, {"Retry-After": "7"}, "slow down"), (200, {}, "ok")]
    make_http(sleeps).request("GET", srv.url, service="Test")
    assert sleeps == [7.0]


def test_attempts_are_bounded_and_last_answer_returned(server: tuple[Server, Scripted], sleeps: list[float]) -> None:
    srv, app = server
    app.answers = [(500, {}, "boom")]
    resp = make_http(sleeps).request("GET", srv.url, service="Test", retry=RetryPolicy(attempts=3, deadline=100))
    assert resp.status == 500 and len(app.seen) == 3 and len(sleeps) == 2


def test_deadline_stops_retries(server: tuple[Server, Scripted], sleeps: list[float]) -> None:
    srv, app = server
    app.answers = [(503, {"Retry-After": "30"}, "busy")]
    resp = make_http(sleeps).request("GET", srv.url, service="Test", retry=RetryPolicy(attempts=10, deadline=20))
    assert resp.status == 503 and len(app.seen) == 1 and sleeps == []


def test_redirects_are_not_followed(server: tuple[Server, Scripted], sleeps: list[float]) -> None:
    srv, app = server
    app.answers = [(302, {"Location": "https://elsewhere.invalid/_signin"}, "moved")]
    resp = make_http(sleeps).request("POST", srv.url, service="Test", headers={"Authorization": "Bearer x"})
    assert resp.status == 302 and resp.header("location").endswith("_signin")


def test_unreachable_host_raises_after_retries(sleeps: list[float]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ExchangeError, match=r"Could not reach Test at http://127.0.0.1:\d+ after 3 attempt\(s\)"):
        make_http(sleeps).request("GET", f"http://127.0.0.1:{port}/", service="Test", retry=RetryPolicy(attempts=3))
    assert len(sleeps) == 2


def test_tls_failure_explains_ca_bundle(ca: LocalCA, sleeps: list[float], tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = LocalCA(str(tmp_path / "other"))
    with Server(Scripted((200, {}, "ok")), ca=ca) as srv:
        with pytest.raises(ExchangeError, match="TLS verification failed for Test.*REQUESTS_CA_BUNDLE"):
            make_http(sleeps, REQUESTS_CA_BUNDLE=other.bundle).request("GET", srv.url, service="Test")
        assert make_http(sleeps, REQUESTS_CA_BUNDLE=ca.bundle).request("GET", srv.url, service="Test").status == 200
        assert make_http(sleeps, SSL_CERT_FILE=ca.bundle).request("GET", srv.url, service="Test").status == 200


def test_agent_proxy_is_used_and_bypassed(server: tuple[Server, Scripted], sleeps: list[float]) -> None:
    """With Agent.ProxyUrl set, requests go to the proxy (here: our server acting as one)."""
    proxy, app = server
    app.answers = [(200, {}, "via proxy")]
    http = make_http(sleeps, AGENT_PROXYURL=proxy.url, AGENT_PROXYUSERNAME="u", AGENT_PROXYPASSWORD="p;w")
    resp = http.request("GET", "http://sts.example.invalid/x", service="Test")
    assert resp.text == "via proxy"
    assert app.seen[-1].url == "http://sts.example.invalid/x"  # absolute-form request line: a proxy request
    assert app.seen[-1].headers["Proxy-Authorization"].startswith("Basic ")
    bypass = make_http(sleeps, AGENT_PROXYURL="http://127.0.0.1:9", AGENT_PROXYBYPASSLIST='["127\\\\.0\\\\.0\\\\.1"]')
    assert bypass.request("GET", proxy.url, service="Test").status == 200


def test_standard_proxy_variables_win_over_agent_proxy(sleeps: list[float]) -> None:
    http = make_http(sleeps, HTTPS_PROXY="http://corp:3128", AGENT_PROXYURL="http://agent:8888")
    assert http._proxies("https://sts.amazonaws.com") is None  # requests then reads HTTPS_PROXY itself


@pytest.mark.parametrize(("value", "expected"), [("5", 5.0), ("0.5", 0.5), ("", None), ("soon", None)])
def test_retry_after_parsing(value: str, expected: float | None) -> None:
    assert retry_after_seconds(value) == expected


def test_retry_after_http_date() -> None:
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


# -- deadlines: a dribbled answer cannot stretch a request or the task ------------------------------------------
def test_a_dribbled_body_cannot_stretch_an_attempt(sleeps: list[float]) -> None:
    """One byte every 0.3 s restarts any per-read timeout; the attempt's deadline covers the whole body."""
    import time

    app = Scripted((200, {}, "x" * 200))
    with Server(app) as srv:
        srv.dribble(0.3, body_only=True)
        started = time.monotonic()
        with pytest.raises(ExchangeError, match=r"Could not reach Test .* no complete answer within 2 s") as caught:
            make_http(sleeps).request("GET", srv.url, service="Test", timeout=2.0, retry=RetryPolicy(attempts=2))
        elapsed = time.monotonic() - started
    assert caught.value.code == "Timeout"
    assert 3.5 < elapsed < 8, elapsed  # two attempts of 2 s, not 200 bytes x 0.3 s


def test_dribbled_headers_hit_the_task_deadline_naming_the_service(sleeps: list[float]) -> None:
    import time

    from oidc_credentials.http import Deadline, Stalled

    app = Scripted((200, {}, "ok"))
    with Server(app) as srv:
        srv.dribble(0.5)
        http = Http({}, sleep=sleeps.append, jitter=lambda: 1.0, deadline=Deadline.after(2.0))
        started = time.monotonic()
        with pytest.raises(
            Stalled, match=r"Slow Service at http://127\.0\.0\.1:\d+ did not answer in time.*timeoutSeconds"
        ):
            http.request("GET", srv.url, service="Slow Service")
        assert time.monotonic() - started < 5
        with pytest.raises(Stalled, match="Slow Service"):  # past the deadline nothing more is tried
            http.request("GET", srv.url, service="Slow Service")


def test_bounded_names_the_request_under_way_inside_the_call() -> None:
    import time

    from oidc_credentials.http import Deadline, Stalled

    app = Scripted((200, {}, "ok"))
    with Server(app) as srv:
        srv.dribble(0.5)
        http = Http({}, deadline=Deadline.after(2.0))
        started = time.monotonic()
        with pytest.raises(Stalled, match="Inner"):
            http.bounded(lambda: http.request("GET", srv.url, service="Inner"), service="Outer", url="https://outer")
        assert time.monotonic() - started < 6


def test_a_prompt_answer_is_not_affected_by_the_deadline_machinery(server: tuple[Server, Scripted]) -> None:
    from oidc_credentials.http import Deadline

    srv, app = server
    app.answers = [(200, {"Content-Type": "application/xml"}, "<a>é</a>")]
    resp = Http({}, deadline=Deadline.after(30)).request("GET", srv.url, service="Test")
    assert resp.status == 200 and resp.content == "<a>é</a>".encode()


def test_bounded_has_its_own_limit_within_the_task_deadline() -> None:
    import threading

    from oidc_credentials.http import Deadline, Stalled

    release = threading.Event()
    http = Http({}, deadline=Deadline.after(60))
    with pytest.raises(Stalled, match=r"Other at https://other\.example did not answer completely within 1 s"):
        http.bounded(lambda: release.wait(30), service="Other", url="https://other.example/token", limit=1.0)
    release.set()
    assert http.bounded(lambda: 42, service="Other", url="https://other.example/") == 42


def test_a_request_may_trust_a_services_own_ca(ca: LocalCA, sleeps: list[float], tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = LocalCA(str(tmp_path / "other"))
    with Server(Scripted((200, {}, "ok")), ca=ca) as srv:
        http = make_http(sleeps, REQUESTS_CA_BUNDLE=other.bundle)
        assert http.request("GET", srv.url, service="Test", ca_bundle=ca.bundle).status == 200
        with pytest.raises(ExchangeError, match="TLS verification failed"):
            http.request("GET", srv.url, service="Test")


def _resolver(monkeypatch: pytest.MonkeyPatch, errno: int) -> list[str]:
    """getaddrinfo answers ``errno`` for every name but loopback; returns the names asked for."""
    real, asked = socket.getaddrinfo, []

    def resolve(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host not in ("127.0.0.1", "localhost", "::1"):
            asked.append(host)
            raise socket.gaierror(errno, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return asked


def test_a_name_that_does_not_resolve_is_not_retried(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    asked = _resolver(monkeypatch, socket.EAI_NONAME)
    with pytest.raises(ExchangeError, match="sts.eu-wset-1.amazonaws.com of AWS STS .* does not resolve") as info:
        make_http(sleeps).request("POST", "https://sts.eu-wset-1.amazonaws.com/", service="AWS STS")
    assert info.value.code == "NameNotResolved" and info.value.status is None
    assert sleeps == [] and asked == ["sts.eu-wset-1.amazonaws.com"]


def test_a_resolver_that_cannot_be_reached_is_retried(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    _resolver(monkeypatch, socket.EAI_AGAIN)  # "Temporary failure in name resolution": may pass
    with pytest.raises(ExchangeError, match="Could not reach AWS STS") as info:
        make_http(sleeps).request("POST", "https://sts.eu-west-1.amazonaws.com/", service="AWS STS")
    assert info.value.code == "" and len(sleeps) == 4


def test_a_proxy_that_does_not_resolve_is_not_blamed_on_the_target(
    monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    _resolver(monkeypatch, socket.EAI_NONAME)
    http = make_http(sleeps, AGENT_PROXYURL="http://proxy.invalid:8080")
    with pytest.raises(ExchangeError, match="Could not reach AWS STS") as info:
        http.request("POST", "https://sts.eu-west-1.amazonaws.com/", service="AWS STS")
    assert info.value.code != "NameNotResolved"
