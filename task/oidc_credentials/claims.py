"""Azure DevOps OIDC token formats: issuers, subjects, token kinds and the typed claims.

Facts from the platform (../shared/docs/platform.md §3):

- **Azure DevOps issuer**: ``iss = https://vstoken.dev.azure.com/<organisation id>``, ``aud`` fixed at
  ``api://AzureADTokenExchange``. One JWKS for every organisation (``https://vstoken.dev.azure.com/.well-known/jwks``),
  so a valid signature proves nothing about the organisation: pin ``iss``.
- **Microsoft Entra issuer** (workload-identity connections converted to it, the default for new ones):
  ``iss = https://login.microsoftonline.com/<tenant id>/v2.0``,
  ``sub = /eid1/c/pub/t/<b64url(tenant)>/a/<b64url(Azure DevOps app)>/sc/<organisation id>/<connection id>``,
  ``azp`` = the Azure DevOps application id.
- **Service-connection tokens**: ``sub = sc://<organisation name>/<project name>/<connection name>``, no other claims.
- **Pipeline tokens** (no connection): ``sub = p://<organisation name>/<project name>/<pipeline name>`` plus
  ``org_id, prj_id, def_id, rpo_id, rpo_uri, rpo_ver, rpo_ref, run_id``. How folders appear in the pipeline name
  is not documented; everything after the project is taken as the pipeline name.

Nothing here checks a signature: :mod:`oidc_credentials.verify` does, with these formats.
"""

from __future__ import annotations

import base64
import enum
import json
import uuid
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from .text import iso_utc

VSTOKEN_HOST = "vstoken.dev.azure.com"
VSTOKEN_BASE = f"https://{VSTOKEN_HOST}"
#: the one key set of the Azure DevOps issuer, shared by every organisation
VSTOKEN_JWKS = f"{VSTOKEN_BASE}/.well-known/jwks"
ENTRA_BASE = "https://login.microsoftonline.com"
ENTRA_HOSTS = (
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "login.partner.microsoftonline.cn",
)
#: ``aud`` of every Azure DevOps-issued token; the caller cannot change it
ADO_AUDIENCE = "api://AzureADTokenExchange"
#: ``aud`` of the Entra-issued token in the one public sample (platform.md §3.2; not confirmed as constant)
ENTRA_AUDIENCE = "fb60f99c-7a34-4190-8149-302f77469936"
#: the Azure DevOps application: ``azp`` of Entra-issued tokens and the ``a/`` segment of their subject
AZURE_DEVOPS_APP_ID = "499b84ac-1321-427f-aa17-267ca6975798"

PIPELINE_SCHEME = "p://"
CONNECTION_SCHEME = "sc://"
_ENTRA_SUBJECT_PREFIX = "/eid1/c/pub/t/"


class TokenKind(str, enum.Enum):
    """What a token stands for: a pipeline run (``p://``) or a service connection (``sc://`` or Entra)."""

    PIPELINE = "pipeline"
    SERVICE_CONNECTION = "service-connection"

    @classmethod
    def parse(cls, value: str | TokenKind) -> TokenKind:
        if isinstance(value, TokenKind):
            return value
        for kind in cls:
            if value == kind.value:
                return kind
        raise ValueError(f"Unknown token kind {value!r}: use 'pipeline' or 'service-connection'.")


class IssuerShape(str, enum.Enum):
    AZURE_DEVOPS = "azure-devops"
    ENTRA = "entra"


# -- issuers ----------------------------------------------------------------------------------------------
def vstoken_issuer(organization_id: str) -> str:
    """``https://vstoken.dev.azure.com/<organisation id>``."""
    return f"{VSTOKEN_BASE}/{organization_id}"


def entra_issuer(tenant_id: str, authority: str = ENTRA_BASE) -> str:
    """``https://login.microsoftonline.com/<tenant id>/v2.0``."""
    return f"{authority.rstrip('/')}/{tenant_id}/v2.0"


