"""Where a credential may go: the one function that decides, for every request that carries one.

A credential (the job access token, an OIDC token in a form, an Entra or cloud access token) is sent
only to an origin decided in advance from trusted configuration, never to one chosen by a URL that
another parser might read differently. So :func:`check`:

- refuses a URL holding a backslash, whitespace, a control or format character anywhere, or a ``%``
  or non-ASCII character in its authority (percent-encoded separators, zone ids, look-alike hosts);
- reads the URL with urllib3's ``parse_url``, the parser requests connects with, *and* with
  ``urllib.parse``, and refuses it unless both name the same scheme, host and port;
- refuses any user information (``user@``), any scheme but https (plain http only to a loopback
  address, where nothing leaves the machine), and a port other than the allowed origin's;
- compares hosts case-insensitively and without a trailing dot, ports with their scheme's default.

The HTTP layer runs every request through it and never follows a redirect, so a credential leaves
only for the origin checked here. Refusals are :class:`UnsafeDestination` (a ConfigError: nothing
was sent).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import ConfigError
from .text import truncate

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_DEFAULT_PORT = {"https": 443, "http": 80}


class UnsafeDestination(ConfigError):
    """A URL a credential must not be sent to; ``reason`` says why in a few words."""

    def __init__(self, message: str, *, reason: str, url: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.url = url


@dataclass(frozen=True)
class Origin:
    """scheme://host:port, normalised: lower case, no trailing dot, IPv6 without brackets, port explicit."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = _DEFAULT_PORT.get(self.scheme)
        return f"{self.scheme}://{host}" + ("" if self.port == default else f":{self.port}")

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK


def shown(url: str, limit: int = 120) -> str:
    """A URL as it may appear in a message: invisible characters made visible, cut short."""
    return truncate(url.encode("unicode_escape").decode("ascii"), limit)


def _refuse(url: str, reason: str, what: str) -> UnsafeDestination:
    return UnsafeDestination(f"Refusing to send {what} to {shown(url)}: {reason}.", reason=reason, url=url)


def _norm_host(host: str) -> str:
    return host.strip("[]").lower().rstrip(".")


def parse(url: str, *, what: str = "a credential", https_only: bool = True) -> Origin:
    """The origin a request to ``url`` connects to, or UnsafeDestination when that is in doubt.

    ``https_only=False`` (for requests that carry no credential) admits plain http to any host.
    """
    import requests  # noqa: F401  (the HTTP stack whose parser this is: named first when it is missing)
    from urllib3.exceptions import LocationParseError
    from urllib3.util import parse_url  # the parser requests uses to connect

    for ch in url:
        if ch == "\\":
            return _raise(url, "the URL holds a backslash, which parsers split differently", what)
        if ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            return _raise(url, "the URL holds whitespace or an invisible control character", what)
    try:
        wire = parse_url(url)
        split = urlsplit(url)
        split_port = split.port
    except (LocationParseError, ValueError):
        return _raise(url, "the URL cannot be parsed", what)
    netloc = split.netloc
    if "@" in netloc or wire.auth is not None or split.username is not None:
        return _raise(url, "the URL holds user information (user@host)", what)
    if "%" in netloc or not netloc.isascii():
        return _raise(url, "the URL's host holds percent-encoded or non-ASCII characters", what)
    scheme = (wire.scheme or "").lower()
    if scheme != split.scheme.lower() or scheme not in _DEFAULT_PORT:
        return _raise(url, "the URL must be https", what)
    host = _norm_host(wire.host or "")
    if not host or host != _norm_host(split.hostname or ""):
        return _raise(url, "the URL's host is empty or ambiguous", what)
    if wire.port != split_port:
        return _raise(url, "the URL's port is ambiguous", what)
    port = wire.port if wire.port is not None else _DEFAULT_PORT[scheme]
    origin = Origin(scheme, host, port)
    if https_only and scheme != "https" and not origin.loopback:
        return _raise(url, "the URL must be https (plain http only to a loopback address)", what)
    return origin


def _raise(url: str, reason: str, what: str) -> Origin:
    raise _refuse(url, reason, what)


def check(url: str, allowed: Origin | Iterable[Origin] | None = None, *, what: str = "a credential") -> Origin:
    """Refuse ``url`` unless it is safe to connect to and (when given) on one of the ``allowed`` origins."""
    origin = parse(url, what=what)
    if allowed is None:
        return origin
    permitted = (allowed,) if isinstance(allowed, Origin) else tuple(allowed)
    if origin in permitted:
        return origin
    expected = " or ".join(map(str, permitted))
    if any(p.scheme == "https" and origin.scheme == "http" and p.host == origin.host for p in permitted):
        raise _refuse(url, f"it uses plain http, and {what} only goes over https to {expected}", what)
    raise _refuse(url, f"{what} only goes to {expected}", what)
