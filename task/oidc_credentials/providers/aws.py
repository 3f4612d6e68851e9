"""AWS: STS ``AssumeRoleWithWebIdentity``.

The call is unsigned: an ``application/x-www-form-urlencoded`` POST of the query-protocol parameters to
the connection's STS endpoint (regional when a region is known), answered with an XML document. See
https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .. import catalogue, destination
from ..agent import AgentEnv, Endpoint
from ..catalogue import ENTRIES, lookup
from ..destination import UnsafeDestination
from ..errors import ConfigError, ExchangeError
from ..helper_setup import RefreshSetup, read_setup
from ..http import Http, Response, resolves
from ..oidc import Claims, TokenSource
from ..refusal import render_trust
from . import Context, File, Outcome, Variable

if TYPE_CHECKING:
    from ..refresh import Entry

TITLE = "AWS"
CONNECTION_INPUT = "awsConnection"
SERVICE = "AWS STS"
DEFAULT_STS = "https://sts.amazonaws.com"
OIDC_TOKEN = "the OIDC token"  # noqa: S105 (a description, not a secret)

ROLE_ARN = re.compile(r"^arn:(aws|aws-cn|aws-us-gov|aws-iso|aws-iso-[a-z]):iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")
POLICY_ARN = re.compile(
    r"^arn:(aws|aws-cn|aws-us-gov|aws-iso|aws-iso-[a-z]):iam::(\d{12}|aws):policy/[\w+=,.@/-]{1,512}$"
)
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
ACCOUNT_ID = re.compile(r"^\d{12}$")
#: STS answers these with 400 but they pass: retry them like a 5xx (the catalogue's retryable STS codes; an
#: expired token is retried once with a fresh token instead)
RETRYABLE_CODES = tuple(
    e.code for e in ENTRIES if e.service == catalogue.AWS and e.retry and e.code != "ExpiredTokenException"
)
MAX_POLICY_CHARS = 2048
MAX_POLICY_ARNS = 10


@dataclass(frozen=True)
class AwsConfig:
    """A validated AssumeRoleWithWebIdentity request, minus the token."""

    sts_url: str
    role_arn: str
    region: str
    session_name: str
    duration: int
    policy: str = ""
    policy_arns: tuple[str, ...] = ()
    allowed_accounts: tuple[str, ...] = ()
    #: where the region came from, for messages: the input's name or the connection's field
    region_from: str = "input 'awsRegion'"
    #: how later steps refresh (None: not read, as in the helper itself)
    refresh: RefreshSetup | None = field(default=None, compare=False)

    @property
    def partition(self) -> str:
        return self.role_arn.split(":")[1]

    @property
    def account(self) -> str:
        return self.role_arn.split(":")[4]


def default_session_name(agent: AgentEnv) -> str:
    """``ado-<build or release id>-<job attempt>``, sanitised to what STS accepts."""
    run = agent.variable("Build.BuildId") or agent.variable("Release.ReleaseId") or "run"
    attempt = agent.variable("System.JobAttempt") or "1"
    return sanitise_session_name(f"ado-{run}-{attempt}")


def sanitise_session_name(raw: str) -> str:
    name = re.sub(r"[^\w+=,.@-]", "-", raw, flags=re.ASCII)[:64]
    return name if len(name) >= 2 else (name + "--")[:2]


def sts_url_for(url: str, region: str, partition: str) -> str:
    """The connection's URL, made regional when it is the default global endpoint and a region is known."""
    url = (url or DEFAULT_STS).rstrip("/")
    if url.lower() != DEFAULT_STS:
        return url
    if region:
        suffix = ".amazonaws.com.cn" if region.startswith("cn-") else ".amazonaws.com"
        return f"https://sts.{region}{suffix}"
    if partition != "aws":
        raise ConfigError(
            f"The role is in partition '{partition}', which the global STS endpoint does not serve. Set the "
            "connection's region (or the task input 'awsRegion'), or the connection URL to that partition's STS endpoint."
        )
    return url


