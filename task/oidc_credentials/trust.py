"""The cloud side of a service connection's trust: its facts (issuer, subject, audience) and the rendered config.

Facts come, in order of preference, from a live token (``--token-file``), from the Azure DevOps
organisation (:mod:`oidc_credentials.ado_admin`), or from explicit flags; each field is taken from the
best source that has it. The configuration is rendered with the jinja2 templates in ``trust_templates/``:
one template per cloud and form, fed only with values checked here (never a wildcard subject).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import claims
from .errors import ConfigError

ADO_AUDIENCE = claims.ADO_AUDIENCE
#: Google keeps at most 127 bytes in ``google.subject`` (WorkloadIdentityPoolProvider.attributeMapping)
GCP_SUBJECT_LIMIT = 127
#: Microsoft Entra keeps at most 20 federated identity credentials per application
ENTRA_FIC_LIMIT = 20
#: the Azure DevOps issuer stops working for Azure connections on this day (convert-service-connections)
ADO_ISSUER_RETIREMENT = "2027-07-01"

FORMATS: dict[str, tuple[str, ...]] = {
    "aws": ("json", "cloudformation", "terraform"),
    "azure": ("json", "az"),
    "gcp": ("gcloud", "terraform"),
    "vault": ("cli", "json", "terraform"),
}
TEMPLATES = Path(__file__).with_name("trust_templates")


@dataclass(frozen=True)
class Facts:
    """What a trust is written against; ``sources`` says where each field came from (for messages)."""

    issuer: str = ""
    subject: str = ""
    audience: str = ""
    org_id: str = ""
    org_name: str = ""
    project: str = ""
    connection: str = ""
    connection_id: str = ""
    tenant_id: str = ""
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def issuer_kind(self) -> str:
        """``azuredevops``, ``entra`` or ``other``."""
        host = urlsplit(self.issuer).hostname or ""
        if host == claims.VSTOKEN_HOST:
            return "azuredevops"
        if host in claims.ENTRA_HOSTS:
            return "entra"
        return "other"

    @property
    def issuer_id(self) -> str:
        """The issuer without its scheme: IAM's provider name and condition-key prefix."""
        return self.issuer.split("://", 1)[-1].rstrip("/")

    def merged(self, other: Facts) -> Facts:
        """These facts, with the fields they lack taken from ``other`` (a less preferred source)."""
        values: dict[str, Any] = {}
        sources = dict(self.sources)
        for name in ("issuer", "subject", "audience", "org_id", "org_name", "project", "connection"):
            values[name] = getattr(self, name) or getattr(other, name)
            if not getattr(self, name) and getattr(other, name):
                sources[name] = other.sources.get(name, "")
        for name in ("connection_id", "tenant_id"):
            values[name] = getattr(self, name) or getattr(other, name)
        return Facts(**values, sources=sources)


def facts_from_token(path: str) -> Facts:
    """The issuer, subject and audience of a token saved to a file (the JWT, or ``{"oidcToken": ...}``)."""
    from .errors import TaskError

    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"--token-file {path}: cannot read it ({exc.strerror or exc}).") from exc
    if text.startswith("{"):
        try:
            text = str(json.loads(text).get("oidcToken", ""))
        except (ValueError, AttributeError):
            text = ""
    try:
        token = claims.decode_claims(text)
    except TaskError:
        raise ConfigError(
            f"--token-file {path}: not a JWT; save the oidcToken the OIDC endpoint returned (three dot-separated parts)."
        ) from None
    source = f"token file {path}"
    facts = Facts(issuer=token.iss, subject=token.sub, audience=token.aud, tenant_id=str(token.raw.get("tid", "")))
    if facts.issuer_kind == "azuredevops":
        facts = replace(facts, org_id=facts.issuer_id.split("/", 1)[-1])
    subject = claims.parse_subject(token.sub)
    if subject is not None and subject.form == "sc":
        facts = replace(facts, org_name=subject.organization, project=subject.project, connection=subject.name)
    elif subject is not None and subject.form == "entra":
        facts = replace(facts, org_id=subject.organization_id, connection_id=subject.connection_id)
    return replace(facts, sources={k: source for k, v in vars(facts).items() if v and isinstance(v, str)})


