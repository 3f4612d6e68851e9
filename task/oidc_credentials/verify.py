"""Verify Azure DevOps OIDC tokens where they arrive: a strict, fast verifier for services that accept them.

    from oidc_credentials.verify import Verifier

    verifier = Verifier(organization_ids=["<org id>"], kind="pipeline")
    claims = verifier.verify(token)          # TokenClaims, or raises TokenRejected naming one claim
    claims.project_id, claims.definition_id, claims.repository_ref

What it checks, in order (the first failure is the one reason reported):

1. the token's form: three base64url parts, at most 16 KiB, a JSON header with ``alg: RS256`` (nothing else,
   so no ``none`` and no HMAC keyed with the public key), a ``kid``, no ``crit``; a JSON object payload
   without duplicate names;
2. ``iss``: exactly ``https://vstoken.dev.azure.com/<one of your organisation ids>`` or, when you name tenants,
   ``https://login.microsoftonline.com/<tenant id>/v2.0``. The Azure DevOps key set is shared by all
   organisations, so a valid signature alone proves nothing;
3. the RS256 signature against the issuer's key set, found through its ``.well-known/openid-configuration``;
4. ``aud`` (``api://AzureADTokenExchange`` for the Azure DevOps issuer by default), ``exp`` and ``nbf`` with a
   small clock-skew allowance;
5. the token kind you asked for: pipeline tokens (``p://``) or service-connection tokens (``sc://``, or the
   Entra issuer's ``/eid1/…/sc/<org id>/<connection id>``), never both unless you name both; the organisation
   again from the token's own claims (``org_id``, or the Entra subject);
6. policy: the exact ``subject`` if you gave one, the allow rules, and the ``jti`` replay cache if enabled.

In ``mode="audit"`` the policy checks (5, 6) only report: :meth:`Verifier.check` and the WSGI middleware let
every request through and emit an audit event (with the token's SHA-256, never the token) for what would
have been refused. A token that is not authentic (1-4) has no claims to return, so :meth:`Verifier.verify`
raises for it even in audit mode.

Keys are cached per key-set URL (one for every Azure DevOps organisation) for ``jwks_ttl`` seconds; an
unknown ``kid`` (a key rotation) triggers a refetch at most once per ``refetch_interval`` seconds. Parsed
RSA key objects and parsed token headers are cached, so a warm verification costs little more than the RSA
operation itself. Instances are thread-safe.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Union

from .claims import (
    ADO_AUDIENCE,
    AZURE_DEVOPS_APP_ID,
    ENTRA_AUDIENCE,
    PIPELINE_CLAIMS,
    IssuerShape,
    Subject,
    TokenClaims,
    TokenKind,
    discovery_url,
    entra_issuer,
    parse_issuer,
    parse_subject,
    vstoken_issuer,
)
from .text import iso_utc

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

__all__ = [
    "ADO_AUDIENCE",
    "AUDIT",
    "ENFORCE",
    "Decision",
    "HttpsFetcher",
    "Policy",
    "PolicyError",
    "Refusal",
    "ReplayCache",
    "Rule",
    "TokenClaims",
    "TokenKind",
    "TokenRejected",
    "Verifier",
    "WsgiMiddleware",
    "load_policy",
    "token_sha256",
]

log = logging.getLogger("oidc_credentials.verify")

ENFORCE = "enforce"
AUDIT = "audit"
MAX_TOKEN_LENGTH = 16 * 1024
DEFAULT_LEEWAY = 60
_TOKEN_FORM = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def token_sha256(token: str) -> str:
    """What audit records carry instead of the token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _digest(token: object) -> str:
    return token_sha256(token) if isinstance(token, str) else ""


# -- results ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Refusal:
    """One reason: the check that failed, the claim it concerns, what was expected and what was presented."""

    #: short, stable: malformed, header, algorithm, issuer, key, signature, audience, expired, not_yet_valid,
    #: kind, organization, subject, rule, replay, keys_unavailable
    code: str
    claim: str
    expected: str
    presented: str
    detail: str = ""

    @property
    def message(self) -> str:
        text = f"{self.claim}: expected {self.expected}, presented {self.presented}"
        return f"{text} ({self.detail})" if self.detail else text

    def __str__(self) -> str:
        return self.message


