"""The one retrying HTTP layer, and the one HTTP policy.

Only idempotent token requests go through here (the OIDC request and the exchanges), so every call may
be retried: on network errors, 429 and 5xx, and on whatever the caller's ``retry_if`` recognises (STS
answers ``Throttling`` with a 400). Backoff is exponential with full jitter, honours ``Retry-After``,
and is bounded both in attempts and by an overall deadline.

Policy, for every request:

- Destination: every URL goes through :func:`oidc_credentials.destination.check` before anything is
  sent; a request carrying a credential names the origin(s) it may go to (``allowed=``). Redirects are
  never followed: a redirect from a token endpoint is an error to explain, not a place to send one.
- Deadlines: each attempt has one deadline for connect, headers *and* body together (``timeout``), so
  an answer dribbled a byte at a time cannot stretch it the way a per-read timeout restarts; the
  retries have theirs (``RetryPolicy.deadline``); and the whole task has one (:class:`Deadline`, input
  ``timeoutSeconds``) that no request outlives. A stalled request fails naming its service.
- Network settings (:class:`NetworkSettings`): the CA bundle of ``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE``
  and the agent's proxy (``Agent.ProxyUrl``, ``Agent.ProxyUsername``/``Agent.ProxyPassword``) unless the
  standard proxy variables are set, which requests then honours itself (``HTTPS_PROXY``, ``HTTP_PROXY``,
  ``NO_PROXY``). ``Agent.ProxyBypassList`` is what the agent hands tasks: a JSON list of regular
  expressions, each searched (ignoring case) in the request's URL as the agent's task library does, and
  in its ``scheme://host[:port]`` and host. The proxy password, in every form a tool might print, is
  registered with the masker before anything else is printed (:func:`proxy_secrets`). A proxy that
  refuses a tunnel for good (401/407: its credentials; 403: its policy) fails at once, naming the fix.

The one exception is the Entra exchange: azure-identity's ``ClientAssertionCredential`` sends it with
its own transport (azure-core over requests), because it owns the token protocol, caching and the
assertion callback. It is given the same CA bundle and proxy (:meth:`Http.proxies_for`), redirects
off, an authority that passed :func:`~oidc_credentials.destination.check`, and it runs under the same
task deadline through :meth:`Http.bounded`.
"""

from __future__ import annotations

import contextlib
import email.utils
import json as jsonlib
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from . import destination
from .destination import Origin
from .errors import ExchangeError
from .text import one_line, truncate

Log = Callable[[str], None]


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: ``attempts`` in all, within ``deadline`` seconds, backoff ``base * 2**n`` capped."""

    attempts: int = 5
    deadline: float = 60.0
    base: float = 0.5
    cap: float = 8.0


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(attempts=1)
#: attempts for a request the service throttles (429), when the policy retries at all, within the same deadline:
#: throttling comes and goes, and a 30 % rate would run five attempts out for one request in 400
THROTTLED_ATTEMPTS = 10


@dataclass(frozen=True)
class Deadline:
    """The task's deadline: ``at`` on the monotonic clock, set ``seconds`` after the task began."""

    at: float
    seconds: float

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(clock() + seconds, seconds)

    def remaining(self, clock: Callable[[], float] = time.monotonic) -> float:
        return self.at - clock()


NO_DEADLINE = Deadline(float("inf"), float("inf"))


class Stalled(ExchangeError):
    """A service did not answer completely within the time allowed."""


@dataclass(frozen=True)
class Response:
    status: int
    url: str
    text: str
    headers: Mapping[str, str] = field(default_factory=dict)
    #: the body as sent, for formats that declare their own encoding (XML)
    content: bytes = b""

    def header(self, name: str) -> str:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), "")

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return jsonlib.loads(self.text)
        except ValueError:
            return None

    def snippet(self, limit: int = 500) -> str:
        """The start of the body for error messages (callers neutralise it when printing)."""
        return one_line(self.text, limit)


