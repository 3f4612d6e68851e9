"""The token verifier: verifications per second on one core with a warm key cache, and key-set fetches.

Three loops over the same pipeline tokens, interleaved round by round in one process pinned to one core:

- ``Verifier.verify``: every check (form, pinned issuer, RS256, aud, exp/nbf, kind, org_id, subject);
- plain ``jwt.decode`` with the same checks (key object resolved once, as a PyJWKClient cache would);
- the floor: the bare RSA-2048 PKCS#1 v1.5 verification through ``cryptography``.

Then a fresh verifier takes 10,000 verifications across one key rotation (virtual time: one request every
10 ms), and the Azure DevOps stand-in counts the key-set fetches. Targets (issue #16): at least 15,000/s,
2 fetches.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from oidc_credentials.claims import VSTOKEN_BASE
from oidc_credentials.verify import Verifier

from bench.suite import Case
from tests.standins.ado import ADO_AUDIENCE, AzureDevOps, SigningKey
from tests.standins.server import LocalCA, Server

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
TOKENS = 2000
TARGET = 15_000


def _pin_to_one_core() -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return f"pinned to core {core}"


def _rate(loop: Callable[[], None], count: int) -> float:
    start = time.perf_counter()
    loop()
    return count / (time.perf_counter() - start)


def measure() -> dict[str, Any]:
    """The three loops' rates per round, and the key-set fetches across one rotation."""
    pinned = _pin_to_one_core()
    ca = LocalCA()
    ado = AzureDevOps()
    with Server(ado, ca=ca) as server:
        ado.base_url = server.url
        options = {"ca_bundle": ca.bundle, "metadata_urls": {VSTOKEN_BASE: server.url}}
        subject = "p://fabrikam/Payments/deploy"
        tokens = [ado.pipeline_token() for _ in range(TOKENS)]
        verifier = Verifier(organization_ids=[ado.org_id], kind="pipeline", subject=subject, **options)
        verifier.verify(tokens[0])  # warm: discovery and keys fetched, key parsed

        key = jwt.PyJWK(ado.jwks()["keys"][0]).key
        org_id = ado.org_id

        def ours() -> None:
            for token in tokens:
                verifier.verify(token)

        def pyjwt() -> None:
            for token in tokens:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=["RS256"],
                    audience=ADO_AUDIENCE,
                    issuer=ado.issuer,
                    leeway=60,
                    options={"require": ["exp", "iss", "aud", "sub"]},
                )
                if claims["sub"] != subject or claims["org_id"] != org_id:
                    raise SystemExit("pyjwt baseline: claims differ")

        signed = []
        for token in tokens:
            signing_input, _, signature = token.rpartition(".")
            signed.append((jwt.utils.base64url_decode(signature), signing_input.encode()))
        pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()

        def floor() -> None:
            for signature, message in signed:
                key.verify(signature, message, pkcs1, sha256)

        rates: dict[str, list[float]] = {"verifier": [], "pyjwt": [], "floor": []}
        for _ in range(ROUNDS):
            rates["verifier"].append(_rate(ours, TOKENS))
            rates["pyjwt"].append(_rate(pyjwt, TOKENS))
            rates["floor"].append(_rate(floor, TOKENS))

        # 10,000 verifications across one key rotation, on a fresh verifier.
        fetches_before, discovery_before = ado.fetches(), ado.fetches(f"/{ado.org_id}/.well-known/openid-configuration")
        clock = [time.time()]
        fresh = Verifier(
            organization_ids=[ado.org_id], kind="pipeline", subject=subject, clock=lambda: clock[0], **options
        )
        old = tokens[:1000]
        next_key = SigningKey()  # signs the second half; published only when the rotation happens
        new = [ado.mint(ado.pipeline_claims(), key=next_key) for _ in range(1000)]
        refused = 0
        for i in range(10_000):
            clock[0] += 0.010
            if i == 5000:
                ado.rotate_key(next_key)
            token = old[i % 1000] if i < 5000 else new[i % 1000]
            refused += not fresh.check(token).ok
        jwks = ado.fetches() - fetches_before
        discovery = ado.fetches(f"/{ado.org_id}/.well-known/openid-configuration") - discovery_before
    return {"rates": rates, "jwks": jwks, "discovery": discovery, "refused": refused, "pinned": pinned}


def run() -> list[Case]:
    """Time per verification (µs) against plain jwt.decode and the RSA floor, and the key-set fetches."""
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        f = measure()
    finally:
        if cores is not None:
            os.sched_setaffinity(0, cores)
    seconds = {name: [TOKENS / rate for rate in rates] for name, rates in f["rates"].items()}  # per round
    detail = {
        "pinned": f["pinned"],
        "tokens_per_round": TOKENS,
        "per_second_median": {name: round(statistics.median(rates)) for name, rates in f["rates"].items()},
    }
    return [
        Case(
            f"verify: {TOKENS:,} verifications on one core, warm key cache, vs plain jwt.decode",
            seconds["verifier"],
            "jwt.decode, same checks",
            seconds["pyjwt"],
            target=round(TOKENS * 1000 / TARGET, 1),
            target_on="median",
            note=f"target: at least {TARGET:,} verifications/s on one core",
            detail=detail,
        ),
        Case(
            f"verify: {TOKENS:,} verifications vs {TOKENS:,} bare RSA-2048 verifications (the floor)",
            seconds["verifier"],
            "RSA verify alone",
            seconds["floor"],
            target_on="none",
        ),
        Case(
            "verify: key-set fetches over 10,000 verifications and one key rotation",
            derived=(f["jwks"], f["jwks"], f["jwks"]),
            derived_runs=1,
            unit="fetches",
            target=2,
            target_on="median",
            detail={"discovery_fetches": f["discovery"], "refused": f["refused"]},
        ),
    ]


def main() -> None:
    f = measure()
    rates, jwks, discovery, refused, pinned = (f[k] for k in ("rates", "jwks", "discovery", "refused", "pinned"))
    median = {name: statistics.median(values) for name, values in rates.items()}
    verdict = "meets" if median["verifier"] >= TARGET else "MISSES"
    print(
        f"verify: Verifier.verify, warm cache       median {median['verifier']:8.0f} /s  ({verdict} target ≥ {TARGET:,})"
    )
    print(f"verify: jwt.decode, same checks           median {median['pyjwt']:8.0f} /s")
    print(f"verify: RSA-2048 verify floor             median {median['floor']:8.0f} /s")
    print(
        f"verify: Verifier vs jwt.decode {median['verifier'] / median['pyjwt']:.2f}x; "
        f"Verifier reaches {median['verifier'] / median['floor']:.0%} of the floor"
    )
    print(
        f"verify: 10,000 verifications across one key rotation: {jwks} key-set fetches (target 2), "
        f"{discovery} discovery fetch, {refused} refused"
    )
    print(f"     {ROUNDS} rounds of {TOKENS} tokens each, {pinned}, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