class TokenRejected(Exception):
    """The token was refused; :attr:`refusal` says which claim, what was expected and what came."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


@dataclass(frozen=True)
class Decision:
    """The outcome of :meth:`Verifier.check`.

    ``claims`` is set whenever the token is authentic (form, issuer, signature, audience, lifetime), even
    when a policy check refused it; ``allowed`` is True when nothing was refused or the mode is audit.
    """

    allowed: bool
    mode: str
    claims: TokenClaims | None
    refusal: Refusal | None
    token_sha256: str

    @property
    def ok(self) -> bool:
        return self.refusal is None


# -- fetching discovery documents and key sets -----------------------------------------------------------
class FetchError(Exception):
    pass


def _check_url(url: str, allow_loopback_http: bool) -> str:
    """The URL's host, after the package's one URL guard (parsers agree, no user info, https; http to loopback
    only when allowed); FetchError otherwise."""
    from .destination import UnsafeDestination, parse

    try:
        origin = parse(url, what="a key fetch")
    except UnsafeDestination as exc:
        raise FetchError(f"refusing {url}: {exc.reason}") from None
    if origin.scheme != "https" and not allow_loopback_http:
        raise FetchError(f"refusing {url}: only https URLs are fetched")
    return origin.host


class HttpsFetcher:
    """GETs JSON over https with ``requests``: timeouts, no redirects, a size cap; http only to loopback if allowed."""

    def __init__(
        self,
        *,
        timeout: tuple[float, float] = (5.0, 10.0),
        ca_bundle: str | None = None,
        allow_loopback_http: bool = False,
        max_bytes: int = 1 << 20,
    ) -> None:
        import requests  # lazy: the verifier is imported by services that may never fetch

        from . import __version__

        self._session = requests.Session()
        self._session.headers["User-Agent"] = f"oidc-credentials/{__version__} verifier"
        self._session.headers["Accept"] = "application/json"
        self._timeout = timeout
        self._verify: Union[str, bool] = ca_bundle or True
        self._allow_loopback_http = allow_loopback_http
        self._max_bytes = max_bytes
        self.count = 0

    def __call__(self, url: str) -> Any:
        import requests

        _check_url(url, self._allow_loopback_http)
        self.count += 1
        try:
            with self._session.get(
                url, timeout=self._timeout, verify=self._verify, allow_redirects=False, stream=True
            ) as resp:
                if resp.status_code != 200:
                    raise FetchError(f"GET {url} answered HTTP {resp.status_code}")
                body = resp.raw.read(self._max_bytes + 1, decode_content=True)
        except requests.RequestException as exc:
            raise FetchError(f"GET {url} failed: {type(exc).__name__}: {exc}") from exc
        if len(body) > self._max_bytes:
            raise FetchError(f"GET {url} answered more than {self._max_bytes} bytes")
        try:
            return json.loads(body)
        except ValueError as exc:
            raise FetchError(f"GET {url} did not answer JSON") from exc


Fetch = Callable[[str], Any]


def _b64decode(segment: str) -> bytes:
    # Only ever called on segments already matched against the base64url alphabet.
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _rsa_key(jwk: Mapping[str, Any]) -> RSAPublicKey | None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    if jwk.get("kty") != "RSA" or jwk.get("use", "sig") != "sig" or jwk.get("alg", "RS256") != "RS256":
        return None
    try:
        n = int.from_bytes(_b64decode(str(jwk["n"])), "big")
        e = int.from_bytes(_b64decode(str(jwk["e"])), "big")
        key = rsa.RSAPublicNumbers(e, n).public_key()
    except (KeyError, ValueError, TypeError, binascii.Error):
        return None
    return key if key.key_size >= 2048 else None


class _KeySet:
    """One JWKS URL's parsed keys: a TTL, a rate-limited refetch on an unknown kid, stale keys kept on errors."""

    def __init__(self, url: str, fetch: Fetch, *, ttl: float, refetch_interval: float, max_stale: float) -> None:
        self.url = url
        self._fetch = fetch
        self._ttl = ttl
        self._refetch_interval = refetch_interval
        self._max_stale = max_stale
        self._keys: dict[str, RSAPublicKey] = {}
        self._fetched_at = -math.inf
        self._attempted_at = -math.inf
        self._lock = threading.Lock()
        self.fetches = 0

    def get(self, kid: str, now: float) -> RSAPublicKey | None:
        key = self._keys.get(kid)
        if key is not None and now - self._fetched_at < self._ttl:
            return key
        with self._lock:
            key = self._keys.get(kid)
            fresh = now - self._fetched_at < self._ttl
            if key is not None and fresh:
                return key  # another thread refreshed while this one waited
            if fresh and now - self._attempted_at < self._refetch_interval:
                return None  # an unknown kid, and the set was fetched moments ago: do not let it drive fetches
            if not fresh and now - self._attempted_at < self._refetch_interval:
                if now - self._fetched_at < self._max_stale:
                    return key  # the last refresh failed moments ago: the stale set serves until max_stale
                raise FetchError(
                    f"the key set at {self.url} could not be fetched; retrying in {self._refetch_interval:g} s"
                )
            self._refresh(now)
            key = self._keys.get(kid)
            if key is None and now - self._fetched_at >= self._max_stale:
                raise FetchError(f"the key set at {self.url} could not be fetched and the cached one is too old")
            return key

    def _refresh(self, now: float) -> None:
        self._attempted_at = now
        self.fetches += 1
        try:
            document = self._fetch(self.url)
        except FetchError as exc:
            if now - self._fetched_at < self._max_stale:
                log.warning("Keeping the cached key set: %s", exc)
                return
            raise
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            log.warning("The key set at %s has no 'keys' list; keeping the cached one", self.url)
            return
        parsed: dict[str, RSAPublicKey] = {}
        for jwk in keys:
            if isinstance(jwk, dict) and isinstance(jwk.get("kid"), str):
                key = _rsa_key(jwk)
                if key is not None:
                    parsed[jwk["kid"]] = key
        self._keys = parsed
        self._fetched_at = now


# -- replay cache --------------------------------------------------------------------------------------------
class ReplayCache:
    """Remembers ``(iss, jti)`` until the token expires, so each token is accepted once. Thread-safe, bounded.

    When it holds ``max_entries`` live tokens it refuses new ones rather than forget a live one.
    """

    NEW, REPLAY, FULL = "new", "replay", "full"

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._expiries: list[tuple[float, tuple[str, str]]] = []
        self._max = max_entries
        self._lock = threading.Lock()

    def record(self, issuer: str, jti: str, expires: float, now: float) -> str:
        """``NEW`` (recorded now), ``REPLAY`` (seen before) or ``FULL``."""
        key = (issuer, jti)
        with self._lock:
            while self._expiries and self._expiries[0][0] < now:
                _, old = heapq.heappop(self._expiries)
                self._seen.pop(old, None)
            if key in self._seen:
                return self.REPLAY
            if len(self._seen) >= self._max:
                return self.FULL
            self._seen[key] = expires
            heapq.heappush(self._expiries, (expires, key))
            return self.NEW

    def __len__(self) -> int:
        return len(self._seen)


