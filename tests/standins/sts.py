"""AWS STS stand-in for ``AssumeRoleWithWebIdentity``, errors included.

moto answers the happy path but never checks the token, so error paths are tested here: this app
verifies the token (signature against the issuer's keys, expiry, the account's OIDC providers and
their audiences) and the role's trust (``<issuer>:sub`` / ``<issuer>:aud`` conditions, maximum
session duration, session-name rules, session-policy size) and answers with STS's query-protocol
XML envelopes and messages. botocore's parser checks its fidelity (tests/test_standins_sts.py).
"""

from __future__ import annotations

import fnmatch
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from oidc_credentials.claims import ADO_AUDIENCE
from werkzeug.wrappers import Request, Response

NS = "https://sts.amazonaws.com/doc/2011-06-15/"
#: (status, code) of the errors STS sends; message texts below are STS's own
SENDER = "Sender"


@dataclass
class Role:
    arn: str
    #: issuer id (``vstoken.dev.azure.com/<org>``) -> required sub (StringLike pattern) and aud
    trust_sub: str
    trust_aud: str = ADO_AUDIENCE
    issuer_id: str = ""
    max_session: int = 3600
    #: an IAM trust policy document; when set it decides instead of trust_sub/trust_aud
    policy: dict[str, Any] | None = None


@dataclass
class OidcProvider:
    url: str
    client_ids: list[str]
    keys: Callable[[], Any]


