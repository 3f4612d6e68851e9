"""The OIDC token request against the Azure DevOps stand-in, and the pre-flight claims."""

from __future__ import annotations

import time

import pytest
from oidc_credentials.agent import AgentEnv
from oidc_credentials.errors import ConfigError, ExchangeError
from oidc_credentials.http import Http
from oidc_credentials.oidc import Claims, TokenSource, decode_claims, request_url

from tests.standins.ado import ADO_AUDIENCE, AzureDevOps
from tests.standins.server import LocalCA

CONN = "11111111-2222-4333-8444-555555555555"


def agent_env(ado: AzureDevOps, **extra: str) -> dict[str, str]:
    env = {
        "SYSTEM_COLLECTIONURI": ado.collection_uri,
        "SYSTEM_OIDCREQUESTURI": ado.oidc_request_uri,
        "ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN": ado.access_token,
    }
    env.update(extra)
    return env


def source(ado: AzureDevOps, ca: LocalCA, conn_id: str, sleeps: list[float] | None = None, **extra: str) -> TokenSource:
    env = agent_env(ado, **extra)
    http = Http(
        {"REQUESTS_CA_BUNDLE": ca.bundle}, sleep=(sleeps if sleeps is not None else []).append, jitter=lambda: 0.0
    )
    return TokenSource.from_agent(AgentEnv(env), conn_id, http)


def test_token_for_a_connection(ado: AzureDevOps, ca: LocalCA) -> None:
    conn = ado.add_connection("aws-prod")
    tokens = source(ado, ca, conn.id)
    token = tokens()
    claims = decode_claims(token)
    assert claims.iss == f"https://vstoken.dev.azure.com/{ado.org_id}"
    assert claims.sub == "sc://fabrikam/Payments/aws-prod"
    assert claims.aud == ADO_AUDIENCE
    assert claims.kid == ado.kid and claims.alg == "RS256"
    assert claims.issuer_kind.startswith("Azure DevOps")
    assert tokens.last_claims == claims
    sent = ado.requests[-1]
    assert sent["method"] == "POST"
    assert sent["args"] == {"api-version": "7.1", "serviceConnectionId": conn.id}
    assert sent["headers"]["Authorization"] == f"Bearer {ado.access_token}"
    assert sent["headers"]["Content-Type"] == "application/json"
    assert sent["headers"]["X-Tfs-Fedauthredirect"] == "Suppress"


def test_each_call_gets_a_fresh_token(ado: AzureDevOps, ca: LocalCA) -> None:
    conn = ado.add_connection("c")
    tokens = source(ado, ca, conn.id)
    assert tokens() != tokens()
    assert tokens.calls == 2


def test_transient_failures_are_retried(ado: AzureDevOps, ca: LocalCA) -> None:
    conn = ado.add_connection("c")
    ado.fail_next(2, 503)
    sleeps: list[float] = []
    assert source(ado, ca, conn.id, sleeps)()
    assert len(sleeps) == 2 and len(ado.requests) == 3


def test_throttling_honours_retry_after(ado: AzureDevOps, ca: LocalCA) -> None:
    conn = ado.add_connection("c")
    ado.fail_next(1, 429, headers={"Retry-After": "3"})
    sleeps: list[float] = []
    source(ado, ca, conn.id, sleeps)()
    assert sleeps == [3.0]


def test_not_referenced_connection(ado: AzureDevOps, ca: LocalCA) -> None:
    conn = ado.add_connection("hidden", referenced=False)
    with pytest.raises(ExchangeError, match="not referenced from this stage") as info:
        source(ado, ca, conn.id)()
    assert info.value.code == "NoExplicitReference"
    assert len(ado.requests) == 1  # 4xx: no retry


def test_rejected_access_token_with_suppress_header(ado: AzureDevOps, ca: LocalCA) -> None:
    conn = ado.add_connection("c")
    ado.access_token = "rotated"
    with pytest.raises(
        ExchangeError, match=r"rejected the job access token.*HTTP 401.*Allow scripts to access the OAuth token"
    ) as info:
        source(ado, ca, conn.id, ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN="stale")()
    assert info.value.code == "AccessTokenRejected"


def test_sign_in_redirect_is_explained(ado: AzureDevOps, ca: LocalCA) -> None:
    """Without the suppress header the service redirects to sign-in; we must not follow it."""
    conn = ado.add_connection("c")
    http = Http({"REQUESTS_CA_BUNDLE": ca.bundle}, sleep=lambda _s: None)
    tokens = TokenSource(
        url=f"{ado.oidc_request_uri}?api-version=7.1&serviceConnectionId={conn.id}",
        access_token="bad",
        connection_id=conn.id,
        http=http,
    )
    tokens._http.request = _without_suppress(http)  # type: ignore[method-assign]
    with pytest.raises(ExchangeError, match=r"HTTP 302, redirected to sign-in"):
        tokens()
    assert all("_signin" not in r["path"] for r in ado.requests)


