"""Token formats: issuers, subjects and kinds of Azure DevOps OIDC tokens (platform.md §3)."""

from __future__ import annotations

import pytest
from oidc_credentials.claims import (
    AZURE_DEVOPS_APP_ID,
    IssuerShape,
    TokenKind,
    decode_claims,
    discovery_url,
    entra_issuer,
    entra_subject,
    issuer_label,
    kind_of,
    parse_issuer,
    parse_subject,
    pipeline_subject,
    service_connection_subject,
    vstoken_issuer,
)

from tests.standins.ado import AzureDevOps

ORG = "6f1c4b2e-8a3d-4e5f-9a7b-1c2d3e4f5a6b"
TENANT = "ff882432-09b0-437b-bd22-ca13c0037ded"
CONN = "0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f6a"


def test_issuers_of_both_shapes() -> None:
    assert vstoken_issuer(ORG) == f"https://vstoken.dev.azure.com/{ORG}"
    assert entra_issuer(TENANT) == f"https://login.microsoftonline.com/{TENANT}/v2.0"
    assert discovery_url(vstoken_issuer(ORG)) == f"https://vstoken.dev.azure.com/{ORG}/.well-known/openid-configuration"
    ado = parse_issuer(vstoken_issuer(ORG))
    assert ado is not None and (ado.shape, ado.id) == (IssuerShape.AZURE_DEVOPS, ORG)
    entra = parse_issuer(entra_issuer(TENANT))
    assert entra is not None and (entra.shape, entra.id) == (IssuerShape.ENTRA, TENANT)
    assert issuer_label(vstoken_issuer(ORG)) == "Azure DevOps issuer, vstoken"
    assert issuer_label(entra_issuer(TENANT)) == "Microsoft Entra issuer"


@pytest.mark.parametrize(
    "iss",
    [
        f"http://vstoken.dev.azure.com/{ORG}",
        f"https://vstoken.dev.azure.com/{ORG}/",
        f"https://vstoken.dev.azure.com/{ORG.upper()}",
        f"https://vstoken.dev.azure.com:443/{ORG}",
        f"https://user@vstoken.dev.azure.com/{ORG}",
        f"https://vstoken.dev.azure.com/{ORG}?x=1",
        "https://vstoken.dev.azure.com/fabrikam",
        f"https://vstoken.dev.azure.com.evil.example/{ORG}",
        f"https://login.microsoftonline.com/{TENANT}",
        f"https://login.microsoftonline.com/{TENANT}/v2.0/",
        f"https://sts.windows.net/{TENANT}/",
    ],
)
def test_anything_else_is_not_an_issuer_shape(iss: str) -> None:
    assert parse_issuer(iss) is None


def test_subjects_round_trip() -> None:
    sc = service_connection_subject("fabrikam", "Payments", "aws-prod")
    assert sc == "sc://fabrikam/Payments/aws-prod"
    parsed = parse_subject(sc)
    assert parsed is not None
    assert (parsed.kind, parsed.organization, parsed.project, parsed.name) == (
        TokenKind.SERVICE_CONNECTION,
        "fabrikam",
        "Payments",
        "aws-prod",
    )
    p = pipeline_subject("fabrikam", "Payments", "deploy")
    assert p == "p://fabrikam/Payments/deploy"
    parsed = parse_subject(p)
    assert parsed is not None and parsed.kind is TokenKind.PIPELINE and parsed.name == "deploy"
    assert kind_of(p) is TokenKind.PIPELINE and kind_of(sc) is TokenKind.SERVICE_CONNECTION


def test_entra_subject_matches_the_published_sample() -> None:
    """platform.md §3.2: ``t/MiSI_7AJe0O9IsoTwAN97Q`` is ff882432-…, ``a/rISbSSETf0KqFyZ8ppdXmA`` the Azure DevOps app."""
    sub = entra_subject(TENANT, ORG, CONN)
    assert sub == f"/eid1/c/pub/t/MiSI_7AJe0O9IsoTwAN97Q/a/rISbSSETf0KqFyZ8ppdXmA/sc/{ORG}/{CONN}"
    parsed = parse_subject(sub)
    assert parsed is not None and parsed.kind is TokenKind.SERVICE_CONNECTION and parsed.form == "entra"
    assert (parsed.tenant_id, parsed.app_id, parsed.organization_id, parsed.connection_id) == (
        TENANT,
        AZURE_DEVOPS_APP_ID,
        ORG,
        CONN,
    )


@pytest.mark.parametrize(
    "sub",
    [
        "",
        "p://fabrikam/Payments",
        "p://fabrikam//deploy",
        "sc://fabrikam/Payments/a/b",
        "SC://fabrikam/Payments/aws",
        "https://fabrikam/Payments/aws",
        f"/eid1/c/pub/t/MiSI_7AJe0O9IsoTwAN97Q/a/rISbSSETf0KqFyZ8ppdXmA/sc/{ORG}",
        f"/eid1/c/pub/t/MiSI_7AJe0O9IsoTwAN97Q/a/rISbSSETf0KqFyZ8ppdXmA/sc/{ORG}/not-a-guid",
        f"/eid1/c/pub/t/!!/a/rISbSSETf0KqFyZ8ppdXmA/sc/{ORG}/{CONN}",
    ],
)
def test_malformed_subjects_do_not_parse(sub: str) -> None:
    assert parse_subject(sub) is None
    # The scheme alone still says the kind: enough for the task to refuse a pipeline token.
    expected = {"p://": TokenKind.PIPELINE, "sc:/": TokenKind.SERVICE_CONNECTION, "/eid": TokenKind.SERVICE_CONNECTION}
    assert kind_of(sub) is expected.get(sub[:4])


def test_pipeline_names_keep_whatever_follows_the_project() -> None:
    """How folders appear in ``p://`` is undocumented: the rest of the subject is the pipeline's name."""
    parsed = parse_subject("p://fabrikam/Payments/infra/deploy")
    assert parsed is not None and parsed.name == "infra/deploy"


def test_token_kind_parse() -> None:
    assert TokenKind.parse("pipeline") is TokenKind.PIPELINE
    assert TokenKind.parse(TokenKind.SERVICE_CONNECTION) is TokenKind.SERVICE_CONNECTION
    with pytest.raises(ValueError, match="Unknown token kind 'both'"):
        TokenKind.parse("both")


def test_decoded_claims_know_their_kind(ado: AzureDevOps) -> None:
    """The task's pre-flight decodes (without verifying) and refuses a pipeline token by its kind."""
    assert decode_claims(ado.pipeline_token()).kind is TokenKind.PIPELINE
    assert decode_claims(ado.token_for(ado.add_connection("c"))).kind is TokenKind.SERVICE_CONNECTION
    entra = decode_claims(ado.token_for(ado.add_connection("e", issuer="entra", tenant_id=TENANT)))
    assert entra.kind is TokenKind.SERVICE_CONNECTION and entra.issuer_kind == "Microsoft Entra issuer"
    assert decode_claims(ado.mint({"iss": ado.issuer, "sub": "repo:x"})).kind is None
