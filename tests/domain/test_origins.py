"""Origins as browsers serialize them (RFC 6454 §6.1), and what a credential may do with one."""

from __future__ import annotations

import pytest

from sidecar.domain.origins import BrowserOrigins, normalize_origin, request_origin
from sidecar.errors import OriginNotAllowed, SecretKeyInBrowser
from sidecar.models import CredentialType, Environment, KeyType, Principal


@pytest.mark.parametrize(
    ("value", "origin"),
    [
        ("https://Shop.Example", "https://shop.example"),
        ("https://shop.example:443/", "https://shop.example"),
        ("http://shop.example:80", "http://shop.example"),
        ("http://127.0.0.1:8123", "http://127.0.0.1:8123"),
        ("https://[::1]:8443", "https://[::1]:8443"),
    ],
)
def test_normalize(value: str, origin: str) -> None:
    assert normalize_origin(value) == origin


@pytest.mark.parametrize(
    "value", ["", "*", "https://*.shop.example", "https://shop.example/app", "https://u@shop.example",
              "https://shop.example?x=1", "javascript:alert(1)", "https://shop.example:99999", "shop.example"],
)  # fmt: skip
def test_not_an_origin(value: str) -> None:
    with pytest.raises(ValueError, match=r"origin|wildcard|port"):
        normalize_origin(value)


def test_request_origin_keeps_opaque_origins_so_they_match_nothing() -> None:
    assert request_origin(None) is None
    assert request_origin("  ") is None
    assert request_origin("null") == "null"
    assert not BrowserOrigins(["https://shop.example"]).allows("null")


def key(key_type: KeyType, origins: tuple[str, ...] = ()) -> Principal:
    return Principal(
        credential_type=CredentialType.API_KEY,
        subject="key_1",
        org_id="org_1",
        role="anonymous",
        allowed_roles=("anonymous",),
        scopes=(),
        environment=Environment.LIVE,
        key_type=key_type,
        allowed_origins=origins,
    )


def test_rules_apply_only_with_an_origin() -> None:
    rules = BrowserOrigins([])
    rules.check(key(KeyType.SECRET), None)
    with pytest.raises(SecretKeyInBrowser):
        rules.check(key(KeyType.SECRET), "https://shop.example")
    with pytest.raises(SecretKeyInBrowser):
        rules.check(key(KeyType.RESTRICTED), "null")
    rules.check(key(KeyType.PUBLISHABLE), "https://anywhere.example")
    rules.check(key(KeyType.PUBLISHABLE, ("https://shop.example",)), "https://shop.example")
    with pytest.raises(OriginNotAllowed):
        rules.check(key(KeyType.PUBLISHABLE, ("https://shop.example",)), "https://evil.example")
