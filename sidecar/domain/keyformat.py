"""The API key wire format (CONTRACT.md): ``<prefix><32 random base62><6 base62 CRC32 checksum>``.

The checksum lets us reject a mistyped or forged key without touching the store or cache, and
lets secret scanners recognise our keys. It is not a secret and proves nothing about validity.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib
from dataclasses import dataclass

from sidecar.models import Environment, KeyType

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_LENGTH = 32
CHECKSUM_LENGTH = 6
BODY_LENGTH = RANDOM_LENGTH + CHECKSUM_LENGTH


@dataclass(frozen=True, slots=True)
class KeyPrefix:
    prefix: str
    type: KeyType
    environment: Environment
    default_role: str


#: Every prefix of CONTRACT.md's table. The role-specific secret prefixes exist only in live mode;
#: test keys of any secret role use ``sk_test_`` (the record keeps the role).
PREFIXES: tuple[KeyPrefix, ...] = (
    KeyPrefix("sk_live_", KeyType.SECRET, Environment.LIVE, "operator"),
    KeyPrefix("sk_mgr_", KeyType.SECRET, Environment.LIVE, "manager"),
    KeyPrefix("sk_admin_", KeyType.SECRET, Environment.LIVE, "admin"),
    KeyPrefix("sk_super_", KeyType.SECRET, Environment.LIVE, "super_admin"),
    KeyPrefix("rk_view_", KeyType.SECRET, Environment.LIVE, "viewer"),
    KeyPrefix("rk_live_", KeyType.RESTRICTED, Environment.LIVE, "restricted"),
    KeyPrefix("pk_live_", KeyType.PUBLISHABLE, Environment.LIVE, "anonymous"),
    KeyPrefix("sk_test_", KeyType.SECRET, Environment.TEST, "operator"),
    KeyPrefix("rk_test_", KeyType.RESTRICTED, Environment.TEST, "restricted"),
    KeyPrefix("pk_test_", KeyType.PUBLISHABLE, Environment.TEST, "anonymous"),
)
_BY_PREFIX = {p.prefix: p for p in PREFIXES}
_LIVE_SECRET_BY_ROLE = {
    p.default_role: p for p in PREFIXES if p.type is KeyType.SECRET and p.environment is Environment.LIVE
}
MAX_KEY_LENGTH = max(len(p.prefix) for p in PREFIXES) + BODY_LENGTH


def prefix_for(key_type: KeyType, role: str, environment: Environment) -> KeyPrefix:
    """The prefix a new key of this type, role and environment gets."""
    if environment is Environment.TEST:
        return next(p for p in PREFIXES if p.type is key_type and p.environment is Environment.TEST)
    if key_type is KeyType.SECRET:
        return _LIVE_SECRET_BY_ROLE.get(role, _BY_PREFIX["sk_live_"])
    return next(p for p in PREFIXES if p.type is key_type and p.environment is Environment.LIVE)


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rest = divmod(number, 62)
        chars.append(BASE62[rest])
    return "".join(reversed(chars))


def checksum(text: str) -> str:
    """CRC32 of ``text`` as 6 base62 characters (62**6 > 2**32, so it always fits)."""
    return _base62(zlib.crc32(text.encode("ascii")), CHECKSUM_LENGTH)


#: The value of every pair of base62 digits: a checksum reads as three lookups, not six divisions
#: (``parse`` runs on every webhook call).
_PAIR_VALUES = {a + b: 62 * i + j for i, a in enumerate(BASE62) for j, b in enumerate(BASE62)}
_PAIR = 62 * 62


def _checksum_matches(head: str, check: str) -> bool:
    """``checksum(head) == check``, for a ``check`` of six base62 digits."""
    value = (_PAIR_VALUES[check[0:2]] * _PAIR + _PAIR_VALUES[check[2:4]]) * _PAIR + _PAIR_VALUES[check[4:6]]
    return value == zlib.crc32(head.encode("ascii"))


def mint(prefix: KeyPrefix) -> str:
    """A new key with 32 characters (about 190 bits) from the OS CSPRNG."""
    body = "".join(secrets.choice(BASE62) for _ in range(RANDOM_LENGTH))
    head = prefix.prefix + body
    return head + checksum(head)


def parse(key: str) -> KeyPrefix | None:
    """The key's prefix if the key is well-formed and its checksum matches, else ``None``.

    Runs in time independent of the store: no I/O, and only public structure is inspected.
    """
    if len(key) > MAX_KEY_LENGTH:
        return None
    cut = key.find("_", 3)  # prefixes look like "sk_live_", "rk_view_": second underscore ends it
    if cut < 0:
        return None
    prefix = _BY_PREFIX.get(key[: cut + 1])
    if prefix is None:
        return None
    body = key[cut + 1 :]
    if len(body) != BODY_LENGTH or not (body.isascii() and body.isalnum()):  # ASCII alnum: base62
        return None
    if not _checksum_matches(key[:-CHECKSUM_LENGTH], key[-CHECKSUM_LENGTH:]):
        return None
    return prefix


def looks_like_api_key(credential: str) -> bool:
    """Cheap routing test: does this credential claim to be one of our keys (valid or not)?"""
    cut = credential.find("_", 3)
    return cut > 0 and credential[: cut + 1] in _BY_PREFIX


def digest(key: str) -> str:
    """The stored form of a key: SHA-256, hex.

    A keyed hash would add nothing here: keys carry ~190 bits of CSPRNG entropy, so a leaked
    digest cannot be brute-forced, and an unkeyed digest needs no shared pepper across replicas.
    """
    return hashlib.sha256(key.encode("ascii")).hexdigest()