def facts_from_flags(
    *,
    issuer: str = "",
    subject: str = "",
    audience: str = "",
    org_id: str = "",
    org_name: str = "",
    project: str = "",
    connection: str = "",
) -> Facts:
    """Facts given on the command line; the Azure DevOps issuer and ``sc://`` subject are built from names."""
    if not issuer and org_id:
        issuer = claims.vstoken_issuer(org_id)
    if not subject and org_name and project and connection and (not issuer or issuer.startswith(claims.VSTOKEN_BASE)):
        subject = claims.service_connection_subject(org_name, project, connection)
    facts = Facts(
        issuer=issuer,
        subject=subject,
        audience=audience,
        org_id=org_id,
        org_name=org_name,
        project=project,
        connection=connection,
    )
    return replace(facts, sources={k: "flags" for k, v in vars(facts).items() if v and isinstance(v, str)})


def complete(facts: Facts) -> Facts:
    """Fill the audience default and check the facts a trust needs; a missing one names its flag."""
    if not facts.audience:
        facts = replace(facts, audience=ADO_AUDIENCE, sources={**facts.sources, "audience": "default"})
    if not facts.issuer:
        raise ConfigError(
            "missing --issuer (or --org-id): the token's issuer is not known; give --token-file with a saved "
            "token, or --org with --project and --connection to read it from Azure DevOps."
        )
    if not facts.subject:
        needed = missing_flags(
            ("--org-name", facts.org_name), ("--project", facts.project), ("--connection", facts.connection)
        )
        raise ConfigError(
            f"missing {' and '.join(needed) or '--subject'}: the token's subject is not known; give "
            + ("them" if len(needed) > 1 else "it")
            + " (sc://<org-name>/<project>/<connection> is built from them), or --subject, or --token-file."
        )
    check_subject(facts.subject)
    parsed = urlsplit(facts.issuer)
    if parsed.scheme != "https" and parsed.hostname not in ("127.0.0.1", "localhost"):
        raise ConfigError(f"--issuer {facts.issuer}: an OIDC issuer is an https:// URL.")
    return facts


def missing_flags(*pairs: tuple[str, str]) -> list[str]:
    """The flags, of (flag, value) pairs, whose value is empty."""
    return [flag for flag, value in pairs if not value]


def check_subject(subject: str) -> None:
    """Refuse a wildcard or otherwise unsafe subject, with the reason."""
    if any(ch in subject for ch in "*?"):
        raise ConfigError(
            f"refusing the wildcard subject {subject!r}: the token names only the service connection, so a "
            "pattern trusts every connection whose organisation, project and name match it, and anyone who can "
            "create or rename such a connection gets these credentials. Name exactly one connection."
        )
    if not subject.strip() or subject != subject.strip() or any(not ch.isprintable() for ch in subject):
        raise ConfigError(f"the subject {subject!r} has blank or control characters; give the exact subject.")


# ---------------------------------------------------------------------------------------------- rendering


def _environment() -> Any:
    import jinja2  # lazy: only the CLI renders

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - JSON, HCL, YAML and shell: every value goes through a quoting filter
    )
    env.filters["json"] = lambda value, indent=None: json.dumps(value, indent=indent, ensure_ascii=False)
    env.filters["hcl"] = hcl_string
    env.filters["sh"] = lambda value: shlex.quote(str(value))
    return env


def hcl_string(value: object) -> str:
    """A quoted HCL string: JSON escapes, and template sequences (``${``, ``%{``) doubled."""
    return json.dumps(str(value), ensure_ascii=False).replace("${", "$${").replace("%{", "%%{")


def render(template: str, **values: Any) -> str:
    text: str = _environment().get_template(template).render(**values)
    return text


def slug(text: str, *, limit: int, allowed: str = "a-z0-9-") -> str:
    """A resource id from a name: lower case, disallowed runs to ``-``, trimmed to ``limit``."""
    value = re.sub(f"[^{allowed}]+", "-", text.lower()).strip("-")
    return value[:limit].strip("-")


