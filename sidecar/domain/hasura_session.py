"""The body of a 200 answer to Hasura's auth webhook (hasura-contract.md §1.8 to §1.14).

Hasura v2 decodes the body into ``HashMap Text Text``: a flat JSON object whose values are all
strings, or it fails *every* request with a 500 (§1.8). Arrays travel as PostgreSQL array
literals inside a string (§1.13). ``Cache-Control`` is looked up with exactly that case (§1.14).
"""

from __future__ import annotations

import json
from datetime import datetime

from sidecar.models import CredentialType, Principal

ROLE = "X-Hasura-Role"
USER_ID = "X-Hasura-User-Id"
ORG_ID = "X-Hasura-Org-Id"
TEAM_ID = "X-Hasura-Team-Id"
KEY_ID = "X-Hasura-Key-Id"
ENVIRONMENT = "X-Hasura-Environment"
PERMISSIONS = "X-Hasura-Permissions"
CACHE_CONTROL = "Cache-Control"

#: Keys Hasura strips or ignores (§1.12); a session never carries them, whatever a principal holds.
FORBIDDEN_KEYS = frozenset({"x-hasura-admin-secret", "x-hasura-access-key", "x-hasura-use-backend-only-permissions"})

_NEEDS_QUOTES = frozenset('{},"\\ \t\n\r\v\f')


def pg_array_literal(items: tuple[str, ...] | list[str]) -> str:
    """A PostgreSQL ``text[]`` literal whose elements read back exactly as ``items``.

    Quoting follows PostgreSQL's array I/O rules: an element is double-quoted when it is empty,
    is the word NULL in any case, or contains braces, commas, quotes, backslashes or whitespace;
    inside quotes, ``"`` and ``\\`` are backslash-escaped.
    """
    return "{" + ",".join(_element(item) for item in items) + "}"


def _element(item: str) -> str:
    if item and item.upper() != "NULL" and _NEEDS_QUOTES.isdisjoint(item):
        return item
    return '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cache_max_age(now: datetime, expires_at: datetime | None, max_age_s: int) -> int:
    """Seconds Hasura may keep this answer: never past the credential's expiry nor ``max_age_s``."""
    if expires_at is None:
        return max_age_s
    left = int((expires_at - now).total_seconds())  # truncates toward zero: never rounds up
    return max(0, min(max_age_s, left))


def session_variables(principal: Principal, role: str) -> dict[str, str]:
    """The session variables for ``principal`` acting as ``role``: every value a string."""
    session = {ROLE: role}
    if principal.credential_type is not CredentialType.ANONYMOUS:
        session[USER_ID] = principal.user_id or principal.subject
    if principal.org_id:
        session[ORG_ID] = principal.org_id
    if principal.team_id:
        session[TEAM_ID] = principal.team_id
    if principal.key_id:
        session[KEY_ID] = principal.key_id
    session[ENVIRONMENT] = principal.environment.value
    session[PERMISSIONS] = pg_array_literal(list(principal.scopes))
    return session


def encode_session(session: dict[str, str], max_age: int) -> bytes:
    """The JSON body: the session plus ``Cache-Control: max-age=N`` (a string, as §1.8 demands)."""
    return _with_cache_control(_encode_prefix(session), max_age)


def _encode_prefix(session: dict[str, str]) -> bytes:
    """The body up to (not including) its ``Cache-Control`` entry: ``{"k":"v",...,``."""
    body = {k: v for k, v in session.items() if k.lower() not in FORBIDDEN_KEYS}
    # ASCII escapes keep any odd code point (even a lone surrogate) encodable.
    return json.dumps(body, separators=(",", ":")).encode("ascii")[:-1] + b","


def _with_cache_control(prefix: bytes, max_age: int) -> bytes:
    return b'%s"Cache-Control":"max-age=%d"}' % (prefix, max_age)


def _identity(principal: Principal, role: str) -> tuple[object, ...]:
    """Every input of ``session_variables``: equal identities give equal sessions."""
    p = principal
    return (role, p.credential_type, p.subject, p.user_id, p.org_id, p.team_id, p.key_id, p.environment, p.scopes)


class SessionBodies:
    """Encoded session bodies, kept per identity and role: the webhook answers the same callers
    over and over, and only ``Cache-Control`` changes from one answer to the next."""

    def __init__(self, *, max_entries: int = 10_000) -> None:
        self._max = max_entries
        self._prefixes: dict[tuple[object, ...], bytes] = {}

    def body(self, principal: Principal, role: str, max_age: int) -> bytes:
        identity = _identity(principal, role)
        prefix = self._prefixes.get(identity)
        if prefix is None:
            prefix = _encode_prefix(session_variables(principal, role))
            if len(self._prefixes) >= self._max:
                del self._prefixes[next(iter(self._prefixes))]  # oldest first: dicts keep insertion order
            self._prefixes[identity] = prefix
        return _with_cache_control(prefix, max_age)

    def __len__(self) -> int:
        return len(self._prefixes)
