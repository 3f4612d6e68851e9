"""A refusal shows the trust that would accept the token, rendered by the trust command's own templates."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
from oidc_credentials import refusal
from oidc_credentials.errors import ConfigError
from oidc_credentials.oidc import Claims
from oidc_credentials.providers import aws
from oidc_credentials.providers._azure_common import PUBLIC, AzureConnection, explain_entra

CLAIMS = Claims(
    iss="https://vstoken.dev.azure.com/00000000-1111-4222-8333-444444444444",
    sub="sc://fabrikam/Payments/aws-prod",
    aud="api://AzureADTokenExchange",
    exp=0,
)
CONFIG = aws.AwsConfig("https://sts.amazonaws.com", "arn:aws:iam::123456789012:role/ci/ado-deploy", "", "s", 3600)
CONN = AzureConnection("c", "t", "0f1e2d3c-4b5a-4697-8877-665544332211", "", PUBLIC, PUBLIC.authority)


def fake_trust(calls: list[tuple[str, Any, str, dict[str, Any]]], *, refuse: bool = False) -> types.ModuleType:
    """A stand-in for the trust module with its interface (Facts, complete, render_<cloud>)."""
    module = types.ModuleType("oidc_credentials.trust")

    class Facts:
        def __init__(self, **values: Any) -> None:
            self.values = values

    def renderer(cloud: str) -> Any:
        def render(facts: Facts, fmt: str, **context: Any) -> str:
            if refuse:
                raise ConfigError("a template refuses")
            calls.append((cloud, facts.values, fmt, context))
            return f"RENDERED {cloud} {fmt} {facts.values['subject']}\n"

        return render

    module.Facts = Facts  # type: ignore[attr-defined]
    module.complete = lambda facts: facts  # type: ignore[attr-defined]
    for cloud in ("aws", "azure", "gcp", "vault"):
        setattr(module, f"render_{cloud}", renderer(cloud))
    return module


def test_without_the_trust_module_the_plain_statement_stays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "oidc_credentials.trust", None)  # import fails
    assert refusal.render_trust("aws", CLAIMS, account_id="123456789012") == ""
    error = aws.explain("AccessDenied", "Not authorized", 403, CONFIG, CLAIMS)
    assert '"vstoken.dev.azure.com/00000000-1111-4222-8333-444444444444:sub": "sc://fabrikam/Payments/aws-prod"' in (
        error.message
    )


def test_aws_refusal_uses_the_trust_template(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any, str, dict[str, Any]]] = []
    monkeypatch.setitem(sys.modules, "oidc_credentials.trust", fake_trust(calls))
    error = aws.explain("AccessDenied", "Not authorized", 403, CONFIG, CLAIMS)
    assert "needs a statement like:\nRENDERED aws json sc://fabrikam/Payments/aws-prod\nThe subject" in error.message
    cloud, facts, fmt, context = calls[0]
    assert (cloud, fmt) == ("aws", "json")
    assert facts == {"issuer": CLAIMS.iss, "subject": CLAIMS.sub, "audience": CLAIMS.aud, "tenant_id": ""}
    assert context == {"account_id": "123456789012", "partition": "aws", "role_name": "ado-deploy"}


def test_entra_refusal_adds_the_trust_command_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any, str, dict[str, Any]]] = []
    monkeypatch.setitem(sys.modules, "oidc_credentials.trust", fake_trust(calls))
    error = explain_entra(700213, "AADSTS700213: No matching federated identity record", 400, CONN, CLAIMS, 0)
    assert "Or create it with:\nRENDERED azure az sc://fabrikam/Payments/aws-prod" in error.message
    assert calls[0][3] == {"app_id": CONN.client_id}


def test_a_template_that_refuses_leaves_the_plain_statement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "oidc_credentials.trust", fake_trust([], refuse=True))
    assert refusal.render_trust("vault", CLAIMS, role="r") == ""
    assert '"Action": "sts:AssumeRoleWithWebIdentity"' in aws.explain("AccessDenied", "", 403, CONFIG, CLAIMS).message


def test_with_the_real_trust_module() -> None:
    pytest.importorskip("oidc_credentials.trust", reason="the trust command is not in this version")
    text = refusal.render_trust("aws", CLAIMS, account_id="123456789012", partition="aws", role_name="ado-deploy")
    assert "sts:AssumeRoleWithWebIdentity" in text and CLAIMS.sub in text
    assert aws.explain("AccessDenied", "", 403, CONFIG, CLAIMS).message.count(text) == 1