@dataclass(frozen=True)
class RequestEvent:
    """One attempt of one request, for the audit record: never a header or a body."""

    service: str
    method: str
    #: scheme, host and path; the query is left out
    url: str
    #: HTTP status, or None when no response arrived
    status: int | None
    #: seconds from sending to the answer (or the failure)
    duration: float
    attempt: int


class Observer(Protocol):
    """Sees every request any :class:`Http` sends while it is registered (:func:`observed`)."""

    def headers_for(self, url: str, service: str) -> Mapping[str, str]:
        """Headers to add to a request to ``url`` of ``service`` (the caller's own headers win)."""
        ...

    def on_request(self, event: RequestEvent) -> None: ...


_OBSERVERS: list[Observer] = []


@contextlib.contextmanager
def observed(observer: Observer) -> Iterator[None]:
    """Register ``observer`` for every Http instance (providers may make their own) while the block runs."""
    _OBSERVERS.append(observer)
    try:
        yield
    finally:
        _OBSERVERS.remove(observer)


def observer_headers(url: str, service: str) -> dict[str, str]:
    """What the registered observers add to a request to ``url`` (for HTTP clients other than Http)."""
    merged: dict[str, str] = {}
    for observer in list(_OBSERVERS):
        merged.update(observer.headers_for(url, service))
    return merged


def notify(event: RequestEvent) -> None:
    """Tell the registered observers about one request (also called for requests other clients send)."""
    for observer in list(_OBSERVERS):
        observer.on_request(event)