# -- rules ----------------------------------------------------------------------------------------------------
#: rule field -> how the refusal names it (the claim it comes from)
FIELD_CLAIMS = {
    "subject": "sub",
    "organization_name": "sub (organisation name)",
    "project_name": "sub (project name)",
    "pipeline_name": "sub (pipeline name)",
    "connection_name": "sub (connection name)",
    "connection_id": "sub (connection id)",
    "tenant_id": "tid",
    **{attr: claim for claim, attr in PIPELINE_CLAIMS.items() if attr not in ("organization_id", "run_id")},
}
RULE_FIELDS = {
    TokenKind.PIPELINE: (
        "subject",
        "organization_name",
        "project_name",
        "pipeline_name",
        "project_id",
        "definition_id",
        "repository_id",
        "repository_uri",
        "repository_version",
        "repository_ref",
    ),
    TokenKind.SERVICE_CONNECTION: (
        "subject",
        "organization_name",
        "project_name",
        "connection_name",
        "connection_id",
        "tenant_id",
    ),
}
#: a name a token also carries as an id: rules should use the id (names are renamed and re-registered)
PREFER_IDS = {"project_name": "project_id", "pipeline_name": "definition_id"}
MAX_PATTERN = 256


class PolicyError(ValueError):
    """A rule or policy file that would not do what it says; the message names the entry."""


@dataclass(frozen=True)
class Rule:
    """One allow rule: every field it names must match (exactly, or a full-match regex in ``unsafe_regex``)."""

    kind: TokenKind
    exact: Mapping[str, str] = field(default_factory=dict)
    #: anchored (full-match) regular expressions; deliberately separate and loudly named
    unsafe_regex: Mapping[str, str] = field(default_factory=dict)
    name: str = ""
    _compiled: Mapping[str, re.Pattern[str]] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        kind: Union[str, TokenKind],
        *,
        name: str = "",
        unsafe_regex: Mapping[str, str] | None = None,
        **exact: str,
    ) -> Rule:
        """``Rule.build("pipeline", project_id="…", definition_id="42", repository_ref="refs/heads/main")``."""
        token_kind = TokenKind.parse(kind)
        label = f"rule {name!r}" if name else "a rule"
        allowed = RULE_FIELDS[token_kind]
        patterns = dict(unsafe_regex or {})
        if not exact and not patterns:
            raise PolicyError(f"{label} names no field, so it would allow every {token_kind.value} token")
        compiled: dict[str, re.Pattern[str]] = {}
        for key in [*exact, *patterns]:
            if key not in allowed:
                raise PolicyError(
                    f"{label}: {key!r} is not a field of {token_kind.value} tokens; use one of {', '.join(allowed)}"
                )
        for key, value in exact.items():
            if not isinstance(value, str) or not value:
                raise PolicyError(f"{label}: {key} must be a non-empty string, got {value!r}")
            if key in patterns:
                raise PolicyError(f"{label}: {key} is given both exactly and as unsafe_regex; keep one")
        for key, pattern in patterns.items():
            if not isinstance(pattern, str) or not pattern:
                raise PolicyError(f"{label}: unsafe_regex {key} must be a non-empty string")
            if len(pattern) > MAX_PATTERN:
                raise PolicyError(f"{label}: unsafe_regex {key} is longer than {MAX_PATTERN} characters")
            try:
                re.compile(pattern)  # on its own first: the (?:…) wrapping would legalise ")(" and the like
                regex = re.compile(f"(?:{pattern})")
            except re.error as exc:
                raise PolicyError(f"{label}: unsafe_regex {key} {pattern!r} does not compile: {exc}") from exc
            if regex.fullmatch(""):
                raise PolicyError(
                    f"{label}: unsafe_regex {key} {pattern!r} matches an empty value, so it restricts nothing"
                )
            compiled[key] = regex
        return cls(token_kind, dict(exact), patterns, name, compiled)

    def warnings(self) -> list[str]:
        """Names used where the token carries an id (the rule still works; the id is safer)."""
        label = f"rule {self.name!r}" if self.name else "a rule"
        fields = {*self.exact, *self.unsafe_regex}
        out = []
        for name_field, id_field in PREFER_IDS.items():
            if self.kind is TokenKind.PIPELINE and name_field in fields and id_field not in fields:
                out.append(
                    f"{label} matches {name_field}, a name that can be renamed or registered again; pipeline tokens "
                    f"also carry {FIELD_CLAIMS[id_field]}: prefer {id_field}"
                )
        return out

    def mismatches(self, claims: TokenClaims) -> list[Refusal]:
        out = []
        for key, expected in self.exact.items():
            presented = claims.get(key)
            if presented != expected:
                detail = "differs only in case" if presented.lower() == expected.lower() else ""
                out.append(_rule_refusal(self, key, repr(expected), presented, detail))
        for key, regex in self._compiled.items():
            presented = claims.get(key)
            if not regex.fullmatch(presented):
                pattern = self.unsafe_regex[key]
                out.append(_rule_refusal(self, key, f"a full match of unsafe_regex {pattern!r}", presented, ""))
        return out


def _rule_refusal(rule: Rule, key: str, expected: str, presented: str, detail: str) -> Refusal:
    where = f"rule {rule.name!r}" if rule.name else "the closest allow rule"
    return Refusal("rule", FIELD_CLAIMS.get(key, key), f"{expected} ({where})", repr(presented), detail)