def configure(agent: AgentEnv, endpoint: Endpoint) -> AwsConfig:
    """Read and check the role, region, session name, duration, policies and allowed accounts; sends nothing."""
    role = agent.input("awsRoleArn") or endpoint.param("roleArn")
    if not role:
        raise ConfigError(
            "No role to assume: set 'Role ARN' on the AWS service connection or the task input 'awsRoleArn'."
        )
    where = "Input 'awsRoleArn'" if agent.input("awsRoleArn") else "The connection's 'roleArn'"
    if not ROLE_ARN.match(role):
        raise ConfigError(f"{where} must be an IAM role ARN like arn:aws:iam::123456789012:role/name, got '{role}'.")
    region = agent.input("awsRegion") or endpoint.param("region")
    region_from = "input 'awsRegion'" if agent.input("awsRegion") else "the connection's 'region'"
    if region and not REGION.match(region):
        raise ConfigError(
            f"{region_from[0].upper()}{region_from[1:]} must be an AWS region code like eu-west-1, got '{region}'."
        )
    session_name = agent.input("awsSessionName") or default_session_name(agent)
    if not SESSION_NAME.match(session_name):
        raise ConfigError(
            "Input 'awsSessionName' must be 2-64 characters of letters, digits and _+=,.@- "
            f"(got {len(session_name)} characters: '{session_name}')."
        )
    duration = agent.int_input("awsSessionDuration", default=3600, low=900, high=43200)
    policy = agent.input("awsSessionPolicy")
    if policy:
        try:
            parsed = json.loads(policy)
        except ValueError as exc:
            raise ConfigError(f"Input 'awsSessionPolicy' must be a JSON policy document: {exc}.") from exc
        if not isinstance(parsed, dict) or "Statement" not in parsed:
            raise ConfigError("Input 'awsSessionPolicy' must be a JSON policy document: an object with 'Statement'.")
        policy = json.dumps(parsed, separators=(",", ":"))
        if len(policy) > MAX_POLICY_CHARS:
            raise ConfigError(
                f"Input 'awsSessionPolicy' must be at most {MAX_POLICY_CHARS} characters without white space, "
                f"got {len(policy)}."
            )
    arns = tuple(agent.list_input("awsManagedSessionPolicies"))
    if len(arns) > MAX_POLICY_ARNS:
        raise ConfigError(f"Input 'awsManagedSessionPolicies' takes at most {MAX_POLICY_ARNS} ARNs, got {len(arns)}.")
    for arn in arns:
        if not POLICY_ARN.match(arn):
            raise ConfigError(
                "Input 'awsManagedSessionPolicies' must list managed policy ARNs like "
                f"arn:aws:iam::aws:policy/ReadOnlyAccess, got '{arn}'."
            )
    allowed = tuple(agent.list_input("awsAllowedAccountIds"))
    for account in allowed:
        if not ACCOUNT_ID.match(account):
            raise ConfigError(f"Input 'awsAllowedAccountIds' must list 12-digit account IDs, got '{account}'.")
    config_partition = role.split(":")[1]
    sts_url = sts_url_for(endpoint.url, region, config_partition)
    try:
        destination.parse(sts_url, what=OIDC_TOKEN)
    except UnsafeDestination as exc:
        raise ConfigError(
            f"The AWS connection's URL must be an https STS endpoint, got '{sts_url}': {exc.reason}."
        ) from exc
    config = AwsConfig(
        sts_url, role, region, session_name, duration, policy, arns, allowed, region_from, read_setup(agent)
    )
    if allowed and config.account not in allowed:
        raise ConfigError(
            f"The role's account {config.account} is not in 'awsAllowedAccountIds' ({', '.join(allowed)}). "
            "Nothing was requested. Fix the role ARN or the list."
        )
    return config


# -- the wire ----------------------------------------------------------------------------------
def _parse_xml(text: str | bytes) -> ET.Element | None:
    """The document, parsed from the bytes as sent when there are any: XML declares its own encoding."""
    try:
        # ElementTree resolves no external entities and expat >= 2.4.1 caps entity expansion.
        root = ET.fromstring(text)  # noqa: S314
    except ET.ParseError:
        return None
    for element in root.iter():
        if isinstance(element.tag, str) and "}" in element.tag:
            element.tag = element.tag.split("}", 1)[1]
    return root


