"""The error catalogue: one table, every entry well-formed and findable, the README generated from it."""

from __future__ import annotations

from pathlib import Path

import pytest
from oidc_credentials import catalogue, cli
from oidc_credentials.catalogue import ENTRIES, SERVICES, Entry, find, lookup
from oidc_credentials.emit import RunRecord
from oidc_credentials.errors import ExchangeError
from oidc_credentials.providers import aws

README = Path(__file__).resolve().parent.parent / "README.md"

#: how each service words the refusals it sends without a code (from their docs and sources)
SAMPLES = {
    (catalogue.ADO, "NoExplicitReference"): "There is no explicit reference to service connection aws-prod "
    "(0f0e) from current stage Deploy. Add the service connection to the task inputs.",
    (catalogue.ADO, "TF400813"): "TF400813: The user 'Build\\1234' is not authorized to access this resource.",
    (catalogue.ADO, "ConnectionDisabled"): "Service connection aws-prod is disabled and cannot be used.",
    (catalogue.ADO, "TF400733"): "TF400733: The request has been canceled: Request was blocked due to exceeding usage "
    "of resource 'ATCPU' in namespace 'User'.",
    (catalogue.VAULT, "RoleNotFound"): 'role "ado" could not be found',
    (catalogue.VAULT, "NoAudiencesBound"): "error validating token: no audiences bound to the role, but token "
    "carries audience claims",
    (catalogue.VAULT, "AudienceMismatch"): "error validating token: invalid audience (aud) claim: audience claim "
    "does not match any expected audience",
    (catalogue.VAULT, "ClaimMismatch"): 'claim "sub" does not match any associated bound claim values',
    (catalogue.VAULT, "IssuerMismatch"): "error validating token: invalid issuer (iss) claim",
    (catalogue.VAULT, "UntrustedSigner"): "error validating token: failed to verify id token signature",
    (catalogue.VAULT, "TokenExpired"): "error validating token: token is expired (exp)",
    (catalogue.VAULT, "NoJwtMount"): '1 error occurred:\n\t* no handler for route "auth/jwt2/login". route entry '
    "not found.",
    (catalogue.VAULT, "Sealed"): "Vault is sealed",
    (catalogue.VAULT, "RateLimited"): 'request path "auth/jwt/login": rate limit quota exceeded',
    (catalogue.KEYVAULT, "ForbiddenByFirewall"): "Client address is not authorized and caller is not a trusted "
    "service.\r\nClient address: 203.0.113.7",
}


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: f"{e.service}:{e.code}")
def test_every_entry_is_complete_and_found_by_its_code(entry: Entry) -> None:
    assert entry.service in SERVICES
    assert entry.code and entry.code == entry.code.strip()
    assert entry.meaning.endswith(".") and entry.fix.endswith(".")
    assert isinstance(entry.retry, bool)
    assert lookup(entry.service, entry.code) is entry
    assert lookup(entry.service.upper(), entry.code.lower()) is entry
    assert find(entry.service, entry.code, "whatever the message says") is entry


def test_codes_are_unique_per_service() -> None:
    keys = [(e.service, e.code.lower()) for e in ENTRIES]
    assert len(keys) == len(set(keys))


def test_every_service_has_entries() -> None:
    assert {e.service for e in ENTRIES} == set(SERVICES)


@pytest.mark.parametrize(("key", "text"), sorted(SAMPLES.items()), ids=lambda v: v[1] if isinstance(v, tuple) else "")
def test_answers_without_a_code_are_recognised(key: tuple[str, str], text: str) -> None:
    service, code = key
    found = find(service, "", text)
    assert found is not None and found.code == code, (text, found)


def test_every_pattern_entry_has_a_sample() -> None:
    """A new entry recognised by its wording must come with a sample of that wording."""
    assert {(e.service, e.code) for e in ENTRIES if e.match} == set(SAMPLES)


def test_nothing_is_recognised_in_unrelated_text() -> None:
    for service in SERVICES:
        assert find(service, "", "the quick brown fox") is None
    assert lookup(catalogue.AWS, "NoSuchCode") is None and lookup("Nobody", "AccessDenied") is None


def test_the_required_codes_are_there_and_classified() -> None:
    assert lookup(catalogue.ENTRA, "AADSTS50166").retry and lookup(catalogue.ENTRA, "AADSTS90061").retry  # type: ignore[union-attr]
    assert lookup(catalogue.ADO, "TF400733").retry  # type: ignore[union-attr]
    for code in ("NoExplicitReference", "TF400813", "ConnectionDisabled"):
        assert lookup(catalogue.ADO, code).retry is False  # type: ignore[union-attr]
    assert lookup(catalogue.AWS, "AccessDenied").trust  # type: ignore[union-attr]


def test_aadsts_number_in_a_message_counts_as_its_code() -> None:
    entry = find(
        catalogue.ENTRA, "", "AADSTS700213: No matching federated identity record found for presented assertion"
    )
    assert entry is not None and entry.code == "AADSTS700213"


