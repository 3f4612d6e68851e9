"""Google Cloud: STS token exchange (RFC 8693), then optional service-account impersonation.

1. ``POST <sts>/v1/token`` (form): the job's OIDC token as a JWT subject token, audience
   ``//iam.<universe>/<workload identity provider>``, scope cloud-platform; the answer is a federated
   access token (https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token).
2. With a service account: ``POST <iamcredentials>/v1/projects/-/serviceAccounts/<email>:generateAccessToken``
   (and ``:generateIdToken`` when an ID token audience is given) with the federated token as bearer
   (https://cloud.google.com/iam/docs/reference/credentials/rest). Without one, the federated token is the
   output (direct resource access).

The first half of the module is the wire client (no pipeline notions); ``configure``/``exchange`` map
inputs to it and its results to pipeline variables and an ``external_account`` credentials file.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from .. import destination
from ..agent import AgentEnv, Endpoint
from ..catalogue import catalogue_fix
from ..destination import UnsafeDestination
from ..errors import ConfigError, ExchangeError
from ..helper_setup import RefreshSetup, read_setup
from ..http import Http, Response
from ..oidc import Claims, TokenSource
from ..refusal import render_trust
from ..text import iso_utc
from . import Context, File, Outcome, Variable

TITLE = "Google Cloud"
CONNECTION_INPUT = "gcpConnection"
STS_SERVICE = "Google STS"
IAM_SERVICE = "Google IAM Credentials"
DEFAULT_UNIVERSE = "googleapis.com"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105 - a type URN, not a secret
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a type URN
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
#: Google caps a mapped google.subject at 127 bytes (IAM attributeMapping docs)
MAX_SUBJECT_BYTES = 127

PROVIDER = re.compile(
    r"^projects/(?P<number>\d+)/locations/global/workloadIdentityPools/(?P<pool>[a-z0-9-]{4,32})"
    r"/providers/(?P<provider>[a-z0-9-]{4,32})$"
)
SERVICE_ACCOUNT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}@[a-z0-9][a-z0-9.-]*\.[a-z]{2,}$")
SA_PROJECT = re.compile(r"^[^@]+@([a-z][a-z0-9-]{4,28}[a-z0-9])\.iam\.gserviceaccount\.com$")
PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$|^[a-z0-9.-]+:[a-z][a-z0-9-]{4,28}[a-z0-9]$")
UNIVERSE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
OIDC_TOKEN = "the OIDC token"  # noqa: S105 - descriptions for the destination guard, not secrets
FEDERATED_TOKEN = "the federated access token"  # noqa: S105


# -- the wire client ---------------------------------------------------------------------------
@dataclass(frozen=True)
class FederatedToken:
    """What STS returned: a federated access token for the pool's principal."""

    access_token: str
    expires_in: int


@dataclass(frozen=True)
class AccessToken:
    """An access token (impersonated or federated) and its expiry, ISO 8601 UTC."""

    token: str
    expires: str


@dataclass(frozen=True)
class GoogleError:
    """A Google error answer, both shapes: OAuth (``error``) and API (``error.status``)."""

    status: int
    code: str
    message: str
    reason: str = ""
    permission: str = ""


def parse_error(resp: Response) -> GoogleError:
    body = resp.json()
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return GoogleError(resp.status, body["error"], str(body.get("error_description") or ""))
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        reason = permission = ""
        for detail in err.get("details") or []:
            if isinstance(detail, dict) and detail.get("reason"):
                reason = str(detail["reason"])
                metadata = detail.get("metadata")
                if isinstance(metadata, dict):
                    permission = str(metadata.get("permission") or "")
        return GoogleError(resp.status, str(err.get("status") or ""), str(err.get("message") or ""), reason, permission)
    return GoogleError(resp.status, "", "")


def _required(body: Any, name: str, service: str, hint: str) -> str:
    """The string field ``name`` of a 200 answer; else an error naming the fields there (never their values)."""
    value = body.get(name) if isinstance(body, dict) else None
    if isinstance(value, str) and value:
        return value
    raise ExchangeError(
        f"{service} answered HTTP 200 without {name} (fields: "
        + (", ".join(map(str, body)) if isinstance(body, dict) else "none, not a JSON object")
        + f"): {hint}.",
        service=service,
        status=200,
    )