def gcp_subject_mapping(subject: str) -> tuple[str, str]:
    """(``google.subject`` mapping, the value it yields for this subject), within Google's 127 bytes."""
    if len(subject.encode()) <= GCP_SUBJECT_LIMIT:
        return "assertion.sub", subject
    if "/sc/" in subject:
        short = subject.split("/sc/", 1)[1]
        return "assertion.sub.split('/sc/')[1]", short
    if subject.startswith("sc://"):
        short = subject.split("/", 3)[3]  # <project>/<connection>; the condition still pins the whole subject
        if len(short.encode()) <= GCP_SUBJECT_LIMIT:
            return "assertion.sub.split('/')[3] + '/' + assertion.sub.split('/')[4]", short
    raise ConfigError(
        f"the subject is {len(subject.encode())} bytes and Google keeps at most {GCP_SUBJECT_LIMIT} in "
        "google.subject, with no shorter unique part to map; shorten the project or connection name."
    )


def _label(facts: Facts) -> str:
    return facts.connection or facts.connection_id or facts.subject


def render_aws(
    facts: Facts,
    fmt: str,
    *,
    account_id: str = "",
    partition: str = "aws",
    role_name: str = "",
    max_session: int = 3600,
    provider_exists: bool = False,
) -> str:
    """The IAM OIDC provider and role trust policy (``StringEquals`` on ``aud`` and ``sub``)."""
    if fmt == "json" and not account_id:
        raise ConfigError(
            "missing --account-id: the trust policy names the account's OIDC provider by ARN "
            "(or use --format cloudformation or terraform, which refer to it)."
        )
    if account_id and not re.fullmatch(r"\d{12}", account_id):
        raise ConfigError(f"--account-id {account_id}: an AWS account id is 12 digits.")
    if not 3600 <= max_session <= 43200:
        raise ConfigError(f"--max-session-duration {max_session}: IAM allows 3600 to 43200 seconds.")
    role_name = role_name or slug(f"ado-{_label(facts)}", limit=64, allowed="A-Za-z0-9+=,.@_-")
    if not re.fullmatch(r"[\w+=,.@-]{1,64}", role_name):
        raise ConfigError(f"--role-name {role_name}: IAM role names are 1-64 of letters, digits and +=,.@_-")
    provider_arn = f"arn:{partition}:iam::{account_id}:oidc-provider/{facts.issuer_id}"
    template = {"json": "aws_policy.json.j2", "cloudformation": "aws_cloudformation.yaml.j2"}.get(
        fmt, "aws_terraform.tf.j2"
    )
    return render(
        template,
        facts=facts,
        label=_label(facts),
        provider_arn=provider_arn,
        role_name=role_name,
        max_session=max_session,
        provider_exists=provider_exists,
    )


def entra_credential(facts: Facts, name: str = "", description: str = "") -> dict[str, Any]:
    """A Microsoft Graph federatedIdentityCredential: name, issuer, subject, audiences (all required)."""
    name = name or slug(f"ado-{_label(facts)}", limit=120, allowed="A-Za-z0-9_-")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{2,119}", name):
        raise ConfigError(f"--name {name}: a federated credential name is 3-120 letters, digits, - and _.")
    for what, value in (("issuer", facts.issuer), ("subject", facts.subject), ("audience", facts.audience)):
        if len(value) > 600:
            raise ConfigError(f"the {what} is {len(value)} characters; Entra accepts at most 600.")
    return {
        "name": name,
        "issuer": facts.issuer,
        "subject": facts.subject,
        "audiences": [facts.audience],
        "description": description or f"Azure DevOps service connection {_label(facts)}"[:600],
    }


def entra_issuer_facts(facts: Facts) -> Facts:
    """The same connection as the Microsoft Entra issuer will name it once it is converted.

    Issuer ``https://login.microsoftonline.com/<tenant>/v2.0``; subject
    ``/eid1/c/pub/t/<tenant>/a/<Azure DevOps app>/sc/<organisation id>/<connection id>`` with both GUIDs
    as unpadded base64url of their .NET byte order (platform.md §3.2). Needs the tenant, organisation
    and connection ids.
    """
    missing = missing_flags(
        ("--tenant-id", facts.tenant_id), ("--org-id", facts.org_id), ("--connection-id", facts.connection_id)
    )
    if missing:
        raise ConfigError(
            f"missing {' and '.join(missing)}: the Entra issuer's subject is built from them "
            "(or read the connection with --org, --project and --connection)."
        )
    try:
        subject = claims.entra_subject(facts.tenant_id, facts.org_id, facts.connection_id)
    except ValueError:
        raise ConfigError(f"--tenant-id {facts.tenant_id}: a tenant id is a GUID.") from None
    return replace(facts, issuer=claims.entra_issuer(facts.tenant_id), subject=subject)


