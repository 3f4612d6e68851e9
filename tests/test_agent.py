"""The agent boundary, inward: inputs, endpoints and variables as the agent passes them."""

from __future__ import annotations

import json

import pytest
from oidc_credentials.agent import AgentEnv, mangle
from oidc_credentials.errors import ConfigError

GUID = "0f6ab1c2-3d4e-4f50-8a9b-0c1d2e3f4a5b"


def test_mangle_matches_the_agent() -> None:
    assert mangle("System.OidcRequestUri") == "SYSTEM_OIDCREQUESTURI"
    assert mangle("my var.x") == "MY_VAR_X"


def test_inputs_are_trimmed_and_optional() -> None:
    agent = AgentEnv({"INPUT_AWSREGION": "  eu-west-1 \n"})
    assert agent.input("awsRegion") == "eu-west-1"
    assert agent.input("awsRoleArn") == ""
    assert agent.input("awsRoleArn", default="x") == "x"


def test_required_input_names_itself() -> None:
    with pytest.raises(ConfigError, match="Input 'provider' is required"):
        AgentEnv({}).input("provider", required=True)


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("True", True), ("FALSE", False), ("", False)])
def test_bool_input(raw: str, expected: bool) -> None:
    assert AgentEnv({"INPUT_FLAG": raw}).bool_input("flag") is expected


def test_bool_input_rejects_other_words() -> None:
    with pytest.raises(ConfigError, match="Input 'flag' must be true or false, got 'maybe'"):
        AgentEnv({"INPUT_FLAG": "maybe"}).bool_input("flag")


@pytest.mark.parametrize(
    ("raw", "message"),
    [("abc", "must be a whole number from 900 to 43200, got 'abc'"), ("899", "must be from 900 to 43200, got 899")],
)
def test_int_input_names_rule_and_value(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AgentEnv({"INPUT_AWSSESSIONDURATION": raw}).int_input("awsSessionDuration", default=3600, low=900, high=43200)


def test_list_input_splits_commas_and_lines() -> None:
    agent = AgentEnv({"INPUT_X": "a, b\n c,,\n"})
    assert agent.list_input("x") == ["a", "b", "c"]


def test_variables_public_then_secret() -> None:
    agent = AgentEnv({"BUILD_BUILDID": "42", "SECRET_MY_TOKEN": "s"})
    assert agent.variable("Build.BuildId") == "42"
    assert agent.variable("my.token") == "s"
    assert AgentEnv({"SYSTEM_DEBUG": "True"}).debug is True
    assert AgentEnv({}).debug is False


def test_connection_id_must_be_a_guid() -> None:
    with pytest.raises(ConfigError, match="Input 'awsConnection' must name a service connection.*'my-conn'"):
        AgentEnv({"INPUT_AWSCONNECTION": "my-conn"}).connection_id("awsConnection")
    assert AgentEnv({"INPUT_AWSCONNECTION": GUID.upper()}).connection_id("awsConnection") == GUID


def test_endpoint_from_parameters_and_data() -> None:
    env = {
        f"ENDPOINT_URL_{GUID}": "https://sts.amazonaws.com",
        f"ENDPOINT_AUTH_SCHEME_{GUID}": "None",
        f"ENDPOINT_AUTH_PARAMETER_{GUID}_ROLEARN": "arn:aws:iam::123456789012:role/x",
        f"ENDPOINT_DATA_{GUID}_ENVIRONMENT": "AzureCloud",
    }
    endpoint = AgentEnv(env).endpoint(GUID)
    assert endpoint.url == "https://sts.amazonaws.com"
    assert endpoint.scheme == "None"
    assert endpoint.param("roleArn") == "arn:aws:iam::123456789012:role/x"
    assert endpoint.datum("environment") == "AzureCloud"


def test_endpoint_from_auth_json_only() -> None:
    env = {
        f"ENDPOINT_AUTH_{GUID}": json.dumps(
            {"parameters": {"tenantid": "t", "serviceprincipalid": "c"}, "scheme": "WorkloadIdentityFederation"}
        )
    }
    endpoint = AgentEnv(env).endpoint(GUID)
    assert endpoint.scheme == "WorkloadIdentityFederation"
    assert endpoint.param("TenantId") == "t"


def test_missing_endpoint_explains() -> None:
    with pytest.raises(
        ConfigError, match="passed no details for service connection .* referenced by input 'awsConnection'"
    ):
        AgentEnv({}).endpoint(GUID, input_name="awsConnection")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN": "from-endpoint", "SYSTEM_ACCESSTOKEN": "var"},
            "from-endpoint",
        ),
        (
            {
                "ENDPOINT_AUTH_SYSTEMVSSCONNECTION": json.dumps(
                    {"parameters": {"AccessToken": "from-json"}, "scheme": "OAuth"}
                )
            },
            "from-json",
        ),
        ({"SYSTEM_ACCESSTOKEN": "from-variable"}, "from-variable"),
        ({"SECRET_SYSTEM_ACCESSTOKEN": "from-secret"}, "from-secret"),
        ({}, ""),
    ],
)
def test_access_token_sources(env: dict[str, str], expected: str) -> None:
    assert AgentEnv(env).access_token() == expected