def sts_exchange(
    http: Http, token_url: str, *, audience: str, subject_token: str, scope: str = CLOUD_PLATFORM
) -> FederatedToken | GoogleError:
    """RFC 8693 token exchange; the error, parsed, when STS refuses."""
    resp = http.request(
        "POST",
        token_url,
        service=STS_SERVICE,
        allowed=destination.parse(token_url, what=OIDC_TOKEN),
        credential=OIDC_TOKEN,
        data={
            "grant_type": GRANT_TYPE,
            "audience": audience,
            "scope": scope,
            "requested_token_type": ACCESS_TOKEN_TYPE,
            "subject_token": subject_token,
            "subject_token_type": JWT_TOKEN_TYPE,
        },
        headers={"Accept": "application/json"},
    )
    if resp.status != 200:
        return parse_error(resp)
    body = resp.json()
    token = _required(body, "access_token", STS_SERVICE, f"the connection's URL ({token_url}) must be Google's STS")
    try:
        expires_in = int(body.get("expires_in") or 3600)
    except (TypeError, ValueError):
        expires_in = 3600
    return FederatedToken(token, expires_in)


def _iam_call(http: Http, url: str, bearer: str, payload: dict[str, Any]) -> Response:
    return http.request(
        "POST",
        url,
        service=IAM_SERVICE,
        allowed=destination.parse(url, what=FEDERATED_TOKEN),
        credential=FEDERATED_TOKEN,
        json=payload,
        headers={"Authorization": f"Bearer {bearer}", "Accept": "application/json"},
    )


def generate_access_token(
    http: Http,
    iam_url: str,
    *,
    federated_token: str,
    service_account: str,
    scopes: tuple[str, ...],
    lifetime: int,
    delegates: tuple[str, ...] = (),
) -> AccessToken | GoogleError:
    url = f"{iam_url}/v1/projects/-/serviceAccounts/{quote(service_account, safe='@')}:generateAccessToken"
    payload: dict[str, Any] = {"scope": list(scopes), "lifetime": f"{lifetime}s"}
    if delegates:
        payload["delegates"] = [f"projects/-/serviceAccounts/{d}" for d in delegates]
    resp = _iam_call(http, url, federated_token, payload)
    if resp.status != 200:
        return parse_error(resp)
    body = resp.json()
    token = _required(body, "accessToken", IAM_SERVICE, f"'gcpIamCredentialsUrl' ({iam_url}) must be IAM Credentials")
    return AccessToken(token, str(body.get("expireTime") or ""))


def generate_id_token(
    http: Http,
    iam_url: str,
    *,
    federated_token: str,
    service_account: str,
    audience: str,
    include_email: bool,
    delegates: tuple[str, ...] = (),
) -> str | GoogleError:
    url = f"{iam_url}/v1/projects/-/serviceAccounts/{quote(service_account, safe='@')}:generateIdToken"
    payload: dict[str, Any] = {"audience": audience, "includeEmail": include_email}
    if delegates:
        payload["delegates"] = [f"projects/-/serviceAccounts/{d}" for d in delegates]
    resp = _iam_call(http, url, federated_token, payload)
    if resp.status != 200:
        return parse_error(resp)
    return _required(resp.json(), "token", IAM_SERVICE, f"'gcpIamCredentialsUrl' ({iam_url}) must be IAM Credentials")


# -- configuration -----------------------------------------------------------------------------
@dataclass(frozen=True)
class GcpConfig:
    sts_url: str
    iam_url: str
    provider: str
    universe: str
    service_account: str
    scopes: tuple[str, ...]
    lifetime: int
    delegates: tuple[str, ...]
    id_token_audience: str
    id_token_include_email: bool
    project: str
    temp_dir: str
    #: how later steps refresh: an executable credential source running the helper (None: a file source)
    refresh: RefreshSetup | None = field(default=None, compare=False)

    @property
    def audience(self) -> str:
        return f"//iam.{self.universe}/{self.provider}"

    @property
    def token_url(self) -> str:
        return f"{self.sts_url}/v1/token"

    @property
    def pool(self) -> tuple[str, str, str]:
        """(project number, pool id, provider id)."""
        m = PROVIDER.match(self.provider)
        if m is None:  # configure() checked it
            raise ConfigError(f"Not a workload identity provider: {self.provider}")
        return m["number"], m["pool"], m["provider"]

    def principal(self, subject: str) -> str:
        number, pool, _ = self.pool
        return f"principal://iam.googleapis.com/projects/{number}/locations/global/workloadIdentityPools/{pool}/subject/{subject}"


