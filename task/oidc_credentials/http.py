"""The one retrying HTTP layer.

Only idempotent token requests go through here (the OIDC request and the exchanges), so every call may
be retried: on network errors, 429 and 5xx, and on whatever the caller's ``retry_if`` recognises (STS
answers ``Throttling`` with a 400). Backoff is exponential with full jitter, honours ``Retry-After``,
and is bounded both in attempts and by an overall deadline. Redirects are never followed: a redirect
from a token endpoint is an error to explain, not a place to send credentials.
"""

from __future__ import annotations

import email.utils
import json as jsonlib
import random
import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from .errors import ExchangeError

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


@dataclass(frozen=True)
class Response:
    status: int
    url: str
    text: str
    headers: Mapping[str, str] = field(default_factory=dict)

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
        text = " ".join(self.text.split())
        return text if len(text) <= limit else text[:limit] + "…"


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


class Http:
    """requests with bounded retries, the agent's proxy settings and the configured CA bundle."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        log: Log = lambda _msg: None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        user_agent: str = "OidcCredentials",
        pool_size: int = 10,
    ) -> None:
        import requests  # lazy: keeps `--help` and error paths light

        self._requests = requests
        self._session = requests.Session()
        self._session.headers["User-Agent"] = user_agent
        if pool_size > 10:  # requests' default; callers that fetch concurrently need one connection per worker
            adapter = requests.adapters.HTTPAdapter(pool_maxsize=pool_size)
            self._session.mount("https://", adapter)
            self._session.mount("http://", adapter)
        # Passed per request: requests lets os.environ override a session-level bundle.
        self._verify: str | bool = env.get("REQUESTS_CA_BUNDLE") or env.get("SSL_CERT_FILE") or True
        self._agent_proxy = _agent_proxy(env)
        self._bypass = _bypass_patterns(env)
        self._log = log
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter

    def close(self) -> None:
        self._session.close()

    @property
    def ca_bundle(self) -> str:
        """The CA bundle in force ("" for the default one), for other HTTP clients to use the same."""
        return self._verify if isinstance(self._verify, str) else ""

    def proxies_for(self, url: str) -> dict[str, str] | None:
        """The agent's proxy settings for ``url`` (None: leave it to HTTPS_PROXY/NO_PROXY)."""
        return self._proxies(url)

    def _proxies(self, url: str) -> dict[str, str] | None:
        if not self._agent_proxy:
            return None
        host = urlsplit(url).hostname or ""
        if any(p.search(host) or p.search(url) for p in self._bypass):
            return {"http": "", "https": ""}
        return {"http": self._agent_proxy, "https": self._agent_proxy}

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
    ) -> Response:
        """Send one request, retrying what is worth retrying; return the last response.

        Raises ExchangeError only when no response arrived at all.
        """
        start = self._clock()
        attempt = 0
        while True:
            attempt += 1
            remaining = retry.deadline - (self._clock() - start)
            problem: str
            response: Response | None = None
            try:
                raw = self._session.request(
                    method,
                    url,
                    headers=dict(headers or {}),
                    data=data,
                    json=json,
                    timeout=max(1.0, min(timeout, remaining)),
                    allow_redirects=False,
                    proxies=self._proxies(url),
                    verify=self._verify,
                )
                response = Response(raw.status_code, url, raw.text, dict(raw.headers))
            except self._requests.exceptions.SSLError as exc:
                raise ExchangeError(
                    f"TLS verification failed for {service} at {_origin(url)}: {_short(exc)}. If a proxy or a private "
                    "CA intercepts TLS on this agent, point REQUESTS_CA_BUNDLE at a bundle that holds its certificate.",
                    service=service,
                ) from exc
            except self._requests.exceptions.RequestException as exc:
                host = urlsplit(url).hostname or ""
                if not isinstance(exc, self._requests.exceptions.ProxyError) and _name_not_resolved(exc):
                    # A name that does not resolve now will not resolve in a second either: say so at once.
                    raise ExchangeError(
                        f"The host name {host} of {service} ({_origin(url)}) does not resolve: DNS has no such host. "
                        "Check the host name.",
                        service=service,
                        code="NameNotResolved",
                    ) from exc
                problem = f"{type(exc).__name__}: {_short(exc)}"
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
            if attempt >= retry.attempts or elapsed + delay >= retry.deadline:
                if response is not None:
                    return response
                raise ExchangeError(
                    f"Could not reach {service} at {_origin(url)} after {attempt} attempt(s) in {elapsed:.1f} s: "
                    f"{problem}. Check the agent's network, proxy (HTTPS_PROXY, NO_PROXY or the agent's proxy "
                    "settings) and that the URL is right.",
                    service=service,
                )
            self._log(
                f"{service}: attempt {attempt} of {retry.attempts} failed ({problem}); retrying in {delay:.1f} s."
            )
            self._sleep(delay)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _name_not_resolved(exc: BaseException) -> bool:
    """Whether DNS answered that the host does not exist: a ``socket.gaierror`` saying so anywhere in the
    chain requests and urllib3 wrap it in (``NameResolutionError`` is raised from it). A resolver that could
    not be reached (``EAI_AGAIN``) is not that: it is retried like any network error."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        item = pending.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, socket.gaierror):
            if item.errno in _NO_SUCH_NAME:
                return True
            continue
        pending += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
    return False


def resolves(host: str, port: int = 443) -> bool:
    """Whether ``host`` resolves here (a DNS lookup, no connection)."""
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return True


#: getaddrinfo's "no such name" answers, as each platform numbers them
_NO_SUCH_NAME = {getattr(socket, n) for n in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, n)}


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 300 else text[:300] + "…"


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