def test_aliases_reach_the_same_entries() -> None:
    assert lookup("Vault", "sealed") is lookup(catalogue.VAULT, "Sealed")
    assert lookup("Google STS", "invalid_grant") is lookup(catalogue.GCP_STS, "invalid_grant")


def test_aws_retries_exactly_what_the_catalogue_calls_retryable() -> None:
    for code in aws.RETRYABLE_CODES:
        assert catalogue.retryable(catalogue.AWS, code), code


def test_the_run_record_carries_the_catalogue_verdict() -> None:
    record = RunRecord()
    record.fail(ExchangeError("Entra said no", service="Microsoft Entra ID", status=400, code="AADSTS90061"))
    assert (record.error_service, record.error_code, record.error_status) == ("Microsoft Entra ID", "AADSTS90061", 400)
    assert record.retryable is True and "fresh token" in record.fix
    other = RunRecord()
    other.fail(
        ExchangeError("HTTP 404: There is no explicit reference to service connection x", service="Azure DevOps")
    )
    assert other.error_code == "NoExplicitReference" and other.retryable is False


def test_readme_lists_the_catalogue_generated_from_the_table() -> None:
    text = README.read_text(encoding="utf-8")
    assert catalogue.BEGIN in text and catalogue.END in text, "README lacks the catalogue markers"
    assert catalogue.replace_section(text) == text, (
        "README's error catalogue is stale: run `oidc-credentials errors --write-readme README.md`"
    )
    for entry in ENTRIES:
        assert f"`{entry.code}`" in text


def test_the_generator_writes_the_section(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{catalogue.BEGIN}\nSTALE-TEXT\n{catalogue.END}\nafter\n", encoding="utf-8")
    assert cli.main(["errors", "--write-readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert "STALE-TEXT" not in text and text.endswith(f"{catalogue.END}\nafter\n") and "| `AADSTS50166` | yes |" in text


def test_the_cli_explains_a_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["errors", "aadsts90061"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Microsoft Entra ID AADSTS90061 (retried): ") and "Fix: " in out
    assert cli.main(["errors", "NoSuchCode"]) == 1
    assert "No service answers with code 'NoSuchCode'" in capsys.readouterr().err
    assert cli.main(["errors", "--markdown"]) == 0
    assert capsys.readouterr().out == catalogue.markdown()


def test_annotate_completes_what_the_raiser_could_not_classify() -> None:
    exc = ExchangeError(
        "Azure DevOps refused the OIDC token request: HTTP 429: TF400733: The request has been canceled.",
        service="Azure DevOps",
        status=429,
    )
    entry = catalogue.annotate(exc)
    assert entry is not None and exc.code == "TF400733"
    assert exc.message.endswith("A retry can help; the task already retried it. Fix: " + entry.fix)
    assert str(exc) == exc.message


def test_annotate_leaves_a_classified_refusal_as_written() -> None:
    exc = ExchangeError("AWS STS refused: AccessDenied.\nThe role's trust ...", service="AWS STS", code="AccessDenied")
    before = exc.message
    assert catalogue.annotate(exc) is lookup(catalogue.AWS, "AccessDenied")
    assert exc.message == before


def test_annotate_leaves_an_unknown_refusal_alone() -> None:
    exc = ExchangeError("Something else entirely", service="AWS STS", status=418)
    assert catalogue.annotate(exc) is None and exc.message == "Something else entirely" and exc.code == ""


def test_aws_explains_codes_only_the_catalogue_knows() -> None:
    config = aws.AwsConfig("https://sts.amazonaws.com", "arn:aws:iam::123456789012:role/r", "", "s", 3600)
    error = aws.explain("IDPRejectedClaim", "Rejected", 403, config, None)
    entry = lookup(catalogue.AWS, "IDPRejectedClaim")
    assert entry is not None and error.message.endswith(f"{entry.meaning} Fix: {entry.fix}")
    assert aws.explain("AccessDenied", "no", 403, config, None).message.count("Fix: ") == 0  # its own, richer text


def test_key_vault_explains_codes_only_the_catalogue_knows() -> None:
    from oidc_credentials.http import Response
    from oidc_credentials.providers import keyvault
    from oidc_credentials.providers._azure_common import PUBLIC, AzureConnection

    conn = AzureConnection("c", "t", "a", "", PUBLIC, PUBLIC.authority, keyvault_suffix="vault.azure.net")
    config = keyvault.KeyVaultConfig(conn, "https://kv.vault.azure.net", "kv", ("x",), (), 1, False, "fail", "")
    body = (
        '{"error": {"code": "Forbidden", "message": "Denied by policy", "innererror": {"code": "ForbiddenByPolicy"}}}'
    )
    error = keyvault.explain(Response(403, "https://kv.vault.azure.net/secrets/x", body), config, "read secret 'x'")
    assert error.code == "ForbiddenByPolicy" and "Fix: Ask the vault's owners which policy denies it." in error.message