def _require_https(url: str, what: str, credential: str) -> str:
    """``url`` without a trailing slash, once the one destination guard admits it for ``credential``."""
    try:
        destination.parse(url, what=credential)
    except UnsafeDestination as exc:
        raise ConfigError(f"{what} must be a plain https URL, got '{destination.shown(url)}': {exc.reason}.") from exc
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")


def _scope(raw: str) -> str:
    return raw if "://" in raw else f"https://www.googleapis.com/auth/{raw}"


def configure(agent: AgentEnv, endpoint: Endpoint) -> GcpConfig:
    """Read the connection and the ``gcp*`` inputs; refuse anything Google would refuse. Sends nothing."""
    provider = endpoint.param("workloadIdentityProvider")
    if not provider:
        raise ConfigError(
            "The Google Cloud connection has no 'workloadIdentityProvider'. Set it to the provider's full name: "
            "projects/<project number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>."
        )
    provider = re.sub(r"^(https:)?//iam\.[a-z0-9.-]+/", "", provider.strip()).strip("/")
    if not PROVIDER.match(provider):
        hint = ""
        if re.match(r"^projects/[a-z][a-z0-9-]+/", provider):
            hint = " It names the project by ID; Google wants the project NUMBER here (gcloud projects describe <id> --format='value(projectNumber)')."
        raise ConfigError(
            "The connection's 'workloadIdentityProvider' must look like projects/123456789012/locations/global/"
            f"workloadIdentityPools/<pool>/providers/<provider> (IDs of 4-32 lowercase letters, digits and -), got "
            f"'{provider}'.{hint}"
        )
    universe = (agent.input("gcpUniverse") or endpoint.param("universe") or DEFAULT_UNIVERSE).lower().strip(".")
    if not UNIVERSE.match(universe):
        raise ConfigError(f"Input 'gcpUniverse' must be a domain like googleapis.com, got '{universe}'.")
    url = endpoint.url.strip() or f"https://sts.{universe}"
    if universe != DEFAULT_UNIVERSE and url.rstrip("/") == f"https://sts.{DEFAULT_UNIVERSE}":
        url = f"https://sts.{universe}"
    sts_url = _require_https(url, "The Google Cloud connection's URL (the STS endpoint)", OIDC_TOKEN)
    sts_url = re.sub(r"/v1(/token)?$", "", sts_url)
    iam_url = _require_https(
        agent.input("gcpIamCredentialsUrl") or f"https://iamcredentials.{universe}",
        "Input 'gcpIamCredentialsUrl'",
        FEDERATED_TOKEN,
    )
    iam_url = re.sub(r"/v1$", "", iam_url)
    account = (agent.input("gcpServiceAccount") or endpoint.param("serviceAccount")).strip().lower()
    if account and not SERVICE_ACCOUNT.match(account):
        where = "Input 'gcpServiceAccount'" if agent.input("gcpServiceAccount") else "The connection's 'serviceAccount'"
        raise ConfigError(
            f"{where} must be a service account email like deployer@my-project.iam.gserviceaccount.com, got '{account}'."
        )
    scopes = tuple(_scope(s) for s in agent.list_input("gcpScopes")) or (CLOUD_PLATFORM,)
    lifetime = agent.int_input("gcpTokenLifetime", default=3600, low=600, high=43200)
    delegates = tuple(d.lower() for d in agent.list_input("gcpDelegates"))
    for delegate in delegates:
        if not SERVICE_ACCOUNT.match(delegate):
            raise ConfigError(f"Input 'gcpDelegates' must list service account emails, got '{delegate}'.")
    id_audience = agent.input("gcpIdTokenAudience")
    if not account:
        for name, given in (
            ("gcpIdTokenAudience", id_audience),
            ("gcpDelegates", delegates),
            ("gcpScopes", agent.input("gcpScopes")),
            ("gcpTokenLifetime", agent.input("gcpTokenLifetime")),
        ):
            if given:
                raise ConfigError(
                    f"Input '{name}' needs a service account to impersonate: set 'serviceAccount' on the connection "
                    "or the input 'gcpServiceAccount'. Without one the federated token itself is the output."
                )
    project = agent.input("gcpProjectId")
    if project and not PROJECT_ID.match(project):
        raise ConfigError(f"Input 'gcpProjectId' must be a project ID like my-project-123, got '{project}'.")
    if not project and account:
        m = SA_PROJECT.match(account)
        project = m[1] if m else ""
    temp = agent.variable("Agent.TempDirectory")
    if not temp:
        raise ConfigError(
            "Agent.TempDirectory is not set, so there is nowhere private for the credentials file. The agent sets it "
            "in every job; run the task in an Azure Pipelines job."
        )
    return GcpConfig(
        sts_url=sts_url,
        iam_url=iam_url,
        provider=provider,
        universe=universe,
        service_account=account,
        scopes=scopes,
        lifetime=lifetime,
        delegates=delegates,
        id_token_audience=id_audience,
        id_token_include_email=agent.bool_input("gcpIdTokenIncludeEmail"),
        project=project,
        temp_dir=temp,
        refresh=read_setup(agent),
    )


