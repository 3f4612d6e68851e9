"""The verifier against the Azure DevOps stand-in: discovery, keys and tokens over HTTPS, every attack refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from oidc_credentials.claims import ENTRA_BASE, VSTOKEN_BASE, IssuerShape, TokenKind, vstoken_issuer
from oidc_credentials.verify import (
    AUDIT,
    FetchError,
    HttpsFetcher,
    ReplayCache,
    Rule,
    TokenRejected,
    Verifier,
    token_sha256,
)

from tests.standins.ado import ADO_AUDIENCE, AzureDevOps, SigningKey
from tests.standins.server import LocalCA

TENANT = "ff882432-09b0-437b-bd22-ca13c0037ded"

MakeVerifier = Callable[..., Verifier]


@pytest.fixture
def events() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def make(ado: AzureDevOps, ca: LocalCA, events: list[dict[str, Any]]) -> MakeVerifier:
    """A verifier for the stand-in's organisation, fetching its discovery and keys from the stand-in."""

    def build(**options: Any) -> Verifier:
        settings: dict[str, Any] = {
            "organization_ids": [ado.org_id],
            "kind": "service-connection",
            "ca_bundle": ca.bundle,
            "metadata_urls": {VSTOKEN_BASE: ado.base_url, ENTRA_BASE: ado.base_url},
            "on_audit": events.append,
        }
        settings.update(options)
        return Verifier(**settings)

    return build


def refusal(verifier: Verifier, token: str) -> Any:
    with pytest.raises(TokenRejected) as caught:
        verifier.verify(token)
    return caught.value.refusal


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "==")),
        json.loads(base64.urlsafe_b64decode(payload + "==")),
        signature,
    )


# -- valid tokens of both kinds and both issuer shapes ----------------------------------------------------------
def test_service_connection_token_of_the_azure_devops_issuer(ado: AzureDevOps, make: MakeVerifier) -> None:
    conn = ado.add_connection("aws-prod")
    claims = make().verify(ado.token_for(conn))
    assert claims.kind is TokenKind.SERVICE_CONNECTION and claims.issuer_shape is IssuerShape.AZURE_DEVOPS
    assert claims.issuer == f"https://vstoken.dev.azure.com/{ado.org_id}" and claims.organization_id == ado.org_id
    assert claims.subject == "sc://fabrikam/Payments/aws-prod"
    assert (claims.organization_name, claims.project_name, claims.connection_name) == (
        "fabrikam",
        "Payments",
        "aws-prod",
    )
    assert claims.audience == (ADO_AUDIENCE,) and claims.expires_at - claims.issued_at == 300
    assert uuid.UUID(claims.jti) and claims.pipeline_name == "" and claims.project_id == ""


def test_pipeline_token_carries_ids(ado: AzureDevOps, make: MakeVerifier) -> None:
    claims = make(kind="pipeline").verify(ado.pipeline_token())
    assert claims.kind is TokenKind.PIPELINE and claims.subject == "p://fabrikam/Payments/deploy"
    assert (claims.project_id, claims.definition_id, claims.run_id) == (ado.project_id, "42", "1234")
    assert claims.repository_ref == "refs/heads/main" and claims.pipeline_name == "deploy"
    assert claims.repository_uri.endswith("/_git/deploy") and claims.organization_id == ado.org_id


def test_service_connection_token_of_the_entra_issuer(ado: AzureDevOps, make: MakeVerifier) -> None:
    conn = ado.add_connection("azure-prod", issuer="entra", tenant_id=TENANT)
    token = ado.token_for(conn)
    claims = make(tenant_ids=[TENANT]).verify(token)
    assert (
        claims.issuer_shape is IssuerShape.ENTRA and claims.issuer == f"https://login.microsoftonline.com/{TENANT}/v2.0"
    )
    assert (claims.tenant_id, claims.organization_id, claims.connection_id) == (TENANT, ado.org_id, conn.id)
    assert claims.kind is TokenKind.SERVICE_CONNECTION and claims.audience == ("fb60f99c-7a34-4190-8149-302f77469936",)
    # Without the tenant configured, the Entra issuer is not trusted.
    refused = refusal(make(), token)
    assert (refused.code, refused.claim) == ("issuer", "iss") and "tenant not configured" in refused.detail


