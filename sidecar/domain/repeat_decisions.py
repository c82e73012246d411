"""Webhook decisions for API keys already decided, reused while the key cache holds the same record.

Hasura calls the webhook with the same few keys over and over. Deciding a call from scratch runs
the whole pipeline: the key's format and checksum, the cache, the principal, the browser-origin
check, the role and the session body; about 8 µs of Python. For a key, role and origin decided
before, each of those steps gives the same answer as long as the key's record is the same, so a
repeat costs a digest, a dict lookup and the key cache's own check (``KeyService.still_current``).
The two steps that depend on the call itself run on every call, repeat or not: the rate limit and
the operation check (``Decider``).

Reuse is exact. A decision ends when the cache stops holding the record it was made from, so the
cache's TTL, a revoke or roll through this process and another replica's invalidation end it
exactly as they end the cached record. Only decisions that depend on nothing else are kept:
non-expiring keys (their ``Cache-Control`` never changes), and not let through over a rate limit.
Entries are keyed by the key's digest, so no key is held here in the clear.
"""

from __future__ import annotations

from sidecar.domain import keyformat
from sidecar.domain.decision import Credentials, Decision
from sidecar.domain.keys import KeyService
from sidecar.domain.memo import remember
from sidecar.models import CredentialType


class RepeatDecisions:
    """Decisions by ``(key digest, requested role, origin)``, each valid while its record is cached."""

    def __init__(self, keys: KeyService, *, max_entries: int) -> None:
        self._keys = keys
        self._max = max(1, max_entries)
        self._entries: dict[tuple[str, str | None, str | None], Decision] = {}

    def get(self, creds: Credentials) -> Decision | None:
        """The decision made before for these credentials, if it still holds; else ``None``."""
        credential = creds.credential
        if (
            credential is None
            or len(credential) > keyformat.MAX_KEY_LENGTH
            or not credential.isascii()
            or not keyformat.looks_like_api_key(credential)
        ):
            return None
        digest = keyformat.digest(credential)
        key = (digest, creds.requested_role, creds.origin)
        decision = self._entries.get(key)
        if decision is None:
            return None
        if not self._keys.still_current(digest, decision.principal):
            del self._entries[key]
            return None
        return decision

    def remember(self, creds: Credentials, decision: Decision) -> None:
        """Keep ``decision`` (just made) if nothing but its key's record, the role and the origin decide it."""
        principal = decision.principal
        credential = creds.credential
        if (
            credential is None
            or principal.credential_type is not CredentialType.API_KEY
            or principal.expires_at is not None
            or decision.reason != decision.credential_type  # let through over its rate limit
        ):
            return
        key = (keyformat.digest(credential), creds.requested_role, creds.origin)
        remember(self._entries, key, decision, bound=self._max)
