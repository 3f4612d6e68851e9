"""The one guard on where a credential may go: every variant of a URL two parsers read differently."""

from __future__ import annotations

import pytest
from oidc_credentials.destination import Origin, UnsafeDestination, check, parse

VAULT = Origin("https", "kv.vault.azure.net", 443)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://kv.vault.azure.net/secrets", VAULT),
        ("https://KV.Vault.Azure.NET/secrets", VAULT),
        ("https://kv.vault.azure.net./secrets", VAULT),
        ("https://kv.vault.azure.net:443/secrets?x=1#f", VAULT),
        ("HTTPS://kv.vault.azure.net", VAULT),
        ("http://127.0.0.1:8080/x", Origin("http", "127.0.0.1", 8080)),
        ("http://[::1]:8080/x", Origin("http", "::1", 8080)),
        ("https://[2001:db8::1]/x", Origin("https", "2001:db8::1", 443)),
    ],
)
def test_the_origin_is_what_the_http_stack_connects_to(url: str, origin: Origin) -> None:
    assert parse(url) == origin


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://evil.example\\@kv.vault.azure.net/", "backslash"),
        ("https://evil.example\\.kv.vault.azure.net/", "backslash"),
        ("https://kv.vault.azure.net/\\evil", "backslash"),
        ("https://user@kv.vault.azure.net/", "user information"),
        ("https://kv.vault.azure.net:443@evil.example/", "user information"),
        ("https://evil.example:443@kv.vault.azure.net/", "user information"),
        ("https://evil.example%40kv.vault.azure.net/", "percent-encoded"),
        ("https://evil.example%2F.kv.vault.azure.net/", "percent-encoded"),
        ("https://[fe80::1%25eth0]/", "percent-encoded"),
        ("https://evil.example\t.kv.vault.azure.net/", "whitespace"),
        ("https://evil.example\n@kv.vault.azure.net/", "whitespace"),
        ("https://evil.example @kv.vault.azure.net/", "whitespace"),
        ("https://evil.example\u200b@kv.vault.azure.net/", "invisible"),
        ("https://evil.example\x00@kv.vault.azure.net/", "invisible"),
        ("https://kv.vault.azure.net\u3002evil.example/", "non-ASCII|cannot be parsed"),
        ("https://kv.vault.azure.n\u0435t/", "non-ASCII"),
        ("https://kv.vault.azure.net:99999/", "cannot be parsed"),
        ("https://kv.vault.azure.net:abc/", "cannot be parsed"),
        ("http://kv.vault.azure.net/", "must be https"),
        ("ftp://kv.vault.azure.net/", "must be https"),
        ("//kv.vault.azure.net/", "must be https"),
        ("https:///secrets", "empty"),
    ],
)
def test_every_ambiguous_or_unsafe_url_is_refused(url: str, reason: str) -> None:
    with pytest.raises(UnsafeDestination, match=reason) as caught:
        check(url, VAULT, what="the token")
    assert caught.value.message.startswith("Refusing to send the token to ")


@pytest.mark.parametrize(
    "url",
    [
        "https://kv.vault.azure.net:8443/",
        "https://other.vault.azure.net/",
        "https://kv.vault.azure.net.evil.example/",
        "https://[::ffff:127.0.0.1]/",
        "https://2130706433/",
    ],
)
def test_only_the_allowed_origin(url: str) -> None:
    with pytest.raises(UnsafeDestination, match=r"the token only goes to https://kv\.vault\.azure\.net"):
        check(url, VAULT, what="the token")


def test_plain_http_to_the_allowed_host_says_so() -> None:
    with pytest.raises(UnsafeDestination, match="plain http"):
        check("http://kv.vault.azure.net/", (VAULT,), what="the token")


def test_without_a_credential_plain_http_is_allowed_but_ambiguity_is_not() -> None:
    assert parse("http://sts.example.invalid/x", https_only=False) == Origin("http", "sts.example.invalid", 80)
    with pytest.raises(UnsafeDestination):
        parse("http://a.example\\@b.example/", https_only=False)


def test_the_http_layer_refuses_before_sending() -> None:
    from oidc_credentials.http import Http

    http = Http({})
    with pytest.raises(UnsafeDestination):
        http.request(
            "GET", "https://127.0.0.1:9\\@127.0.0.1:8/", service="Test", allowed=Origin("https", "127.0.0.1", 8)
        )
    with pytest.raises(UnsafeDestination):
        http.request("GET", "https://127.0.0.1:9/", service="Test", allowed=Origin("https", "127.0.0.1", 8))


def test_a_bearer_header_makes_any_request_a_credential_request() -> None:
    """A provider that forgets ``allowed=`` still never sends a bearer token over plain http or an ambiguous URL."""
    from oidc_credentials.http import Http

    http = Http({})
    for url in ("http://sts.example.invalid/x", "https://a.example\\@b.example/"):
        with pytest.raises(UnsafeDestination, match="Refusing to send a credential"):
            http.request("GET", url, service="Test", headers={"Authorization": "Bearer t"})
