"""The error catalogue: every refusal code a service can return, in one table, to "retry?" and the fix.

Each :class:`Entry` names the service, its code (as the service spells it, or a short name of ours for
services that answer with text only: Vault, parts of Azure DevOps), whether the task retries it, what it
means and what to change. Providers look codes up here (:func:`lookup`, :func:`classify`) so the same
refusal always reads the same; the README's error table is generated from this table
(``oidc-credentials errors --write-readme README.md``, checked by a test).

Sources: Microsoft Entra's AADSTS error list and the workload identity federation troubleshooting page,
the STS ``AssumeRoleWithWebIdentity`` API reference, Google's STS ``token`` and IAM Credentials
``generateAccessToken`` references, Vault's JWT auth method source messages, the Key Vault REST error
reference and Azure DevOps' OIDC token API answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .errors import ExchangeError

ADO = "Azure DevOps"
ENTRA = "Microsoft Entra ID"
AWS = "AWS STS"
GCP_STS = "Google Cloud STS"
GCP_IAM = "Google Cloud IAM Credentials"
VAULT = "HashiCorp Vault"
KEYVAULT = "Azure Key Vault"

SERVICES = (ADO, ENTRA, AWS, GCP_STS, GCP_IAM, VAULT, KEYVAULT)

#: other spellings providers use for a service -> the catalogue's name
ALIASES = {
    "google sts": GCP_STS,
    "gcp sts": GCP_STS,
    "google cloud sts": GCP_STS,
    "google iam": GCP_IAM,
    "gcp iam": GCP_IAM,
    "google iam credentials": GCP_IAM,
    "iam credentials": GCP_IAM,
    "vault": VAULT,
    "key vault": KEYVAULT,
    "entra id": ENTRA,
    "entra": ENTRA,
}


@dataclass(frozen=True)
class Entry:
    """One refusal: who says it, its code, whether a retry helps, what it means and what to change."""

    service: str
    code: str
    retry: bool
    meaning: str
    fix: str
    #: case-insensitive regular expressions that recognise it in an answer without a code
    match: tuple[str, ...] = field(default=())
    #: the cloud-side trust does not accept this token: the refusal shows the trust that would
    trust: bool = False

    def matches(self, text: str) -> bool:
        return any(re.search(pattern, text, re.IGNORECASE) for pattern in self.match)


def _e(service: str, code: str, retry: bool, meaning: str, fix: str, *match: str, trust: bool = False) -> Entry:
    return Entry(service, code, retry, meaning, fix, tuple(match), trust)


_TRUST_ENTRA = (
    "Add (or correct) the app's federated credential with exactly the issuer, subject and audience the task "
    "prints; `oidc-credentials trust azure` renders it."
)

ENTRIES: tuple[Entry, ...] = (
    # -- Azure DevOps: the OIDC token request ------------------------------------------------------------------
    _e(
        ADO,
        "NoExplicitReference",
        False,
        "There is no explicit reference to the service connection from the current stage.",
        "Pick the connection in this task's connection input (a literal name or id, not a variable set at run time) "
        "and authorise the pipeline to use it.",
        r"no explicit reference to service connection",
    ),
    _e(
        ADO,
        "TF400813",
        False,
        "The job access token is not authorised for this resource.",
        "Classic pipelines: enable 'Allow scripts to access the OAuth token'. Check the job authorization scope "
        "(project or collection) can read this project.",
        r"\bTF400813\b",
    ),
    _e(
        ADO,
        "AccessTokenRejected",
        False,
        "The job access token was refused (401/403, or a redirect to sign-in).",
        "Classic pipelines: enable 'Allow scripts to access the OAuth token'; check the job authorization scope and "
        "that the job has not outlived its token.",
    ),
    _e(
        ADO,
        "NotFound",
        False,
        "No OIDC token for this connection: it does not exist here or the pipeline may not use it.",
        "Create the connection in this project, select it in the task input and grant this pipeline permission "
        "(Service connections > Security > Pipeline permissions).",
    ),
    _e(
        ADO,
        "ConnectionDisabled",
        False,
        "The service connection is disabled.",
        "Enable it: Project settings > Service connections > the connection > ⋮ > Enable.",
        r"service (connection|endpoint)[^.]*\bis disabled\b",
        r"\bdisabled service (connection|endpoint)\b",
    ),
    _e(
        ADO,
        "TF400733",
        True,
        "Azure DevOps throttled the request (too many requests from this identity or organisation).",
        "Retried after Retry-After. If it persists, spread out parallel jobs that request tokens at once.",
        r"\bTF400733\b",
    ),
    _e(
        ADO,
        "PipelineToken",
        False,
        "The answer was the pipeline's own token (subject p://…), not one for the connection.",
        "The connection id was not recognised: pick the connection in the task's connection input.",
    ),
    # -- Microsoft Entra ID --------------------------------------------------------------------------------------
    _e(
        ENTRA,
        "AADSTS50166",
        True,
        "Entra could not reach the token issuer's discovery document (request to the external OIDC endpoint failed).",
        "Transient on Azure DevOps' side: retried with a fresh token. If it lasts, check the Azure DevOps status page.",
    ),
    _e(
        ENTRA,
        "AADSTS90061",
        True,
        "Entra's request to the external OIDC endpoint (Azure DevOps) failed.",
        "Transient: retried with a fresh token. If it lasts, check the Azure DevOps status page.",
    ),
    _e(
        ENTRA,
        "AADSTS90033",
        True,
        "A transient error occurred in Entra ID.",
        "Retried. If it lasts, check the Azure status page.",
    ),
    _e(
        ENTRA,
        "AADSTS50196",
        True,
        "Entra detected a request loop and throttled this client.",
        "Retried with backoff; avoid running many token requests for the same app in a tight loop.",
    ),
    _e(
        ENTRA,
        "AADSTS700211",
        False,
        "No federated credential of the app has the token's issuer.",
        "The credential's issuer must be the token's exactly (vstoken vs Entra issuer, organisation id). "
        + _TRUST_ENTRA,
        trust=True,
    ),
    _e(
        ENTRA,
        "AADSTS700212",
        False,
        "A federated credential has this issuer but none lists the token's audience.",
        "Set the credential's audience to api://AzureADTokenExchange. " + _TRUST_ENTRA,
        trust=True,
    ),
    _e(
        ENTRA,
        "AADSTS700213",
        False,
        "Federated credentials with this issuer and audience exist, but none has the token's subject.",
        "The subject holds organisation, project and connection names: a rename changes it. " + _TRUST_ENTRA,
        trust=True,
    ),
    _e(
        ENTRA,
        "AADSTS7002138",
        False,
        "A federated credential's subject matches only when letter case is ignored.",
        "Entra compares case-sensitively: correct the credential's subject to the token's letter case.",
        trust=True,
    ),
    _e(
        ENTRA,
        "AADSTS70021",
        False,
        "No federated credential of the app matches the token.",
        _TRUST_ENTRA,
        trust=True,
    ),
    _e(
        ENTRA,
        "AADSTS700016",
        False,
        "The app (client) id does not exist in the tenant.",
        "Check the connection's service principal id and tenant id against Entra ID > App registrations.",
    ),
    _e(
        ENTRA,
        "AADSTS7000229",
        False,
        "The app has no service principal in the tenant.",
        "Create it: az ad sp create --id <app id> (or grant the app a role, which creates it).",
    ),
    _e(
        ENTRA,
        "AADSTS7000112",
        False,
        "The app is disabled.",
        "Enable the app's service principal (Enterprise applications > the app > Properties > Enabled for users to "
        "sign in).",
    ),
    _e(
        ENTRA,
        "AADSTS90002",
        False,
        "The tenant was not found.",
        "Fix the connection's tenant id, or its cloud (environment) when the tenant is in a sovereign cloud.",
    ),
    _e(
        ENTRA,
        "AADSTS700024",
        False,
        "The client assertion was outside its valid time range.",
        "The task requests a fresh token per exchange: check the agent's clock.",
    ),
    _e(
        ENTRA,
        "AADSTS700027",
        False,
        "The client assertion failed signature validation.",
        "Entra could not check the token's signature against the issuer's keys: the federated credential's issuer "
        "must be the token's issuer exactly. " + _TRUST_ENTRA,
        trust=True,
    ),
    _e(
        ENTRA,
        "AADSTS50027",
        False,
        "The token is not a valid JWT for Entra.",
        "Check the federated credential's issuer and audience. " + _TRUST_ENTRA,
        trust=True,
    ),
    _e(
        ENTRA,
        "AADSTS7000215",
        False,
        "Entra judged a client secret, but the task sends none.",
        "Use a workload identity federation connection whose app id holds the federated credential.",
    ),
    _e(
        ENTRA,
        "AADSTS70052",
        False,
        "The Entra issuer does not serve this app (a multitenant app).",
        "Multitenant apps keep the Azure DevOps issuer: convert the connection back, or use a single-tenant app or "
        "a managed identity.",
    ),
    _e(
        ENTRA,
        "AADSTS500011",
        False,
        "The resource in a requested scope does not exist in the tenant.",
        "Fix input 'azureScopes': each scope is <resource URI>/.default of a resource the tenant knows.",
    ),
    _e(
        ENTRA,
        "AADSTS70011",
        False,
        "A requested scope is not valid for client credentials.",
        "Input 'azureScopes' must list <resource>/.default scopes only.",
    ),
    _e(
        ENTRA,
        "AADSTS53003",
        False,
        "Conditional Access blocked the sign-in of the workload identity.",
        "Ask the tenant's admins to exempt the app or to allow the agent's location in the Conditional Access "
        "policy for workload identities.",
    ),
    # -- AWS STS -------------------------------------------------------------------------------------------------
    _e(
        AWS,
        "AccessDenied",
        False,
        "The role's trust policy does not allow this token, or the caller may not assume the role.",
        "The trust policy must name the OIDC provider and this token's sub and aud exactly (the task prints the "
        "statement); or a permissions boundary/SCP denies sts:AssumeRoleWithWebIdentity.",
        trust=True,
    ),
    _e(
        AWS,
        "InvalidIdentityToken",
        False,
        "STS did not accept the token itself (no IAM OIDC provider for its issuer, or wrong audience).",
        "Add an IAM OpenID Connect provider with the token's issuer URL and audience api://AzureADTokenExchange in "
        "the role's account.",
        trust=True,
    ),
    _e(
        AWS,
        "IDPRejectedClaim",
        False,
        "The identity provider rejected a claim of the token.",
        "Check the IAM OIDC provider's audience list holds api://AzureADTokenExchange.",
        trust=True,
    ),
    _e(
        AWS,
        "ExpiredTokenException",
        True,
        "The token had expired when STS checked it.",
        "Retried once with a fresh token; then check the agent's clock.",
    ),
    _e(
        AWS,
        "IDPCommunicationError",
        True,
        "STS could not reach the issuer to fetch its signing keys.",
        "Retried; usually transient: run the job again.",
    ),
    _e(
        AWS,
        "RegionDisabledException",
        False,
        "STS is not activated in this region for the account.",
        "Activate it in IAM > Account settings, or choose another region with 'awsRegion'.",
    ),
    _e(
        AWS,
        "ValidationError",
        False,
        "STS refused a parameter.",
        "Most often 'awsSessionDuration' above the role's maximum session duration: lower it or raise the role's.",
    ),
    _e(
        AWS,
        "PackedPolicyTooLarge",
        False,
        "The session policies are too large once packed.",
        "Shorten 'awsSessionPolicy' or pass fewer 'awsManagedSessionPolicies'.",
    ),
    _e(
        AWS,
        "MalformedPolicyDocument",
        False,
        "The session policy is not a valid IAM policy.",
        "Fix 'awsSessionPolicy'.",
    ),
    _e(AWS, "Throttling", True, "STS throttled the request.", "Retried with backoff; spread out parallel jobs."),
    _e(
        AWS,
        "ThrottlingException",
        True,
        "STS throttled the request.",
        "Retried with backoff; spread out parallel jobs.",
    ),
    _e(
        AWS,
        "RequestLimitExceeded",
        True,
        "STS throttled the request.",
        "Retried with backoff; spread out parallel jobs.",
    ),
    _e(AWS, "InternalFailure", True, "STS failed internally.", "Retried; run the job again if it lasts."),
    _e(AWS, "ServiceUnavailable", True, "STS is unavailable.", "Retried; run the job again if it lasts."),
    _e(
        AWS,
        "AccountNotAllowed",
        False,
        "STS returned credentials for an account outside 'awsAllowedAccountIds'.",
        "Fix the role ARN or the list; the credentials were not passed on.",
    ),
    # -- Google Cloud STS (token exchange) -----------------------------------------------------------------------
    _e(
        GCP_STS,
        "invalid_grant",
        False,
        "The workload identity pool provider refused the token (issuer, audience, or its attribute condition).",
        "The provider's issuer must be the token's, its allowed audiences must hold the audience the task sends, "
        "and its attribute condition must accept this token's claims; `oidc-credentials trust gcp` renders them.",
        trust=True,
    ),
    _e(
        GCP_STS,
        "invalid_target",
        False,
        "The workload identity pool or provider named in the connection does not exist or is disabled.",
        "Check the connection's workloadIdentityProvider: projects/<number>/locations/global/workloadIdentityPools/"
        "<pool>/providers/<provider>, with the project number, not its id.",
    ),
    _e(
        GCP_STS,
        "invalid_request",
        False,
        "STS found the exchange request malformed.",
        "Check the connection's workloadIdentityProvider and the requested scope.",
    ),
    _e(
        GCP_STS,
        "unauthorized_client",
        False,
        "The pool or provider is disabled.",
        "Enable them: gcloud iam workload-identity-pools providers undelete/update --disabled=false.",
    ),
    _e(GCP_STS, "RESOURCE_EXHAUSTED", True, "Google STS throttled the request.", "Retried with backoff."),
    _e(GCP_STS, "UNAVAILABLE", True, "Google STS is unavailable.", "Retried; run the job again if it lasts."),
    # -- Google Cloud IAM Credentials (service account impersonation) ---------------------------------------------
    _e(
        GCP_IAM,
        "PERMISSION_DENIED",
        False,
        "The federated identity may not impersonate the service account (iam.serviceAccounts.getAccessToken).",
        "Grant roles/iam.workloadIdentityUser on the service account to the pool principal that matches this "
        "token's subject; `oidc-credentials trust gcp` prints the command.",
        trust=True,
    ),
    _e(
        GCP_IAM,
        "NOT_FOUND",
        False,
        "The service account does not exist.",
        "Fix the connection's serviceAccount (name@project.iam.gserviceaccount.com).",
    ),
    _e(
        GCP_IAM,
        "INVALID_ARGUMENT",
        False,
        "IAM refused a parameter, most often a lifetime above 3600 s.",
        "Lifetimes over one hour need the org policy constraints/iam.allowServiceAccountCredentialLifetimeExtension.",
    ),
    _e(
        GCP_IAM,
        "FAILED_PRECONDITION",
        False,
        "The service account is disabled.",
        "Enable it: gcloud iam service-accounts enable <email>.",
    ),
    _e(
        GCP_IAM,
        "UNAUTHENTICATED",
        False,
        "IAM did not accept the federated access token from STS.",
        "Check the IAM Credentials API is enabled in the pool's project.",
    ),
    _e(GCP_IAM, "RESOURCE_EXHAUSTED", True, "IAM Credentials throttled the request.", "Retried with backoff."),
    _e(GCP_IAM, "UNAVAILABLE", True, "IAM Credentials is unavailable.", "Retried; run the job again if it lasts."),
    # -- HashiCorp Vault (JWT auth login; Vault answers with messages, not codes: these names are the task's) ----
    _e(
        VAULT,
        "RoleNotFound",
        False,
        "The role named in the connection does not exist on that auth mount.",
        "Create it (vault write auth/<mount>/role/<role> ...) or fix the connection's role and mountPath.",
        r"role \S* could not be found",
        r"role not found",
    ),
    _e(
        VAULT,
        "NoAudiencesBound",
        False,
        "The role binds no audience, and Vault 1.16.3+ refuses tokens that carry one.",
        "Bind the Azure DevOps audience: vault write auth/<mount>/role/<role> bound_audiences=api://AzureADTokenExchange.",
        r"no audiences bound",
        trust=True,
    ),
    _e(
        VAULT,
        "AudienceMismatch",
        False,
        "The role's bound_audiences do not list the token's audience.",
        "Add api://AzureADTokenExchange to the role's bound_audiences.",
        r"audience claim does not match|invalid audience",
        trust=True,
    ),
    _e(
        VAULT,
        "ClaimMismatch",
        False,
        "The token's subject or another claim does not match the role's bound_subject or bound_claims.",
        "Set the role's bound_subject to the token's sub exactly (case-sensitive); `oidc-credentials trust vault` "
        "renders the role.",
        r"sub claim does not match|invalid subject|bound subject",
        r"does not match any associated bound claim|bound claim",
        trust=True,
    ),
    _e(
        VAULT,
        "IssuerMismatch",
        False,
        "The auth method's bound_issuer or discovery URL is not the token's issuer.",
        "Configure the mount with oidc_discovery_url (and bound_issuer) set to the token's issuer.",
        r"invalid issuer|issuer .*does not match",
        trust=True,
    ),
    _e(
        VAULT,
        "UntrustedSigner",
        False,
        "Vault could not verify the token's signature with the mount's keys.",
        "Point the mount's oidc_discovery_url (or jwks_url) at the token's issuer.",
        r"signature|no known key",
    ),
    _e(
        VAULT,
        "TokenExpired",
        False,
        "Vault found the token expired or not yet valid.",
        "Check the clocks of the agent and the Vault server.",
        r"token is expired|expired|not valid yet|nbf",
    ),
    _e(
        VAULT,
        "NoJwtMount",
        False,
        "No JWT auth method at that path (or in that namespace): Vault answers 'no handler' or 'permission denied'.",
        "Fix the connection's mountPath (default jwt) and namespace, or enable the method: vault auth enable "
        "-path=<mount> jwt.",
        r"no handler for route|unsupported path",
        r"permission denied",
    ),
    _e(VAULT, "Sealed", True, "Vault is sealed or in standby.", "Retried; unseal Vault if it lasts.", r"sealed"),
    _e(
        VAULT,
        "RateLimited",
        True,
        "Vault's rate limit quota refused the request.",
        "Retried with backoff.",
        r"rate limit",
    ),
    # -- Azure Key Vault -----------------------------------------------------------------------------------------
    _e(
        KEYVAULT,
        "ForbiddenByRbac",
        False,
        "The vault uses Azure RBAC and the app holds no role that allows reading secrets.",
        'Grant "Key Vault Secrets User" on the vault: az role assignment create --role "Key Vault Secrets User" '
        "--assignee <app id> --scope <vault id>.",
    ),
    _e(
        KEYVAULT,
        "AccessDenied",
        False,
        "The vault uses access policies and the app lacks the secret permission.",
        "az keyvault set-policy --name <vault> --spn <app id> --secret-permissions get list.",
    ),
    _e(
        KEYVAULT,
        "ForbiddenByFirewall",
        False,
        "The vault's firewall does not admit the agent's address.",
        "az keyvault network-rule add --name <vault> --ip-address <agent address>, or an agent inside the vault's "
        "network.",
        r"Client address is not authorized",
    ),
    _e(
        KEYVAULT,
        "ForbiddenByPolicy",
        False,
        "An Azure Policy or the vault's configuration forbids the operation.",
        "Ask the vault's owners which policy denies it.",
    ),
    _e(
        KEYVAULT,
        "Unauthorized",
        False,
        "Key Vault did not accept the Entra token (another tenant or cloud).",
        "Use a connection of the vault's tenant and cloud.",
    ),
    _e(
        KEYVAULT,
        "SecretNotFound",
        False,
        "A requested secret does not exist.",
        "Fix 'secretsFilter'; a deleted secret can be recovered with az keyvault secret recover.",
    ),
    _e(KEYVAULT, "SecretDisabled", False, "A requested secret is disabled.", "Enable it, or leave it out."),
    _e(
        KEYVAULT,
        "VaultNotFound",
        False,
        "The vault's name does not resolve.",
        "Check input 'keyVault' and the connection's cloud; a private-endpoint vault needs an agent in its network.",
    ),
    _e(
        KEYVAULT,
        "Throttled",
        True,
        "Key Vault throttled the requests (429).",
        "Retried after Retry-After; lower 'keyVaultConcurrency' if it lasts.",
    ),
    _e(KEYVAULT, "ServiceUnavailable", True, "Key Vault is unavailable.", "Retried; run the job again if it lasts."),
)

_INDEX: dict[tuple[str, str], Entry] = {(e.service, e.code.lower()): e for e in ENTRIES}


def service_name(service: str) -> str:
    """The catalogue's name for a service, whatever spelling a provider used ("" when unknown)."""
    if service in SERVICES:
        return service
    lowered = service.strip().lower()
    for name in SERVICES:
        if name.lower() == lowered:
            return name
    return ALIASES.get(lowered, "")