def _without_suppress(http: Http):  # type: ignore[no-untyped-def]
    original = http.request

    def request(method, url, *, headers=None, **kwargs):  # type: ignore[no-untyped-def]
        headers = {k: v for k, v in (headers or {}).items() if k != "X-TFS-FedAuthRedirect"}
        return original(method, url, headers=headers, **kwargs)

    return request


def test_pipeline_token_instead_of_connection_is_refused(ado: AzureDevOps, ca: LocalCA) -> None:
    """A non-GUID id makes the real service return the pipeline's p:// token; never pass that on."""
    http = Http({"REQUESTS_CA_BUNDLE": ca.bundle}, sleep=lambda _s: None)
    tokens = TokenSource(
        url=f"{ado.oidc_request_uri}?api-version=7.1&serviceConnectionId=aws-prod",
        access_token=ado.access_token,
        connection_id="aws-prod",
        http=http,
    )
    with pytest.raises(
        ConfigError, match=r"returned the pipeline's own token \(subject p://fabrikam/Payments/deploy\)"
    ):
        tokens()


def test_missing_access_token(ado: AzureDevOps, ca: LocalCA) -> None:
    env = agent_env(ado)
    del env["ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN"]
    with pytest.raises(ConfigError, match="No job access token.*classic pipeline"):
        TokenSource.from_agent(AgentEnv(env), CONN, Http({}))


def test_answer_without_token(ado: AzureDevOps, ca: LocalCA) -> None:
    conn = ado.add_connection("c")
    ado.fail_next(1, 200, body='{"token": "eyJhbGciOiJSUzI1NiJ9.e30.sig-under-another-name"}')
    with pytest.raises(ExchangeError, match=r"HTTP 200 but without an oidcToken \(fields: token\)") as info:
        source(ado, ca, conn.id)()
    assert "sig-under-another-name" not in str(info.value)


def test_url_built_when_oidc_uri_missing() -> None:
    env = {
        "SYSTEM_COLLECTIONURI": "https://dev.azure.com/fabrikam/",
        "SYSTEM_TEAMPROJECTID": "p1",
        "SYSTEM_HOSTTYPE": "release",
        "SYSTEM_PLANID": "plan",
        "SYSTEM_JOBID": "job",
    }
    assert request_url(AgentEnv(env), CONN) == (
        "https://dev.azure.com/fabrikam/p1/_apis/distributedtask/hubs/release/plans/plan/jobs/job/oidctoken"
        f"?api-version=7.1&serviceConnectionId={CONN}"
    )


def test_url_build_names_what_is_missing() -> None:
    with pytest.raises(ConfigError, match="System.PlanId, System.JobId is missing"):
        request_url(
            AgentEnv(
                {
                    "SYSTEM_COLLECTIONURI": "https://dev.azure.com/x/",
                    "SYSTEM_TEAMPROJECTID": "p",
                    "SYSTEM_HOSTTYPE": "build",
                }
            ),
            CONN,
        )


@pytest.mark.parametrize(
    ("collection", "oidc", "allowed"),
    [
        ("https://dev.azure.com/fabrikam/", "https://dev.azure.com/fabrikam/p/_apis/x/oidctoken", True),
        ("https://fabrikam.visualstudio.com/", "https://fabrikam.visualstudio.com/p/_apis/x/oidctoken", True),
        # another organisation's host is another tenant: each collection URI to itself only
        ("https://fabrikam.visualstudio.com/", "https://dev.azure.com/fabrikam/p/_apis/x/oidctoken", False),
        ("https://dev.azure.com/fabrikam/", "https://fabrikam.visualstudio.com/p/_apis/x/oidctoken", False),
        ("https://fabrikam.visualstudio.com/", "https://evil.visualstudio.com/p/_apis/x/oidctoken", False),
        ("https://dev.azure.com/fabrikam/", "https://DEV.AZURE.COM./fabrikam/p/_apis/x/oidctoken", True),
        ("https://dev.azure.com/fabrikam/", "https://evil.example.com/fabrikam/p/oidctoken", False),
        ("https://dev.azure.com/fabrikam/", "http://dev.azure.com/fabrikam/p/oidctoken", False),
        ("https://tfs.corp.example/tfs/", "https://tfs.corp.example:8443/tfs/oidctoken", False),
        ("http://tfs.corp.example/tfs/", "http://tfs.corp.example/tfs/oidctoken", False),
        ("http://127.0.0.1:8080/org/", "http://127.0.0.1:8080/org/p/oidctoken", True),
    ],
)
def test_access_token_goes_only_to_the_collection_host(collection: str, oidc: str, allowed: bool) -> None:
    env = AgentEnv({"SYSTEM_COLLECTIONURI": collection, "SYSTEM_OIDCREQUESTURI": oidc})
    if allowed:
        assert request_url(env, CONN).startswith(oidc)
    else:
        with pytest.raises(ConfigError, match="Refusing to send the job access token"):
            request_url(env, CONN)


