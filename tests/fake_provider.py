"""A provider for tests of the composition root: its behaviour is chosen by the input 'fakeMode'."""

from __future__ import annotations

import logging
import warnings
from typing import Any

from oidc_credentials.agent import AgentEnv, Endpoint
from oidc_credentials.errors import TaskError
from oidc_credentials.oidc import TokenSource
from oidc_credentials.providers import Context, File, Outcome, Variable

TITLE = "Fake"
CONNECTION_INPUT = "awsConnection"
CONN = "11111111-2222-4333-8444-555555555555"


def fake_env(mode: str, **extra: str) -> dict[str, str]:
    """A task environment that picks this provider (registered as "fake") in the given ``fakeMode``."""
    return {
        "INPUT_PROVIDER": "fake",
        "INPUT_AWSCONNECTION": CONN,
        "INPUT_FAKEMODE": mode,
        f"ENDPOINT_URL_{CONN}": "https://example.invalid",
        "SYSTEM_COLLECTIONURI": "https://dev.azure.com/fabrikam/",
        "SYSTEM_OIDCREQUESTURI": "https://dev.azure.com/fabrikam/p/_apis/distributedtask/hubs/build/plans/a/jobs/b/oidctoken",
        "ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN": "job-token",
        **extra,
    }


def configure(agent: AgentEnv, endpoint: Endpoint) -> str:
    return agent.input("fakeMode", default="ok")


def exchange(config: str, tokens: TokenSource, ctx: Context) -> Outcome:
    if config == "hostile-log":
        logging.getLogger("azure.identity").warning(
            'Entra said {"error_description": "##vso[task.setvariable variable=PWNED]1"}'
        )
        warnings.warn("##vso[task.complete result=Succeeded]from a warning", UserWarning, stacklevel=1)
    if config == "crash":
        raise KeyError("boom")
    if config == "multiline":
        return Outcome(
            variables=[Variable("FIRST", "fine", secret=True), Variable("SECOND", "two\nlines", secret=True)]
        )
    if config == "files-fail":
        temp = ctx.agent.variable("Agent.TempDirectory")
        return Outcome(
            variables=[Variable("FILE_PATH", temp + "/ok/one")],
            files=[File(temp + "/ok/one", "first"), File(temp + "/link/two", "second")],
        )
    if config == "files-ok":  # two files and data for the post-job hook below
        temp = ctx.agent.variable("Agent.TempDirectory")
        return Outcome(
            variables=[Variable("FILE_PATH", temp + "/ok/one")],
            files=[File(temp + "/ok/one", "first"), File(temp + "/ok/two", "second")],
            post={"marker": temp + "/post-hook-ran"},
        )
    if config == "bad-name":
        return Outcome(variables=[Variable("OK_ONE", "v", secret=True), Variable("my-db-password", "v2", secret=True)])
    return Outcome(
        variables=[Variable("FAKE_SECRET", "s3cr3t-value", secret=True), Variable("FAKE_PLAIN", "plain")],
        identity="fake-identity",
    )


def post(data: dict[str, Any], ctx: Context) -> None:
    """The post-job hook: proves it ran, with the data the task recorded, by writing the marker file."""
    if data.get("fail"):
        raise TaskError("the fake post-job hook failed")
    with open(data["marker"], "w") as handle:
        handle.write(ctx.agent.variable("Agent.TempDirectory"))
    ctx.log("fake post-job hook ran")