def retry_after_seconds(value: str, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header: delta-seconds or an HTTP date."""
    value = value.strip()
    if not value:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def is_retryable_status(status: int) -> bool:
    return status in (408, 429) or (500 <= status <= 599 and status != 501)


@dataclass(frozen=True)
class NetworkSettings:
    """The agent's network settings, typed: what every HTTP client of the task uses."""

    #: CA bundle file ("" for the default one)
    ca_bundle: str = ""
    #: the agent's proxy URL with its credentials ("" when none, or when standard variables decide)
    agent_proxy: str = ""
    #: the agent's proxy bypass list, as patterns
    bypass: tuple[re.Pattern[str], ...] = ()
    #: HTTPS_PROXY/HTTP_PROXY are set: requests honours them (and NO_PROXY) itself
    standard_proxy: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> NetworkSettings:
        return cls(
            ca_bundle=env.get("REQUESTS_CA_BUNDLE") or env.get("SSL_CERT_FILE") or "",
            agent_proxy=_agent_proxy(env),
            bypass=tuple(_bypass_patterns(env)),
            standard_proxy=any(env.get(k) for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")),
        )

    def proxies_for(self, url: str) -> dict[str, str] | None:
        """The agent's proxy settings for ``url`` (None: leave it to HTTPS_PROXY/NO_PROXY)."""
        if not self.agent_proxy:
            return None
        parts = urlsplit(url)
        host = parts.hostname or ""
        origin = f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
        if any(p.search(url) or p.search(origin) or p.search(host) for p in self.bypass):
            return {"http": "", "https": ""}
        return {"http": self.agent_proxy, "https": self.agent_proxy}

    def proxied(self, url: str) -> bool:
        """Whether a request to ``url`` may go through a proxy (which then resolves the name)."""
        return self.standard_proxy or bool((self.proxies_for(url) or {}).get("https"))


#: connections kept per host: enough for the most concurrent caller (Key Vault's keyVaultConcurrency)
POOL_SIZE = 64


class Http:
    """requests with bounded retries and deadlines, the agent's proxy settings and the configured CA bundle."""

    def __init__(
        self,
        env: Mapping[str, str] | NetworkSettings,
        *,
        log: Log = lambda _msg: None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        user_agent: str = "OidcCredentials",
        pool_size: int = POOL_SIZE,
        deadline: Deadline = NO_DEADLINE,
    ) -> None:
        import requests  # lazy: keeps `--help` and error paths light

        self._requests = requests
        self._session = requests.Session()
        self._session.headers["User-Agent"] = user_agent
        if pool_size > 10:  # requests' default; callers that fetch concurrently need one connection per worker
            adapter = requests.adapters.HTTPAdapter(pool_maxsize=pool_size)
            self._session.mount("https://", adapter)
            self._session.mount("http://", adapter)
        self.network = env if isinstance(env, NetworkSettings) else NetworkSettings.from_env(env)
        # Passed per request: requests lets os.environ override a session-level bundle.
        self._verify: str | bool = self.network.ca_bundle or True
        self._log = log
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter
        self.deadline = deadline
        self._in_flight: list[tuple[str, str]] = []  # (service, url) of requests under way, for the stall message
        self._lock = threading.Lock()

    def close(self) -> None:
        self._session.close()

    @property
    def ca_bundle(self) -> str:
        """The CA bundle in force ("" for the default one), for other HTTP clients to use the same."""
        return self.network.ca_bundle

    def proxies_for(self, url: str) -> dict[str, str] | None:
        """The agent's proxy settings for ``url`` (None: leave it to HTTPS_PROXY/NO_PROXY)."""
        return self.network.proxies_for(url)

    def _proxies(self, url: str) -> dict[str, str] | None:
        return self.network.proxies_for(url)

    def task_remaining(self) -> float:
        return self.deadline.remaining(self._clock)

    def _task_expired(self, service: str, url: str) -> Stalled:
        return Stalled(
            f"{service} at {_origin(url)} did not answer in time: the task's deadline (input 'timeoutSeconds', "
            f"{self.deadline.seconds:.0f} s) has passed, so the task stopped. Nothing was set. Check {service}'s "
            "status and the agent's network, or raise 'timeoutSeconds'.",
            service=service,
            code="Timeout",
        )

    def bounded(self, call: Callable[[], Any], *, service: str, url: str, limit: float = 90.0) -> Any:
        """Run a blocking call (another library's request) within ``limit`` seconds and the task's deadline."""
        remaining = self.task_remaining()
        if remaining <= 0:
            raise self._task_expired(service, url)
        by_task = remaining <= limit
        # A moment's grace: a request of ours inside the call times out first and names its own service.
        finished, value = _within(call, min(remaining, limit) + 1.0)
        if not finished:
            with self._lock:  # a request of ours under way inside the call (an assertion callback) is the one stalled
                service, url = self._in_flight[-1] if self._in_flight else (service, url)
            if by_task:
                raise self._task_expired(service, url)
            raise Stalled(
                f"{service} at {_origin(url)} did not answer completely within {limit:.0f} s. Check {service}'s "
                "status and the agent's network (proxy, firewall).",
                service=service,
                code="Timeout",
            )
        return value

    def request(
        self,
        method: str,
        url: str,
        *,
        service: str,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | str | None = None,
        json: Any = None,
        timeout: float = 30.0,
        retry: RetryPolicy = DEFAULT_RETRY,
        retry_if: Callable[[Response], bool] | None = None,
        allowed: Origin | tuple[Origin, ...] | None = None,
        credential: str = "",
        ca_bundle: str = "",
    ) -> Response:
        """Send one request, retrying what is worth retrying; return the last response.

        ``allowed``: the origin(s) this request may go to; give it for every request that carries a
        credential (``credential`` names it for the refusal message). Any URL is checked
        (:func:`~oidc_credentials.destination.check`) and refused with UnsafeDestination before
        anything is sent. ``timeout`` bounds each attempt as a whole: connect, headers and body.
        ``ca_bundle`` trusts that bundle for this request instead of the job's (a service's own CA).

        Raises ExchangeError only when no response arrived at all, Stalled when the task's deadline passed.
        """
        authorised = any(k.lower() in ("authorization", "proxy-authorization") for k in headers or {})
        if allowed is not None or credential or authorised:  # a bearer header is a credential, named or not
            destination.check(url, allowed, what=credential or "a credential")
        else:
            destination.parse(url, what="the request", https_only=False)
        with self._under_way(service, url):
            start = self._clock()
            attempt = 0
            while True:
                attempt += 1
                remaining = retry.deadline - (self._clock() - start)
                task_left = self.task_remaining()
                if task_left <= 0:
                    raise self._task_expired(service, url)
                budget = max(1.0, min(timeout, remaining))
                bound_by_task = task_left <= budget
                budget = min(budget, task_left)
                problem: str
                response: Response | None = None
                sent = self._clock()
                sending = {**observer_headers(url, service), **(headers or {})}
                try:
                    response = self._attempt(method, url, sending, data, json, budget, ca_bundle or self._verify)
                except _Timeout:
                    if bound_by_task:
                        notify(RequestEvent(service, method, _bare(url), None, self._clock() - sent, attempt))
                        raise self._task_expired(service, url) from None
                    problem = f"no complete answer within {budget:.0f} s"
                except self._requests.exceptions.SSLError as exc:
                    if _connection_cut(exc):
                        problem = f"connection closed during TLS: {_short(exc)}"
                    else:
                        notify(RequestEvent(service, method, _bare(url), None, self._clock() - sent, attempt))
                        raise tls_failure(service, url, exc) from exc
                except self._requests.exceptions.RequestException as exc:
                    host = urlsplit(url).hostname or ""
                    refusal = _proxy_refusal(exc) if isinstance(exc, self._requests.exceptions.ProxyError) else None
                    if refusal is not None:  # the proxy answered: retrying cannot change its mind
                        notify(RequestEvent(service, method, _bare(url), None, self._clock() - sent, attempt))
                        raise self._proxy_refused(service, url, *refusal) from exc
                    if not isinstance(exc, self._requests.exceptions.ProxyError) and _name_not_resolved(exc):
                        # A name that does not resolve now will not resolve in a second either: say so at once.
                        notify(RequestEvent(service, method, _bare(url), None, self._clock() - sent, attempt))
                        raise ExchangeError(
                            f"The host name {host} of {service} ({_origin(url)}) does not resolve: DNS has no such "
                            "host. Check the host name.",
                            service=service,
                            code="NameNotResolved",
                        ) from exc
                    problem = f"{type(exc).__name__}: {_short(exc)}"
                status = response.status if response is not None else None
                notify(RequestEvent(service, method, _bare(url), status, self._clock() - sent, attempt))
                if response is not None and response.status == 407 and self.network.proxied(url):
                    raise self._proxy_refused(service, url, 407, "Proxy Authentication Required")
                if response is not None:
                    wants_retry = is_retryable_status(response.status) or bool(retry_if and retry_if(response))
                    if not wants_retry:
                        return response
                    problem = f"HTTP {response.status}"
                delay = self._jitter() * min(retry.cap, retry.base * 2 ** (attempt - 1))
                if response is not None:
                    hinted = retry_after_seconds(response.header("Retry-After"))
                    if hinted is not None:
                        delay = min(max(hinted, delay), 60.0)
                elapsed = self._clock() - start
                out_of_time = elapsed + delay >= retry.deadline or delay >= self.task_remaining()
                throttled = response is not None and response.status == 429 and retry.attempts > 1
                limit = max(retry.attempts, THROTTLED_ATTEMPTS) if throttled else retry.attempts
                if attempt >= limit or out_of_time:
                    if response is not None:
                        return response
                    raise ExchangeError(
                        f"Could not reach {service} at {_origin(url)} after {attempt} attempt(s) in {elapsed:.1f} s: "
                        f"{problem}. Check the agent's network, proxy (HTTPS_PROXY, NO_PROXY or the agent's proxy "
                        "settings) and that the URL is right.",
                        service=service,
                        code="Timeout" if problem.startswith("no complete answer") else "",
                    )
                self._log(f"{service}: attempt {attempt} of {limit} failed ({problem}); retrying in {delay:.1f} s.")
                self._sleep(delay)

    def proxy_origin(self, url: str) -> str:
        """The proxy a request to ``url`` goes through, without its credentials ("" for none)."""
        proxies = self.network.proxies_for(url)
        if proxies is None:
            proxies = self._requests.utils.get_environ_proxies(url)
        chosen = proxies.get(urlsplit(url).scheme) or ""
        if not chosen:
            return ""
        parts = urlsplit(chosen if "://" in chosen else "http://" + chosen)
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")

    def _proxy_refused(self, service: str, url: str, status: int, reason: str) -> ExchangeError:
        proxy = self.proxy_origin(url) or "the proxy"
        if status in (401, 407):
            fix = (
                "it did not accept the proxy credentials. Check the agent's proxy user name and password "
                "(Agent.ProxyUsername and Agent.ProxyPassword, set when the agent was configured with --proxyurl), "
                "or the user and password in HTTPS_PROXY"
            )
        else:
            fix = (
                f"it does not allow connections to {_origin(url)}. Ask the proxy's administrator to allow it, or list "
                "the host in the agent's proxy bypass list (or NO_PROXY) if it is reachable without the proxy"
            )
        return ExchangeError(
            f"The proxy {proxy} refused the request to {service} at {_origin(url)} ({status} {reason}): {fix}.",
            service=service,
            code="ProxyRefused",
        )

    @contextlib.contextmanager
    def _under_way(self, service: str, url: str) -> Iterator[None]:
        with self._lock:
            self._in_flight.append((service, url))
        try:
            yield
        finally:
            with self._lock:
                self._in_flight.remove((service, url))

    def _attempt(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        data: Mapping[str, str] | str | None,
        json: Any,
        budget: float,
        verify: str | bool,
    ) -> Response:
        """One attempt, connect to last byte, within ``budget`` seconds; raises _Timeout past it."""

        def send() -> Response:
            raw = self._session.request(
                method,
                url,
                headers=dict(headers or {}),
                data=data,
                json=json,
                timeout=budget,
                allow_redirects=False,
                proxies=self._proxies(url),
                verify=verify,
            )
            content = raw.content  # the whole body, inside this attempt's deadline
            return Response(raw.status_code, url, raw.text, dict(raw.headers), content)

        finished, value = _within(send, budget)
        if not finished:
            raise _Timeout
        result: Response = value
        return result


class _Timeout(Exception):
    """An attempt did not finish within its deadline."""


def _within(call: Callable[[], Any], seconds: float) -> tuple[bool, Any]:
    """(True, result) when ``call`` finished within ``seconds``, else (False, None); its exception propagates.

    The call runs on a daemon thread: a socket read restarts its timeout on every byte, so only a clock
    outside the read can bound a dribbled answer. A call left behind is abandoned; it holds no lock of
    ours and ends with the process at the latest.
    """
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="oidc-credentials-request", daemon=True).start()
    if not done.wait(max(0.0, seconds)):
        return False, None
    if "error" in outcome:
        raise outcome["error"]
    return True, outcome.get("value")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _name_not_resolved(exc: BaseException) -> bool:
    """Whether DNS answered that the host does not exist: a ``socket.gaierror`` saying so anywhere in the
    chain requests and urllib3 wrap it in (``NameResolutionError`` is raised from it). A resolver that could
    not be reached (``EAI_AGAIN``) is not that: it is retried like any network error."""
    return any(isinstance(item, socket.gaierror) and item.errno in _NO_SUCH_NAME for item in _chain(exc))


def _connection_cut(exc: BaseException) -> bool:
    """Whether a TLS error is the connection closing mid-handshake or mid-record (a reset, worth retrying)
    rather than a certificate the agent does not trust (which fails at once)."""
    return any(
        isinstance(item, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError))
        or "UNEXPECTED_EOF" in str(item)
        for item in _chain(exc)
    )


