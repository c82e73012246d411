"""The shared tier of key lookups in Redis, and the pub/sub channel that keeps every replica's
in-process tier honest.

An entry is the key's record as JSON *without* its digest (the digest is the Redis key, and is put
back on read) and without anything secret. Misses are cached too (``-``). Invalidation writes a
short tombstone (``~``) before publishing, so a replica that read the store just before a revoke
cannot put the stale record back (``put`` is ``SET NX``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from sidecar.models import ApiKeyRecord, Environment, KeyType
from sidecar.ports.redis_client import RedisClient, RedisGuard
from sidecar.ports.rows import from_ts, to_ts

log = logging.getLogger("sidecar.redis")
NEGATIVE = b"-"
TOMBSTONE = b"~"
#: invalidations kept for later delivery while Redis is unreachable (beyond that, TTLs bound staleness)
MAX_PENDING = 10_000


def encode_record(record: ApiKeyRecord) -> bytes:
    return json.dumps(
        {
            "id": record.id,
            "prefix": record.prefix,
            "last4": record.last4,
            "name": record.name,
            "type": record.type.value,
            "role": record.role,
            "environment": record.environment.value,
            "org_id": record.org_id,
            "team_id": record.team_id,
            "user_id": record.user_id,
            "permissions": list(record.permissions),
            "allowed_origins": list(record.allowed_origins),
            "created_at": to_ts(record.created_at),
            "expires_at": to_ts(record.expires_at),
            "revoked_at": to_ts(record.revoked_at),
            "rolled_to": record.rolled_to,
        },
        separators=(",", ":"),
    ).encode()


def decode_record(raw: bytes, digest: str) -> ApiKeyRecord:
    data: dict[str, Any] = json.loads(raw)
    created = from_ts(data["created_at"])
    if created is None:
        raise ValueError("created_at missing")
    return ApiKeyRecord(
        id=data["id"],
        digest=digest,
        prefix=data["prefix"],
        last4=data["last4"],
        name=data["name"],
        type=KeyType(data["type"]),
        role=data["role"],
        environment=Environment(data["environment"]),
        org_id=data["org_id"],
        team_id=data["team_id"],
        user_id=data["user_id"],
        permissions=tuple(data["permissions"]),
        allowed_origins=tuple(data["allowed_origins"]),
        created_at=created,
        expires_at=from_ts(data["expires_at"]),
        revoked_at=from_ts(data["revoked_at"]),
        rolled_to=data["rolled_to"],
    )


class RedisKeyCache:
    """``SharedKeyCache`` in Redis: ``<prefix>key:<digest>`` entries, invalidations on ``<prefix>invalidate``."""

    def __init__(
        self,
        client: RedisClient,
        guard: RedisGuard,
        *,
        prefix: str,
        ttl_s: float,
        negative_ttl_s: float,
        tombstone_ttl_s: float = 5.0,
    ) -> None:
        self._client = client
        self._guard = guard
        self._prefix = prefix
        self._ttl_ms = int(ttl_s * 1000)
        self._negative_ttl_ms = int(negative_ttl_s * 1000)
        self._tombstone_ttl_ms = int(tombstone_ttl_s * 1000)
        self.channel = prefix + "invalidate"
        self._pending: set[str] = set()

    def _key(self, digest: str) -> str:
        return f"{self._prefix}key:{digest}"

    async def get(self, digest: str) -> tuple[bool, ApiKeyRecord | None]:
        raw = await self._guard.run(lambda: self._client.get(self._key(digest)), None)
        if raw is None or raw == TOMBSTONE:
            return False, None
        if raw == NEGATIVE:
            return True, None
        try:
            return True, decode_record(raw if isinstance(raw, bytes) else raw.encode(), digest)
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring an unreadable shared cache entry")
            return False, None

    async def put(self, digest: str, record: ApiKeyRecord | None) -> None:
        ttl_ms = self._ttl_ms if record is not None else self._negative_ttl_ms
        if ttl_ms <= 0:
            return
        value = encode_record(record) if record is not None else NEGATIVE
        await self._guard.run(lambda: self._client.set(self._key(digest), value, px=ttl_ms, nx=True), None)

    async def invalidate(self, digest: str) -> bool:
        async def tombstone_and_publish() -> bool:
            await self._client.set(self._key(digest), TOMBSTONE, px=self._tombstone_ttl_ms)
            await self._client.publish(self.channel, digest)
            return True

        delivered = await self._guard.run(tombstone_and_publish, False)
        if not delivered:
            if len(self._pending) < MAX_PENDING:
                self._pending.add(digest)
            log.warning(
                "could not publish a key invalidation to Redis: other replicas may keep the key "
                "cached until their in-process TTL, or until this replica reaches Redis again"
            )
        return delivered

    async def deliver_pending(self) -> int:
        """Send the invalidations that failed while Redis was unreachable; returns how many went out."""
        sent = 0
        for digest in list(self._pending):
            self._pending.discard(digest)
            if not await self.invalidate(digest):
                break
            sent += 1
        return sent


class InvalidationListener:
    """Subscribes to the invalidation channel and evicts from this replica's in-process tier.

    Reconnects after Redis goes away; on every (re)subscription it calls ``on_subscribed`` so the
    replica can drop what it cached while it might have missed messages.
    """

    def __init__(
        self,
        client: RedisClient,
        channel: str,
        *,
        on_message: Callable[[str], None],
        on_subscribed: Callable[[], None],
        max_backoff_s: float = 2.0,
        confirm_s: float = 5.0,
    ) -> None:
        self._confirm_s = confirm_s
        self._client = client
        self._channel = channel
        self._on_message = on_message
        self._on_subscribed = on_subscribed
        self._max_backoff_s = max_backoff_s
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        backoff = 0.05
        while True:
            try:
                await self._listen()
            except (RedisError, OSError, TimeoutError) as exc:
                if self.subscribed.is_set():
                    log.warning("lost the Redis invalidation channel (%s); reconnecting", type(exc).__name__)
                self.subscribed.clear()
            else:
                backoff = 0.05
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff_s)

    async def _listen(self) -> None:
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            async with asyncio.timeout(self._confirm_s):  # subscribed only once Redis says so
                while True:
                    confirmation = await pubsub.get_message(timeout=self._confirm_s)
                    if confirmation is not None and confirmation.get("type") == "subscribe":
                        break
            self._on_subscribed()
            self.subscribed.set()
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message.get("type") == "message":
                    data = message["data"]
                    self._on_message(data.decode() if isinstance(data, bytes) else str(data))
        finally:
            await pubsub.aclose()


class RedisBroadcast:
    """``Broadcast`` over a Redis pub/sub channel (best effort, under the breaker)."""

    def __init__(self, client: RedisClient, guard: RedisGuard, channel: str) -> None:
        self._client = client
        self._guard = guard
        self.channel = channel

    async def publish(self, message: str) -> bool:
        async def send() -> bool:
            await self._client.publish(self.channel, message)
            return True

        return await self._guard.run(send, False)