@dataclass
class Sts:
    """The WSGI app. ``providers`` are the account's IAM OIDC providers, ``roles`` its roles."""

    providers: dict[str, OidcProvider] = field(default_factory=dict)
    roles: dict[str, Role] = field(default_factory=dict)
    disabled_regions: set[str] = field(default_factory=set)
    region: str = "us-east-1"
    #: queued (code, status) answers for the next requests: Throttling, IDPCommunicationError, ...
    faults: list[tuple[str, int]] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    max_packed_policy: int = 2048
    #: knobs for long-job tests: credentials live this many seconds whatever was asked (None: as asked), and
    #: the service's clock runs this many seconds ahead of the machine's (its Date header and Expiration)
    lifetime: int | None = None
    clock_offset: float = 0.0
    #: access key id -> (session token, expiry, assumed-role ARN) of every set issued, for GetCallerIdentity
    issued: dict[str, tuple[str, float, str]] = field(default_factory=dict)
    #: when each AssumeRoleWithWebIdentity request arrived (POSIX time)
    exchange_times: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def exchanges(self) -> list[dict[str, str]]:
        """The AssumeRoleWithWebIdentity requests received."""
        with self._lock:
            return [r for r in self.requests if r.get("Action") == "AssumeRoleWithWebIdentity"]

    def trust(self, issuer_url: str, keys: Callable[[], Any], client_ids: list[str] | None = None) -> None:
        issuer_id = issuer_url.split("://", 1)[-1]
        self.providers[issuer_id] = OidcProvider(issuer_url, client_ids or [ADO_AUDIENCE], keys)

    def add_role(
        self, arn: str, *, issuer_url: str, sub: str, aud: str = ADO_AUDIENCE, max_session: int = 3600
    ) -> Role:
        role = Role(arn, sub, aud, issuer_url.split("://", 1)[-1], max_session)
        self.roles[arn] = role
        return role

    def add_role_with_policy(self, arn: str, policy: dict[str, Any], *, max_session: int = 3600) -> Role:
        """A role whose trust is an IAM policy document, evaluated as IAM does for web identities."""
        role = Role(arn, "", "", "", max_session, policy)
        self.roles[arn] = role
        return role

    # -- wire -------------------------------------------------------------------------------------
    @staticmethod
    def error(code: str, message: str, status: int) -> Response:
        body = (
            f'<ErrorResponse xmlns="{NS}"><Error><Type>{SENDER}</Type><Code>{code}</Code>'
            f"<Message>{_xml(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        )
        return Response(body, status, content_type="text/xml")

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        form = {k: v for k, v in request.form.items()}
        if form.get("Action") == "GetCallerIdentity":
            return self._caller(request)(environ, start_response)
        with self._lock:
            self.requests.append(form)
            if form.get("Action") == "AssumeRoleWithWebIdentity":
                self.exchange_times.append(time.time())
            fault = self.faults.pop(0) if self.faults else None
        if fault:
            code, status = fault
            messages = {
                "Throttling": "Rate exceeded",
                "IDPCommunicationError": "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements",
            }
            response = self.error(code, messages.get(code, code), status)
        else:
            response = self._assume(form)
        return response(environ, start_response)

    def _assume(self, form: dict[str, str]) -> Response:
        if form.get("Action") != "AssumeRoleWithWebIdentity":
            return self.error(
                "InvalidAction", f"Could not find operation {form.get('Action')} for version 2011-06-15", 400
            )
        for required in ("RoleArn", "RoleSessionName", "WebIdentityToken"):
            if not form.get(required):
                return self.error("MissingParameter", f"The request must contain the parameter {required}", 400)
        session = form["RoleSessionName"]
        if not (2 <= len(session) <= 64) or not all(c.isalnum() or c in "_+=,.@-" for c in session):
            return self.error(
                "ValidationError",
                f"1 validation error detected: Value '{session}' at 'roleSessionName' failed to satisfy constraint: "
                "Member must satisfy regular expression pattern: [\\w+=,.@-]*",
                400,
            )
        duration = int(form.get("DurationSeconds") or 3600)
        if self.region in self.disabled_regions:
            account = form["RoleArn"].split(":")[4] if form["RoleArn"].count(":") >= 5 else "000000000000"
            return self.error(
                "RegionDisabledException",
                f"STS is not activated in this region for account:{account}. Your account administrator can activate "
                "STS in this region using the IAM Console.",
                403,
            )
        policy_size = len(form.get("Policy", "")) + 300 * sum(1 for k in form if k.startswith("PolicyArns."))
        if policy_size > self.max_packed_policy:
            percent = int(100 * policy_size / self.max_packed_policy)
            return self.error(
                "PackedPolicyTooLarge",
                f"Packed policy consumes {percent}% of allotted space, please use smaller policy.",
                400,
            )
        token = form["WebIdentityToken"]
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return self.error("InvalidIdentityToken", "Couldn't parse web identity token.", 400)
        issuer_id = str(unverified.get("iss", "")).split("://", 1)[-1]
        provider = self.providers.get(issuer_id)
        if provider is None:
            return self.error(
                "InvalidIdentityToken",
                f"No OpenIDConnect provider found in your account for {unverified.get('iss')}",
                400,
            )
        try:
            claims = jwt.decode(
                token, key=provider.keys(), algorithms=["RS256"], options={"verify_aud": False, "verify_exp": False}
            )
        except jwt.PyJWTError:
            return self.error(
                "InvalidIdentityToken", "The web identity token that was passed could not be validated by AWS.", 400
            )
        if int(claims.get("exp", 0)) <= int(time.time()):
            return self.error(
                "ExpiredTokenException",
                f"Token expired: current date/time {int(time.time())} must be before the expiration date/time{claims.get('exp')}",
                400,
            )
        if claims.get("aud") not in provider.client_ids:
            return self.error("InvalidIdentityToken", "Incorrect token audience", 400)
        role = self.roles.get(form["RoleArn"])
        if role is not None and role.policy is not None:
            if not _policy_allows(role.policy, form["RoleArn"], issuer_id, claims):
                return self.error("AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", 403)
        elif (
            role is None
            or role.issuer_id != issuer_id
            or not fnmatch.fnmatchcase(str(claims.get("sub")), role.trust_sub)
            or claims.get("aud") != role.trust_aud
        ):
            return self.error("AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", 403)
        if duration > role.max_session:
            return self.error(
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
                400,
            )
        return self._success(role, session, duration, claims, provider)

    def _caller(self, request: Request) -> Response:
        """GetCallerIdentity, signed with issued credentials: refuses unknown, mismatched and expired ones."""
        auth = request.headers.get("Authorization", "")
        key_id = auth.split("Credential=", 1)[-1].split("/", 1)[0] if "Credential=" in auth else ""
        with self._lock:
            self.requests.append({"Action": "GetCallerIdentity", "AccessKeyId": key_id})
            issued = self.issued.get(key_id)
        if issued is None or request.headers.get("X-Amz-Security-Token") != issued[0]:
            return self.error("InvalidClientTokenId", "The security token included in the request is invalid.", 403)
        if issued[1] <= time.time() + self.clock_offset:
            return self.error("ExpiredToken", "The security token included in the request is expired", 403)
        arn = issued[2]
        body = (
            f'<GetCallerIdentityResponse xmlns="{NS}"><GetCallerIdentityResult><Arn>{_xml(arn)}</Arn>'
            f"<UserId>AROA{key_id[4:12]}:{_xml(arn.rsplit('/', 1)[-1])}</UserId><Account>{arn.split(':')[4]}</Account>"
            f"</GetCallerIdentityResult><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
            "</GetCallerIdentityResponse>"
        )
        return Response(body, 200, content_type="text/xml")

    def _success(
        self, role: Role, session: str, duration: int, claims: dict[str, Any], provider: OidcProvider
    ) -> Response:
        now = time.time() + self.clock_offset
        duration = self.lifetime if self.lifetime is not None else duration
        expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + duration))
        account, name = role.arn.split(":")[4], role.arn.split("/")[-1]
        key_id = "ASIA" + secrets.token_hex(8).upper()
        secret = secrets.token_urlsafe(30)
        session_token = "IQoJb3JpZ2luX2VjE" + secrets.token_urlsafe(300)
        body = (
            f'<AssumeRoleWithWebIdentityResponse xmlns="{NS}"><AssumeRoleWithWebIdentityResult>'
            f"<Audience>{_xml(str(claims.get('aud')))}</Audience>"
            f"<AssumedRoleUser><AssumedRoleId>AROA{secrets.token_hex(8).upper()}:{_xml(session)}</AssumedRoleId>"
            f"<Arn>arn:aws:sts::{account}:assumed-role/{_xml(name)}/{_xml(session)}</Arn></AssumedRoleUser>"
            f"<Provider>arn:aws:iam::{account}:oidc-provider/{_xml(provider.url.split('://', 1)[-1])}</Provider>"
            f"<Credentials><AccessKeyId>{key_id}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey>"
            f"<SessionToken>{session_token}</SessionToken><Expiration>{expiration}</Expiration></Credentials>"
            f"<SubjectFromWebIdentityToken>{_xml(str(claims.get('sub')))}</SubjectFromWebIdentityToken>"
            f"</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId>"
            "</ResponseMetadata></AssumeRoleWithWebIdentityResponse>"
        )
        with self._lock:
            self.issued[key_id] = (
                session_token,
                float(int(now + duration)),
                f"arn:aws:sts::{account}:assumed-role/{name}/{session}",
            )
        return Response(body, 200, content_type="text/xml")  # Date: the server's clock_offset applies