_POLICY_KEYS = {"kind", "mode", "organization_ids", "tenant_ids", "audiences", "subject", "allow"}


@dataclass(frozen=True)
class Policy:
    """A policy file, read: what :meth:`Verifier.from_policy` takes."""

    kinds: tuple[TokenKind, ...]
    rules: tuple[Rule, ...]
    mode: str = ENFORCE
    organization_ids: tuple[str, ...] = ()
    tenant_ids: tuple[str, ...] = ()
    audiences: tuple[str, ...] = ()
    subject: str = ""


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PolicyError(f"{what} must be a string or a list of non-empty strings")
    return tuple(value)


def load_policy(path: Union[str, Path]) -> Policy:
    """Read a TOML policy file (format in the README, "Verify pipeline tokens"). Unknown keys are errors."""
    import importlib

    try:
        tomllib = importlib.import_module("tomllib")
    except ImportError:  # Python < 3.11
        try:
            tomllib = importlib.import_module("tomli")
        except ImportError:
            raise PolicyError(
                "Reading a policy file needs Python 3.11+ or the 'tomli' package (pip install tomli)."
            ) from None
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"Cannot read the policy file {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"The policy file {path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - _POLICY_KEYS)
    if unknown:
        raise PolicyError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_POLICY_KEYS))}")
    if "kind" not in data:
        raise PolicyError(f'{path}: say which tokens it is for: kind = "pipeline" or kind = "service-connection"')
    try:
        kinds = tuple(TokenKind.parse(k) for k in _strings(data["kind"], "kind"))
    except ValueError as exc:
        raise PolicyError(f"{path}: {exc}") from exc
    mode = data.get("mode", ENFORCE)
    if mode not in (ENFORCE, AUDIT):
        raise PolicyError(f'{path}: mode must be "enforce" or "audit", got {mode!r}')
    allow = data.get("allow", [])
    if not isinstance(allow, list) or not allow or not all(isinstance(r, dict) for r in allow):
        raise PolicyError(f"{path}: list at least one [[allow]] rule; a policy without rules would refuse every token")
    rules = []
    for index, entry in enumerate(allow, 1):
        entry = dict(entry)
        name = entry.pop("name", f"#{index}")
        rule_kind = entry.pop("kind", None)
        if rule_kind is None:
            if len(kinds) != 1:
                raise PolicyError(f"{path}: rule {name!r} must say its kind, since the policy allows several")
            rule_kind = kinds[0]
        patterns = entry.pop("unsafe_regex", {})
        if not isinstance(patterns, dict):
            raise PolicyError(f'{path}: rule {name!r}: unsafe_regex must be a table of field = "pattern"')
        try:
            rule = Rule.build(rule_kind, name=str(name), unsafe_regex=patterns, **entry)
        except (TypeError, ValueError) as exc:
            raise PolicyError(f"{path}: {exc}") from exc
        if rule.kind not in kinds:
            raise PolicyError(
                f"{path}: rule {name!r} is for {rule.kind.value} tokens, which the policy does not accept"
            )
        rules.append(rule)
    return Policy(
        kinds=kinds,
        rules=tuple(rules),
        mode=mode,
        organization_ids=_strings(data.get("organization_ids", []), "organization_ids"),
        tenant_ids=_strings(data.get("tenant_ids", []), "tenant_ids"),
        audiences=_strings(data.get("audiences", []), "audiences"),
        subject=str(data.get("subject", "")),
    )


# -- the verifier ---------------------------------------------------------------------------------------------
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _guids(values: Iterable[str], what: str) -> tuple[str, ...]:
    out = []
    for value in values:
        if not isinstance(value, str) or not _GUID.fullmatch(value.strip().lower()):
            raise ValueError(f"{what} {value!r} is not a GUID")
        out.append(value.strip().lower())
    return tuple(out)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        names = [name for name, _ in pairs]
        raise _Malformed(f"duplicate name {next(n for n in names if names.count(n) > 1)!r}")
    return result


class _Malformed(ValueError):
    pass


def _json_object(segment: str, code: str, part: str) -> dict[str, Any]:
    """A base64url segment holding a UTF-8 JSON object without duplicate names, or a refusal."""
    try:
        value = json.loads(_b64decode(segment).decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Refused(Refusal(code, part, "a JSON object", f"not one ({exc})")) from None
    if not isinstance(value, dict):
        raise _Refused(Refusal(code, part, "a JSON object", type(value).__name__))
    return value


def _time_text(value: float) -> str:
    try:
        return f"{int(value)} ({iso_utc(value)})"
    except (OverflowError, OSError, ValueError):
        return str(value)


def _numeric(payload: Mapping[str, Any], name: str, required: bool) -> float | None:
    value = payload.get(name)
    if type(value) is int and 0 <= value < 100_000_000_000:
        return value
    if value is None:
        if required:
            raise _Refused(Refusal("malformed", name, "a NumericDate", "nothing"))
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value < 1e11):
        raise _Refused(Refusal("malformed", name, "a NumericDate (seconds since 1970)", repr(value)[:80]))
    return float(value)


class _Refused(Exception):
    def __init__(self, refusal: Refusal, claims: TokenClaims | None = None) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal
        self.claims = claims


