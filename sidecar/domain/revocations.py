"""Revoking session JWTs before they expire: one token (by ``jti``), or every token of a revoked key.

Checking is a dictionary lookup in this process (no I/O on the hot path). The store is the record;
other replicas learn of a revocation from a broadcast at once (Redis), and from re-reading the
store every ``reload_s`` in any case. Hasura in JWT mode verifies tokens itself and never asks us:
there only the token's short lifetime bounds a revoked token.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sidecar.errors import InvalidRequest, InvalidToken
from sidecar.models import CredentialType, Principal
from sidecar.ports import Broadcast, Clock, RevocationStore

log = logging.getLogger("sidecar.revocations")
JTI = "jti"
KEY = "key"
MAX_ID_LENGTH = 200


class TokenRevocations:
    def __init__(
        self, store: RevocationStore, clock: Clock, *, max_token_ttl_s: int, broadcast: Broadcast | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        self._max_ttl = timedelta(seconds=max_token_ttl_s)
        self._broadcast = broadcast
        self._revoked: dict[tuple[str, str], float] = {}

    # --- the hot path -------------------------------------------------------------------------

    def check(self, principal: Principal) -> None:
        """Raise ``InvalidToken`` if ``principal`` comes from a revoked token or a revoked key's token."""
        if principal.credential_type is not CredentialType.SESSION_JWT or not self._revoked:
            return
        if (JTI, principal.token_id) in self._revoked or (KEY, principal.key_id) in self._revoked:
            raise InvalidToken("the token has been revoked", reason="token_revoked")

    # --- revoking -----------------------------------------------------------------------------

    async def revoke_token(self, jti: str, expires_at: datetime | None = None) -> datetime:
        """Revoke one token; without its expiry, for the longest lifetime a token can have."""
        if not jti or len(jti) > MAX_ID_LENGTH:
            raise InvalidRequest("jti must be a token id", reason="bad_jti")
        return await self._revoke(JTI, jti, expires_at or self._clock.now() + self._max_ttl)

    async def revoke_key_tokens(self, key_id: str) -> datetime:
        """Revoke every token exchanged for ``key_id`` so far (they all expire within the longest lifetime)."""
        return await self._revoke(KEY, key_id, self._clock.now() + self._max_ttl)

    async def _revoke(self, kind: str, subject: str, until: datetime) -> datetime:
        await self._store.add_revocation(kind, subject, until)
        self.apply(kind, subject, until.timestamp())
        if self._broadcast is not None and not await self._broadcast.publish(f"{kind} {until.timestamp()} {subject}"):
            log.warning("could not broadcast a token revocation; other replicas learn it from the store")
        return until

    # --- keeping in step with other replicas --------------------------------------------------

    def apply(self, kind: str, subject: str, until_ts: float) -> None:
        key = (kind, subject)
        self._revoked[key] = max(until_ts, self._revoked.get(key, 0.0))

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
        """Re-read the store: the record of every revocation, whatever broadcasts were missed."""
        now = self._clock.now()
        rows = await self._store.active_revocations(now)
        # merge, never replace: a broadcast may have arrived after the store was read
        self._revoked = {key: until for key, until in self._revoked.items() if until > now.timestamp()}
        for kind, subject, until in rows:
            self.apply(kind, subject, until.timestamp())

    def __len__(self) -> int:
        return len(self._revoked)