def test_entra_token_of_another_organisation_is_refused(ado: AzureDevOps, make: MakeVerifier) -> None:
    conn = ado.add_connection("azure-prod", issuer="entra", tenant_id=TENANT)
    other = ado.add_organization("contoso")
    refused = refusal(make(organization_ids=[other], tenant_ids=[TENANT]), ado.token_for(conn))
    assert (refused.code, refused.claim, refused.presented) == (
        "organization",
        "sub (organisation id)",
        repr(ado.org_id),
    )


# -- forgeries --------------------------------------------------------------------------------------------------
def test_tampered_payload(ado: AzureDevOps, make: MakeVerifier) -> None:
    token = ado.token_for(ado.add_connection("aws-prod"))
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "sc://fabrikam/Payments/admin"
    forged = f"{header}.{b64(json.dumps(claims).encode())}.{signature}"
    refused = refusal(make(), forged)
    assert (refused.code, refused.claim) == ("signature", "signature")
    assert refused.presented == "a signature that does not verify"


def test_another_key_with_the_same_kid(ado: AzureDevOps, make: MakeVerifier) -> None:
    impostor = SigningKey()
    impostor.kid = ado.kid
    token = ado.mint({"iss": ado.issuer, "aud": ADO_AUDIENCE, "sub": "sc://fabrikam/Payments/x"}, key=impostor)
    assert parts(token)[0]["kid"] == ado.kid
    assert refusal(make(), token).code == "signature"


def test_alg_none(ado: AzureDevOps, make: MakeVerifier) -> None:
    _, claims, _ = parts(ado.token_for(ado.add_connection("c")))
    token = (
        f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT', 'kid': ado.kid}).encode())}.{b64(json.dumps(claims).encode())}."
    )
    assert refusal(make(), token).code == "malformed"  # an empty signature is not even a JWS
    token += "AAAA"
    refused = refusal(make(), token)
    assert (refused.code, refused.claim, refused.expected, refused.presented) == (
        "algorithm",
        "alg",
        "'RS256'",
        "'none'",
    )


def test_hs256_keyed_with_the_public_key(ado: AzureDevOps, make: MakeVerifier) -> None:
    """The classic confusion: HMAC with the (public) PEM as the secret. PyJWT would refuse to make it; we forge it."""
    _, claims, _ = parts(ado.token_for(ado.add_connection("c")))
    signing_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': ado.kid}).encode())}.{b64(json.dumps(claims).encode())}"
    )
    mac = hmac.new(ado.public_pem().encode(), signing_input.encode(), hashlib.sha256).digest()
    refused = refusal(make(), f"{signing_input}.{b64(mac)}")
    assert (refused.code, refused.claim, refused.presented) == ("algorithm", "alg", "'HS256'")


def test_another_organisations_token_with_a_valid_signature(ado: AzureDevOps, make: MakeVerifier) -> None:
    other = ado.add_organization("contoso")
    token = ado.mint({"iss": vstoken_issuer(other), "aud": ADO_AUDIENCE, "sub": "sc://contoso/Web/aws-prod"})
    # The signature is genuine: the key set is shared by every organisation.
    assert make(organization_ids=[other]).verify(token).organization_id == other
    refused = refusal(make(), token)
    assert (refused.code, refused.claim) == ("issuer", "iss")
    assert refused.expected == repr(ado.issuer) and refused.presented == repr(vstoken_issuer(other))
    assert "another organisation" in refused.detail


def test_pipeline_token_whose_org_id_disagrees_with_its_issuer(ado: AzureDevOps, make: MakeVerifier) -> None:
    refused = refusal(make(kind="pipeline"), ado.pipeline_token(org_id=str(uuid.uuid4())))
    assert (refused.code, refused.claim, refused.expected) == ("organization", "org_id", repr(ado.org_id))


