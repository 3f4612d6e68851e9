"""Fidelity of the Azure DevOps stand-in: discovery, JWKS and tokens checked with PyJWT's JWKS client."""

from __future__ import annotations

import jwt
import pytest
import requests

from tests.standins.ado import ADO_AUDIENCE, AzureDevOps
from tests.standins.server import LocalCA


def test_tokens_verify_through_discovery_and_jwks(ado: AzureDevOps, ca: LocalCA) -> None:
    conn = ado.add_connection("aws-prod")
    token = ado.token_for(conn)
    discovery = requests.get(
        f"{ado.base_url}/{ado.org_id}/.well-known/openid-configuration", verify=ca.bundle, timeout=5
    ).json()
    assert discovery["issuer"] == f"https://vstoken.dev.azure.com/{ado.org_id}"
    assert discovery["id_token_signing_alg_values_supported"] == ["RS256"]
    assert discovery["jwks_uri"] == f"{ado.base_url}/.well-known/jwks"  # one JWKS for every organisation
    client = jwt.PyJWKClient(discovery["jwks_uri"], ssl_context=_context(ca))
    key = client.get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=ADO_AUDIENCE, issuer=discovery["issuer"])
    assert claims["sub"] == "sc://fabrikam/Payments/aws-prod"
    assert claims["nbf"] == claims["iat"] - 600 and claims["exp"] - claims["iat"] == 300
    assert set(claims) == {"jti", "nbf", "iat", "exp", "iss", "aud", "sub"}
    header = jwt.get_unverified_header(token)
    assert header["kid"] == ado.kid and len(header["kid"]) == 40 and header["alg"] == "RS256"


def _context(ca: LocalCA):  # type: ignore[no-untyped-def]
    import ssl

    return ssl.create_default_context(cafile=ca.bundle)


def post(
    ado: AzureDevOps, ca: LocalCA, query: str, token: str | None = None, suppress: bool = True, method: str = "POST"
) -> requests.Response:
    headers = {"Authorization": f"Bearer {token or ado.access_token}", "Content-Type": "application/json"}
    if suppress:
        headers["X-TFS-FedAuthRedirect"] = "Suppress"
    return requests.request(
        method, f"{ado.oidc_request_uri}{query}", headers=headers, verify=ca.bundle, timeout=5, allow_redirects=False
    )


def test_error_shapes(ado: AzureDevOps, ca: LocalCA) -> None:
    conn = ado.add_connection("c")
    assert post(ado, ca, f"?serviceConnectionId={conn.id}").json()["typeKey"] == "VssVersionNotSpecifiedException"
    assert post(ado, ca, "?api-version=7.1", method="GET").status_code == 405
    denied = post(ado, ca, f"?api-version=7.1&serviceConnectionId={conn.id}", token="wrong")
    assert denied.status_code == 401 and denied.json()["message"].startswith("TF400813")
    redirect = post(ado, ca, f"?api-version=7.1&serviceConnectionId={conn.id}", token="wrong", suppress=False)
    assert redirect.status_code == 302 and "_signin" in redirect.headers["Location"]


@pytest.mark.parametrize("referenced", [False, None])
def test_unreferenced_or_unknown_connection(ado: AzureDevOps, ca: LocalCA, referenced: bool | None) -> None:
    conn_id = (
        ado.add_connection("c", referenced=False).id if referenced is False else "00000000-0000-4000-8000-000000000000"
    )
    answer = post(ado, ca, f"?api-version=7.1&serviceConnectionId={conn_id}")
    assert answer.status_code == 400
    assert answer.json()["value"].startswith(f"There is no explicit reference to service connection {conn_id}")


def test_name_instead_of_guid_returns_the_pipeline_token(ado: AzureDevOps, ca: LocalCA) -> None:
    ado.add_connection("c")
    token = post(ado, ca, "?api-version=7.1&serviceConnectionId=c").json()["oidcToken"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "p://fabrikam/Payments/deploy" and claims["prj_id"] == ado.project_id