def render_azure(
    facts: Facts,
    fmt: str,
    *,
    app_id: str = "",
    name: str = "",
    dual_issuer: bool = False,
    identity: str = "",
    resource_group: str = "",
) -> str:
    """The Entra federated credential(s): one, or with ``dual_issuer`` both issuers for the cut-over."""
    credentials = [entra_credential(facts, name)]
    if dual_issuer:
        other = entra_issuer_facts(facts) if facts.issuer_kind == "azuredevops" else None
        if other is None:
            raise ConfigError(
                "--dual-issuer: the connection already uses the Microsoft Entra issuer; one credential is enough."
            )
        credentials.append(entra_credential(other, (credentials[0]["name"][:112] + "-entra")))
    if fmt == "az" and identity and not resource_group:
        raise ConfigError("missing --resource-group: the resource group of the managed identity --identity.")
    if fmt == "az" and not (app_id or identity):
        raise ConfigError(
            "missing --app-id (or --identity with --resource-group): the Entra app, or the user-assigned managed "
            "identity, the connection uses."
        )
    template = "azure_az.sh.j2" if fmt == "az" else "azure_json.j2"
    return render(
        template,
        credentials=credentials,
        app_id=app_id,
        identity=identity,
        resource_group=resource_group,
        label=_label(facts),
    )


def render_gcp(
    facts: Facts,
    fmt: str,
    *,
    project_number: str,
    project_id: str = "",
    service_account: str = "",
    pool: str = "azure-devops",
    provider: str = "",
    create_pool: bool = True,
) -> str:
    """Workload identity pool, OIDC provider (mapping within 127 bytes, condition on the exact subject), binding."""
    if not project_number:
        raise ConfigError("missing --project-number: the principal and the provider name use the project number.")
    if not re.fullmatch(r"\d+", project_number):
        raise ConfigError(f"--project-number {project_number}: a project number is all digits.")
    if not service_account:
        raise ConfigError("missing --service-account: the e-mail of the service account the pipeline impersonates.")
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", service_account):
        raise ConfigError(f"--service-account {service_account}: give the service account's e-mail.")
    provider = provider or slug(f"ado-{_label(facts)}", limit=32) or "azure-devops"
    for what, value in (("--pool", pool), ("--provider", provider)):
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{2,30}[a-z0-9]", value) or value.startswith("gcp-"):
            raise ConfigError(f"{what} {value}: 4-32 lower-case letters, digits and dashes, not starting with gcp-.")
    mapping, mapped = gcp_subject_mapping(facts.subject)
    provider_name = f"projects/{project_number}/locations/global/workloadIdentityPools/{pool}/providers/{provider}"
    member = (
        f"principal://iam.googleapis.com/projects/{project_number}/locations/global/workloadIdentityPools/"
        f"{pool}/subject/{mapped}"
    )
    return render(
        "gcp_gcloud.sh.j2" if fmt == "gcloud" else "gcp_terraform.tf.j2",
        facts=facts,
        label=_label(facts),
        project=project_id or project_number,
        pool=pool,
        provider=provider,
        provider_display=_label(facts)[:32],
        provider_name=provider_name,
        mapping=mapping,
        condition=f"assertion.sub == {json.dumps(facts.subject, ensure_ascii=False)}",
        member=member,
        service_account=service_account,
        create_pool=create_pool,
    )


def duration_seconds(text: str, flag: str) -> int:
    match = re.fullmatch(r"(\d+)([smhd]?)", text.strip())
    if not match:
        raise ConfigError(f"{flag} {text}: give a duration such as 900, 15m or 1h.")
    return int(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]


def vault_jwks_url(facts: Facts) -> str:
    if facts.issuer_kind == "azuredevops":
        return claims.VSTOKEN_JWKS
    if facts.issuer_kind == "entra":
        return facts.issuer.rstrip("/").removesuffix("/v2.0") + "/discovery/v2.0/keys"
    return ""