def discovery_url(issuer: str) -> str:
    """Where an issuer publishes its OpenID configuration."""
    return f"{issuer.rstrip('/')}/.well-known/openid-configuration"


@dataclass(frozen=True)
class Issuer:
    """A parsed issuer: its shape and the id it names (organisation id, or tenant id for Entra)."""

    shape: IssuerShape
    id: str
    url: str


def _canonical_guid(value: str) -> str:
    """The lowercase hyphenated form, or "" if ``value`` is not exactly that form of a GUID."""
    try:
        parsed = str(uuid.UUID(value))
    except ValueError:
        return ""
    return parsed if parsed == value else ""


def parse_issuer(iss: str) -> Issuer | None:
    """The issuer's shape and id, or None for anything that is not exactly one of the two shapes."""
    parts = urlsplit(iss)
    if parts.scheme != "https" or parts.query or parts.fragment or parts.username or parts.port:
        return None
    segments = parts.path.split("/")
    if parts.netloc == VSTOKEN_HOST and len(segments) == 2 and _canonical_guid(segments[1]):
        return Issuer(IssuerShape.AZURE_DEVOPS, segments[1], iss)
    if parts.netloc in ENTRA_HOSTS and len(segments) == 3 and segments[2] == "v2.0" and _canonical_guid(segments[1]):
        return Issuer(IssuerShape.ENTRA, segments[1], iss)
    return None


def issuer_label(iss: str) -> str:
    """A human name for the issuer, for logs."""
    host = urlsplit(iss).hostname or ""
    if host == VSTOKEN_HOST:
        return "Azure DevOps issuer, vstoken"
    if host in ENTRA_HOSTS:
        return "Microsoft Entra issuer"
    return "unrecognised issuer"


# -- subjects ---------------------------------------------------------------------------------------------
def pipeline_subject(organization: str, project: str, pipeline: str) -> str:
    """``p://<organisation>/<project>/<pipeline>`` (names, not ids)."""
    return f"{PIPELINE_SCHEME}{organization}/{project}/{pipeline}"


def service_connection_subject(organization: str, project: str, connection: str) -> str:
    """``sc://<organisation>/<project>/<connection>`` (names, not ids)."""
    return f"{CONNECTION_SCHEME}{organization}/{project}/{connection}"


def _b64_guid(value: str) -> str:
    return base64.urlsafe_b64encode(uuid.UUID(value).bytes_le).rstrip(b"=").decode()