def test_wrong_audience(ado: AzureDevOps, make: MakeVerifier) -> None:
    token = ado.mint({"iss": ado.issuer, "aud": "api://Other", "sub": "sc://fabrikam/Payments/c"})
    refused = refusal(make(), token)
    assert (refused.code, refused.claim, refused.expected, refused.presented) == (
        "audience",
        "aud",
        repr(ADO_AUDIENCE),
        "'api://Other'",
    )
    assert make(audiences="api://Other").verify(token).audience == ("api://Other",)


def test_expired_and_not_yet_valid(ado: AzureDevOps, make: MakeVerifier) -> None:
    now = int(time.time())
    base = {"iss": ado.issuer, "aud": ADO_AUDIENCE, "sub": "sc://fabrikam/Payments/c"}
    expired = ado.mint(base, now=now - 400, lifetime=300)  # expired 100 s ago: beyond the 60 s skew
    refused = refusal(make(), expired)
    assert (refused.code, refused.claim) == ("expired", "exp") and str(now - 100) in refused.presented
    assert make().verify(ado.mint(base, now=now - 330, lifetime=300))  # expired 30 s ago: within the skew
    early = ado.mint({**base, "nbf": now + 120})
    refused = refusal(make(), early)
    assert (refused.code, refused.claim) == ("not_yet_valid", "nbf") and str(now + 120) in refused.presented
    assert make().verify(ado.mint({**base, "nbf": now + 30}))
    assert refusal(make(leeway=0), ado.mint({**base, "nbf": now + 30})).code == "not_yet_valid"


@pytest.mark.parametrize("exp", [10**30, "tomorrow", True, None, float("nan")])
def test_exp_must_be_a_sane_number(ado: AzureDevOps, make: MakeVerifier, exp: Any) -> None:
    token = ado.mint({"iss": ado.issuer, "aud": ADO_AUDIENCE, "sub": "sc://fabrikam/Payments/c", "exp": exp})
    refused = refusal(make(), token)
    assert (refused.code, refused.claim) == ("malformed", "exp")


def test_subject_differing_only_in_case(ado: AzureDevOps, make: MakeVerifier) -> None:
    token = ado.token_for(ado.add_connection("aws-prod"))
    assert make(subject="sc://fabrikam/Payments/aws-prod").verify(token)
    refused = refusal(make(subject="sc://fabrikam/payments/aws-prod"), token)
    assert (refused.code, refused.claim, refused.presented) == ("subject", "sub", "'sc://fabrikam/Payments/aws-prod'")
    assert refused.expected == "'sc://fabrikam/payments/aws-prod'" and "differs only in case" in refused.detail


def test_pipeline_token_where_a_service_connection_token_is_required_and_the_reverse(
    ado: AzureDevOps, make: MakeVerifier
) -> None:
    refused = refusal(make(kind="service-connection"), ado.pipeline_token())
    assert (refused.code, refused.claim, refused.presented) == ("kind", "sub", "'p://fabrikam/Payments/deploy'")
    assert refused.expected == "a service-connection token (sc://…)"
    refused = refusal(make(kind="pipeline"), ado.token_for(ado.add_connection("c")))
    assert (refused.code, refused.expected) == ("kind", "a pipeline token (p://…)")
    both = make(kind=("pipeline", "service-connection"))  # only when asked for, by name
    assert both.verify(ado.pipeline_token()).kind is TokenKind.PIPELINE


def test_a_kind_is_required() -> None:
    with pytest.raises(TypeError):
        Verifier(organization_ids=[str(uuid.uuid4())])  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="Say which tokens to accept"):
        Verifier(organization_ids=[str(uuid.uuid4())], kind=())
    with pytest.raises(ValueError, match="Name at least one organisation id"):
        Verifier(organization_ids=[], kind="pipeline")
    with pytest.raises(ValueError, match="'fabrikam' is not a GUID"):
        Verifier(organization_ids=["fabrikam"], kind="pipeline")


@pytest.mark.parametrize(
    ("mangle", "code", "claim"),
    [
        (lambda t: "not a token", "malformed", "token"),
        (lambda t: t + "." + t, "malformed", "token"),
        (lambda t: t.replace(".", "=.", 1), "malformed", "token"),
        (lambda t: "x" * 20000, "malformed", "token"),
    ],
)
def test_malformed_tokens(
    ado: AzureDevOps, make: MakeVerifier, mangle: Callable[[str], str], code: str, claim: str
) -> None:
    refused = refusal(make(), mangle(ado.token_for(ado.add_connection("c"))))
    assert (refused.code, refused.claim) == (code, claim)
    assert "eyJ" not in refused.message  # never echoes the token