def untrusted_certificate(exc: BaseException) -> bool:
    """Whether ``exc`` (from requests or from a client library built on it) is a certificate the agent does not
    trust, rather than a connection cut during TLS."""
    return not _connection_cut(exc) and any(
        isinstance(item, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(item)
        for item in _chain(exc)
    )


def tls_failure(service: str, url: str, exc: BaseException) -> ExchangeError:
    """The one error for a certificate the agent does not trust: what failed, and the setting that fixes it."""
    return ExchangeError(
        f"TLS verification failed for {service} at {_origin(url)}: {_short(exc)}. If a proxy or a private "
        "CA intercepts TLS on this agent, point REQUESTS_CA_BUNDLE at a bundle that holds its certificate.",
        service=service,
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception requests and urllib3 wrap in it (causes, contexts, reasons, arguments)."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        item = pending.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        if not isinstance(item, socket.gaierror):
            pending += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]


_TUNNEL_FAILED = re.compile(r"Tunnel connection failed: (\d{3}) ?([^'\")]*)")


def _proxy_refusal(exc: BaseException) -> tuple[int, str] | None:
    """(status, reason) when the proxy itself refused a tunnel for good (401, 403, 407), else None: an
    unreachable proxy or a 5xx from it may pass, and is retried like any network error."""
    found = _TUNNEL_FAILED.search(repr(exc))
    if found is None:
        return None
    status = int(found[1])
    return (status, found[2].strip()) if status in (401, 403, 407) else None


def resolves(host: str, port: int = 443) -> bool:
    """Whether ``host`` resolves here (a DNS lookup, no connection)."""
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return True


#: getaddrinfo's "no such name" answers, as each platform numbers them
_NO_SUCH_NAME = {getattr(socket, n) for n in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, n)}


