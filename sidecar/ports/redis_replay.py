"""The replay guard shared by every replica: one ``SET key 1 NX PX ttl`` per verified signature."""

from __future__ import annotations

import hashlib
import math

from sidecar.errors import Unavailable
from sidecar.ports.redis_client import RedisClient, RedisGuard

_DOWN = object()


class RedisReplayGuard:
    """``<prefix>replay:<sha256 of the key>``; fails closed (``Unavailable``) when Redis cannot answer,
    because accepting a delivery that may be a replay is worse than asking the sender to retry."""

    def __init__(self, client: RedisClient, guard: RedisGuard, *, prefix: str) -> None:
        self._client = client
        self._guard = guard
        self._prefix = prefix + "replay:"

    async def first_use(self, key: str, ttl_s: float) -> bool:
        name = self._prefix + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        ttl_ms = max(1, math.ceil(ttl_s * 1000))
        result = await self._guard.run(lambda: self._client.set(name, b"1", nx=True, px=ttl_ms), _DOWN)
        if result is _DOWN:
            raise Unavailable("cannot check for replayed webhooks right now", reason="replay_guard_unavailable")
        return bool(result)
