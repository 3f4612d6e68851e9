"""The Key Vault secrets wire client: list and read secrets with a bearer token; knows nothing of pipelines.

The secrets REST API (https://learn.microsoft.com/rest/api/keyvault/secrets): ``GET /secrets`` page by
page, following every ``nextLink``, and ``GET /secrets/{name}`` for each value, a bounded number at a
time, starting as soon as the first page names them. The bearer token is sent up front (the 401
challenge would cost a round trip and tell nothing the connection does not) and only ever to the
vault's own origin: every request, ``nextLink``s included, is checked by
:func:`oidc_credentials.destination.check` against it.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .. import destination
from ..destination import Origin, UnsafeDestination
from ..errors import ExchangeError
from ..http import Http, Response
from ..text import iso_utc

SERVICE = "Azure Key Vault"
API_VERSION = "7.5"
PAGE_SIZE = 25
MAX_PAGES = 10_000
TOKEN = "the Key Vault access token"  # noqa: S105 (a description, not a secret)
SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")


class Refused(ExchangeError):
    """Key Vault refused a request; ``response`` and ``action`` let the caller explain it."""

    def __init__(self, response: Response, action: str) -> None:
        super().__init__(f"{SERVICE} refused to {action} (HTTP {response.status}).", service=SERVICE)
        self.status = response.status
        self.response = response
        self.action = action


@dataclass(frozen=True)
class Selection:
    """Which secrets to read: exact names (fetched without listing) and globs (the vault is listed)."""

    names: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()

    def selects(self, name: str) -> bool:
        lowered = name.lower()
        return lowered in (n.lower() for n in self.names) or any(
            fnmatch.fnmatchcase(lowered, p.lower()) for p in self.patterns
        )


@dataclass
class Secret:
    """One selected secret: its value, or why it was skipped."""

    name: str
    attributes: dict[str, Any] = field(default_factory=dict)
    value: str | None = None
    skipped: str = ""


def error_parts(resp: Response) -> tuple[str, str, str]:
    """(code, innererror code, message) of a Key Vault error body."""
    body = resp.json()
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", "", resp.snippet(300)
    inner = error.get("innererror")
    inner_code = str(inner.get("code", "")) if isinstance(inner, dict) else ""
    return str(error.get("code", "")), inner_code, str(error.get("message", ""))


def unusable(attributes: dict[str, Any], now: float) -> str:
    """Why a secret with these attributes is skipped, or ""."""

    def iso(value: Any) -> str:
        try:
            return iso_utc(value)
        except (OverflowError, OSError, ValueError):  # a date past 9999 is shown as the number it is
            return str(value)

    if attributes.get("enabled") is False:
        return "disabled"
    nbf, exp = attributes.get("nbf"), attributes.get("exp")
    if isinstance(nbf, (int, float)) and nbf > now:
        return f"not valid before {iso(nbf)}"
    if isinstance(exp, (int, float)) and exp <= now:
        return f"expired {iso(exp)}"
    return ""


class KeyVaultClient:
    """Reads one vault's secrets with a bounded pool of workers; stops everything at the first hard refusal."""

    def __init__(
        self,
        vault_url: str,
        token: str,
        http: Http,
        *,
        concurrency: int = 16,
        log: Callable[[str], None] = lambda _m: None,
        clock: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.vault_url = vault_url.rstrip("/")
        self.origin: Origin = destination.parse(self.vault_url, what=TOKEN)
        self.http = http
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.concurrency = concurrency
        self.log = log
        self.clock = clock
        self._stop = threading.Event()
        self._futures: dict[str, Future[Response | None]] = {}

    def _request(self, url: str) -> Response:
        return self.http.request(
            "GET", url, service=SERVICE, headers=self.headers, allowed=self.origin, credential=TOKEN
        )

    def _get(self, name: str) -> Response | None:
        if self._stop.is_set():
            return None
        return self._request(f"{self.vault_url}/secrets/{quote(name, safe='')}?api-version={API_VERSION}")

    def _next(self, link: str) -> str:
        """The next page's URL, only when it is on the vault's origin."""
        try:
            destination.check(link, self.origin, what=TOKEN)
        except UnsafeDestination as exc:
            parsed = destination.shown(link)
            if link.lower().startswith("http://"):
                message = (
                    f"{SERVICE} sent a nextLink over plain http ({parsed}); the token goes only over https to "
                    f"{self.origin}, so listing stopped."
                )
            elif "only goes to" in exc.reason:
                netloc = link.split("://", 1)[-1].split("/", 1)[0]
                message = (
                    f"{SERVICE} sent a nextLink to another origin ({netloc}); the token is only sent to "
                    f"{self.vault_url}, so listing stopped."
                )
            else:
                message = (
                    f"{SERVICE} sent a nextLink the task does not follow ({parsed}): {exc.reason}. Listing stopped."
                )
            raise ExchangeError(message, service=SERVICE, code="UnsafeNextLink") from exc
        return link

    def read(self, selection: Selection) -> tuple[dict[str, Secret], list[str]]:
        """The selected secrets (values filled in, or why skipped) and the requested names that do not exist."""
        found: dict[str, Secret] = {}
        now = self.clock()
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="keyvault")

        def fetch(name: str) -> None:
            if name.lower() not in self._futures:
                self._futures[name.lower()] = pool.submit(self._get, name)

        try:
            if selection.patterns:

                def on_item(name: str, attributes: dict[str, Any]) -> None:
                    if not SECRET_NAME.match(name) or not selection.selects(name):
                        return
                    entry = found.setdefault(name.lower(), Secret(name, attributes))
                    entry.skipped = unusable(attributes, now)
                    if not entry.skipped:
                        fetch(name)

                self.log(f"Listing the secrets of {self.vault_url} ({self.concurrency} values at a time)")
                self._list(on_item)
            else:
                for name in selection.names:
                    found[name.lower()] = Secret(name)
                    fetch(name)
            responses = self._collect()
        finally:
            self._stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
        wanted = {n.lower(): n for n in selection.names}
        missing = [n for key, n in wanted.items() if key not in found]
        for key, resp in responses.items():
            entry = found[key]
            if resp.status == 404:
                missing.append(entry.name)
                del found[key]
                continue
            if resp.status != 200:
                entry.skipped = "disabled"
                continue
            body = resp.json()
            if not isinstance(body, dict) or not isinstance(body.get("value"), str):
                raise ExchangeError(
                    f"{SERVICE} answered HTTP 200 for '{entry.name}' without a value.", service=SERVICE, status=200
                )
            raw_attributes = body.get("attributes")
            attributes: dict[str, Any] = raw_attributes if isinstance(raw_attributes, dict) else {}
            secret_id = body.get("id")
            if isinstance(secret_id, str) and "/secrets/" in secret_id:
                named = secret_id.split("/secrets/", 1)[1].split("/", 1)[0]
                if SECRET_NAME.match(named) and named.lower() == key:
                    entry.name = named
            entry.skipped = unusable(attributes, now)
            entry.value = None if entry.skipped else body["value"]
        return found, sorted(missing, key=str.lower)

    def _list(self, on_item: Callable[[str, dict[str, Any]], None]) -> None:
        url: str | None = f"{self.vault_url}/secrets?api-version={API_VERSION}&maxresults={PAGE_SIZE}"
        seen: set[str] = set()
        while url:
            if url in seen or len(seen) >= MAX_PAGES:
                raise ExchangeError(f"{SERVICE} sent a paging loop at {url}; stopped listing.", service=SERVICE)
            seen.add(url)
            resp = self._request(url)
            if resp.status != 200:
                raise Refused(resp, "list its secrets")
            body = resp.json()
            if not isinstance(body, dict):
                raise ExchangeError(
                    f"{SERVICE} answered the listing with something else than JSON: {resp.snippet(200)}",
                    service=SERVICE,
                )
            for item in body.get("value") or []:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    name = item["id"].rstrip("/").rsplit("/", 1)[-1]
                    attributes = item.get("attributes")
                    on_item(name, attributes if isinstance(attributes, dict) else {})
            next_link = body.get("nextLink")
            url = self._next(str(next_link)) if next_link else None

    def _collect(self) -> dict[str, Response]:
        """name (lower) -> response for every fetch; raises at the first hard refusal."""
        results: dict[str, Response] = {}
        for key, future in self._futures.items():
            resp = future.result()
            if resp is None:
                continue
            _code, inner, _message = error_parts(resp) if resp.status != 200 else ("", "", "")
            if resp.status == 200 or resp.status == 404 or inner == "SecretDisabled":
                results[key] = resp
                continue
            self._stop.set()
            raise Refused(resp, f"read secret '{key}'")
        return results