# -- explanations ------------------------------------------------------------------------------
def _subject_fix(claims: Claims | None) -> str:
    return (
        "Map a shorter subject on the provider, e.g. gcloud iam workload-identity-pools providers update-oidc <provider> "
        "--location=global --workload-identity-pool=<pool> --attribute-mapping=\"google.subject=assertion.sub.split('/sc/')[1]\" "
        "(the organisation and connection IDs), and bind service accounts to that subject."
    )


def too_long(claims: Claims | None) -> bool:
    return claims is not None and len(claims.sub.encode("utf-8")) > MAX_SUBJECT_BYTES


def explain_sts(err: GoogleError, config: GcpConfig, claims: Claims | None) -> ExchangeError:
    """Pool admission failed: say which provider setting rejects this token and how to fix it."""
    _, pool, prov = config.pool
    update = (
        f"gcloud iam workload-identity-pools providers update-oidc {prov} --project={config.pool[0]} "
        f"--location=global --workload-identity-pool={pool}"
    )
    head = f"{STS_SERVICE} refused the token exchange for {config.audience} (pool admission): " + (
        f"{err.code}: {err.message}" if err.code else f"HTTP {err.status}"
    )
    text = err.message.lower()
    iss = claims.iss if claims else "<the token's issuer>"
    sub = claims.sub if claims else "<the token's subject>"
    aud = claims.aud if claims else "api://AzureADTokenExchange"
    if "127" in text or ("subject" in text and "exceed" in text):
        fix = (
            f"The token's subject is {len(sub.encode())} bytes; Google maps at most {MAX_SUBJECT_BYTES} into "
            f"google.subject. {_subject_fix(claims)}"
        )
    elif err.code == "invalid_target":
        fix = (
            f"Google does not know an enabled provider {config.provider}. Check the pool and provider IDs and that "
            "the project is named by its NUMBER (gcloud iam workload-identity-pools providers list "
            f"--location=global --workload-identity-pool={pool} --project={config.pool[0]}); a deleted or disabled "
            "pool or provider answers the same way."
        )
    elif "attribute condition" in text:
        fix = (
            f"The provider's attribute condition does not admit this token (sub = {sub}). Widen it, e.g. {update} "
            f"--attribute-condition=\"assertion.sub == '{sub}'\"."
        )
    elif "issuer" in text:
        fix = f"The provider trusts another issuer. This token's issuer is {iss}: {update} --issuer-uri={iss}"
    elif "audience" in text:
        fix = (
            f"The provider's allowed audiences do not include this token's audience ({aud}): {update} "
            f"--allowed-audiences={aud}"
        )
    elif err.code == "unauthorized_client":
        fix = (
            "The pool or provider does not accept this client: check that both are enabled (gcloud iam "
            f"workload-identity-pools providers describe {prov} --location=global --workload-identity-pool={pool})."
        )
    elif "signature" in text:
        fix = (
            f"The provider could not verify the token's signature with the keys it has for {iss}. If the provider "
            "was given keys (--jwk-json-path), upload the issuer's current keys; otherwise check --issuer-uri."
        )
    elif err.code == "invalid_grant" and too_long(claims):
        fix = (
            f"The token's subject is {len(sub.encode())} bytes; Google maps at most {MAX_SUBJECT_BYTES} into "
            f"google.subject. {_subject_fix(claims)}"
        )
    elif err.code == "invalid_grant":
        fix = (
            f"The provider did not accept the token. It must trust issuer {iss} with allowed audience {aud}, and its "
            "attribute condition (if any) must admit this subject."
        )
    elif not err.code:
        fix = (
            f"The answer was not a Google STS error (HTTP {err.status}): check the connection's URL ({config.sts_url})."
        )
    else:
        fix = catalogue_fix(STS_SERVICE, err.code)
    if err.code == "invalid_grant" and claims is not None:
        fix += _pool_provider_trust(config, claims)
    return ExchangeError(
        head.rstrip(".") + (".\n" + fix if fix else "."), service=STS_SERVICE, status=err.status, code=err.code
    )


