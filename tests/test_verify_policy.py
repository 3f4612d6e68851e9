"""Policy files (TOML) and the WSGI middleware, against the Azure DevOps stand-in."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from oidc_credentials.claims import ENTRA_BASE, VSTOKEN_BASE, TokenKind
from oidc_credentials.verify import AUDIT, PolicyError, TokenRejected, Verifier, WsgiMiddleware, load_policy
from werkzeug.test import Client

from tests.standins.ado import AzureDevOps
from tests.standins.server import LocalCA

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_policies() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def fill(text: str, ado: AzureDevOps) -> str:
    return text.replace("<organisation id>", ado.org_id).replace("<project id>", ado.project_id)


def options(ado: AzureDevOps, ca: LocalCA, **extra: Any) -> dict[str, Any]:
    return {"ca_bundle": ca.bundle, "metadata_urls": {VSTOKEN_BASE: ado.base_url, ENTRA_BASE: ado.base_url}, **extra}


def test_the_readme_policies_load_and_work(ado: AzureDevOps, ca: LocalCA, tmp_path: Path) -> None:
    examples = readme_policies()
    assert len(examples) >= 2, "the README documents the policy file with examples"
    pipeline = Verifier.from_policy(write(tmp_path, fill(examples[0], ado)), **options(ado, ca))
    assert pipeline.kinds == {TokenKind.PIPELINE} and pipeline.warnings == []
    assert pipeline.verify(ado.pipeline_token()).definition_id == "42"
    assert pipeline.verify(ado.pipeline_token(rpo_ref="refs/heads/release/7", def_id="43"))
    with pytest.raises(TokenRejected, match="rpo_ref"):
        pipeline.verify(ado.pipeline_token(rpo_ref="refs/heads/feature"))
    connections = Verifier.from_policy(write(tmp_path, fill(examples[1], ado)), **options(ado, ca))
    assert connections.mode == AUDIT and connections.kinds == {TokenKind.SERVICE_CONNECTION}
    assert connections.check(ado.token_for(ado.add_connection("aws-prod"))).ok
    decision = connections.check(ado.token_for(ado.add_connection("scratch")))
    assert decision.allowed and not decision.ok  # audit: reported, let through


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('kind = "pipeline"\n', "list at least one \\[\\[allow\\]\\] rule"),
        ("[[allow]]\nproject_id = 'x'\n", 'say which tokens it is for: kind = "pipeline"'),
        ('kind = "both"\n[[allow]]\nproject_id = "x"\n', "Unknown token kind 'both'"),
        ('kind = "pipeline"\nmode = "log"\n[[allow]]\nproject_id = "x"\n', 'mode must be "enforce" or "audit"'),
        (
            'kind = "pipeline"\norganisation_ids = ["x"]\n[[allow]]\nproject_id = "x"\n',
            "unknown key\\(s\\) organisation_ids",
        ),
        ('kind = "pipeline"\n[[allow]]\nname = "empty"\n', "rule 'empty' names no field"),
        (
            'kind = "pipeline"\n[[allow]]\nrepo_ref = "refs/heads/main"\n',
            "'repo_ref' is not a field of pipeline tokens",
        ),
        ('kind = "pipeline"\n[[allow]]\ndefinition_id = 42\n', "definition_id must be a non-empty string, got 42"),
        (
            'kind = "pipeline"\n[[allow]]\nproject_id = "x"\n[allow.unsafe_regex]\nrepository_ref = ".*"\n',
            "matches an empty value",
        ),
        (
            'kind = ["pipeline", "service-connection"]\n[[allow]]\nproject_id = "x"\n',
            "must say its kind, since the policy allows several",
        ),
        ('kind = "pipeline"\n[[allow]\n', "is not valid TOML"),
    ],
)
def test_policy_files_that_would_not_do_what_they_say(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        load_policy(write(tmp_path, text))


def test_names_where_ids_exist_are_warned_about(tmp_path: Path) -> None:
    policy = load_policy(
        write(
            tmp_path,
            'kind = "pipeline"\n[[allow]]\nname = "by name"\nproject_name = "Payments"\npipeline_name = "deploy"\n',
        )
    )
    warnings = [w for rule in policy.rules for w in rule.warnings()]
    assert warnings == [
        "rule 'by name' matches project_name, a name that can be renamed or registered again; pipeline tokens also "
        "carry prj_id: prefer project_id",
        "rule 'by name' matches pipeline_name, a name that can be renamed or registered again; pipeline tokens also "
        "carry def_id: prefer definition_id",
    ]


# -- the WSGI middleware ------------------------------------------------------------------------------------------
def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    claims = environ.get(WsgiMiddleware.CLAIMS)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"hello {claims.subject if claims else 'anonymous'}".encode()]


def test_wsgi_middleware(ado: AzureDevOps, ca: LocalCA, events: list[dict[str, Any]]) -> None:
    verifier = Verifier(
        organization_ids=[ado.org_id],
        kind="pipeline",
        subject="p://fabrikam/Payments/deploy",
        on_audit=events.append,
        **options(ado, ca),
    )
    client = Client(WsgiMiddleware(hello, verifier))
    ok = client.get("/", headers={"Authorization": f"Bearer {ado.pipeline_token()}"})
    assert ok.status_code == 200 and ok.get_data(as_text=True) == "hello p://fabrikam/Payments/deploy"

    missing = client.get("/")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")

    other = ado.pipeline_token(sub="p://fabrikam/Payments/other")
    refused = client.get("/", headers={"Authorization": f"Bearer {other}"})
    assert refused.status_code == 403 and 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    body = json.loads(refused.get_data(as_text=True))
    assert body == {"error": "forbidden", "error_description": "token refused on claim sub"}  # no policy leaked
    assert events[-1]["claim"] == "sub" and events[-1]["expected"] == "'p://fabrikam/Payments/deploy'"

    forged = client.get("/", headers={"Authorization": "Bearer " + ado.pipeline_token()[:-4] + "AAAA"})
    assert forged.status_code == 401 and 'error="invalid_token"' in forged.headers["WWW-Authenticate"]


def test_wsgi_middleware_in_audit_mode_lets_everything_through(
    ado: AzureDevOps, ca: LocalCA, events: list[dict[str, Any]]
) -> None:
    verifier = Verifier(
        organization_ids=[ado.org_id],
        kind="pipeline",
        subject="p://fabrikam/Payments/deploy",
        mode=AUDIT,
        on_audit=events.append,
        **options(ado, ca),
    )
    client = Client(WsgiMiddleware(hello, verifier))
    other = ado.pipeline_token(sub="p://fabrikam/Payments/other")
    through = client.get("/", headers={"Authorization": f"Bearer {other}"})
    assert through.status_code == 200 and through.get_data(as_text=True) == "hello p://fabrikam/Payments/other"
    assert events[-1]["outcome"] == "allowed (audit: would have been refused)"
    assert client.get("/").status_code == 200
    forged = client.get("/", headers={"Authorization": "Bearer not.a.token"})
    assert forged.status_code == 200 and forged.get_data(as_text=True) == "hello anonymous"


@pytest.fixture
def events() -> list[dict[str, Any]]:
    return []