def test_strict_header_and_payload(ado: AzureDevOps, make: MakeVerifier) -> None:
    def signed(header: dict[str, Any], payload_json: str) -> str:
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(payload_json.encode())}"
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        signature = ado.keys[0].private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64(signature)}"

    good = {"alg": "RS256", "typ": "JWT", "kid": ado.kid}
    now = int(time.time())
    body = f'"iss": "{ado.issuer}", "aud": "{ADO_AUDIENCE}", "exp": {now + 300}, "jti": "j"'
    assert make().verify(signed(good, '{"sub": "sc://fabrikam/Payments/c", ' + body + "}"))
    duplicate = '{"sub": "sc://fabrikam/Payments/c", "sub": "sc://fabrikam/Payments/admin", ' + body + "}"
    refused = refusal(make(), signed(good, duplicate))
    assert (refused.code, refused.claim) == ("malformed", "payload") and "duplicate name 'sub'" in refused.presented
    refused = refusal(make(), signed({**good, "crit": ["exp"]}, '{"sub": "sc://fabrikam/Payments/c", ' + body + "}"))
    assert (refused.code, refused.claim) == ("header", "crit")
    refused = refusal(make(), signed({"alg": "RS256"}, '{"sub": "sc://fabrikam/Payments/c", ' + body + "}"))
    assert (refused.code, refused.claim) == ("header", "kid")
    refused = refusal(make(), signed(good, "[1, 2]"))
    assert (refused.code, refused.claim) == ("malformed", "payload")


# -- keys: discovery, rotation, rate limits, threads ------------------------------------------------------------
def test_unknown_kid_then_key_rotation(ado: AzureDevOps, make: MakeVerifier) -> None:
    verifier = make(refetch_interval=0.5)
    conn = ado.add_connection("c")
    assert verifier.verify(ado.token_for(conn))
    assert ado.fetches() == 1
    ado.rotate_key()
    rotated = ado.token_for(conn)
    # Within refetch_interval of the last fetch an unknown kid does not make it fetch again ...
    assert refusal(verifier, rotated).code == "key"
    assert ado.fetches() == 1
    time.sleep(0.6)
    assert verifier.verify(rotated)  # ... after it, the unknown kid makes it fetch the key set again
    assert ado.fetches() == 2
    for _ in range(50):
        assert verifier.verify(ado.token_for(conn))
    assert ado.fetches() == 2

    # A kid nobody publishes: one refetch at most per interval, however many tokens carry it.
    stranger = SigningKey()
    forged = [
        ado.mint({"iss": ado.issuer, "aud": ADO_AUDIENCE, "sub": "sc://fabrikam/Payments/c"}, key=stranger)
        for _ in range(20)
    ]
    time.sleep(0.6)
    for token in forged:
        refused = refusal(verifier, token)
        assert (refused.code, refused.claim, refused.presented) == ("key", "kid", repr(stranger.kid))
    assert ado.fetches() == 3
    # The discovery document was read once: the key set is shared, the issuer's document cached.
    assert ado.fetches(f"/{ado.org_id}/.well-known/openid-configuration") == 1


def test_one_key_set_serves_every_organisation(ado: AzureDevOps, make: MakeVerifier) -> None:
    other = ado.add_organization("contoso")
    verifier = make(organization_ids=[ado.org_id, other])
    assert verifier.verify(ado.token_for(ado.add_connection("c")))
    assert verifier.verify(ado.mint({"iss": vstoken_issuer(other), "aud": ADO_AUDIENCE, "sub": "sc://contoso/W/c"}))
    assert ado.fetches() == 1