def _policy_allows(policy: dict[str, Any], role_arn: str, issuer_id: str, claims: dict[str, Any]) -> bool:
    """IAM's verdict on a trust policy for AssumeRoleWithWebIdentity: an explicit Deny wins, else any Allow.

    A statement applies when its Action covers ``sts:AssumeRoleWithWebIdentity`` and its Federated
    principal is this account's OIDC provider for the token's issuer; every condition must hold
    (StringEquals / StringLike / their ``ForAnyValue:`` forms, on ``<issuer>:sub`` / ``:aud``).
    """
    account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
    provider = f":iam::{account}:oidc-provider/{issuer_id}"
    allowed = False
    statements = policy.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not any(fnmatch.fnmatchcase("sts:AssumeRoleWithWebIdentity", a) for a in actions):
            continue
        federated = (statement.get("Principal") or {}).get("Federated", [])
        federated = [federated] if isinstance(federated, str) else federated
        if not any(f.startswith("arn:") and f.endswith(provider) for f in federated):
            continue
        if all(_condition(op, keys, issuer_id, claims) for op, keys in (statement.get("Condition") or {}).items()):
            if statement.get("Effect") == "Deny":
                return False
            allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


def _condition(operator: str, keys: dict[str, Any], issuer_id: str, claims: dict[str, Any]) -> bool:
    base = operator.split(":", 1)[-1]
    if base not in ("StringEquals", "StringLike"):
        return False  # an operator this stand-in does not know never matches, as IAM refuses what it cannot prove
    for key, wanted in keys.items():
        if not key.startswith(issuer_id + ":"):
            return False
        value = claims.get(key[len(issuer_id) + 1 :])
        values = [str(v) for v in (value if isinstance(value, list) else [value] if value is not None else [])]
        patterns = [wanted] if isinstance(wanted, str) else list(wanted)
        match = fnmatch.fnmatchcase if base == "StringLike" else str.__eq__
        if not any(match(v, p) for v in values for p in patterns):
            return False
    return True


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def keys_of(ado: Any) -> Callable[[], Any]:
    """The signing key an IAM OIDC provider would fetch from the Azure DevOps stand-in's JWKS."""

    def load() -> Any:
        jwk = ado.jwks()["keys"][0]
        return jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwk))

    return load