def lookup(service: str, code: str) -> Entry | None:
    """The entry for a service's code (case-insensitive), or None."""
    return _INDEX.get((service_name(service), code.strip().lower())) if code else None


def classify(service: str, text: str) -> Entry | None:
    """The entry whose pattern recognises ``text`` (an answer without a code), or None."""
    name = service_name(service)
    return next((e for e in ENTRIES if e.service == name and e.match and e.matches(text)), None)


def find(service: str, code: str = "", text: str = "") -> Entry | None:
    """By code first, then by the patterns over ``text``; an AADSTS number in the text counts as a code."""
    entry = lookup(service, code)
    if entry is None and service_name(service) == ENTRA and not code:
        found = re.search(r"AADSTS\d+", text)
        entry = lookup(service, found.group(0)) if found else None
    return entry or (classify(service, text) if text else None)


def annotate(exc: ExchangeError) -> Entry | None:
    """Complete a refusal the raising code could not classify: the catalogue's code, meaning and fix.

    A provider that recognised the code (``exc.code`` set) has written its own, more specific explanation
    and is left as it is; one that did not gets the entry whose wording matches the answer, if any.
    """
    entry = find(exc.service, exc.code, exc.message)
    if entry is None or exc.code:
        return entry
    exc.code = entry.code
    verdict = "A retry can help; the task already retried it." if entry.retry else "A retry will not help."
    exc.message = f"{exc.message.rstrip()}\n{entry.meaning} {verdict} Fix: {entry.fix}"
    exc.args = (exc.message,)
    return entry


