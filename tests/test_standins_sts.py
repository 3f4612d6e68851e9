"""Fidelity of the STS stand-in, checked with botocore (AWS's own client) against moto's answers."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.standins.ado import AzureDevOps
from tests.standins.server import Server
from tests.standins.sts import Sts, keys_of

ROLE = "arn:aws:iam::123456789012:role/ado-deploy"


@pytest.fixture
def stand_in(ado: AzureDevOps) -> Iterator[tuple[Sts, str]]:
    app = Sts()
    app.trust(ado.issuer, keys_of(ado))
    app.add_role(ROLE, issuer_url=ado.issuer, sub="sc://fabrikam/Payments/*", max_session=3600)
    with Server(app) as server:
        yield app, server.url


def client(url: str, attempts: int = 3):  # type: ignore[no-untyped-def]
    config = Config(signature_version=UNSIGNED, retries={"mode": "legacy", "max_attempts": attempts - 1})
    return boto3.client("sts", endpoint_url=url, region_name="us-east-1", config=config)


def assume(url: str, token: str, **extra):  # type: ignore[no-untyped-def]
    return client(url).assume_role_with_web_identity(
        RoleArn=ROLE, RoleSessionName="ado-1-1", WebIdentityToken=token, **extra
    )


def test_success_parses_like_moto(ado: AzureDevOps, stand_in: tuple[Sts, str], moto_url: str) -> None:
    _app, url = stand_in
    token = ado.token_for(ado.add_connection("c"))
    ours = assume(url, token)
    theirs = assume(moto_url, token)
    for answer in (ours, theirs):
        assert set(answer["Credentials"]) == {"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}
        assert answer["AssumedRoleUser"]["Arn"] == "arn:aws:sts::123456789012:assumed-role/ado-deploy/ado-1-1"
    assert ours["SubjectFromWebIdentityToken"] == "sc://fabrikam/Payments/c"
    assert ours["Audience"] == "api://AzureADTokenExchange"


@pytest.mark.parametrize(
    ("setup", "code", "status"),
    [
        ("wrong_subject", "AccessDenied", 403),
        ("unknown_issuer", "InvalidIdentityToken", 400),
        ("expired", "ExpiredTokenException", 400),
        ("too_long", "ValidationError", 400),
        ("region", "RegionDisabledException", 403),
    ],
)
def test_errors_reach_botocore_as_sts_errors(
    ado: AzureDevOps, stand_in: tuple[Sts, str], setup: str, code: str, status: int
) -> None:
    app, url = stand_in
    token = ado.token_for(ado.add_connection("c"))
    extra = {}
    if setup == "wrong_subject":
        app.roles[ROLE].trust_sub = "sc://fabrikam/Other/*"
    elif setup == "unknown_issuer":
        app.providers.clear()
    elif setup == "expired":
        token = ado.mint(
            {"iss": ado.issuer, "aud": "api://AzureADTokenExchange", "sub": "sc://fabrikam/Payments/c"}, lifetime=-5
        )
    elif setup == "too_long":
        extra["DurationSeconds"] = 7200
    elif setup == "region":
        app.disabled_regions.add(app.region)
    with pytest.raises(ClientError) as info:
        assume(url, token, **extra)
    assert info.value.response["Error"]["Code"] == code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    if code in ("InvalidIdentityToken", "ExpiredTokenException"):
        # botocore models these two as typed exceptions: proof the envelope matches its model
        typed = {
            "InvalidIdentityToken": "InvalidIdentityTokenException",
            "ExpiredTokenException": "ExpiredTokenException",
        }
        assert type(info.value).__name__ == typed[code]


def test_botocore_retries_idp_communication_error(ado: AzureDevOps, stand_in: tuple[Sts, str]) -> None:
    app, url = stand_in
    app.faults += [("IDPCommunicationError", 400)] * 2
    answer = assume(url, ado.token_for(ado.add_connection("c")))
    assert answer["Credentials"]["AccessKeyId"].startswith("ASIA")
    assert len(app.requests) == 3


def test_forged_signature_is_refused(ado: AzureDevOps, stand_in: tuple[Sts, str]) -> None:
    _app, url = stand_in
    other = AzureDevOps()
    other.org_id = ado.org_id  # same issuer string, different key
    forged = other.token_for(other.add_connection("c"))
    with pytest.raises(ClientError) as info:
        assume(url, forged)
    assert info.value.response["Error"]["Code"] == "InvalidIdentityToken"