def _pool_provider_trust(config: GcpConfig, claims: Claims) -> str:
    """The ``oidc-credentials trust gcp`` rendering of a provider that admits this token ("" when it cannot render)."""
    number, pool, provider = config.pool
    rendered = render_trust(
        "gcp",
        claims,
        project_number=number,
        service_account=config.service_account,
        pool=pool,
        provider=provider,
        create_pool=False,
    )
    return "\nA pool provider and binding that admit this token:\n" + rendered if rendered else ""


def explain_iam(err: GoogleError, config: GcpConfig, claims: Claims | None, action: str) -> ExchangeError:
    """Impersonation failed: name the binding the service account needs."""
    head = f"{IAM_SERVICE} {action} for {config.service_account} failed (impersonation): " + (
        f"{err.status} {err.code}: {err.message}" if err.code else f"HTTP {err.status}"
    )
    fix = ""
    text = err.message.lower()
    if err.status == 403 and (err.reason == "SERVICE_DISABLED" or "has not been used" in text or "disabled" in text):
        fix = (
            "The IAM Service Account Credentials API is off in the service account's project: gcloud services enable "
            "iamcredentials.googleapis.com --project=<the service account's project>."
        )
    elif err.status == 403:
        subject = claims.sub if claims else "<subject>"
        if too_long(claims):
            subject = subject.split("/sc/", 1)[-1]
        fix = (
            f"The pool's principal for this token may not impersonate the service account. Grant it "
            f"roles/iam.workloadIdentityUser:\n  gcloud iam service-accounts add-iam-policy-binding "
            f"{config.service_account} --role roles/iam.workloadIdentityUser --member {config.principal(subject)}\n"
            "(the subject is google.subject as the provider maps it; IAM changes can take a few minutes to apply)."
        )
    elif err.status == 404:
        fix = f"The service account {config.service_account} does not exist (or was deleted): check its email."
    elif err.status == 400 and "lifetime" in text:
        fix = (
            f"This asked for {config.lifetime} s. Google allows at most 3600 s unless the organisation policy "
            "constraints/iam.allowServiceAccountCredentialLifetimeExtension lists the service account: lower "
            "'gcpTokenLifetime' or extend the policy."
        )
    elif err.status == 400:
        fix = "Check 'gcpScopes', 'gcpDelegates' and 'gcpIdTokenAudience'."
    elif err.status == 401:
        fix = "IAM Credentials did not accept the federated token from STS: check 'gcpIamCredentialsUrl' and the universe."
    else:
        fix = catalogue_fix(IAM_SERVICE, err.code)
    return ExchangeError(
        head.rstrip(".") + (".\n" + fix if fix else "."), service=IAM_SERVICE, status=err.status, code=err.code
    )