def _guid_from_b64(value: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        if len(raw) != 16 or _b64_guid(str(uuid.UUID(bytes_le=raw))) != value:
            return ""
        return str(uuid.UUID(bytes_le=raw))
    except (ValueError, TypeError):
        return ""


def entra_subject(tenant_id: str, organization_id: str, connection_id: str, app_id: str = AZURE_DEVOPS_APP_ID) -> str:
    """``/eid1/c/pub/t/<b64url(tenant)>/a/<b64url(app)>/sc/<organisation id>/<connection id>``.

    The GUIDs in ``t/`` and ``a/`` are unpadded base64url of their .NET (little-endian) bytes.
    """
    return f"{_ENTRA_SUBJECT_PREFIX}{_b64_guid(tenant_id)}/a/{_b64_guid(app_id)}/sc/{organization_id}/{connection_id}"


@dataclass(frozen=True)
class Subject:
    """A parsed ``sub``. Names come from ``p://``/``sc://`` subjects, ids from Entra ones."""

    kind: TokenKind
    #: "p", "sc" or "entra"
    form: str
    organization: str = ""
    project: str = ""
    #: the pipeline's name (``p://``) or the connection's name (``sc://``)
    name: str = ""
    organization_id: str = ""
    connection_id: str = ""
    tenant_id: str = ""
    app_id: str = ""


def _three(rest: str) -> tuple[str, str, str] | None:
    org, sep1, tail = rest.partition("/")
    project, sep2, name = tail.partition("/")
    if not (sep1 and sep2 and org and project and name):
        return None
    return org, project, name


def parse_subject(sub: str) -> Subject | None:
    """The subject's kind and parts, or None when it is none of the three documented forms."""
    if sub.startswith(PIPELINE_SCHEME):
        parts = _three(sub[len(PIPELINE_SCHEME) :])
        return Subject(TokenKind.PIPELINE, "p", *parts) if parts else None
    if sub.startswith(CONNECTION_SCHEME):
        parts = _three(sub[len(CONNECTION_SCHEME) :])
        if parts is None or "/" in parts[2]:
            return None
        return Subject(TokenKind.SERVICE_CONNECTION, "sc", *parts)
    if sub.startswith(_ENTRA_SUBJECT_PREFIX):
        segments = sub[len(_ENTRA_SUBJECT_PREFIX) :].split("/")
        # <tenant>/a/<app>/sc/<org id>/<connection id>
        if len(segments) != 6 or segments[1] != "a" or segments[3] != "sc":
            return None
        tenant, app = _guid_from_b64(segments[0]), _guid_from_b64(segments[2])
        org_id, conn_id = _canonical_guid(segments[4]), _canonical_guid(segments[5])
        if not (tenant and app and org_id and conn_id):
            return None
        return Subject(
            TokenKind.SERVICE_CONNECTION,
            "entra",
            organization_id=org_id,
            connection_id=conn_id,
            tenant_id=tenant,
            app_id=app,
        )
    return None


def kind_of(sub: str) -> TokenKind | None:
    """The kind a subject's scheme stands for (even if the rest is malformed), or None for another scheme.

    Enough to refuse a pipeline token where a connection's was asked for; :func:`parse_subject` checks the rest.
    """
    if sub.startswith(PIPELINE_SCHEME):
        return TokenKind.PIPELINE
    if sub.startswith((CONNECTION_SCHEME, _ENTRA_SUBJECT_PREFIX)):
        return TokenKind.SERVICE_CONNECTION
    return None


# -- the unverified claims the task logs ------------------------------------------------------------------
#: who issues the tokens, in messages
SERVICE = "Azure DevOps"


@dataclass(frozen=True)
class Claims:
    """The parts of the OIDC token a trust configuration is written against, decoded but NOT verified.

    For the task's pre-flight log and error messages only; a service deciding on a token uses
    :mod:`oidc_credentials.verify`, whose :class:`TokenClaims` are verified.
    """

    iss: str
    sub: str
    aud: str
    exp: int
    iat: int = 0
    jti: str = ""
    kid: str = ""
    alg: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def issuer_kind(self) -> str:
        return issuer_label(self.iss)

    @property
    def kind(self) -> TokenKind | None:
        """Pipeline (``p://``) or service connection (``sc://``, Entra); None for any other subject."""
        return kind_of(self.sub)

    @property
    def issuer_id(self) -> str:
        """The issuer without its scheme: the prefix of AWS condition keys (``vstoken.dev.azure.com/<org>``)."""
        return self.iss.split("://", 1)[-1].rstrip("/")

    def expires_in(self, now: float) -> int:
        return int(self.exp - now)

    def describe(self, now: float) -> list[str]:
        expiry = iso_utc(self.exp) if self.exp else "?"
        return [
            f"  issuer    {self.iss} ({self.issuer_kind})",
            f"  subject   {self.sub}",
            f"  audience  {self.aud}",
            f"  expires   {expiry} (in {self.expires_in(now)} s)",
        ]


def _jwt_part(part: str) -> dict[str, Any]:
    value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def decode_claims(token: str) -> Claims:
    """Decode the JWT without checking its signature (the cloud checks it); never print the token.

    Plain base64url and JSON: importing a JWT library (and with it cryptography) only to read claims
    would cost more than the rest of the AWS path's start-up."""
    from .errors import ExchangeError

    try:
        head, body, _signature = token.split(".")
        header, payload = _jwt_part(head), _jwt_part(body)
    except ValueError as exc:  # wrong segment count, bad base64url, bad UTF-8 or JSON, not an object
        raise ExchangeError(
            f"{SERVICE} returned an OIDC token that is not a valid JWT ({type(exc).__name__}).", service=SERVICE
        ) from exc
    aud = payload.get("aud", "")
    return Claims(
        iss=str(payload.get("iss", "")),
        sub=str(payload.get("sub", "")),
        aud=", ".join(map(str, aud)) if isinstance(aud, list) else str(aud),
        exp=_time_claim(payload, "exp"),
        iat=_time_claim(payload, "iat"),
        jti=str(payload.get("jti", "")),
        kid=str(header.get("kid", "")),
        alg=str(header.get("alg", "")),
        raw=payload,
    )


#: the latest instant a claim may name (9999-12-31T23:59:59Z): later ones cannot be shown as dates
_MAX_TIME = 253402300799


def _time_claim(payload: dict[str, Any], name: str) -> int:
    """A NumericDate claim as whole seconds; a value that is no date gets a message naming the claim."""
    from .errors import ExchangeError

    value = payload.get(name)
    if value is None or value == "":
        return 0
    try:
        seconds = int(value)
    except (TypeError, ValueError, OverflowError):
        seconds = -1
    if not 0 <= seconds <= _MAX_TIME or isinstance(value, bool):
        raise ExchangeError(
            f"{SERVICE} returned an OIDC token whose '{name}' claim is not a date in seconds from 1970 to 9999 "
            f"({str(value)[:40]}).",
            service=SERVICE,
            code="InvalidToken",
        )
    return seconds


# -- verified claims -----------------------------------------------------------------------------------
#: claim name in the token -> attribute of :class:`TokenClaims` (the pipeline-token claims)
PIPELINE_CLAIMS = {
    "org_id": "organization_id",
    "prj_id": "project_id",
    "def_id": "definition_id",
    "rpo_id": "repository_id",
    "rpo_uri": "repository_uri",
    "rpo_ver": "repository_version",
    "rpo_ref": "repository_ref",
    "run_id": "run_id",
}


@dataclass(frozen=True)
class TokenClaims:
    """The claims of a verified Azure DevOps OIDC token, typed.

    ``organization_id`` comes from the issuer (Azure DevOps shape) or the subject (Entra shape), both checked;
    the name fields come from the subject (names can be renamed and re-registered: prefer the ids).
    """

    issuer: str
    issuer_shape: IssuerShape
    subject: str
    audience: tuple[str, ...]
    kind: TokenKind
    expires_at: int
    issued_at: int
    not_before: int
    jti: str
    organization_id: str
    tenant_id: str = ""
    organization_name: str = ""
    project_name: str = ""
    #: the pipeline's name (pipeline tokens)
    pipeline_name: str = ""
    #: the connection's name (``sc://`` subjects) or id (Entra subjects)
    connection_name: str = ""
    connection_id: str = ""
    project_id: str = ""
    definition_id: str = ""
    repository_id: str = ""
    repository_uri: str = ""
    repository_version: str = ""
    repository_ref: str = ""
    run_id: str = ""
    #: every claim as presented (read only)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def get(self, name: str) -> str:
        """A string field by name (what allow rules compare)."""
        value = getattr(self, name)
        return value if isinstance(value, str) else str(value)

    @classmethod
    def _trusted(cls, values: dict[str, Any]) -> TokenClaims:
        """Build from checked values without the frozen ``__init__``'s per-field cost (the verifier's hot path).

        ``values`` must name only fields; missing ones take their defaults. The instance is as frozen as any.
        """
        claims = object.__new__(cls)
        state = dict(_DEFAULTS)
        state.update(values)
        claims.__dict__.update(state)
        return claims


_DEFAULTS = {f.name: f.default for f in fields(TokenClaims) if f.default is not MISSING}
