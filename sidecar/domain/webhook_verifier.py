"""Verifying incoming signed webhooks: the signature check plus replay refusal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sidecar.domain import signatures
from sidecar.domain.signatures import SignatureFormat, Verified
from sidecar.errors import SignatureInvalid
from sidecar.ports import Clock, ReplayGuard

#: Remember a signature a little past the tolerance so clock skew between calls cannot reopen it.
REPLAY_MARGIN_S = 5


def replay_ttl_s(timestamp: int, now: datetime, tolerance_s: int) -> float:
    """How long to remember a delivery signed at ``timestamp``: until it leaves the tolerance window."""
    return timestamp + tolerance_s - now.timestamp() + REPLAY_MARGIN_S


class WebhookVerifier:
    """Accepts a signed delivery once: its replay key (the timestamp and a digest of the signed
    payload; for Standard Webhooks the message id and timestamp) is remembered until the timestamp
    leaves the tolerance window, and a second delivery of it is ``replayed``. The key never depends
    on which signature matched, so reordering or dropping rotation signatures is still a replay."""

    def __init__(
        self,
        secrets: Sequence[str],
        clock: Clock,
        guard: ReplayGuard,
        *,
        fmt: SignatureFormat = SignatureFormat.STATESET,
        tolerance_s: int = signatures.DEFAULT_TOLERANCE_S,
    ) -> None:
        self._secrets = tuple(secrets)
        self._clock = clock
        self._guard = guard
        self._format = fmt
        self._tolerance = tolerance_s

    async def verify(self, body: bytes, headers: Mapping[str, str]) -> Verified:
        now = self._clock.now()
        verified = signatures.verify(self._format, body, headers, self._secrets, now=now, tolerance_s=self._tolerance)
        ttl = replay_ttl_s(verified.timestamp, now, self._tolerance)
        if not await self._guard.first_use(verified.replay_key, ttl):
            raise SignatureInvalid("this webhook delivery was already accepted once", reason="replayed")
        return verified
