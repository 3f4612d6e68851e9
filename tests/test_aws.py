"""AWS provider: input validation, STS endpoint choice, the exchange and its error mapping."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from oidc_credentials.agent import AgentEnv, Endpoint
from oidc_credentials.errors import ConfigError, ExchangeError
from oidc_credentials.http import Http
from oidc_credentials.oidc import TokenSource
from oidc_credentials.providers import Context, aws

from tests.standins.ado import AzureDevOps
from tests.standins.server import LocalCA, Server
from tests.standins.sts import Sts, keys_of

ROLE = "arn:aws:iam::123456789012:role/ado-deploy"
ENDPOINT = Endpoint(id="x", url="https://sts.amazonaws.com", scheme="None", params={"ROLEARN": ROLE})


def configure(endpoint: Endpoint = ENDPOINT, **inputs: str) -> aws.AwsConfig:
    env = {"INPUT_" + k.upper(): v for k, v in inputs.items()}
    env.setdefault("BUILD_BUILDID", "77")
    return aws.configure(AgentEnv(env), endpoint)


def test_defaults() -> None:
    config = configure()
    assert config.role_arn == ROLE
    assert config.sts_url == "https://sts.amazonaws.com"
    assert config.session_name == "ado-77-1"
    assert config.duration == 3600
    assert config.account == "123456789012" and config.partition == "aws"


def test_inputs_override_the_connection() -> None:
    config = configure(awsRoleArn="arn:aws:iam::210987654321:role/other", awsRegion="eu-west-1", awsSessionName="mine")
    assert config.role_arn.endswith("210987654321:role/other")
    assert config.sts_url == "https://sts.eu-west-1.amazonaws.com"
    assert config.session_name == "mine"


def test_connection_region_is_used() -> None:
    endpoint = Endpoint(id="x", url="", scheme="None", params={"ROLEARN": ROLE, "REGION": "ap-southeast-2"})
    config = configure(endpoint)
    assert config.region == "ap-southeast-2"
    assert config.sts_url == "https://sts.ap-southeast-2.amazonaws.com"


@pytest.mark.parametrize(
    ("url", "region", "partition", "expected"),
    [
        ("https://sts.amazonaws.com", "", "aws", "https://sts.amazonaws.com"),
        ("https://sts.amazonaws.com/", "us-east-2", "aws", "https://sts.us-east-2.amazonaws.com"),
        ("", "cn-north-1", "aws-cn", "https://sts.cn-north-1.amazonaws.com.cn"),
        (
            "https://vpce-1.sts.eu-west-1.vpce.amazonaws.com",
            "eu-west-1",
            "aws",
            "https://vpce-1.sts.eu-west-1.vpce.amazonaws.com",
        ),
    ],
)
def test_sts_url(url: str, region: str, partition: str, expected: str) -> None:
    assert aws.sts_url_for(url, region, partition) == expected


def test_other_partition_needs_a_region() -> None:
    with pytest.raises(ConfigError, match="partition 'aws-us-gov'.*region"):
        aws.sts_url_for("", "", "aws-us-gov")


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"awsRoleArn": "ado-deploy"}, "Input 'awsRoleArn' must be an IAM role ARN.*got 'ado-deploy'"),
        ({"awsRoleArn": "arn:aws:iam::12345:role/x"}, "must be an IAM role ARN"),
        ({"awsRegion": "Europe"}, "Input 'awsRegion' must be an AWS region code like eu-west-1, got 'Europe'"),
        (
            {"awsSessionName": "has space"},
            r"Input 'awsSessionName' must be 2-64 characters.*got 9 characters: 'has space'",
        ),
        ({"awsSessionName": "x" * 65}, "got 65 characters"),
        ({"awsSessionDuration": "60"}, "Input 'awsSessionDuration' must be from 900 to 43200, got 60"),
        ({"awsSessionDuration": "1h"}, "Input 'awsSessionDuration' must be a whole number"),
        ({"awsSessionPolicy": "{not json"}, "Input 'awsSessionPolicy' must be a JSON policy document"),
        ({"awsSessionPolicy": "[1]"}, "an object with 'Statement'"),
        ({"awsSessionPolicy": json.dumps({"Statement": ["x" * 3000]})}, "at most 2048 characters.*got 30"),
        (
            {"awsManagedSessionPolicies": "ReadOnlyAccess"},
            "Input 'awsManagedSessionPolicies' must list managed policy ARNs.*'ReadOnlyAccess'",
        ),
        (
            {"awsManagedSessionPolicies": ",".join(f"arn:aws:iam::aws:policy/P{i}" for i in range(11))},
            "at most 10 ARNs, got 11",
        ),
        ({"awsAllowedAccountIds": "1234"}, "Input 'awsAllowedAccountIds' must list 12-digit account IDs, got '1234'"),
        (
            {"awsAllowedAccountIds": "111111111111, 222222222222"},
            "account 123456789012 is not in 'awsAllowedAccountIds' \\(111111111111, 222222222222\\)",
        ),
    ],
)
def test_invalid_inputs_name_input_rule_and_value(inputs: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        configure(**inputs)


def test_connection_without_role() -> None:
    with pytest.raises(ConfigError, match="No role to assume"):
        configure(Endpoint(id="x", url="", scheme="None", params={}))


def test_connection_role_is_named_as_such() -> None:
    with pytest.raises(ConfigError, match="The connection's 'roleArn' must be an IAM role ARN"):
        configure(Endpoint(id="x", url="", scheme="None", params={"ROLEARN": "nope"}))


def test_plain_http_sts_refused() -> None:
    with pytest.raises(ConfigError, match="must be an https STS endpoint"):
        configure(Endpoint(id="x", url="http://sts.example.com", scheme="None", params={"ROLEARN": ROLE}))


def test_policy_is_minified_and_policies_kept() -> None:
    config = configure(
        awsSessionPolicy='{ "Version": "2012-10-17",\n "Statement": [] }',
        awsManagedSessionPolicies="arn:aws:iam::aws:policy/ReadOnlyAccess\narn:aws:iam::123456789012:policy/Mine",
        awsAllowedAccountIds="123456789012",
    )
    assert config.policy == '{"Version":"2012-10-17","Statement":[]}'
    assert config.policy_arns == ("arn:aws:iam::aws:policy/ReadOnlyAccess", "arn:aws:iam::123456789012:policy/Mine")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ado-42-1", "ado-42-1"),
        ("ado-Release 7-1", "ado-Release-7-1"),
        ("x", "x-"),
        ("a" * 80, "a" * 64),
        ("ado/é", "ado--"),
    ],
)
def test_sanitise_session_name(raw: str, expected: str) -> None:
    assert aws.sanitise_session_name(raw) == expected


def test_release_pipelines_get_a_session_name() -> None:
    assert aws.default_session_name(AgentEnv({"RELEASE_RELEASEID": "9", "SYSTEM_JOBATTEMPT": "2"})) == "ado-9-2"


# -- the exchange against the STS stand-in ------------------------------------------------------


@pytest.fixture
def sts(ado: AzureDevOps) -> Iterator[tuple[Sts, str]]:
    app = Sts()
    app.trust(ado.issuer, keys_of(ado))
    with Server(app) as server:
        yield app, server.url


def run_exchange(ado: AzureDevOps, ca: LocalCA, sts_url: str, conn_name: str = "aws-prod", **inputs: str):  # type: ignore[no-untyped-def]
    conn = ado.add_connection(conn_name)
    env = {
        "SYSTEM_COLLECTIONURI": ado.collection_uri,
        "SYSTEM_OIDCREQUESTURI": ado.oidc_request_uri,
        "ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN": ado.access_token,
        "BUILD_BUILDID": "77",
    }
    env.update({"INPUT_" + k.upper(): v for k, v in inputs.items()})
    agent = AgentEnv(env)
    config = aws.configure(agent, Endpoint(id=conn.id, url=sts_url, scheme="None", params={"ROLEARN": ROLE}))
    http = Http({"REQUESTS_CA_BUNDLE": ca.bundle}, sleep=lambda _s: None)
    warnings: list[str] = []
    logs: list[str] = []
    ctx = Context(agent=agent, http=http, log=logs.append, warn=warnings.append)
    tokens = TokenSource.from_agent(agent, conn.id, http)
    return aws.exchange(config, tokens, ctx), tokens, warnings


def test_exchange_success(ado: AzureDevOps, ca: LocalCA, sts: tuple[Sts, str]) -> None:
    app, url = sts
    app.add_role(ROLE, issuer_url=ado.issuer, sub="sc://fabrikam/Payments/aws-prod")
    outcome, _tokens, _w = run_exchange(
        ado,
        ca,
        url,
        awsRegion="eu-west-1",
        awsSessionPolicy='{"Statement":[]}',
        awsManagedSessionPolicies="arn:aws:iam::aws:policy/ReadOnlyAccess",
    )
    values = {v.name: v for v in outcome.variables}
    assert values["AWS_ACCESS_KEY_ID"].value.startswith("ASIA") and values["AWS_ACCESS_KEY_ID"].secret
    assert values["AWS_SECRET_ACCESS_KEY"].secret and values["AWS_SESSION_TOKEN"].secret
    assert values["AWS_REGION"].value == "eu-west-1" and not values["AWS_REGION"].secret
    assert values["AWS_DEFAULT_REGION"].value == "eu-west-1"
    assert values["AWS_CREDENTIAL_EXPIRATION"].value.endswith("Z")
    assert outcome.identity == "arn:aws:sts::123456789012:assumed-role/ado-deploy/ado-77-1"
    sent = app.requests[-1]
    assert sent["Action"] == "AssumeRoleWithWebIdentity" and sent["Version"] == "2011-06-15"
    assert sent["DurationSeconds"] == "3600" and sent["RoleSessionName"] == "ado-77-1"
    assert sent["Policy"] == '{"Statement":[]}'
    assert sent["PolicyArns.member.1.arn"] == "arn:aws:iam::aws:policy/ReadOnlyAccess"
    assert sent["WebIdentityToken"] == ado.issued[-1]


def test_access_denied_prints_the_trust_condition(ado: AzureDevOps, ca: LocalCA, sts: tuple[Sts, str]) -> None:
    app, url = sts
    app.add_role(ROLE, issuer_url=ado.issuer, sub="sc://fabrikam/payments/aws-prod")  # wrong case
    with pytest.raises(ExchangeError) as info:
        run_exchange(ado, ca, url)
    message = str(info.value)
    issuer = f"vstoken.dev.azure.com/{ado.org_id}"
    assert info.value.code == "AccessDenied" and info.value.status == 403
    assert "Not authorized to perform sts:AssumeRoleWithWebIdentity" in message
    assert f"{issuer}:sub = sc://fabrikam/Payments/aws-prod" in message
    assert f"{issuer}:aud = api://AzureADTokenExchange" in message
    assert f'"Federated": "arn:aws:iam::123456789012:oidc-provider/{issuer}"' in message
    assert f"the role {ROLE} does not exist in account 123456789012" in message  # the other cause
    assert len(app.requests) == 1  # not retried


def test_unknown_provider_is_invalid_identity_token(ado: AzureDevOps, ca: LocalCA) -> None:
    app = Sts()
    with (
        Server(app) as server,
        pytest.raises(
            ExchangeError,
            match=r"(?s)InvalidIdentityToken: No OpenIDConnect provider found.*https://vstoken\.dev\.azure\.com/.*audience api://AzureADTokenExchange",
        ) as info,
    ):
        run_exchange(ado, ca, server.url)
    assert info.value.code == "InvalidIdentityToken"


def test_expired_token_gets_one_fresh_try(ado: AzureDevOps, ca: LocalCA, sts: tuple[Sts, str]) -> None:
    app, url = sts
    app.add_role(ROLE, issuer_url=ado.issuer, sub="sc://fabrikam/Payments/*")
    ado.lifetime = -10  # every token the stand-in mints is already expired
    with pytest.raises(ExchangeError, match="(?s)ExpiredTokenException.*agent's clock"):
        run_exchange(ado, ca, url)
    assert len(app.requests) == 2 and len(ado.issued) == 2


def test_expired_then_fresh_token_succeeds(ado: AzureDevOps, ca: LocalCA, sts: tuple[Sts, str]) -> None:
    app, url = sts
    app.add_role(ROLE, issuer_url=ado.issuer, sub="sc://fabrikam/Payments/*")
    app.faults.append(("ExpiredTokenException", 400))
    outcome, tokens, warnings = run_exchange(ado, ca, url)
    assert outcome.identity.endswith("/ado-77-1") and tokens.calls == 2
    assert warnings == ["STS found the OIDC token expired; requesting a fresh one and trying once more."]


@pytest.mark.parametrize("code", ["Throttling", "IDPCommunicationError"])
def test_transient_sts_errors_are_retried(ado: AzureDevOps, ca: LocalCA, sts: tuple[Sts, str], code: str) -> None:
    app, url = sts
    app.add_role(ROLE, issuer_url=ado.issuer, sub="sc://fabrikam/Payments/aws-prod")
    app.faults += [(code, 400), (code, 400)]
    outcome, _tokens, _w = run_exchange(ado, ca, url)
    assert outcome.identity and len(app.requests) == 3


def test_transient_errors_give_up_with_advice(ado: AzureDevOps, ca: LocalCA, sts: tuple[Sts, str]) -> None:
    app, url = sts
    app.faults += [("IDPCommunicationError", 400)] * 5
    with pytest.raises(
        ExchangeError,
        match="(?s)IDPCommunicationError.*could not reach https://vstoken.dev.azure.com/.*run the job again",
    ):
        run_exchange(ado, ca, url)
    assert len(app.requests) == 5


def test_duration_above_role_maximum(ado: AzureDevOps, ca: LocalCA, sts: tuple[Sts, str]) -> None:
    app, url = sts
    app.add_role(ROLE, issuer_url=ado.issuer, sub="sc://fabrikam/Payments/aws-prod", max_session=3600)
    with pytest.raises(
        ExchangeError, match=r"(?s)ValidationError: The requested DurationSeconds exceeds.*asked for 7200 s"
    ):
        run_exchange(ado, ca, url, awsSessionDuration="7200")


def test_region_disabled(ado: AzureDevOps, ca: LocalCA, sts: tuple[Sts, str]) -> None:
    app, url = sts
    app.disabled_regions.add(app.region)
    with pytest.raises(
        ExchangeError, match="(?s)RegionDisabledException.*Activate it in IAM > Account settings"
    ) as info:
        run_exchange(ado, ca, url)
    assert info.value.status == 403
    assert "region ''" not in str(info.value) and f"the region that serves {url} (no region is set" in str(info.value)


def test_packed_policy_too_large(ado: AzureDevOps, ca: LocalCA, sts: tuple[Sts, str]) -> None:
    app, url = sts
    app.max_packed_policy = 100
    with pytest.raises(ExchangeError, match="(?s)PackedPolicyTooLarge.*Shorten 'awsSessionPolicy'"):
        run_exchange(
            ado,
            ca,
            url,
            awsSessionPolicy=json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}] * 3}),
        )


def test_not_an_sts_answer(ado: AzureDevOps, ca: LocalCA) -> None:
    def html(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("404 Not Found", [("Content-Type", "text/html")])
        return [b"<html>##vso[task.setvariable variable=X]no</html>"]

    with (
        Server(html) as server,
        pytest.raises(ExchangeError, match=r"(?s)HTTP 404.*not an STS document.*check the connection's URL"),
    ):
        run_exchange(ado, ca, server.url)


def test_credentials_for_another_account_are_withheld(ado: AzureDevOps, ca: LocalCA, sts: tuple[Sts, str]) -> None:
    """The account guard holds after the exchange too (the answer names the account)."""
    app, url = sts
    other = "arn:aws:iam::999999999999:role/ado-deploy"
    app.add_role(other, issuer_url=ado.issuer, sub="sc://fabrikam/Payments/aws-prod")
    with pytest.raises(ConfigError, match="999999999999 is not in 'awsAllowedAccountIds'"):
        run_exchange(ado, ca, url, awsRoleArn=other, awsAllowedAccountIds="123456789012")
    assert app.requests == []  # refused before anything was sent


def test_explain_covers_each_code() -> None:
    config = configure()
    for code in [
        "AccessDenied",
        "InvalidIdentityToken",
        "ExpiredTokenException",
        "IDPCommunicationError",
        "Throttling",
        "RegionDisabledException",
        "ValidationError",
        "PackedPolicyTooLarge",
        "MalformedPolicyDocument",
    ]:
        error = aws.explain(code, "msg", 400, config, None)
        assert error.code == code
        assert str(error).count("\n") >= 1, code  # a fix follows the head line
    assert "AccessDenied" not in str(aws.explain("Weird", "m", 400, config, None))


def test_partial_credentials_are_named_not_shown(ado: AzureDevOps, ca: LocalCA) -> None:
    """A 200 without every part names what is missing and never echoes the parts that came."""

    def partial(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("200 OK", [("Content-Type", "text/xml")])
        body = (
            "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
            "<AccessKeyId>ASIAPARTIAL</AccessKeyId><SecretAccessKey>very-secret-part</SecretAccessKey>"
            "</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
        )
        return [body.encode()]

    with Server(partial) as server, pytest.raises(ExchangeError, match=r"missing: SessionToken\)") as info:
        run_exchange(ado, ca, server.url)
    assert "very-secret-part" not in str(info.value) and "ASIAPARTIAL" not in str(info.value)


def test_sts_xml_error_bodies_are_parsed_from_their_bytes() -> None:
    """Without a charset, requests decodes text/xml as ISO-8859-1; the XML's own encoding must win."""
    from oidc_credentials.http import Response
    from oidc_credentials.providers.aws import sts_error

    body = (
        '<?xml version="1.0" encoding="UTF-8"?><ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        "<Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Rôle refusé ✓</Message></Error></ErrorResponse>"
    ).encode()
    resp = Response(403, "https://sts.amazonaws.com/", body.decode("iso-8859-1"), {"Content-Type": "text/xml"}, body)
    assert sts_error(resp) == ("AccessDenied", "Rôle refusé ✓")
