"""Wiring Redis into a process (server or CLI) from settings: the client, its breaker, the shared tiers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from sidecar.domain.keys import KeyService
from sidecar.ports import Clock
from sidecar.ports.circuit import CircuitBreaker
from sidecar.ports.redis_cache import InvalidationListener, RedisKeyCache
from sidecar.ports.redis_client import RedisClient, RedisGuard, RedisOptions, connect
from sidecar.settings import Settings


@dataclass(frozen=True, slots=True)
class RedisTier:
    client: RedisClient
    guard: RedisGuard
    keys: RedisKeyCache


#: The running invalidation listener of an app (absent without Redis); readiness and tests look at it.
INVALIDATIONS = web.AppKey("invalidations", InvalidationListener)


def redis_client(settings: Settings) -> RedisClient | None:
    """A client for ``SIDECAR_REDIS_URL`` (``ConfigError`` on a bad URL); ``None`` when unset."""
    if not settings.redis_url:
        return None
    r = settings.redis
    return connect(
        settings.redis_url,
        RedisOptions(pool_size=r.pool_size, timeout_s=r.timeout_s, connect_timeout_s=r.connect_timeout_s),
    )


@asynccontextmanager
async def open_redis(settings: Settings, clock: Clock) -> AsyncIterator[RedisTier | None]:
    client = redis_client(settings)
    if client is None:
        yield None
        return
    r = settings.redis
    breaker = CircuitBreaker(clock, name="redis", failures=r.breaker_failures, reset_s=r.breaker_reset_s)
    guard = RedisGuard(breaker, timeout_s=r.timeout_s)
    keys = RedisKeyCache(client, guard, prefix=r.prefix, ttl_s=r.key_ttl_s, negative_ttl_s=r.negative_ttl_s)
    try:
        yield RedisTier(client=client, guard=guard, keys=keys)
    finally:
        await client.aclose()


@asynccontextmanager
async def invalidations(tier: RedisTier | None, keys: KeyService) -> AsyncIterator[InvalidationListener | None]:
    """Keep ``keys``' in-process cache in step with every other replica while the block runs."""
    if tier is None:
        yield None
        return
    listener = InvalidationListener(
        tier.client, tier.keys.channel, on_message=keys.forget, on_subscribed=keys.forget_all
    )
    task = asyncio.create_task(listener.run(), name="sidecar-invalidations")
    try:
        yield listener
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
