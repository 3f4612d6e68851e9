"""Pre-flight: compare what the cloud-side trust expects with the connection and the token, before any exchange.

Optional inputs state what the trust was written for. Each is checked as early as it can be: against the
service connection before a token is requested (AWS account, GCP project number, tenant), and against the
first OIDC token's claims before it is sent anywhere (subject, Vault bound subject, issuer, tenant). A
mismatch fails the task with both values and exactly where they differ; a difference in letter case only
is called out character by character, since every cloud compares these values case-sensitively.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    from .agent import AgentEnv, Endpoint
    from .oidc import Claims

#: task input -> what it states
INPUTS = {
    "expectAwsAccountId": "the AWS account the role lives in",
    "expectSubject": "the token subject (sub) the trust allows",
    "expectTenantId": "the Microsoft Entra tenant",
    "expectGcpProjectNumber": "the Google Cloud project number of the workload identity pool",
    "expectVaultBoundSubject": "the Vault role's bound_subject",
    "expectIssuer": "the token issuer (iss) the trust allows",
}

_ACCOUNT = re.compile(r"^\d{12}$")
_NUMBER = re.compile(r"^\d{1,20}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_GCP_PROJECT = re.compile(r"projects/([^/]+)/locations/")
_ENTRA_TENANT = re.compile(r"^https://[^/]+/([0-9a-fA-F-]{36})/v2\.0/?$")


@dataclass(frozen=True)
class Expectations:
    """What the user says the trust expects; "" for what was not stated."""

    aws_account: str = ""
    subject: str = ""
    tenant: str = ""
    gcp_project_number: str = ""
    vault_bound_subject: str = ""
    issuer: str = ""

    def __bool__(self) -> bool:
        return any(vars(self).values())


def read(agent: AgentEnv) -> Expectations:
    """The ``expect*`` inputs, each checked for its form; sends nothing."""
    account = agent.input("expectAwsAccountId")
    if account and not _ACCOUNT.match(account):
        raise ConfigError(f"Input 'expectAwsAccountId' must be a 12-digit AWS account id, got '{account}'.")
    number = agent.input("expectGcpProjectNumber")
    if number and not _NUMBER.match(number):
        raise ConfigError(
            f"Input 'expectGcpProjectNumber' must be the project's number (digits only, not its id), got '{number}'."
        )
    tenant = agent.input("expectTenantId")
    if tenant and not _GUID.match(tenant):
        raise ConfigError(f"Input 'expectTenantId' must be the tenant's id (a GUID), got '{tenant}'.")
    return Expectations(
        aws_account=account,
        subject=agent.input("expectSubject"),
        tenant=tenant.lower(),
        gcp_project_number=number,
        vault_bound_subject=agent.input("expectVaultBoundSubject"),
        issuer=agent.input("expectIssuer"),
    )


def difference(expected: str, actual: str) -> str:
    """Where ``actual`` differs from ``expected``, in words and with carets under the differing characters."""
    if expected == actual:
        return ""
    width = max(len(expected), len(actual))
    marks = "".join(
        "^" if i >= len(expected) or i >= len(actual) or expected[i] != actual[i] else " " for i in range(width)
    ).rstrip()
    if expected.lower() == actual.lower():
        spots = [
            f"character {i + 1} is '{a}' here but '{e}' in the expectation"
            for i, (e, a) in enumerate(zip(expected, actual))
            if e != a
        ]
        words = "They differ only in letter case, and the comparison is case-sensitive: " + "; ".join(spots) + "."
    else:
        first = next((i for i, (e, a) in enumerate(zip(expected, actual)) if e != a), min(len(expected), len(actual)))
        words = f"They differ from character {first + 1} on"
        if len(expected) != len(actual):
            words += f" (expected {len(expected)} characters, got {len(actual)})"
        words += "."
        odd = [ch for ch in expected + actual if ch.isspace() or not ch.isprintable()]
        if odd:
            words += (
                " One of them holds white space or an invisible character: "
                + ", ".join(sorted({f"U+{ord(ch):04X}" for ch in odd}))
                + "."
            )
    return f"{words}\n  expected  {expected}\n  actual    {actual}\n            {marks}"


def _fail(what: str, input_name: str, expected: str, actual: str, where: str, before: str) -> ConfigError:
    return ConfigError(
        f"Pre-flight: {what} is '{actual}' ({where}), but input '{input_name}' says the trust expects '{expected}'. "
        f"{before}\n{difference(expected, actual)}\nFix whichever side is wrong: the trust (or the connection), "
        f"or input '{input_name}'."
    )


def _gcp_project_number(endpoint: Endpoint) -> str:
    provider = endpoint.param("workloadIdentityProvider")
    found = _GCP_PROJECT.search(provider)
    return found.group(1) if found else ""


def check_connection(expect: Expectations, agent: AgentEnv, endpoint: Endpoint, provider: str) -> None:
    """Compare the expectations with the service connection (and role input); before any token is requested."""
    before = "Nothing was requested."
    if expect.aws_account and provider == "aws":
        role = agent.input("awsRoleArn") or endpoint.param("roleArn")
        parts = role.split(":")
        account = parts[4] if len(parts) > 5 else ""
        if account != expect.aws_account:
            raise _fail("the role's AWS account", "expectAwsAccountId", expect.aws_account, account, role, before)
    if expect.gcp_project_number and provider == "gcp":
        number = _gcp_project_number(endpoint)
        if number != expect.gcp_project_number:
            raise _fail(
                "the workload identity pool's project number",
                "expectGcpProjectNumber",
                expect.gcp_project_number,
                number,
                "the connection's workloadIdentityProvider",
                before,
            )
    if expect.tenant and provider in ("azure", "keyvault"):
        tenant = endpoint.param("tenantId").lower()
        if tenant != expect.tenant:
            raise _fail(
                "the connection's tenant", "expectTenantId", expect.tenant, tenant, "auth parameter tenantId", before
            )


def token_tenant(claims: Claims) -> str:
    """The Entra tenant a token names (``tid``, or the Entra issuer's path); "" for the Azure DevOps issuer."""
    tid = claims.raw.get("tid")
    if isinstance(tid, str) and tid:
        return tid.lower()
    found = _ENTRA_TENANT.match(claims.iss)
    return found.group(1).lower() if found else ""


def check_claims(expect: Expectations, claims: Claims, service: str) -> None:
    """Compare the expectations with the first token's claims; raises before the token is sent to ``service``."""
    before = f"The token was not sent to {service}."
    if expect.issuer and claims.iss != expect.issuer:
        raise _fail("the token's issuer", "expectIssuer", expect.issuer, claims.iss, "claim iss", before)
    if expect.subject and claims.sub != expect.subject:
        raise _fail("the token's subject", "expectSubject", expect.subject, claims.sub, "claim sub", before)
    if expect.vault_bound_subject and claims.sub != expect.vault_bound_subject:
        raise _fail(
            "the token's subject",
            "expectVaultBoundSubject",
            expect.vault_bound_subject,
            claims.sub,
            "claim sub; Vault compares it with the role's bound_subject",
            before,
        )
    if expect.tenant:
        tenant = token_tenant(claims)
        if tenant and tenant != expect.tenant:
            raise _fail("the token's tenant", "expectTenantId", expect.tenant, tenant, "claim tid / iss", before)