def render_vault(
    facts: Facts,
    fmt: str,
    *,
    role: str = "",
    policies: list[str] | None = None,
    mount: str = "jwt",
    ttl: str = "15m",
    max_ttl: str = "1h",
    jwks_url: str = "",
    discovery: bool = False,
    enable_mount: bool = True,
) -> str:
    """JWT auth config (``bound_issuer`` and keys) and a role bound to the audience and the exact subject."""
    if not policies:
        raise ConfigError("missing --policy: name the Vault policies the pipeline's token gets (repeat for several).")
    for policy in policies:
        if not re.fullmatch(r"[\w.@-]+", policy):
            raise ConfigError(f"--policy {policy}: a policy name is letters, digits and _.@-")
    role = role or slug(f"ado-{_label(facts)}", limit=64, allowed="a-z0-9_.@-")
    if not re.fullmatch(r"[\w.@-]+", role):
        raise ConfigError(f"--role {role}: a role name is letters, digits and _.@-")
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)*", mount):
        raise ConfigError(f"--mount {mount}: give a mount path such as jwt or azure-devops/jwt.")
    ttl_seconds, max_ttl_seconds = duration_seconds(ttl, "--ttl"), duration_seconds(max_ttl, "--max-ttl")
    if ttl_seconds > max_ttl_seconds:
        raise ConfigError(f"--ttl {ttl} is longer than --max-ttl {max_ttl}.")
    config: dict[str, Any] = {"bound_issuer": facts.issuer}
    if discovery and not jwks_url:
        config = {"oidc_discovery_url": facts.issuer, **config}
    else:
        keys = jwks_url or vault_jwks_url(facts)
        if not keys:
            raise ConfigError("missing --jwks-url: the issuer's signing keys cannot be derived from it.")
        config = {"jwks_url": keys, **config}
    role_body = {
        "role_type": "jwt",
        "user_claim": "sub",
        "bound_audiences": [facts.audience],
        "bound_subject": facts.subject,
        "token_policies": list(policies),
        "token_ttl": ttl_seconds,
        "token_max_ttl": max_ttl_seconds,
    }
    template = {"cli": "vault_cli.sh.j2", "json": "vault_json.j2"}.get(fmt, "vault_terraform.tf.j2")
    return render(
        template,
        facts=facts,
        label=_label(facts),
        mount=mount,
        role=role,
        config=config,
        role_body=role_body,
        ttl_seconds=ttl_seconds,
        max_ttl_seconds=max_ttl_seconds,
        enable_mount=enable_mount,
    )


# ------------------------------------------------------------------------------ facts from an organisation


def facts_from_endpoint(endpoint: Any, *, org_id: str, org_name: str, project: str) -> Facts:
    """Facts of a service connection read from Azure DevOps (``ado_admin.Endpoint``).

    The connection's own ``workloadIdentityFederationIssuer``/``Subject`` win (Azure connections carry
    them, the Entra issuer's included); otherwise the Azure DevOps issuer and ``sc://`` subject.
    """
    source = f"connection {endpoint.name!r}"
    facts = Facts(
        issuer=endpoint.issuer or claims.vstoken_issuer(org_id),
        subject=endpoint.subject or claims.service_connection_subject(org_name, project, endpoint.name),
        org_id=org_id,
        org_name=org_name,
        project=project,
        connection=endpoint.name,
        connection_id=endpoint.id,
        tenant_id=endpoint.tenant_id,
    )
    return replace(facts, sources={k: source for k, v in vars(facts).items() if v and isinstance(v, str)})


def difference(what: str, have: str, want: str) -> str:
    """One line on how two values differ: case only, or from which character."""
    if have == want:
        return ""
    if have.lower() == want.lower():
        at = next(i for i, (a, b) in enumerate(zip(have, want)) if a != b)
        return f"{what} differs only in letter case at character {at + 1} ({have[at]!r} vs {want[at]!r}): {have!r} vs {want!r}"
    at = next((i for i, (a, b) in enumerate(zip(have, want)) if a != b), min(len(have), len(want)))
    return f"{what} differs from character {at + 1}: {have!r} vs {want!r}"


# ---------------------------------------------------------------------------- what a cloud-side trust expects