# -- the exchange ------------------------------------------------------------------------------
def credentials_file(config: GcpConfig, token_path: str, *, source: dict[str, Any] | None = None) -> dict[str, Any]:
    """An ``external_account`` configuration that google-auth and gcloud read (AIP-4117): the subject token
    from the file ``token_path``, or from ``source`` (an executable source that runs the helper)."""
    doc: dict[str, Any] = {
        "type": "external_account",
        "audience": config.audience,
        "subject_token_type": JWT_TOKEN_TYPE,
        "token_url": config.token_url,
        "token_info_url": f"{config.sts_url}/v1/introspect",
        "credential_source": source or {"file": token_path},
    }
    if config.service_account:
        doc["service_account_impersonation_url"] = (
            f"{config.iam_url}/v1/projects/-/serviceAccounts/{config.service_account}:generateAccessToken"
        )
        doc["service_account_impersonation"] = {"token_lifetime_seconds": config.lifetime}
    if config.universe != DEFAULT_UNIVERSE:
        doc["universe_domain"] = config.universe
    return doc


@dataclass(frozen=True)
class GcpCredentials:
    """What the exchange obtained, pipeline-free: the access token, an ID token, and who they act as."""

    access: AccessToken
    identity: str
    subject_token: str
    id_token: str = ""
    #: True: no service account, the federated token is the access token
    direct: bool = False


def obtain(config: GcpConfig, tokens: TokenSource, ctx: Context) -> GcpCredentials:
    """STS exchange (pool admission), then impersonation when a service account is set; errors explained."""
    subject_token = tokens()
    claims = tokens.last_claims
    if claims is not None and too_long(claims):
        ctx.warn(
            f"The token's subject ({claims.issuer_kind}) is {len(claims.sub.encode())} bytes, over Google's "
            f"{MAX_SUBJECT_BYTES}-byte limit for google.subject: the provider must map a shorter one. "
            + _subject_fix(claims)
        )
    now = ctx.clock()
    result = sts_exchange(ctx.http, config.token_url, audience=config.audience, subject_token=subject_token)
    if isinstance(result, GoogleError):
        raise explain_sts(result, config, claims)
    if not config.service_account:
        federated = AccessToken(result.access_token, iso_utc(now + result.expires_in))
        principal = config.principal(claims.sub if claims else "<subject>")
        return GcpCredentials(federated, principal, subject_token, direct=True)
    ctx.log(f"Impersonating {config.service_account} for {config.lifetime} s")
    access = generate_access_token(
        ctx.http,
        config.iam_url,
        federated_token=result.access_token,
        service_account=config.service_account,
        scopes=config.scopes,
        lifetime=config.lifetime,
        delegates=config.delegates,
    )
    if isinstance(access, GoogleError):
        raise explain_iam(access, config, claims, "generateAccessToken")
    id_token = ""
    if config.id_token_audience:
        got = generate_id_token(
            ctx.http,
            config.iam_url,
            federated_token=result.access_token,
            service_account=config.service_account,
            audience=config.id_token_audience,
            include_email=config.id_token_include_email,
            delegates=config.delegates,
        )
        if isinstance(got, GoogleError):
            raise explain_iam(got, config, claims, "generateIdToken")
        id_token = got
    return GcpCredentials(access, config.service_account, subject_token, id_token)