class Verifier:
    """Verifies Azure DevOps OIDC tokens for one relying party. Build once, share between threads.

    ``organization_ids``: the organisations whose tokens you accept (GUIDs; ``iss`` is pinned to them).
    ``kind``: "pipeline", "service-connection", or both as a tuple when you mean both.
    ``tenant_ids``: accept the Entra issuer shape for these tenants (service-connection tokens only).
    ``audiences``: accepted ``aud`` values; default ``api://AzureADTokenExchange`` for the Azure DevOps issuer and
    the observed Entra value for the Entra issuer.
    ``subject``: an exact ``sub`` every token must carry. ``rules``: allow rules, any one must match.
    ``mode``: "enforce" or "audit". ``replay_cache``: a :class:`ReplayCache` to accept each ``jti`` once.
    ``metadata_urls``: fetch an issuer family's discovery from elsewhere, e.g.
    ``{"https://vstoken.dev.azure.com": "https://mirror.internal"}`` (tests, mirrors); the discovered issuer must
    still be the real one. ``fetch``: a callable ``url -> JSON`` replacing the built-in :class:`HttpsFetcher`.
    """

    def __init__(
        self,
        *,
        organization_ids: Iterable[str],
        kind: Union[str, TokenKind, Iterable[Union[str, TokenKind]]],
        tenant_ids: Iterable[str] = (),
        audiences: Union[str, Iterable[str], None] = None,
        subject: str = "",
        rules: Iterable[Rule] = (),
        mode: str = ENFORCE,
        leeway: int = DEFAULT_LEEWAY,
        replay_cache: ReplayCache | None = None,
        jwks_ttl: float = 3600.0,
        discovery_ttl: float = 3600.0,
        refetch_interval: float = 10.0,
        max_stale: float = 86400.0,
        ca_bundle: str | None = None,
        allow_loopback_http: bool = False,
        metadata_urls: Mapping[str, str] | None = None,
        fetch: Fetch | None = None,
        on_audit: Callable[[dict[str, Any]], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.organization_ids = _guids(organization_ids, "organization id")
        if not self.organization_ids:
            raise ValueError(
                "Name at least one organisation id: the Azure DevOps signing keys are shared by every organisation, "
                "so a valid signature alone proves nothing."
            )
        self.tenant_ids = _guids(tenant_ids, "tenant id")
        kinds = (kind,) if isinstance(kind, (str, TokenKind)) else tuple(kind)
        self.kinds = frozenset(TokenKind.parse(k) for k in kinds)
        if not self.kinds:
            raise ValueError("Say which tokens to accept: kind='pipeline' or kind='service-connection'.")
        if mode not in (ENFORCE, AUDIT):
            raise ValueError(f"mode must be 'enforce' or 'audit', got {mode!r}")
        self.mode = mode
        if not 0 <= leeway <= 300:
            raise ValueError("leeway is the clock skew allowed, in seconds: 0 to 300")
        self.leeway = leeway
        self.subject = subject
        self.rules = tuple(rules)
        for rule in self.rules:
            if rule.kind not in self.kinds:
                raise ValueError(f"A rule for {rule.kind.value} tokens, but this verifier accepts {self._kinds_text()}")
        self.warnings = [w for rule in self.rules for w in rule.warnings()]
        for warning in self.warnings:
            log.warning("%s", warning)
        if isinstance(audiences, str):
            audiences = (audiences,)
        explicit = tuple(audiences) if audiences is not None else ()
        self._audiences = {
            IssuerShape.AZURE_DEVOPS: frozenset(explicit or (ADO_AUDIENCE,)),
            IssuerShape.ENTRA: frozenset(explicit or (ENTRA_AUDIENCE,)),
        }
        self._issuers: dict[str, tuple[IssuerShape, str]] = {
            vstoken_issuer(org): (IssuerShape.AZURE_DEVOPS, org) for org in self.organization_ids
        }
        if self.tenant_ids:
            if TokenKind.SERVICE_CONNECTION not in self.kinds:
                raise ValueError("The Entra issuer only issues service-connection tokens; tenant_ids need that kind.")
            self._issuers.update({entra_issuer(t): (IssuerShape.ENTRA, t) for t in self.tenant_ids})
        self.replay_cache = replay_cache
        self._clock = clock
        self._fetch: Fetch = fetch or HttpsFetcher(ca_bundle=ca_bundle, allow_loopback_http=allow_loopback_http)
        self._allow_loopback_http = allow_loopback_http
        self._metadata_urls = {k.rstrip("/"): v.rstrip("/") for k, v in (metadata_urls or {}).items()}
        self._jwks_ttl = jwks_ttl
        self._discovery_ttl = discovery_ttl
        self._refetch_interval = refetch_interval
        self._max_stale = max_stale
        self._on_audit = on_audit or _log_audit
        self._lock = threading.Lock()
        self._keysets: dict[str, _KeySet] = {}
        #: issuer -> (key set, when its discovery document expires)
        self._discovered: dict[str, tuple[_KeySet, float]] = {}
        #: header segment -> kid (headers repeat across tokens; parsed and checked once)
        self._headers: dict[str, str] = {}
        #: sub -> its parsed form (subjects repeat: one per pipeline or connection)
        self._subjects: dict[str, Subject] = {}
        self.discovery_fetches = 0

    @classmethod
    def from_policy(cls, path: Union[str, Path], **overrides: Any) -> Verifier:
        """A verifier from a TOML policy file; keyword arguments add to or replace what the file says."""
        policy = load_policy(path)
        options: dict[str, Any] = {
            "kind": policy.kinds,
            "rules": policy.rules,
            "mode": policy.mode,
            "organization_ids": policy.organization_ids,
            "tenant_ids": policy.tenant_ids,
            "subject": policy.subject,
        }
        if policy.audiences:
            options["audiences"] = policy.audiences
        options.update({k: v for k, v in overrides.items() if v not in (None, (), [], "")})
        return cls(**options)

    # -- public ---------------------------------------------------------------------------------------------
    def verify(self, token: str) -> TokenClaims:
        """The verified claims, or :class:`TokenRejected` (in audit mode only for tokens that are not authentic)."""
        try:
            claims = self._authentic(token)
        except _Refused as refused:
            self._refuse(refused.refusal, None, _digest(token))
            raise TokenRejected(refused.refusal) from None
        refusal = self._policy(claims)
        if refusal is not None and not self._refuse(refusal, claims, _digest(token)).allowed:
            raise TokenRejected(refusal)
        return claims

    def check(self, token: str) -> Decision:
        """Verify and decide; never raises for a bad token. Emits an audit event for every refusal."""
        digest = _digest(token)
        try:
            claims = self._authentic(token)
        except _Refused as refused:
            return self._refuse(refused.refusal, None, digest)
        refusal = self._policy(claims)
        if refusal is not None:
            return self._refuse(refusal, claims, digest)
        return Decision(True, self.mode, claims, None, digest)

    # -- checks ----------------------------------------------------------------------------------------------
    def _authentic(self, token: str) -> TokenClaims:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or not _TOKEN_FORM.fullmatch(token):
            presented = (
                f"{len(token)} characters" if isinstance(token, str) else type(token).__name__
            )  # never the token
            raise _Refused(
                Refusal(
                    "malformed",
                    "token",
                    f"a compact JWS (three base64url parts, ≤ {MAX_TOKEN_LENGTH} chars)",
                    presented,
                )
            )
        header_b64, payload_b64, signature_b64 = token.split(".")
        kid = self._headers.get(header_b64)
        if kid is None:
            kid = self._header(header_b64)
        payload = _json_object(payload_b64, "malformed", "payload")

        iss = payload.get("iss")
        pinned = self._issuers.get(iss) if isinstance(iss, str) else None
        if pinned is None or not isinstance(iss, str):
            raise _Refused(self._issuer_refusal(iss))
        shape, issuer_id = pinned
        now = self._clock()

        try:
            key = self._keys_for(iss, now).get(kid, now)
        except FetchError as exc:
            raise _Refused(
                Refusal("keys_unavailable", "kid", f"a key of {iss}", repr(kid), f"the key set is unavailable: {exc}")
            ) from None
        if key is None:
            raise _Refused(
                Refusal(
                    "key", "kid", f"one of the keys {iss} publishes", repr(kid), "not in its key set, even refetched"
                )
            )
        signature = _b64decode(signature_b64)
        if (
            len(signature) * 8 != key.key_size
            or base64.urlsafe_b64encode(signature).rstrip(b"=").decode() != signature_b64
        ):
            raise _Refused(
                Refusal("signature", "signature", f"{key.key_size // 8} canonical bytes", f"{len(signature)} bytes")
            )
        from cryptography.exceptions import InvalidSignature

        try:
            key.verify(signature, token[: len(header_b64) + 1 + len(payload_b64)].encode("ascii"), _PKCS1, _SHA256)
        except InvalidSignature:
            raise _Refused(
                Refusal("signature", "signature", f"RS256 by key {kid} of {iss}", "a signature that does not verify")
            ) from None

        aud = payload.get("aud")
        audiences = (aud,) if isinstance(aud, str) else tuple(aud) if isinstance(aud, list) else None
        accepted = self._audiences[shape]
        if not audiences or not all(isinstance(a, str) for a in audiences) or accepted.isdisjoint(audiences):
            raise _Refused(Refusal("audience", "aud", _one_of(accepted), repr(aud)))

        exp = _numeric(payload, "exp", True)
        nbf = _numeric(payload, "nbf", False)
        iat = _numeric(payload, "iat", False)
        assert exp is not None  # noqa: S101 - required above
        if now > exp + self.leeway:
            raise _Refused(
                Refusal(
                    "expired",
                    "exp",
                    f"after {_time_text(now - self.leeway)} (now, less {self.leeway} s skew)",
                    _time_text(exp),
                )
            )
        for name, value, detail in (("iat", iat, "issued in the future"), ("nbf", nbf, "")):
            if value is not None and now < value - self.leeway:
                expected = f"before {_time_text(now + self.leeway)} (now, plus {self.leeway} s skew)"
                raise _Refused(Refusal("not_yet_valid", name, expected, _time_text(value), detail))
        return self._typed(payload, iss, shape, issuer_id, audiences, exp, nbf, iat)

    def _header(self, header_b64: str) -> str:
        header = _json_object(header_b64, "header", "header")
        alg = header.get("alg")
        if alg != "RS256":
            raise _Refused(Refusal("algorithm", "alg", "'RS256'", repr(alg)))
        if "crit" in header:
            raise _Refused(Refusal("header", "crit", "absent (no extensions are understood)", repr(header["crit"])))
        typ = header.get("typ", "JWT")
        if typ not in ("JWT", "jwt"):
            raise _Refused(Refusal("header", "typ", "'JWT'", repr(typ)))
        kid = header.get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= 128:
            raise _Refused(Refusal("header", "kid", "a key id (a string)", repr(kid)[:140]))
        with self._lock:
            if len(self._headers) >= 256:
                self._headers.clear()
            self._headers[header_b64] = kid
        return kid

    def _issuer_refusal(self, iss: Any) -> Refusal:
        expected = _one_of(self._issuers)
        if not isinstance(iss, str):
            return Refusal("issuer", "iss", expected, repr(iss))
        parsed = parse_issuer(iss)
        detail = ""
        if parsed and parsed.shape is IssuerShape.AZURE_DEVOPS:
            detail = "another organisation: its signature may well be valid, the key set is shared by all of them"
        elif parsed and parsed.shape is IssuerShape.ENTRA:
            detail = "the Entra issuer of a tenant not configured (tenant_ids)"
        return Refusal("issuer", "iss", expected, repr(iss), detail)

    def _keys_for(self, issuer: str, now: float) -> _KeySet:
        entry = self._discovered.get(issuer)
        if entry is not None and now < entry[1]:
            return entry[0]
        with self._lock:
            entry = self._discovered.get(issuer)
            if entry is not None and now < entry[1]:
                return entry[0]
            try:
                jwks_uri = self._discover(issuer)
            except FetchError as exc:
                if entry is None:
                    raise
                log.warning("Keeping the cached discovery of %s: %s", issuer, exc)
                self._discovered[issuer] = (entry[0], now + self._refetch_interval)
                return entry[0]
            keyset = self._keysets.get(jwks_uri)
            if keyset is None:
                keyset = _KeySet(
                    jwks_uri,
                    self._fetch,
                    ttl=self._jwks_ttl,
                    refetch_interval=self._refetch_interval,
                    max_stale=self._max_stale,
                )
                self._keysets[jwks_uri] = keyset
            self._discovered[issuer] = (keyset, now + self._discovery_ttl)
            return keyset

    def _discover(self, issuer: str) -> str:
        url = discovery_url(issuer)
        for real, replacement in self._metadata_urls.items():
            if url.startswith(real + "/"):
                url = replacement + url[len(real) :]
                break
        self.discovery_fetches += 1
        document = self._fetch(url)
        if not isinstance(document, dict) or document.get("issuer") != issuer:
            found = document.get("issuer") if isinstance(document, dict) else None
            raise FetchError(f"the discovery document at {url} names issuer {found!r}, not {issuer!r}")
        algs = document.get("id_token_signing_alg_values_supported")
        if isinstance(algs, list) and "RS256" not in algs:
            raise FetchError(f"{issuer} does not sign with RS256 (it lists {algs})")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise FetchError(f"the discovery document at {url} has no jwks_uri")
        if _check_url(jwks_uri, self._allow_loopback_http) != _check_url(url, self._allow_loopback_http):
            raise FetchError(f"the discovery document at {url} points its keys at another host: {jwks_uri}")
        return jwks_uri

    def _typed(
        self,
        payload: dict[str, Any],
        iss: str,
        shape: IssuerShape,
        issuer_id: str,
        audiences: tuple[str, ...],
        exp: float,
        nbf: float | None,
        iat: float | None,
    ) -> TokenClaims:
        sub = payload.get("sub")
        subject = self._subjects.get(sub) if isinstance(sub, str) else None
        if subject is None and isinstance(sub, str):
            subject = parse_subject(sub)
            if subject is not None:
                if len(self._subjects) >= 1024:
                    self._subjects.clear()
                self._subjects[sub] = subject
        if subject is None or (subject.form == "entra") != (shape is IssuerShape.ENTRA):
            form = "/eid1/…/sc/<org id>/<connection id>" if shape is IssuerShape.ENTRA else "p://… or sc://…"
            raise _Refused(Refusal("malformed", "sub", f"an Azure DevOps subject ({form})", repr(sub)))
        jti = payload.get("jti", "")
        if not isinstance(jti, str):
            raise _Refused(Refusal("malformed", "jti", "a string", repr(jti)[:80]))
        extra: dict[str, Any] = {}
        if shape is IssuerShape.ENTRA:
            org_id = subject.organization_id
            if subject.tenant_id != issuer_id or payload.get("tid") != issuer_id:
                raise _Refused(Refusal("organization", "tid", repr(issuer_id), repr(payload.get("tid"))))
            if subject.app_id != AZURE_DEVOPS_APP_ID or payload.get("azp") != AZURE_DEVOPS_APP_ID:
                raise _Refused(
                    Refusal(
                        "organization",
                        "azp",
                        f"the Azure DevOps application {AZURE_DEVOPS_APP_ID}",
                        repr(payload.get("azp")),
                    )
                )
            if org_id not in self.organization_ids:
                raise _Refused(
                    Refusal("organization", "sub (organisation id)", _one_of(self.organization_ids), repr(org_id))
                )
            extra = {"tenant_id": issuer_id, "connection_id": subject.connection_id}
        else:
            org_id = issuer_id
            if subject.kind is TokenKind.PIPELINE:
                for claim, attr in PIPELINE_CLAIMS.items():
                    value = payload.get(claim)
                    if value is None:
                        continue
                    if type(value) is str:
                        extra[attr] = value
                        continue
                    if isinstance(value, bool) or not isinstance(value, int):
                        raise _Refused(Refusal("malformed", claim, "a string", repr(value)[:80]))
                    extra[attr] = str(value)
                if extra.pop("organization_id", None) != org_id:
                    raise _Refused(Refusal("organization", "org_id", repr(org_id), repr(payload.get("org_id"))))
            else:
                extra["connection_name"] = subject.name
        if subject.kind is TokenKind.PIPELINE:
            extra["pipeline_name"] = subject.name
        extra.update(
            issuer=iss,
            issuer_shape=shape,
            subject=sub,
            audience=audiences,
            kind=subject.kind,
            expires_at=int(exp),
            issued_at=int(iat or 0),
            not_before=int(nbf or 0),
            jti=jti,
            organization_id=org_id,
            organization_name=subject.organization,
            project_name=subject.project,
            raw=MappingProxyType(payload),
        )
        return TokenClaims._trusted(extra)

    def _policy(self, claims: TokenClaims) -> Refusal | None:
        if claims.kind not in self.kinds:
            return Refusal(
                "kind",
                "sub",
                f"a {self._kinds_text()} token ({self._schemes_text()})",
                repr(claims.subject),
                f"a {claims.kind.value} token",
            )
        if self.subject and claims.subject != self.subject:
            detail = (
                "differs only in case; subjects are compared exactly"
                if claims.subject.lower() == self.subject.lower()
                else ""
            )
            return Refusal("subject", "sub", repr(self.subject), repr(claims.subject), detail)
        if self.rules:
            best: list[Refusal] | None = None
            for rule in self.rules:
                if rule.kind is not claims.kind:
                    continue
                misses = rule.mismatches(claims)
                if not misses:
                    best = []
                    break
                if best is None or len(misses) < len(best):
                    best = misses
            if best is None:
                return Refusal(
                    "rule",
                    "sub",
                    f"a token one of the {claims.kind.value} rules allows",
                    repr(claims.subject),
                    "no rule for this kind",
                )
            if best:
                return best[0]
        if self.replay_cache is not None:
            if not claims.jti:
                return Refusal("replay", "jti", "a token id (the replay cache is on)", "nothing")
            seen = self.replay_cache.record(claims.issuer, claims.jti, claims.expires_at + self.leeway, self._clock())
            if seen == ReplayCache.REPLAY:
                return Refusal(
                    "replay", "jti", "a token id not seen before", repr(claims.jti), "this token was already used"
                )
            if seen == ReplayCache.FULL:
                return Refusal(
                    "replay", "jti", "room in the replay cache", repr(claims.jti), "the replay cache is full"
                )
        return None

    def _refuse(self, refusal: Refusal, claims: TokenClaims | None, digest: str) -> Decision:
        allowed = self.mode == AUDIT
        event: dict[str, Any] = {
            "time": iso_utc(time.time()),
            "mode": self.mode,
            "outcome": "allowed (audit: would have been refused)" if allowed else "refused",
            "token_sha256": digest,
            "code": refusal.code,
            "claim": refusal.claim,
            "expected": refusal.expected,
            "presented": refusal.presented,
            "reason": refusal.message,
            "authentic": claims is not None,
        }
        if claims is not None:
            event.update({"iss": claims.issuer, "sub": claims.subject, "jti": claims.jti, "kind": claims.kind.value})
        try:
            self._on_audit(event)
        except Exception:  # an audit sink failing must not change the decision
            log.exception("The audit sink failed")
        return Decision(allowed, self.mode, claims, refusal, digest)

    def _kinds_text(self) -> str:
        return " or ".join(sorted(k.value for k in self.kinds))

    def _schemes_text(self) -> str:
        return " or ".join("p://…" if k is TokenKind.PIPELINE else "sc://…" for k in sorted(self.kinds))


def _one_of(values: Iterable[str]) -> str:
    items = sorted(values)
    return repr(items[0]) if len(items) == 1 else "one of " + ", ".join(map(repr, items))


def _log_audit(event: dict[str, Any]) -> None:
    log.warning("oidc token %s: %s", event["outcome"], json.dumps(event, sort_keys=True))


def _padding() -> tuple[Any, Any]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return padding.PKCS1v15(), hashes.SHA256()


_PKCS1, _SHA256 = _padding()


# -- a WSGI middleware -----------------------------------------------------------------------------------------
class WsgiMiddleware:
    """Verify the bearer token of every request before the app sees it.

    ``app = WsgiMiddleware(app, verifier)``: requests without a valid token get 401 (missing or not authentic)
    or 403 (authentic but not allowed) with an RFC 6750 ``WWW-Authenticate`` header naming only the claim;
    the full reason goes to the audit log, not to the caller. Allowed requests reach the app with the
    :class:`TokenClaims` in ``environ["oidc_credentials.claims"]`` and the :class:`Decision` in
    ``environ["oidc_credentials.decision"]``. In audit mode every request goes through.
    """

    CLAIMS = "oidc_credentials.claims"
    DECISION = "oidc_credentials.decision"

    def __init__(self, app: Callable[..., Any], verifier: Verifier, *, header: str = "Authorization") -> None:
        self.app = app
        self.verifier = verifier
        self._environ_key = "HTTP_" + header.upper().replace("-", "_")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        value = environ.get(self._environ_key, "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            if self.verifier.mode == AUDIT:
                return self.app(environ, start_response)
            return self._deny(
                start_response, 401, 'Bearer realm="oidc", error="invalid_request"', "a bearer token is required"
            )
        decision = self.verifier.check(token.strip())
        environ[self.DECISION] = decision
        if decision.claims is not None:
            environ[self.CLAIMS] = decision.claims
        if decision.allowed:
            return self.app(environ, start_response)
        assert decision.refusal is not None  # noqa: S101 - refused decisions carry their reason
        status = 403 if decision.claims is not None else 401
        claim = decision.refusal.claim.replace('"', "'")
        error = "insufficient_scope" if status == 403 else "invalid_token"
        return self._deny(
            start_response, status, f'Bearer realm="oidc", error="{error}"', f"token refused on claim {claim}"
        )

    @staticmethod
    def _deny(start_response: Callable[..., Any], status: int, challenge: str, description: str) -> list[bytes]:
        body = json.dumps({"error": "unauthorized" if status == 401 else "forbidden", "error_description": description})
        start_response(
            f"{status} {'Unauthorized' if status == 401 else 'Forbidden'}",
            [("Content-Type", "application/json"), ("WWW-Authenticate", challenge), ("Content-Length", str(len(body)))],
        )
        return [body.encode()]
