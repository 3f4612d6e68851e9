"""``oidc-credentials verify``: check an Azure DevOps OIDC token the way a service receiving it would.

Exit codes: 0 verified, 1 refused (one reason on stderr), 2 the options or files are wrong.
The token is never printed; its SHA-256 is.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = (
    "verify an Azure DevOps OIDC token: signature, issuer pinned to your organisation, audience, lifetime, kind, rules"
)

VERIFIED, REFUSED, USAGE = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--token-file", required=True, metavar="FILE", help="file holding the token; '-' reads stdin")
    parser.add_argument(
        "--organization-id",
        action="append",
        default=[],
        metavar="GUID",
        help="organisation whose tokens are accepted (repeatable; the id in iss, not the name)",
    )
    parser.add_argument(
        "--kind",
        choices=["pipeline", "service-connection"],
        help="which tokens are accepted: pipeline (p://) or service-connection (sc://); "
        "default: the policy file's, else the --subject's",
    )
    parser.add_argument("--audience", action="append", default=[], help="accepted aud (repeatable)")
    parser.add_argument("--subject", default="", help="the exact sub required")
    parser.add_argument("--rules", metavar="FILE", help="a TOML policy file (see the README)")
    parser.add_argument(
        "--tenant-id", action="append", default=[], metavar="GUID", help="also accept this tenant's Entra issuer"
    )
    parser.add_argument("--mode", choices=["enforce", "audit"], help="audit: report a policy refusal, exit 0")
    parser.add_argument("--leeway", type=int, default=60, metavar="SECONDS", help="clock skew allowed (default 60)")
    parser.add_argument("--ca-bundle", metavar="FILE", help="CA bundle for fetching the issuer's keys")
    parser.add_argument(
        "--metadata-url",
        action="append",
        default=[],
        metavar="BASE=URL",
        help="fetch discovery for issuers under BASE from URL instead (a mirror, a test stand-in), e.g. "
        "https://vstoken.dev.azure.com=https://mirror.internal; the issuer must still be the real one",
    )
    parser.add_argument("--json", action="store_true", help="print the verified claims as JSON")


def _read_token(path: str) -> str:
    if path == "-":
        return sys.stdin.read().strip()
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


def _kind(args: argparse.Namespace, policy_kinds: tuple[Any, ...]) -> Any:
    from ..claims import kind_of

    if args.kind:
        return args.kind
    if policy_kinds:
        return policy_kinds
    if args.subject and kind_of(args.subject):
        return kind_of(args.subject)
    raise ValueError(
        "Say which tokens to accept: --kind pipeline or --kind service-connection (or give --subject or --rules)."
    )


def _pairs(values: list[str]) -> dict[str, str]:
    out = {}
    for value in values:
        base, sep, url = value.partition("=")
        if not (sep and base.startswith("https://") and url.startswith("https://")):
            raise ValueError(f"--metadata-url {value!r}: expected https://<issuer base>=https://<where to fetch it>")
        out[base] = url
    return out


def run(args: argparse.Namespace) -> int:
    import json
    import logging

    # The CLI prints warnings and the one reason itself, neutralised; the library's log lines would repeat them.
    library_log = logging.getLogger("oidc_credentials.verify")
    library_log.propagate = False
    if not library_log.handlers:
        library_log.addHandler(logging.NullHandler())

    from ..verify import AUDIT, PolicyError, Verifier, load_policy
    from ..vso import neutralise

    def err(text: str) -> None:
        print(neutralise(" ".join(text.split())), file=sys.stderr)

    def usage(text: str) -> int:
        err(f"oidc-credentials: error: {text}")
        return USAGE

    try:
        token = _read_token(args.token_file)
    except OSError as exc:
        return usage(f"Cannot read the token file {args.token_file}: {exc.strerror or exc}")
    try:
        policy = load_policy(args.rules) if args.rules else None
        options: dict[str, Any] = {
            "organization_ids": [*(policy.organization_ids if policy else ()), *args.organization_id],
            "tenant_ids": [*(policy.tenant_ids if policy else ()), *args.tenant_id],
            "kind": _kind(args, policy.kinds if policy else ()),
            "rules": policy.rules if policy else (),
            "subject": args.subject or (policy.subject if policy else ""),
            "mode": args.mode or (policy.mode if policy else "enforce"),
            "leeway": args.leeway,
            "ca_bundle": args.ca_bundle,
            "metadata_urls": _pairs(args.metadata_url),
            # The CLI prints the one reason itself; a log line would repeat it.
            "on_audit": lambda _event: None,
        }
        audiences = args.audience or (list(policy.audiences) if policy else [])
        if audiences:
            options["audiences"] = audiences
        verifier = Verifier(**options)
    except (PolicyError, ValueError) as exc:
        return usage(str(exc))
    for warning in verifier.warnings:
        err(f"warning: {warning}")

    decision = verifier.check(token)
    claims = decision.claims
    if decision.refusal is not None and (claims is None or verifier.mode != AUDIT):
        err(f"refused: {decision.refusal.message} [token sha256 {decision.token_sha256}]")
        return REFUSED
    assert claims is not None  # noqa: S101 - no refusal means verified claims
    if decision.refusal is not None:
        err(f"audit: would be refused: {decision.refusal.message}")
    fields = {
        name: value.value if hasattr(value, "value") else value
        for name, value in vars(claims).items()
        if name != "raw" and value not in ("", 0, ())
    }
    fields["token_sha256"] = decision.token_sha256
    if args.json:
        print(neutralise(json.dumps(fields, indent=2, sort_keys=True)))
    else:
        print(f"verified: {claims.kind.value} token of organisation {claims.organization_id}")
        width = max(map(len, fields))
        for name, value in fields.items():
            shown = ", ".join(value) if isinstance(value, tuple) else value
            print(neutralise(f"  {name.ljust(width)}  {shown}"))
    return VERIFIED