# -- the pipeline ------------------------------------------------------------------------------
def to_outcome(
    config: GcpConfig, creds: GcpCredentials, suffix: str, *, refreshing: tuple[str, list[File]] | None = None
) -> Outcome:
    """The variables client libraries and gcloud read, and the credentials file (with its token file), or
    with ``refreshing`` the credentials file that runs the helper, and the helper's files."""
    if refreshing is not None:
        creds_path, files = refreshing
    else:
        directory = os.path.join(config.temp_dir, "oidc-credentials")
        token_path = os.path.join(directory, f"gcp-oidc-token-{suffix}.jwt")
        creds_path = os.path.join(directory, f"gcp-credentials-{suffix}.json")
        files = [
            File(token_path, creds.subject_token),  # no trailing newline: google-auth sends the file verbatim
            File(creds_path, json.dumps(credentials_file(config, token_path), indent=2)),
        ]
    variables = [
        Variable("GOOGLE_OAUTH_ACCESS_TOKEN", creds.access.token, secret=True),
        Variable("CLOUDSDK_AUTH_ACCESS_TOKEN", creds.access.token, secret=True),
    ]
    if creds.access.expires:
        variables.append(Variable("GOOGLE_OAUTH_ACCESS_TOKEN_EXPIRY", creds.access.expires))
    if creds.id_token:
        variables.append(Variable("GOOGLE_ID_TOKEN", creds.id_token, secret=True))
    if config.project:
        variables += [
            Variable("GOOGLE_CLOUD_PROJECT", config.project),
            Variable("CLOUDSDK_CORE_PROJECT", config.project),
        ]
    if refreshing is not None:  # google-auth and gcloud run an executable source only when allowed
        variables.append(Variable("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1"))
    variables += [
        Variable("GOOGLE_APPLICATION_CREDENTIALS", creds_path),
        Variable("CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE", creds_path),
    ]
    notes = []
    if creds.direct:
        notes.append(
            "No service account: the federated token itself is the output (direct resource access). Grant roles to "
            f"{creds.identity} on the resources it needs."
        )
    if refreshing is not None:
        notes.append(
            f"Credentials file for client libraries and gcloud: {creds_path}. It refreshes: they run the task's helper "
            "for a fresh OIDC token whenever they need one (map SYSTEM_ACCESSTOKEN: $(System.AccessToken) into the "
            "step's env:; the access token variables do not renew, so do not map CLOUDSDK_AUTH_ACCESS_TOKEN there)."
        )
    else:
        notes.append(
            f"Credentials file for client libraries and gcloud: {creds_path} (its subject token is the job's OIDC "
            "token, valid for minutes; the access token variables last until the expiry above)."
        )
    return Outcome(
        variables=variables,
        identity=creds.identity,
        expires=creds.access.expires,
        notes=notes,
        secrets=[creds.subject_token],
        files=files,
    )


def refreshing_files(
    config: GcpConfig, setup: RefreshSetup, creds: GcpCredentials, claims: Claims | None, ctx: Context
) -> tuple[str, list[File]]:
    """The credentials file with an executable source that runs the helper, the helper's config, and its cache
    seeded with the token the task just used (so the first call in a later step is warm)."""
    from ..helper_setup import executable_source, helper_config
    from ..modes.helper import gcp_entry
    from ..refresh import CACHE, HELPER_CONFIG, TOKEN_FILE, CacheError

    source = executable_source(setup)  # ConfigError: a path google-auth cannot pass on
    creds_path = setup.path("gcp-credentials.json")
    connection = ctx.agent.connection_id(CONNECTION_INPUT)
    files = [
        File(setup.path(HELPER_CONFIG), helper_config("gcp", ctx.agent, connection, {})),
        File(creds_path, json.dumps(credentials_file(config, "", source=source), indent=2)),
    ]
    if claims is not None and claims.exp:
        try:
            entry = gcp_entry(creds.subject_token, float(claims.exp), float(claims.iat or 0), ctx.clock())
            files.append(File(setup.path(CACHE), entry.to_json()))
        except CacheError as exc:
            ctx.warn(f"Later steps' first call will fetch a fresh token: {exc.message}.")
    if setup.access_token:
        files.append(File(setup.path(TOKEN_FILE), setup.access_token))
    return creds_path, files


def exchange(config: GcpConfig, tokens: TokenSource, ctx: Context) -> Outcome:
    """STS exchange, then impersonation when a service account is set; the token and a credentials file out
    (refresh on: one whose executable source runs the helper, so google-auth and gcloud refresh by themselves)."""
    from ..helper_setup import lifetime_warning
    from ..text import parse_iso_utc

    ctx.log(f"Exchanging the OIDC token at {config.token_url} for {config.audience}")
    creds = obtain(config, tokens, ctx)
    setup = config.refresh
    refreshing = None
    if setup is not None and setup.enabled:
        try:
            refreshing = refreshing_files(config, setup, creds, tokens.last_claims, ctx)
        except ConfigError as exc:
            ctx.warn(f"Google credentials will not refresh in later steps: {exc.message}")
    elif setup is not None and setup.why_off:
        ctx.log(f"Credentials will not refresh in later steps: {setup.why_off}.")
    outcome = to_outcome(config, creds, secrets.token_hex(6), refreshing=refreshing)
    if setup is not None and setup.access_token and refreshing is not None:
        outcome.secrets.append(setup.access_token)
    if setup is not None and outcome.expires:
        left = parse_iso_utc(outcome.expires) - ctx.clock()
        warning = lifetime_warning(setup, left, "The Google access token variables", refreshing=refreshing is not None)
        if warning:
            ctx.warn(warning)
    return outcome