def test_cold_cache_under_concurrency_fetches_once(ado: AzureDevOps, make: MakeVerifier) -> None:
    verifier = make()
    conn = ado.add_connection("c")
    tokens = [ado.token_for(conn) for _ in range(16)]
    results: list[Any] = []
    barrier = threading.Barrier(16)

    def run(token: str) -> None:
        barrier.wait()
        results.append(verifier.check(token))

    threads = [threading.Thread(target=run, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 16 and all(d.ok for d in results)
    assert ado.fetches() == 1 and ado.fetches(f"/{ado.org_id}/.well-known/openid-configuration") == 1


def test_keys_are_fetched_over_https_only(ado: AzureDevOps, make: MakeVerifier) -> None:
    plain = make(metadata_urls={VSTOKEN_BASE: ado.base_url.replace("https://", "http://")})
    refused = refusal(plain, ado.token_for(ado.add_connection("c")))
    assert refused.code == "keys_unavailable" and "only https URLs are fetched" in refused.detail


def test_discovery_must_name_the_issuer_asked_for(ado: AzureDevOps, make: MakeVerifier) -> None:
    other = ado.add_organization("contoso")
    # Ask the stand-in for the other organisation's document in place of ours.
    verifier = make(fetch=_redirecting(make(), f"/{ado.org_id}/", f"/{other}/"))
    refused = refusal(verifier, ado.token_for(ado.add_connection("c")))
    assert refused.code == "keys_unavailable" and f"names issuer {vstoken_issuer(other)!r}" in refused.detail


def _redirecting(verifier: Verifier, old: str, new: str) -> Callable[[str], Any]:
    fetch = verifier._fetch

    def get(url: str) -> Any:
        return fetch(url.replace(old, new))

    return get


def test_stale_keys_serve_while_the_key_set_is_unreachable(ado: AzureDevOps, make: MakeVerifier, ca: LocalCA) -> None:
    clock = [time.time()]
    https = HttpsFetcher(ca_bundle=ca.bundle)
    down = [False]
    calls: list[str] = []

    def fetch(url: str) -> Any:
        calls.append(url)
        if down[0]:
            raise FetchError(f"GET {url} failed: ConnectionError")
        return https(url)

    verifier = make(fetch=fetch, clock=lambda: clock[0], jwks_ttl=60, discovery_ttl=60, refetch_interval=5)
    claims = {"iss": ado.issuer, "aud": ADO_AUDIENCE, "sub": "sc://fabrikam/Payments/c"}
    assert verifier.verify(ado.mint(claims, now=int(clock[0])))
    assert len(calls) == 2  # discovery, then the key set
    down[0] = True
    clock[0] += 120  # past both TTLs: the refreshes fail, the cached document and keys still serve
    assert verifier.verify(ado.mint(claims, now=int(clock[0])))
    assert len(calls) == 4
    assert verifier.verify(ado.mint(claims, now=int(clock[0])))
    assert len(calls) == 4  # failed refreshes are rate-limited too
    clock[0] += 90000  # past max_stale: refuse rather than trust day-old keys forever
    refused = refusal(verifier, ado.mint(claims, now=int(clock[0])))
    assert refused.code == "keys_unavailable" and "ConnectionError" in refused.detail
    down[0] = False
    clock[0] += 10
    assert verifier.verify(ado.mint(claims, now=int(clock[0])))  # and it recovers when the service does


# -- replay -------------------------------------------------------------------------------------------------------
def test_replayed_jti_with_the_replay_cache_on(ado: AzureDevOps, make: MakeVerifier) -> None:
    token = ado.token_for(ado.add_connection("c"))
    plain = make()
    assert plain.verify(token) and plain.verify(token)  # off by default: a token is valid until it expires
    once = make(replay_cache=ReplayCache())
    jti = once.verify(token).jti
    refused = refusal(once, token)
    assert (refused.code, refused.claim, refused.presented) == ("replay", "jti", repr(jti))
    assert "already used" in refused.detail
    assert once.verify(ado.token_for(ado.add_connection("d")))  # another token is fine


def test_replay_cache_forgets_expired_tokens_and_refuses_when_full() -> None:
    cache = ReplayCache(max_entries=2)
    assert cache.record("i", "a", 100, 50) == ReplayCache.NEW
    assert cache.record("i", "a", 100, 60) == ReplayCache.REPLAY
    assert cache.record("i", "b", 200, 60) == ReplayCache.NEW
    assert cache.record("i", "c", 200, 60) == ReplayCache.FULL  # never forget a live token to make room
    assert cache.record("i", "c", 200, 150) == ReplayCache.NEW  # "a" expired and went
    assert len(cache) == 2


def test_refused_tokens_do_not_burn_their_jti(ado: AzureDevOps, make: MakeVerifier) -> None:
    token = ado.token_for(ado.add_connection("aws-prod"))
    cache = ReplayCache()
    assert refusal(make(replay_cache=cache, subject="sc://fabrikam/Payments/other"), token).code == "subject"
    assert make(replay_cache=cache).verify(token)


# -- rules, audit and enforce ------------------------------------------------------------------------------------
def test_rules_matching_and_not_matching_in_enforce_mode(
    ado: AzureDevOps, make: MakeVerifier, events: list[dict[str, Any]]
) -> None:
    main = Rule.build(
        "pipeline",
        name="deploy from main",
        project_id=ado.project_id,
        definition_id="42",
        repository_ref="refs/heads/main",
    )
    verifier = make(kind="pipeline", rules=[main])
    assert verifier.verify(ado.pipeline_token()).definition_id == "42"
    assert events == []
    feature = ado.pipeline_token(rpo_ref="refs/heads/feature")
    refused = refusal(verifier, feature)
    assert (refused.code, refused.claim, refused.presented) == ("rule", "rpo_ref", "'refs/heads/feature'")
    assert refused.expected == "'refs/heads/main' (rule 'deploy from main')"
    [event] = events
    assert event["outcome"] == "refused" and event["mode"] == "enforce" and event["claim"] == "rpo_ref"
    assert event["token_sha256"] == hashlib.sha256(feature.encode()).hexdigest() == token_sha256(feature)
    assert feature not in json.dumps(event) and feature.split(".")[2] not in json.dumps(event)


def test_rules_in_audit_mode_let_the_token_through_and_record_it(
    ado: AzureDevOps, make: MakeVerifier, events: list[dict[str, Any]]
) -> None:
    main = Rule.build("pipeline", project_id=ado.project_id, repository_ref="refs/heads/main")
    verifier = make(kind="pipeline", rules=[main], mode=AUDIT)
    feature = ado.pipeline_token(rpo_ref="refs/heads/feature")
    decision = verifier.check(feature)
    assert decision.allowed and not decision.ok and decision.refusal is not None
    assert decision.refusal.claim == "rpo_ref" and decision.claims is not None
    assert verifier.verify(feature).repository_ref == "refs/heads/feature"  # audit: through, with its claims
    assert [e["outcome"] for e in events] == ["allowed (audit: would have been refused)"] * 2
    assert events[0]["token_sha256"] == token_sha256(feature) and events[0]["sub"] == "p://fabrikam/Payments/deploy"
    assert all(feature not in json.dumps(e) for e in events)
    events.clear()
    assert verifier.check(ado.pipeline_token()).ok and events == []  # matching: nothing to report

    # Audit relaxes policy, not authenticity: a forged token has no claims to hand back.
    other_org = ado.mint({**ado.pipeline_claims(), "iss": vstoken_issuer(ado.add_organization("x"))})
    decision = verifier.check(other_org)
    assert decision.allowed and decision.claims is None and decision.refusal is not None
    assert refusal(verifier, other_org).code == "issuer"


def test_the_closest_rule_gives_the_reason(ado: AzureDevOps, make: MakeVerifier) -> None:
    rules = [
        Rule.build("pipeline", name="other project", project_id=str(uuid.uuid4()), definition_id="7"),
        Rule.build(
            "pipeline",
            name="release",
            project_id=ado.project_id,
            definition_id="42",
            repository_ref="refs/heads/release",
        ),
    ]
    refused = refusal(make(kind="pipeline", rules=rules), ado.pipeline_token())
    assert (refused.claim, refused.expected) == ("rpo_ref", "'refs/heads/release' (rule 'release')")


def test_unsafe_regex_is_anchored(ado: AzureDevOps, make: MakeVerifier) -> None:
    rule = Rule.build(
        "pipeline", project_id=ado.project_id, unsafe_regex={"repository_ref": r"refs/heads/release/[0-9]+"}
    )
    verifier = make(kind="pipeline", rules=[rule])
    assert verifier.verify(ado.pipeline_token(rpo_ref="refs/heads/release/12"))
    for ref in ("refs/heads/release/12-evil", "x/refs/heads/release/12", "refs/heads/release/"):
        refused = refusal(verifier, ado.pipeline_token(rpo_ref=ref))
        assert refused.claim == "rpo_ref" and "unsafe_regex" in refused.expected


def test_connection_rules(ado: AzureDevOps, make: MakeVerifier) -> None:
    rule = Rule.build("service-connection", project_name="Payments", connection_name="aws-prod")
    verifier = make(rules=[rule])
    assert verifier.verify(ado.token_for(ado.add_connection("aws-prod")))
    refused = refusal(verifier, ado.token_for(ado.add_connection("AWS-prod")))
    assert (refused.claim, refused.presented, refused.detail) == (
        "sub (connection name)",
        "'AWS-prod'",
        "differs only in case",
    )


def test_rules_that_would_not_do_what_they_say_are_refused() -> None:
    from oidc_credentials.verify import PolicyError

    with pytest.raises(PolicyError, match="names no field, so it would allow every pipeline token"):
        Rule.build("pipeline")
    with pytest.raises(PolicyError, match="'connection_name' is not a field of pipeline tokens"):
        Rule.build("pipeline", connection_name="x")
    with pytest.raises(PolicyError, match="matches an empty value"):
        Rule.build("pipeline", unsafe_regex={"repository_ref": ".*"})
    with pytest.raises(PolicyError, match="does not compile"):
        Rule.build("pipeline", unsafe_regex={"repository_ref": ")("})
    assert Rule.build("pipeline", project_name="Payments").warnings() == [
        "a rule matches project_name, a name that can be renamed or registered again; pipeline tokens also carry "
        "prj_id: prefer project_id"
    ]
    assert Rule.build("pipeline", project_name="P", project_id=str(uuid.uuid4())).warnings() == []


def test_keys_of_one_issuer_shape_do_not_verify_the_other(ado: AzureDevOps, make: MakeVerifier) -> None:
    """An Entra-shaped token signed with the Azure DevOps key: the Entra key set does not hold that key."""
    conn = ado.add_connection("azure-prod", issuer="entra", tenant_id=TENANT)
    _, claims, _ = parts(ado.token_for(conn))
    refused = refusal(make(tenant_ids=[TENANT]), ado.mint(claims, key=ado.keys[0]))
    assert (refused.code, refused.claim, refused.presented) == ("key", "kid", repr(ado.kid))


def test_fetcher_refuses_redirects_and_oversized_answers(ca: LocalCA) -> None:
    from werkzeug.wrappers import Response

    from tests.standins.server import Server

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"] == "/moved":
            response = Response("", 302, {"Location": "https://evil.example/jwks"})
        else:
            response = Response(json.dumps({"keys": ["x" * 2000]}), 200, content_type="application/json")
        return response(environ, start_response)

    with Server(app, ca=ca) as server:
        fetch = HttpsFetcher(ca_bundle=ca.bundle, max_bytes=1000)
        with pytest.raises(FetchError, match="answered HTTP 302"):
            fetch(f"{server.url}/moved")
        with pytest.raises(FetchError, match="more than 1000 bytes"):
            fetch(f"{server.url}/big")
        with pytest.raises(FetchError, match="only https URLs are fetched"):
            fetch(server.url.replace("https", "http") + "/big")
        assert HttpsFetcher(ca_bundle=ca.bundle)(f"{server.url}/big") == {"keys": ["x" * 2000]}


def test_issued_in_the_future(ado: AzureDevOps, make: MakeVerifier) -> None:
    future = ado.mint(
        {"iss": ado.issuer, "aud": ADO_AUDIENCE, "sub": "sc://fabrikam/Payments/c"}, now=int(time.time()) + 900
    )
    refused = refusal(make(), future)
    assert (refused.code, refused.claim, refused.detail) == ("not_yet_valid", "iat", "issued in the future")