def catalogue_fix(service: str, code: str) -> str:
    """ "<meaning> Fix: <fix>" for a code a provider has no sentence of its own for ("" when unknown)."""
    entry = lookup(service, code)
    return f"{entry.meaning} Fix: {entry.fix}" if entry else ""


def retryable(service: str, code: str) -> bool:
    entry = lookup(service, code)
    return bool(entry and entry.retry)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown() -> str:
    """The README's error table: one section per service, generated from :data:`ENTRIES`."""
    parts: list[str] = []
    for service in SERVICES:
        parts.append(f"#### {service}\n")
        parts.append("| code | retried | meaning | fix |")
        parts.append("|---|---|---|---|")
        for e in (e for e in ENTRIES if e.service == service):
            parts.append(f"| `{e.code}` | {'yes' if e.retry else 'no'} | {_cell(e.meaning)} | {_cell(e.fix)} |")
        parts.append("")
    return "\n".join(parts).rstrip("\n") + "\n"


BEGIN = "<!-- catalogue:begin (generated by `oidc-credentials errors --write-readme README.md`) -->"
END = "<!-- catalogue:end -->"


def replace_section(readme: str) -> str:
    """``readme`` with the text between :data:`BEGIN` and :data:`END` replaced by :func:`markdown`."""
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return readme[:start] + "\n" + markdown() + readme[end:]
