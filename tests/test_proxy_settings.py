"""The proxy settings as the agent hands them to a task, without the network (the real proxy: test_proxy.py)."""

from __future__ import annotations

import base64
import io
import json

from oidc_credentials.http import NetworkSettings, _proxy_refusal, proxy_secrets
from oidc_credentials.modes.boundary import run_in_agent

from tests.harness import parse_line

AGENT = {
    "AGENT_PROXYURL": "http://proxy.corp:3128",
    "AGENT_PROXYUSERNAME": "build@corp",
    "AGENT_PROXYPASSWORD": "p%ss;w]rd/x",
}


def test_the_agent_proxy_carries_its_credentials_url_encoded() -> None:
    settings = NetworkSettings.from_env(AGENT)
    expected = "http://build%40corp:p%25ss%3Bw%5Drd%2Fx@proxy.corp:3128"
    assert settings.proxies_for("https://sts.amazonaws.com/") == {"http": expected, "https": expected}


def test_the_bypass_list_is_regular_expressions_searched_in_the_url() -> None:
    env = dict(AGENT, AGENT_PROXYBYPASSLIST=json.dumps([r"\.internal\.corp$", r"^https://vault\.corp:8200", "[bad"]))
    settings = NetworkSettings.from_env(env)
    direct = {"http": "", "https": ""}
    assert settings.proxies_for("https://kv.internal.corp/secrets") == direct  # host form
    assert settings.proxies_for("https://vault.corp:8200/v1/auth/jwt/login") == direct  # URL and origin form
    assert settings.proxies_for("https://vault.corp/v1/auth/jwt/login") != direct  # another port
    assert settings.proxies_for("https://KV.INTERNAL.CORP/") == direct  # case ignored, as the agent does
    assert settings.proxies_for("https://internal.corp.evil.example/") != direct  # anchored pattern holds
    assert len(settings.bypass) == 2  # an invalid pattern is skipped, not fatal


def test_standard_variables_take_over_from_the_agent_proxy() -> None:
    settings = NetworkSettings.from_env(dict(AGENT, HTTPS_PROXY="http://other:8080"))
    assert settings.proxies_for("https://sts.amazonaws.com/") is None and settings.standard_proxy


def test_every_printable_form_of_the_proxy_password_is_a_secret() -> None:
    forms = proxy_secrets(dict(AGENT, HTTPS_PROXY="http://u:s%3Bcret@p:1"))
    basic = base64.b64encode(b"build@corp:p%ss;w]rd/x").decode()
    assert forms[:3] == ["p%ss;w]rd/x", "p%25ss%3Bw%5Drd%2Fx", basic]
    assert "s;cret" in forms and "s%3Bcret" in forms
    assert proxy_secrets({"AGENT_PROXYURL": "http://p:1"}) == []


def test_the_boundary_registers_the_proxy_password_before_anything_else() -> None:
    stdout = io.StringIO()

    def work(_agent: object, out: object) -> None:
        print("the task's first line", file=stdout)

    assert run_in_agent(work, dict(AGENT), stdout, io.StringIO()) == 0  # type: ignore[arg-type]
    lines = stdout.getvalue().splitlines()
    first = lines.index("the task's first line")
    before = [parse_line(line) for line in lines[:first]]
    assert all(c and c.area_event == "task.setsecret" for c in before), lines[:first]
    registered = [c.data for c in before if c]
    # the password first, then its URL-encoded and Basic forms (and any derived form the masker needs)
    assert registered[0] == "p%ss;w]rd/x"
    assert {"p%25ss%3Bw%5Drd%2Fx", base64.b64encode(b"build@corp:p%ss;w]rd/x").decode()} <= set(registered)


def test_a_proxy_refusal_is_told_from_a_passing_failure() -> None:
    refused = OSError("Tunnel connection failed: 407 Proxy Authentication Required")
    assert _proxy_refusal(Exception("Unable to connect to proxy", refused)) == (407, "Proxy Authentication Required")
    assert _proxy_refusal(OSError("Tunnel connection failed: 403 Forbidden")) == (403, "Forbidden")
    assert _proxy_refusal(OSError("Tunnel connection failed: 502 Bad Gateway")) is None
    assert _proxy_refusal(OSError("Connection refused")) is None
