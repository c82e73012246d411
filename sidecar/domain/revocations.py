"""Revoking session JWTs before they expire: one token (by ``jti``), or every token of a revoked key.

Checking is a dictionary lookup in this process (no I/O on the hot path). The store is the record;
other replicas learn of a revocation from a broadcast at once (Redis), and from reading what the
store recorded since they last looked, every ``reload_s``, in any case. Hasura in JWT mode verifies
tokens itself and never asks us: there only the token's short lifetime bounds a revoked token.

Memory holds only what can still refuse something: an entry lives until the tokens it names have
expired, and expired entries leave as new ones arrive (checked once a minute, not per entry). A
revoked key gets an entry only if it exchanged tokens that may still be alive (``KeyService``
records that before it lets a key exchange one); revoking keys that never did costs nothing here.
So the map holds at most (revocations per second) x (token lifetime) entries, about 150 bytes each.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta

from sidecar.errors import InvalidRequest, InvalidToken
from sidecar.models import CredentialType, Principal
from sidecar.ports import Broadcast, Clock, RevocationStore

log = logging.getLogger("sidecar.revocations")
JTI = "jti"
KEY = "key"
MAX_ID_LENGTH = 200
#: Entries are grouped by the minute they expire in; a group leaves once its minute has passed.
PRUNE_EVERY_S = 60


class _Expiring:
    """Subjects with an end time; those whose end has passed leave in groups, amortized."""

    __slots__ = ("_due", "ends")

    def __init__(self) -> None:
        self.ends: dict[str, float] = {}
        #: minute -> subjects whose end fell in it (a subject extended later sits in two groups)
        self._due: dict[int, list[str]] = {}

    def add(self, subject: str, until_ts: float) -> None:
        known = self.ends.get(subject)
        if known is not None and known >= until_ts:
            return
        self.ends[subject] = until_ts
        self._due.setdefault(int(until_ts // PRUNE_EVERY_S), []).append(subject)

    def prune(self, now_ts: float) -> None:
        current = int(now_ts // PRUNE_EVERY_S)
        for minute in [m for m in self._due if m < current]:  # every end in it is before now
            for subject in self._due.pop(minute):
                if self.ends.get(subject, math.inf) <= now_ts:
                    del self.ends[subject]


class TokenRevocations:
    def __init__(
        self, store: RevocationStore, clock: Clock, *, max_token_ttl_s: int, broadcast: Broadcast | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        self._max_ttl = timedelta(seconds=max_token_ttl_s)
        self._broadcast = broadcast
        self._tokens = _Expiring()
        self._keys = _Expiring()
        #: where the next reload reads on from (the store's cursor); ``None``: from the start
        self._cursor: int | None = None
        self._prune_at = 0.0

    # --- the hot path -------------------------------------------------------------------------

    def check(self, principal: Principal) -> None:
        """Raise ``InvalidToken`` if ``principal`` comes from a revoked token or a revoked key's token."""
        if principal.credential_type is not CredentialType.SESSION_JWT:
            return
        tokens, keys = self._tokens.ends, self._keys.ends
        if (tokens and principal.token_id in tokens) or (keys and principal.key_id in keys):
            raise InvalidToken("the token has been revoked", reason="token_revoked")

    # --- revoking -----------------------------------------------------------------------------

    async def revoke_token(self, jti: str, expires_at: datetime | None = None) -> datetime:
        """Revoke one token; without its expiry, for the longest lifetime a token can have."""
        if not jti or len(jti) > MAX_ID_LENGTH:
            raise InvalidRequest("jti must be a token id", reason="bad_jti")
        return await self._revoke(JTI, jti, expires_at or self._clock.now() + self._max_ttl)

    async def revoke_key_tokens(self, key_id: str, tokens_until: datetime) -> datetime | None:
        """Revoke every token exchanged for ``key_id``: they all expire by ``tokens_until``, which
        the key store recorded before any was issued (``KeyStore.key_tokens_until``).

        Capped at two token lifetimes from now (keys from before that record was kept say "for
        ever"); ``None``, and nothing kept, when the key's last token has already expired.
        """
        now = self._clock.now()
        until = min(tokens_until, now + 2 * self._max_ttl)
        if until <= now:
            return None
        return await self._revoke(KEY, key_id, until)

    async def _revoke(self, kind: str, subject: str, until: datetime) -> datetime:
        await self._store.add_revocation(kind, subject, until)
        self.apply(kind, subject, until.timestamp())
        if self._broadcast is not None and not await self._broadcast.publish(f"{kind} {until.timestamp()} {subject}"):
            log.warning("could not broadcast a token revocation; other replicas learn it from the store")
        return until

    # --- keeping in step with other replicas --------------------------------------------------

    def apply(self, kind: str, subject: str, until_ts: float) -> None:
        now_ts = self._clock.now().timestamp()
        if until_ts > now_ts:
            (self._tokens if kind == JTI else self._keys).add(subject, until_ts)
        if now_ts >= self._prune_at:  # as new entries arrive, the expired ones leave
            self._prune(now_ts)

    def apply_message(self, message: str) -> None:
        """A broadcast from another replica: ``"<kind> <until> <subject>"``."""
        kind, _, rest = message.partition(" ")
        until, _, subject = rest.partition(" ")
        try:
            until_ts = float(until)
        except ValueError:
            return
        if kind in (JTI, KEY) and subject:
            self.apply(kind, subject, until_ts)

    async def reload(self) -> None:
        """Read what the store recorded since the last reload: whatever broadcasts were missed.

        The first reload reads every active revocation; later ones only the new (or extended) ones,
        so a reload costs what changed, not what is held.
        """
        now = self._clock.now()
        rows, self._cursor = await self._store.revocations_since(self._cursor, now)
        for kind, subject, until in rows:
            self.apply(kind, subject, until.timestamp())
        self._prune(now.timestamp())

    def _prune(self, now_ts: float) -> None:
        self._tokens.prune(now_ts)
        self._keys.prune(now_ts)
        self._prune_at = (now_ts // PRUNE_EVERY_S + 1) * PRUNE_EVERY_S

    def __len__(self) -> int:
        return len(self._tokens.ends) + len(self._keys.ends)