def sts_error(resp: Response) -> tuple[str, str]:
    """The (code, message) of an STS error document, or ("", "") when it is not one."""
    root = _parse_xml(resp.content or resp.text)
    if root is None:
        return "", ""
    return (root.findtext(".//Error/Code") or "").strip(), (root.findtext(".//Error/Message") or "").strip()


def _retry_if(resp: Response) -> bool:
    return resp.status >= 400 and sts_error(resp)[0] in RETRYABLE_CODES


def _trust_statement(config: AwsConfig, claims: Claims | None) -> str:
    if claims is None:
        return ""
    issuer = claims.issuer_id
    statement = {
        "Effect": "Allow",
        "Principal": {"Federated": f"arn:{config.partition}:iam::{config.account}:oidc-provider/{issuer}"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{issuer}:sub": claims.sub, f"{issuer}:aud": claims.aud}},
    }
    # the trust command's own template, from these claims (the plain statement when it cannot render)
    rendered = render_trust(
        "aws", claims, account_id=config.account, partition=config.partition, role_name=config.role_arn.split("/")[-1]
    )
    return (
        f"This token carries {issuer}:sub = {claims.sub} and {issuer}:aud = {claims.aud}. The role's trust policy "
        "needs a statement like:\n" + (rendered or json.dumps(statement, indent=2)) + "\nThe subject is "
        "case-sensitive and holds names: renaming the organisation, project or connection changes it."
    )


def _region_text(config: AwsConfig) -> str:
    if config.region:
        return f"region '{config.region}' (from {config.region_from})"
    return f"the region that serves {config.sts_url} (no region is set: neither input 'awsRegion' nor the connection's 'region')"


#: a name that resolves wherever DNS works: the control when an STS host does not
CONTROL_HOST = "sts.amazonaws.com"


def unresolved(config: AwsConfig, host: str, *, dns_works: bool = True) -> ExchangeError:
    """The STS host does not resolve: a region that does not exist, or a wrong connection URL; or, when
    ``dns_works`` is false (the control host did not resolve either), the agent's DNS itself."""
    regional = config.region and host.lower() in (
        f"sts.{config.region}.amazonaws.com",
        f"sts.{config.region}.amazonaws.com.cn",
    )
    if not dns_works:
        message = (
            f"Neither the STS endpoint {host} nor {CONTROL_HOST} resolves on this agent: its DNS or network is "
            "not working (or it needs a proxy: HTTPS_PROXY or the agent's proxy settings). Fix the agent's network"
            + (f"; if it works, check the region '{config.region}' in {config.region_from}." if regional else ".")
        )
    elif regional:
        message = (
            f"Region '{config.region}' (from {config.region_from}) does not exist: its STS endpoint {host} does not "
            f"resolve. Fix the region in {config.region_from}: a region code looks like eu-west-1, us-east-2 or "
            "ap-southeast-2 (the console's region menu lists them)."
        )
    else:
        message = (
            f"The AWS connection's STS endpoint {config.sts_url} does not resolve ({host}: no such host). Fix the "
            f"connection's URL: leave it {DEFAULT_STS} (the task then uses the regional endpoint of 'awsRegion'), "
            "or give another partition's or a VPC endpoint's exact host name."
        )
    return ExchangeError(message, service=SERVICE, code="NameNotResolved")


def explain(code: str, message: str, status: int, config: AwsConfig, claims: Claims | None) -> ExchangeError:
    """Map an STS error to the paragraph that says what to fix."""
    head = f"{SERVICE} AssumeRoleWithWebIdentity for {config.role_arn} failed: {code or 'HTTP ' + str(status)}"
    head += f": {message.rstrip('.')}" if message else ""
    issuer = claims.issuer_id if claims else "<issuer>"
    aud = claims.aud if claims else "api://AzureADTokenExchange"
    fixes = {
        "AccessDenied": (
            f"STS gives this answer for two causes: the role {config.role_arn} does not exist in account "
            f"{config.account} (check the account id and the role name in the ARN for a typo), or it exists but "
            "its trust policy does not match this token. " + _trust_statement(config, claims)
        ),
        "InvalidIdentityToken": (
            f"STS did not accept the token itself. In IAM > Identity providers there must be an OpenID Connect "
            f"provider with URL https://{issuer} (exactly the token's issuer) and audience {aud}, in account "
            f"{config.account}. STS fetches the keys from https://{issuer}/.well-known/openid-configuration."
        ),
        "ExpiredTokenException": (
            "The OIDC token had expired when STS checked it. The task requests it right before the exchange, so "
            "check the agent's clock (it must be within a few minutes of real time)."
        ),
        "IDPCommunicationError": (
            f"STS could not reach https://{issuer} to fetch the token's signing keys, and retries ran out. This is "
            "usually transient: run the job again."
        ),
        "RegionDisabledException": (
            f"STS is not activated in {_region_text(config)} for account {config.account}. Activate it in IAM > "
            "Account settings > Security Token Service (STS), or choose another region with 'awsRegion'."
        ),
        "ValidationError": (
            "STS refused a parameter. Most often 'awsSessionDuration' exceeds the role's maximum session duration "
            f"(this request asked for {config.duration} s; raise the role's limit in IAM or lower the input)."
        ),
        "PackedPolicyTooLarge": (
            "The session policies are too large once packed. Shorten 'awsSessionPolicy' or pass fewer ARNs in "
            "'awsManagedSessionPolicies'."
        ),
        "MalformedPolicyDocument": "The session policy is not a valid IAM policy: fix 'awsSessionPolicy'.",
    }
    for throttled in ("Throttling", "ThrottlingException", "RequestLimitExceeded"):
        fixes[throttled] = (
            "STS kept throttling the requests and retries ran out. Run the job again later or spread out parallel jobs."
        )
    fix = fixes.get(code)
    entry = lookup(SERVICE, code)
    if (
        fix is None and entry is not None
    ):  # codes explained only by the catalogue (InternalFailure, IDPRejectedClaim, ...)
        fix = f"{entry.meaning} Fix: {entry.fix}"
    if not code:
        fix = f"The answer was not an STS document (HTTP {status}): check the connection's URL ({config.sts_url})."
    return ExchangeError(head + (".\n" + fix if fix else "."), service=SERVICE, status=status, code=code)


@dataclass(frozen=True)
class AwsCredentials:
    """What STS returned: temporary credentials (never in a repr) and who they act as."""

    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    #: ISO 8601 as STS wrote it, "" when absent
    expiration: str
    #: the assumed-role ARN STS reported ("" when it reported none)
    assumed_role_arn: str
    account: str
    #: when STS sent the answer (its HTTP Date header, POSIX time; 0 when unknown), to check the agent's clock
    server_time: float = 0.0


def _form(config: AwsConfig, token: str) -> dict[str, str]:
    form = {
        "Action": "AssumeRoleWithWebIdentity",
        "Version": "2011-06-15",
        "RoleArn": config.role_arn,
        "RoleSessionName": config.session_name,
        "WebIdentityToken": token,
        "DurationSeconds": str(config.duration),
    }
    if config.policy:
        form["Policy"] = config.policy
    for index, arn in enumerate(config.policy_arns, start=1):
        form[f"PolicyArns.member.{index}.arn"] = arn
    return form


def assume_role(
    config: AwsConfig, tokens: TokenSource, http: Http, *, warn: Callable[[str], None] = lambda _: None
) -> AwsCredentials:
    """STS ``AssumeRoleWithWebIdentity`` with a token from ``tokens``: the wire client, no pipeline in sight.

    Retries what STS says passes (throttling, IdP trouble) through ``http``'s policy; a token STS finds
    expired is replaced by a fresh one once (``warn`` says so). Refusals become an :class:`ExchangeError`
    that says what to fix; credentials for an account outside ``config.allowed_accounts`` are refused.
    """
    for attempt in (1, 2):
        try:
            resp = http.request(
                "POST",
                config.sts_url + "/",
                service=SERVICE,
                data=_form(config, tokens()),
                headers={"Accept": "application/xml"},
                retry_if=_retry_if,
                allowed=destination.parse(config.sts_url, what=OIDC_TOKEN),
                credential=OIDC_TOKEN,
            )
        except ExchangeError as exc:
            if exc.code == "NameNotResolved":
                raise unresolved(
                    config,
                    urlsplit(config.sts_url).hostname or "",
                    dns_works=http.bounded(
                        partial(resolves, CONTROL_HOST), service="DNS", url=f"https://{CONTROL_HOST}", limit=10.0
                    ),
                ) from exc
            raise
        if resp.status == 200:
            break
        code, message = sts_error(resp)
        if code == "ExpiredTokenException" and attempt == 1:
            warn("STS found the OIDC token expired; requesting a fresh one and trying once more.")
            continue
        raise explain(code, message or resp.snippet(300), resp.status, config, tokens.last_claims)
    root = _parse_xml(resp.content or resp.text)
    creds = root.find(".//Credentials") if root is not None else None
    values = (
        {k: (creds.findtext(k) or "").strip() for k in ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")}
        if creds is not None
        else {}
    )
    if not all(values.get(k) for k in ("AccessKeyId", "SecretAccessKey", "SessionToken")):
        raise ExchangeError(
            # Name what is missing, never show the body: it may hold the parts that did arrive.
            f"{SERVICE} answered HTTP 200 without complete credentials (missing: "
            + ", ".join(k for k in ("AccessKeyId", "SecretAccessKey", "SessionToken") if not values.get(k))
            + "). Check the connection's URL: it must be an STS endpoint.",
            service=SERVICE,
            status=200,
        )
    assumed = (root.findtext(".//AssumedRoleUser/Arn") or "").strip() if root is not None else ""
    account = assumed.split(":")[4] if assumed.count(":") >= 5 else config.account
    if config.allowed_accounts and account not in config.allowed_accounts:
        raise ExchangeError(
            f"STS returned credentials for account {account}, which is not in 'awsAllowedAccountIds' "
            f"({', '.join(config.allowed_accounts)}). They were not passed on.",
            service=SERVICE,
            code="AccountNotAllowed",
        )
    return AwsCredentials(
        values["AccessKeyId"],
        values["SecretAccessKey"],
        values["SessionToken"],
        expiration=values.get("Expiration", ""),
        assumed_role_arn=assumed,
        account=account,
        server_time=_http_date(resp.header("Date")),
    )


def _http_date(value: str) -> float:
    import email.utils

    try:
        return email.utils.parsedate_to_datetime(value).timestamp() if value else 0.0
    except (TypeError, ValueError):
        return 0.0


# -- the pipeline ------------------------------------------------------------------------------
def to_outcome(config: AwsConfig, creds: AwsCredentials) -> Outcome:
    """The pipeline variables for a set of credentials: the names the AWS SDKs and CLI read."""
    variables = [
        Variable("AWS_ACCESS_KEY_ID", creds.access_key_id, secret=True),
        Variable("AWS_SECRET_ACCESS_KEY", creds.secret_access_key, secret=True),
        Variable("AWS_SESSION_TOKEN", creds.session_token, secret=True),
    ]
    if config.region:
        variables += [Variable("AWS_REGION", config.region), Variable("AWS_DEFAULT_REGION", config.region)]
    if creds.expiration:
        variables.append(Variable("AWS_CREDENTIAL_EXPIRATION", creds.expiration))
    return Outcome(variables=variables, identity=creds.assumed_role_arn or config.role_arn, expires=creds.expiration)


PROFILE = "oidc-credentials"
AWS_CONFIG = "aws-config"


def settings(config: AwsConfig) -> dict[str, Any]:
    """The request, as the helper's config file holds it (read back by :func:`from_settings`)."""
    return {
        "sts_url": config.sts_url,
        "role_arn": config.role_arn,
        "region": config.region,
        "session_name": config.session_name,
        "duration": config.duration,
        "policy": config.policy,
        "policy_arns": list(config.policy_arns),
        "allowed_accounts": list(config.allowed_accounts),
    }


def from_settings(data: dict[str, Any]) -> AwsConfig:
    return AwsConfig(
        str(data["sts_url"]),
        str(data["role_arn"]),
        str(data.get("region") or ""),
        str(data["session_name"]),
        int(data["duration"]),
        str(data.get("policy") or ""),
        tuple(map(str, data.get("policy_arns") or ())),
        tuple(map(str, data.get("allowed_accounts") or ())),
    )


def process_answer(creds: AwsCredentials) -> dict[str, Any]:
    """The fields of botocore's ``credential_process`` answer, but ``Version``."""
    answer = {
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key,
        "SessionToken": creds.session_token,
    }
    if creds.expiration:
        answer["Expiration"] = creds.expiration
    return answer


def cache_entry(creds: AwsCredentials, now: float) -> Entry:
    """The helper's cache entry for credentials just issued."""
    from .. import refresh
    from ..text import parse_iso_utc

    expires = parse_iso_utc(creds.expiration) if creds.expiration else 0.0
    if not expires:
        raise refresh.CacheError(f"{SERVICE} answered without an Expiration the helper can read: '{creds.expiration}'")
    return refresh.entry_from_expiry(process_answer(creds), expires, now, creds.server_time)


def profile(config: AwsConfig, setup: RefreshSetup, creds: AwsCredentials, ctx: Context) -> Outcome:
    """The refreshing profile: files for the helper and the variables that point the SDKs at it."""
    from ..helper_setup import helper_command, helper_config
    from ..refresh import CACHE, HELPER_CONFIG, TOKEN_FILE, CacheError

    lines = [
        "# Written by OidcCredentials for this job and deleted after it. The helper hands out cached credentials",
        "# and refreshes them (a fresh Azure DevOps OIDC token, AssumeRoleWithWebIdentity) near expiry.",
        f"[profile {PROFILE}]",
        f"credential_process = {helper_command(setup, 'aws')}",
    ]
    if config.region:
        lines.append(f"region = {config.region}")
    files = [
        File(
            setup.path(HELPER_CONFIG),
            helper_config("aws", ctx.agent, ctx.agent.connection_id(CONNECTION_INPUT), settings(config)),
        ),
        File(setup.path(AWS_CONFIG), "\n".join(lines) + "\n"),
    ]
    try:
        files.append(File(setup.path(CACHE), cache_entry(creds, ctx.clock()).to_json()))
    except CacheError as exc:
        ctx.warn(f"Later steps' first call will refresh the credentials: {exc.message}.")
    secrets: list[str] = []
    if setup.access_token:
        files.append(File(setup.path(TOKEN_FILE), setup.access_token))
        secrets.append(setup.access_token)
    variables = [
        Variable("AWS_CONFIG_FILE", setup.path(AWS_CONFIG)),
        Variable("AWS_PROFILE", PROFILE),
        Variable("AWS_SDK_LOAD_CONFIG", "1"),
    ]
    return Outcome(variables=variables, files=files, secrets=secrets)


def exchange(config: AwsConfig, tokens: TokenSource, ctx: Context) -> Outcome:
    """Assume the configured role with the job's OIDC token; the credentials become secret variables, and
    (refresh on) a profile whose ``credential_process`` refreshes them in later steps."""
    from ..helper_setup import lifetime_warning
    from ..text import parse_iso_utc

    ctx.log(
        f"Assuming {config.role_arn} as session '{config.session_name}' for {config.duration} s via {config.sts_url}"
    )
    creds = assume_role(config, tokens, ctx.http, warn=ctx.warn)
    outcome = to_outcome(config, creds)
    setup = config.refresh
    if setup is None:
        return outcome
    if setup.enabled:
        extra = profile(config, setup, creds, ctx)
        outcome.variables += extra.variables
        outcome.files += extra.files
        outcome.secrets += extra.secrets
        outcome.notes.append(
            f"Refreshing profile '{PROFILE}' in {setup.path(AWS_CONFIG)}: later steps' AWS SDKs and CLI get fresh "
            "credentials by themselves when they map SYSTEM_ACCESSTOKEN: $(System.AccessToken) into env: (and do not "
            "map AWS_ACCESS_KEY_ID, which would take precedence)."
        )
    elif setup.why_off:
        ctx.log(f"Credentials will not refresh in later steps: {setup.why_off}.")
    expires = parse_iso_utc(creds.expiration) if creds.expiration else 0.0
    left = expires - ctx.clock() if expires else float(config.duration)
    warning = lifetime_warning(setup, left, "The AWS credentials", refreshing=setup.enabled)
    if warning:
        ctx.warn(warning)
    return outcome