@dataclass(frozen=True)
class Expectation:
    """What one cloud-side trust admits; an empty field is not checked by it."""

    label: str
    issuer: str = ""
    subject: str = ""
    audiences: tuple[str, ...] = ()


def expectations_from(path: str) -> list[Expectation]:
    """Read a saved cloud-side trust: an IAM trust policy, Entra federated credentials (one, a list or
    Graph's ``{"value": [...]}``), a Vault role (or this CLI's Vault JSON), or a GCP provider description."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--trust {path}: cannot read it ({exc.strerror or exc}).") from exc
    except ValueError:
        raise ConfigError(f"--trust {path}: not JSON; save the trust as JSON (the --format json output).") from None
    items = data.get("value", data) if isinstance(data, dict) else data
    found: list[Expectation] = []
    for item in items if isinstance(items, list) else [items]:
        if isinstance(item, dict):
            found += _expectations(item)
    if not found:
        raise ConfigError(
            f"--trust {path}: found no trust in it; give an IAM trust policy, Entra federated credentials, a Vault "
            "role or a GCP provider (gcloud ... providers describe --format json)."
        )
    return found


def _expectations(item: dict[str, Any]) -> list[Expectation]:
    if "Statement" in item:
        out = []
        for statement in item["Statement"] if isinstance(item["Statement"], list) else [item["Statement"]]:
            federated = str((statement.get("Principal") or {}).get("Federated", ""))
            issuer_id = federated.split(":oidc-provider/", 1)[-1] if ":oidc-provider/" in federated else ""
            conditions: dict[str, Any] = {}
            for operator, keys in (statement.get("Condition") or {}).items():
                if operator in ("StringEquals", "StringLike", "ForAnyValue:StringEquals"):
                    conditions.update(keys)
            sub = next((v for k, v in conditions.items() if k.endswith(":sub")), "")
            aud = next((v for k, v in conditions.items() if k.endswith(":aud")), "")
            out.append(
                Expectation(
                    f"IAM trust statement {statement.get('Sid') or ''}".strip(),
                    issuer=f"https://{issuer_id}" if issuer_id else "",
                    subject=sub if isinstance(sub, str) else (sub[0] if sub else ""),
                    audiences=tuple([aud] if isinstance(aud, str) else aud),
                )
            )
        return out
    if "issuer" in item and "subject" in item:
        return [
            Expectation(
                f"Entra federated credential {item.get('name', '')}".strip(),
                str(item["issuer"]),
                str(item["subject"]),
                tuple(item.get("audiences") or ()),
            )
        ]
    if "bound_subject" in item or "bound_audiences" in item:
        return [
            Expectation(
                "Vault role",
                str(item.get("bound_issuer", "")),
                str(item.get("bound_subject", "")),
                tuple(item.get("bound_audiences") or ()),
            )
        ]
    if any(k.startswith("auth/") for k in item):
        config: dict[str, Any] = next((v for k, v in item.items() if k.endswith("/config")), {})
        roles = [v for k, v in item.items() if "/role/" in k]
        return [replace(e, issuer=str(config.get("bound_issuer", ""))) for r in roles for e in _expectations(r)]
    if "oidc" in item:
        match = re.search(r"assertion\.sub\s*==\s*(\"(?:[^\"\\]|\\.)*\")", str(item.get("attributeCondition", "")))
        return [
            Expectation(
                f"GCP provider {item.get('name', '')}".strip(),
                str(item["oidc"].get("issuerUri", "")),
                json.loads(match[1]) if match else "",
                tuple(item["oidc"].get("allowedAudiences") or ()),
            )
        ]
    return []


def mismatches(facts: Facts, expectation: Expectation) -> list[str]:
    """Why a token with these facts would not match the trust (empty: it would)."""
    problems = []
    if expectation.issuer and expectation.issuer.rstrip("/") != facts.issuer.rstrip("/"):
        problems.append(difference("issuer", facts.issuer, expectation.issuer))
    if expectation.subject and expectation.subject != facts.subject:
        problems.append(difference("subject", facts.subject, expectation.subject))
    if expectation.audiences and facts.audience not in expectation.audiences:
        problems.append(f"audience {facts.audience!r} is not among {list(expectation.audiences)!r}")
    return problems
