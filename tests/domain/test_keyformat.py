from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.domain import keyformat
from sidecar.models import Environment, KeyType

prefixes = st.sampled_from(keyformat.PREFIXES)


@given(prefixes)
def test_every_minted_key_parses_back_to_its_prefix(prefix: keyformat.KeyPrefix) -> None:
    key = keyformat.mint(prefix)
    assert key.startswith(prefix.prefix)
    assert len(key) == len(prefix.prefix) + 38
    assert keyformat.parse(key) == prefix


@settings(max_examples=300)
@given(prefixes, st.data())
def test_every_single_character_change_is_rejected(prefix: keyformat.KeyPrefix, data: st.DataObject) -> None:
    key = keyformat.mint(prefix)
    position = data.draw(st.integers(0, len(key) - 1))
    replacement = data.draw(st.sampled_from(keyformat.BASE62 + "_-"))
    if replacement == key[position]:
        return
    changed = key[:position] + replacement + key[position + 1 :]
    assert keyformat.parse(changed) is None


@given(st.text(alphabet=string.printable + "é…", max_size=80))
def test_arbitrary_text_never_crashes_the_parser(text: str) -> None:
    assert keyformat.parse(text) is None or keyformat.checksum(text[:-6]) == text[-6:]


def test_checksum_is_crc32_in_six_base62_characters() -> None:
    head = "sk_live_" + "a" * 32
    import zlib

    value = zlib.crc32(head.encode())
    decoded = 0
    for char in keyformat.checksum(head):
        decoded = decoded * 62 + keyformat.BASE62.index(char)
    assert decoded == value


@pytest.mark.parametrize(
    ("key_type", "role", "environment", "expected"),
    [
        (KeyType.SECRET, "operator", Environment.LIVE, "sk_live_"),
        (KeyType.SECRET, "manager", Environment.LIVE, "sk_mgr_"),
        (KeyType.SECRET, "admin", Environment.LIVE, "sk_admin_"),
        (KeyType.SECRET, "super_admin", Environment.LIVE, "sk_super_"),
        (KeyType.SECRET, "viewer", Environment.LIVE, "rk_view_"),
        (KeyType.RESTRICTED, "restricted", Environment.LIVE, "rk_live_"),
        (KeyType.PUBLISHABLE, "anonymous", Environment.LIVE, "pk_live_"),
        (KeyType.SECRET, "manager", Environment.TEST, "sk_test_"),
        (KeyType.RESTRICTED, "restricted", Environment.TEST, "rk_test_"),
        (KeyType.PUBLISHABLE, "anonymous", Environment.TEST, "pk_test_"),
    ],
)
def test_prefix_follows_the_contract_table(
    key_type: KeyType, role: str, environment: Environment, expected: str
) -> None:
    assert keyformat.prefix_for(key_type, role, environment).prefix == expected


@pytest.mark.parametrize("odd", ["-", "_", " ", "+", "é", "٣", "²"])
def test_a_character_outside_base62_is_refused_even_with_a_matching_checksum(odd: str) -> None:
    prefix = keyformat.PREFIXES[0]
    head = keyformat.mint(prefix)[: -keyformat.CHECKSUM_LENGTH]
    head = head[:-3] + odd + head[-2:]  # "٣" and "²" are digits to str.isalnum, not to base62
    check = keyformat.checksum(head) if head.isascii() else keyformat.checksum(head.encode().hex()[:10])
    assert keyformat.parse(head + check) is None