def _bare(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def _short(exc: BaseException) -> str:
    return truncate(str(exc), 300)


def _agent_proxy(env: Mapping[str, str]) -> str:
    """The agent's proxy (Agent.ProxyUrl + credentials) unless standard proxy variables are set."""
    if any(env.get(k) for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")):
        return ""
    url = (env.get("AGENT_PROXYURL") or "").strip()
    if not url:
        return ""
    user = env.get("AGENT_PROXYUSERNAME") or ""
    password = env.get("AGENT_PROXYPASSWORD") or env.get("SECRET_AGENT_PROXYPASSWORD") or ""
    if user:
        parts = urlsplit(url)
        creds = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
        url = f"{parts.scheme}://{creds}@{parts.netloc}{parts.path}"
    return url


def proxy_secrets(env: Mapping[str, str]) -> list[str]:
    """The proxy password in every form a tool might print: as given, URL-encoded (inside a proxy URL) and as
    the ``Proxy-Authorization: Basic`` value; for the agent's proxy and for credentials in HTTPS_PROXY and
    HTTP_PROXY. Registered with the masker before anything else is printed."""
    import base64
    from urllib.parse import unquote

    found: list[tuple[str, str]] = []
    password = env.get("AGENT_PROXYPASSWORD") or env.get("SECRET_AGENT_PROXYPASSWORD") or ""
    if password:
        found.append((env.get("AGENT_PROXYUSERNAME") or "", password))
    for key in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        parts = urlsplit((env.get(key) or "").strip())
        if parts.password:
            found.append((unquote(parts.username or ""), unquote(parts.password)))
    forms: list[str] = []
    for user, secret in found:
        basic = base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")
        for form in (secret, quote(secret, safe=""), basic):
            if form and form not in forms and "\n" not in form and "\r" not in form:
                forms.append(form)
    return forms


def _bypass_patterns(env: Mapping[str, str]) -> list[re.Pattern[str]]:
    raw = env.get("AGENT_PROXYBYPASSLIST") or ""
    try:
        items = jsonlib.loads(raw) if raw.strip().startswith("[") else [i for i in raw.split(",") if i.strip()]
    except ValueError:
        items = []
    patterns = []
    for item in items:
        try:
            patterns.append(re.compile(str(item).strip(), re.IGNORECASE))
        except re.error:
            continue
    return patterns