def test_not_in_a_pipeline() -> None:
    with pytest.raises(ConfigError, match="SYSTEM_COLLECTIONURI is not set"):
        request_url(AgentEnv({}), CONN)


def test_claims_description_never_holds_the_token(ado: AzureDevOps) -> None:
    conn = ado.add_connection("c")
    token = ado.token_for(conn)
    claims = decode_claims(token)
    text = "\n".join(claims.describe(time.time()))
    assert token not in text and claims.sub in text and "(in 29" in text


def test_entra_issuer_recognised(ado: AzureDevOps) -> None:
    conn = ado.add_connection("arm", issuer="entra", tenant_id="ff882432-09b0-437b-bd22-ca13c0037ded")
    claims = decode_claims(ado.token_for(conn))
    assert claims.issuer_kind == "Microsoft Entra issuer"
    assert claims.sub.startswith("/eid1/c/pub/t/MiSI_7AJe0O9IsoTwAN97Q/a/rISbSSETf0KqFyZ8ppdXmA/sc/")


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "e30.e30",  # two segments
        "e30.e30.sig.extra",
        "e30.W10.sig",  # the payload is a JSON array, not an object
        "e30.bm90IGpzb24.sig",  # the payload is not JSON
        "e30.gA.sig",  # the payload is not UTF-8
        "W10.e30.sig",  # the header is not an object
    ],
)
def test_garbage_token_is_an_exchange_error(token: str) -> None:
    with pytest.raises(ExchangeError, match="not a valid JWT") as caught:
        decode_claims(token)
    assert token not in str(caught.value)


def test_claims_are_read_without_checking_the_signature(ado: AzureDevOps) -> None:
    conn = ado.add_connection("aws-prod")
    head, body, _sig = ado.token_for(conn).split(".")
    claims = decode_claims(f"{head}.{body}.tampered")
    assert claims.sub == ado.subject(conn) and claims.alg == "RS256" and claims.kid


def test_claims_issuer_id() -> None:
    assert (
        Claims(iss="https://vstoken.dev.azure.com/org-1/", sub="s", aud="a", exp=0).issuer_id
        == "vstoken.dev.azure.com/org-1"
    )


@pytest.mark.parametrize("exp", [10**30, -5, "soon", 1e300])
def test_a_time_claim_that_is_no_date_gets_a_precise_message(exp: object) -> None:
    import jwt

    token = jwt.encode({"iss": "https://x", "sub": "s", "aud": "a", "exp": exp}, "k" * 32, algorithm="HS256")
    with pytest.raises(ExchangeError, match="'exp' claim is not a date in seconds from 1970 to 9999"):
        decode_claims(token)


@pytest.mark.parametrize("status", [301, 307, 308])
def test_a_redirect_is_not_called_a_sign_in(status: int) -> None:
    from oidc_credentials.http import Response
    from oidc_credentials.oidc import _explain

    resp = Response(status, "https://dev.azure.com/x", "", {"Location": "https://elsewhere.example/new/oidctoken"})
    error = _explain(resp, CONN, "")
    assert "sign-in" not in error.message and error.code == "Redirected"
    assert f"with a redirect (HTTP {status} to https://elsewhere.example/new/oidctoken)" in error.message
    signin = Response(
        302, "https://dev.azure.com/x", "", {"Location": "https://spsprodweu5.vssps.visualstudio.com/_signin"}
    )
    assert "redirected to sign-in" in _explain(signin, CONN, "").message


def test_the_access_token_endpoint_decides_over_the_collection_variable() -> None:
    base = {
        "ENDPOINT_URL_SYSTEMVSSCONNECTION": "https://dev.azure.com/fabrikam/",
        "SYSTEM_OIDCREQUESTURI": "https://evil.visualstudio.com/p/_apis/x/oidctoken",
        "SYSTEM_COLLECTIONURI": "https://evil.visualstudio.com/",
    }
    with pytest.raises(ConfigError, match="Refusing to send the job access token.*SystemVssConnection"):
        request_url(AgentEnv(base), CONN)
    good = dict(base, SYSTEM_COLLECTIONURI="https://dev.azure.com/fabrikam/")
    good["SYSTEM_OIDCREQUESTURI"] = "https://dev.azure.com/fabrikam/p/_apis/x/oidctoken"
    assert request_url(AgentEnv(good), CONN).startswith("https://dev.azure.com/fabrikam/p/_apis/x/oidctoken?")
