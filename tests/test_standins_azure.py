"""The Entra and Key Vault stand-ins behave like the real services, as Microsoft's own clients see them.

azure-identity's AzurePipelinesCredential is a real client of the Azure DevOps OIDC endpoint and of
Entra; ClientAssertionCredential surfaces Entra's error JSON; azure-keyvault-secrets' SecretClient runs
the 401 challenge, follows the nextLinks and maps 404/403/429 against the Key Vault stand-in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.identity import AzurePipelinesCredential, ClientAssertionCredential
from azure.keyvault.secrets import SecretClient
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.standins.ado import AzureDevOps
from tests.standins.entra import AzureWorld, Entra, wire
from tests.standins.keyvault import KeyVault
from tests.standins.server import LocalCA, Server

ARM = "https://management.azure.com/.default"


@pytest.fixture
def vault(world: AzureWorld, ca: LocalCA) -> Iterator[KeyVault]:
    kv = KeyVault(world.entra, world.tenant.tenant_id, authority=world.url)
    with Server(kv, ca=ca) as server:
        kv.base_url = server.url
        yield kv


def token_endpoint(world: AzureWorld) -> str:
    return f"{world.url}/{world.tenant.tenant_id}/oauth2/v2.0/token"


def exchange(world: AzureWorld, ca: LocalCA, assertion: str, **form: str) -> requests.Response:
    data = {
        "client_id": world.app.client_id,
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
        "scope": ARM,
    }
    data.update(form)
    return requests.post(token_endpoint(world), data=data, verify=ca.bundle, timeout=10)


def test_azure_pipelines_credential_gets_an_arm_token(
    world: AzureWorld, ado: AzureDevOps, ca: LocalCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYSTEM_OIDCREQUESTURI", ado.oidc_request_uri)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca.bundle)
    credential = AzurePipelinesCredential(
        tenant_id=world.tenant.tenant_id,
        client_id=world.app.client_id,
        service_connection_id=world.connection_id,
        system_access_token=ado.access_token,
        authority=world.url,
    )
    token = credential.get_token(ARM)
    claims = world.entra.verify_access_token(token.token, resource="https://management.azure.com")
    assert claims["appid"] == world.app.client_id and claims["tid"] == world.tenant.tenant_id
    oidc = [r for r in ado.requests if r["path"].endswith("/oidctoken")]
    assert oidc and oidc[-1]["args"]["serviceConnectionId"] == world.connection_id
    assert oidc[-1]["headers"].get("X-Tfs-Fedauthredirect") == "Suppress"
    sent = world.entra.requests[-1]["form"]
    assert sent["client_assertion"] == ado.issued[-1] and sent["scope"] == ARM


def test_client_assertion_credential_surfaces_entra_errors(world: AzureWorld, ado: AzureDevOps, ca: LocalCA) -> None:
    other = ado.add_connection("not-trusted")
    credential = ClientAssertionCredential(
        world.tenant.tenant_id,
        world.app.client_id,
        lambda: ado.token_for(other),
        authority=world.url,
        connection_verify=ca.bundle,
    )
    with pytest.raises(ClientAuthenticationError) as caught:
        credential.get_token(ARM)
    assert "AADSTS700213" in caught.value.message
    assert "sc://fabrikam/Payments/not-trusted" in caught.value.message
    assert caught.value.response is not None and caught.value.response.status_code == 401


def _other_key_token(ado: AzureDevOps, world: AzureWorld) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = jwt.decode(ado.token_for(ado.connections[world.connection_id]), options={"verify_signature": False})
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": ado.kid})


CASES: list[tuple[str, Any, int, int, str]] = [
    # (case, how to build the assertion/form, HTTP status, AADSTS code, OAuth error)
    ("good", lambda ado, w: (ado.token_for(ado.connections[w.connection_id]), {}), 200, 0, ""),
    ("wrong signing key", lambda ado, w: (_other_key_token(ado, w), {}), 401, 700027, "invalid_client"),
    (
        "expired",
        lambda ado, w: (
            ado.mint({"iss": ado.issuer, "aud": "api://AzureADTokenExchange", "sub": w.subject}, lifetime=-60),
            {},
        ),
        401,
        700024,
        "invalid_client",
    ),
    (
        "issuer",
        lambda ado, w: (ado.mint({"iss": ado.issuer + "x", "aud": "api://AzureADTokenExchange", "sub": w.subject}), {}),
        401,
        700211,
        "invalid_client",
    ),
    (
        "audience",
        lambda ado, w: (ado.mint({"iss": ado.issuer, "aud": "api://Other", "sub": w.subject}), {}),
        401,
        700212,
        "invalid_client",
    ),
    (
        "subject",
        lambda ado, w: (
            ado.mint({"iss": ado.issuer, "aud": "api://AzureADTokenExchange", "sub": w.subject + "-x"}),
            {},
        ),
        401,
        700213,
        "invalid_client",
    ),
    (
        "subject case",
        lambda ado, w: (
            ado.mint({"iss": ado.issuer, "aud": "api://AzureADTokenExchange", "sub": w.subject.upper()}),
            {},
        ),
        401,
        7002138,
        "invalid_client",
    ),
    (
        "unknown app",
        lambda ado, w: (
            ado.token_for(ado.connections[w.connection_id]),
            {"client_id": "00000000-0000-4000-8000-000000000000"},
        ),
        400,
        700016,
        "unauthorized_client",
    ),
    (
        "client secret",
        lambda ado, w: ("", {"client_secret": "guess", "client_assertion_type": ""}),
        401,
        7000215,
        "invalid_client",
    ),
    ("malformed", lambda ado, w: ("not-a-jwt", {}), 401, 50027, "invalid_client"),
    (
        "scope",
        lambda ado, w: (
            ado.token_for(ado.connections[w.connection_id]),
            {"scope": "https://management.azure.com/user_impersonation"},
        ),
        400,
        1002012,
        "invalid_scope",
    ),
    (
        "resource",
        lambda ado, w: (ado.token_for(ado.connections[w.connection_id]), {"scope": "https://nothing.example/.default"}),
        400,
        500011,
        "invalid_resource",
    ),
]


@pytest.mark.parametrize(("case", "build", "status", "code", "error"), CASES, ids=[c[0] for c in CASES])
def test_entra_checks_like_entra(
    case: str, build: Any, status: int, code: int, error: str, world: AzureWorld, ado: AzureDevOps, ca: LocalCA
) -> None:
    assertion, form = build(ado, world)
    resp = exchange(world, ca, assertion, **form)
    assert resp.status_code == status, resp.text
    body = resp.json()
    if status == 200:
        assert body["token_type"] == "Bearer" and body["expires_in"] > 3000
        assert world.entra.verify_access_token(body["access_token"], resource="https://management.azure.com")
        return
    assert body["error"] == error and body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert re.search(r"Trace ID: [0-9a-f-]{36} Correlation ID: [0-9a-f-]{36} Timestamp: ", body["error_description"])
    assert {"timestamp", "trace_id", "correlation_id", "error_uri"} <= set(body)


def test_entra_without_federated_credentials_answers_70021(world: AzureWorld, ado: AzureDevOps, ca: LocalCA) -> None:
    world.app.federated.clear()
    body = exchange(world, ca, ado.token_for(ado.connections[world.connection_id])).json()
    assert body["error_codes"] == [70021]
    assert f"Assertion Subject: '{world.subject}'" in body["error_description"]


def test_entra_unknown_tenant(world: AzureWorld, ado: AzureDevOps, ca: LocalCA) -> None:
    resp = requests.post(
        f"{world.url}/00000000-0000-4000-8000-000000000001/oauth2/v2.0/token", data={}, verify=ca.bundle, timeout=10
    )
    assert resp.status_code == 400 and resp.json()["error_codes"] == [90002]


def test_entra_issuer_tokens_verify_against_the_same_jwks(ado: AzureDevOps, ca: LocalCA) -> None:
    entra = Entra(ca_bundle=ca.bundle)
    with Server(entra, ca=ca) as server:
        entra.base_url = server.url
        world = wire(entra, ado, url=server.url, connection="entra-conn", issuer="entra")
        conn = ado.connections[world.connection_id]
        resp = exchange(world, ca, ado.token_for(conn))
        assert resp.status_code == 200, resp.text
        assert world.subject.startswith("/eid1/c/pub/t/")


def test_keyvault_challenge_is_the_real_one(vault: KeyVault, ca: LocalCA) -> None:
    resp = requests.get(f"{vault.base_url}/secrets?api-version=7.5", verify=ca.bundle, timeout=10)
    assert resp.status_code == 401
    assert (
        resp.headers["WWW-Authenticate"]
        == f'Bearer authorization="{vault.authority}/{vault.tenant_id}", resource="https://vault.azure.net"'
    )
    assert resp.json() == {
        "error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}
    }


@pytest.fixture
def client(world: AzureWorld, vault: KeyVault, ado: AzureDevOps, ca: LocalCA) -> SecretClient:
    credential = ClientAssertionCredential(
        world.tenant.tenant_id,
        world.app.client_id,
        lambda: ado.token_for(ado.connections[world.connection_id]),
        authority=world.url,
        connection_verify=ca.bundle,
    )
    return SecretClient(vault.base_url, credential, verify_challenge_resource=False, connection_verify=ca.bundle)


def test_secret_client_reads_pages_and_values(client: SecretClient, vault: KeyVault, world: AzureWorld) -> None:
    vault.grant(world.app.client_id)
    for i in range(57):
        vault.add(f"s-{i:02d}", f"value {i}", tags={"n": str(i)})
    vault.add("off", "x", enabled=False)
    listed = {p.name: p for p in client.list_properties_of_secrets()}
    assert len(listed) == 58 and listed["off"].enabled is False and listed["s-07"].tags == {"n": "7"}
    pages = [r for r in vault.requests if r["path"] == "/secrets" and "Authorization" in r["headers"]]
    assert len(pages) == 3
    assert re.fullmatch(r"[A-Za-z0-9+/]+", pages[1]["args"]["$skiptoken"]) and pages[1]["args"]["maxresults"] == "25"
    secret = client.get_secret("S-41")  # names are case-insensitive
    assert (
        secret.value == "value 41"
        and secret.name == "s-41"
        and re.fullmatch(r"[0-9a-f]{32}", secret.properties.version or "")
    )
    with pytest.raises(ResourceNotFoundError) as missing:
        client.get_secret("nope")
    assert missing.value.error is not None and missing.value.error.code == "SecretNotFound"
    with pytest.raises(HttpResponseError) as disabled:
        client.get_secret("off")
    assert disabled.value.status_code == 403
    issued = [i for i in world.entra.issued if i["resource"] == "https://vault.azure.net"]
    assert issued and "xms_cc" in issued[0]["claims"]  # the SDK asked for a CAE-capable token after the challenge


def test_secret_client_follows_pages_shorter_than_maxresults(
    client: SecretClient, vault: KeyVault, world: AzureWorld
) -> None:
    vault.grant(world.app.client_id)
    vault.page_size = 7  # the service may serve fewer items than maxresults asks for
    for i in range(20):
        vault.add(f"p-{i:02d}", f"value {i}")
    assert sorted(p.name for p in client.list_properties_of_secrets()) == [f"p-{i:02d}" for i in range(20)]
    pages = [r for r in vault.requests if r["path"] == "/secrets" and "Authorization" in r["headers"]]
    assert len(pages) == 3


def test_secret_client_sees_rbac_and_firewall_refusals(
    client: SecretClient, vault: KeyVault, world: AzureWorld
) -> None:
    vault.add("a", "1")
    with pytest.raises(HttpResponseError) as rbac:
        client.get_secret("a")
    assert rbac.value.status_code == 403 and rbac.value.error is not None and rbac.value.error.code == "Forbidden"
    assert "ForbiddenByRbac" in rbac.value.response.text()
    vault.grant(world.app.client_id)
    vault.allowed_ips = {"203.0.113.7"}
    with pytest.raises(HttpResponseError) as firewall:
        client.get_secret("a")
    assert "Client address is not authorized" in str(firewall.value)


def test_secret_client_retries_429_after_retry_after(client: SecretClient, vault: KeyVault, world: AzureWorld) -> None:
    vault.grant(world.app.client_id)
    vault.add("a", "1")
    client.get_secret("a")
    vault.throttle_next(2, retry_after=0)
    assert client.get_secret("a").value == "1"
    statuses = len([r for r in vault.requests if r["path"].startswith("/secrets/a")])
    assert statuses == 1 + 1 + 2 + 1  # challenge, first get, two throttled, the retry that worked


def test_access_policy_vault_denies_missing_permission(
    client: SecretClient, vault: KeyVault, world: AzureWorld
) -> None:
    vault.rbac = False
    vault.access_policies[world.app.client_id] = {"get"}
    vault.add("a", "1")
    assert client.get_secret("a").value == "1"
    with pytest.raises(HttpResponseError) as denied:
        list(client.list_properties_of_secrets())
    assert "does not have secrets list permission" in str(denied.value)
