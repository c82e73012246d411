"""Wiring Redis into a process (server or CLI) from settings: the client, its breaker, the shared tiers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sidecar.domain.keys import KeyService
from sidecar.domain.ratelimits import RateLimitPolicy, RateLimitService
from sidecar.domain.revocations import TokenRevocations
from sidecar.errors import SidecarError
from sidecar.ports import Clock
from sidecar.ports.circuit import CircuitBreaker
from sidecar.ports.ratelimit import Limit, MemoryRateLimiter, RateLimiter
from sidecar.ports.redis_cache import InvalidationListener, RedisBroadcast, RedisKeyCache
from sidecar.ports.redis_client import RedisClient, RedisGuard, RedisOptions, connect
from sidecar.ports.redis_ratelimit import RedisRateLimiter
from sidecar.ports.redis_replay import RedisReplayGuard
from sidecar.settings import RateLimitRule, Settings


@dataclass(frozen=True, slots=True)
class RedisTier:
    client: RedisClient
    guard: RedisGuard
    keys: RedisKeyCache
    revocations: RedisBroadcast
    #: verified webhook deliveries, shared by every verifier (``sidecar webhooks verify --refuse-replays``)
    replay: RedisReplayGuard


def _limit(rule: RateLimitRule) -> Limit:
    return Limit(requests=rule.requests, period_s=rule.per_s, burst=rule.burst or rule.requests)


def build_rate_limits(settings: Settings, redis: RedisTier | None, clock: Clock) -> RateLimitService | None:
    """The rate limiter: shared in Redis when configured (in-process while it is down), else in-process."""
    rl = settings.rate_limit
    if not rl.enabled:
        return None
    policy = RateLimitPolicy(
        default=_limit(rl.default),
        unauthenticated=_limit(rl.unauthenticated),
        by_type={t: _limit(r) for t, r in rl.by_type.items()},
        by_role={role: _limit(r) for role, r in rl.by_role.items()},
        by_key={key_id: _limit(r) for key_id, r in rl.by_key.items()},
    )
    local = MemoryRateLimiter(clock)
    limiter: RateLimiter = (
        local if redis is None else RedisRateLimiter(redis.client, redis.guard, local, prefix=settings.redis.prefix)
    )
    return RateLimitService(limiter, policy, trusted_hops=rl.trusted_proxy_hops)


log = logging.getLogger("sidecar.redis")

#: The running invalidation listener of an app (absent without Redis); readiness and tests look at it.
INVALIDATIONS = web.AppKey("invalidations", InvalidationListener)
#: The same for token revocations.
REVOCATION_UPDATES = web.AppKey("revocation_updates", InvalidationListener)


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
    revocations = RedisBroadcast(client, guard, r.prefix + "revocations")
    try:
        replay = RedisReplayGuard(client, guard, prefix=r.prefix)
        yield RedisTier(client=client, guard=guard, keys=keys, revocations=revocations, replay=replay)
    finally:
        await client.aclose()


@asynccontextmanager
async def invalidations(tier: RedisTier | None, keys: KeyService) -> AsyncIterator[InvalidationListener | None]:
    """Keep ``keys``' in-process cache in step with every other replica while the block runs."""
    if tier is None:
        yield None
        return
    redelivery: set[asyncio.Task[int]] = set()

    def subscribed() -> None:
        keys.forget_all()  # messages may have been missed while we were not listening
        tier.guard.breaker.success()  # the subscription itself is proof Redis answers again
        task = asyncio.create_task(tier.keys.deliver_pending())  # and ours may not have gone out
        redelivery.add(task)
        task.add_done_callback(redelivery.discard)

    listener = InvalidationListener(tier.client, tier.keys.channel, on_message=keys.forget, on_subscribed=subscribed)
    task = asyncio.create_task(listener.run(), name="sidecar-invalidations")
    try:
        yield listener
    finally:
        for running in (task, *redelivery):
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running


@asynccontextmanager
async def revocation_updates(
    tier: RedisTier | None, revocations: TokenRevocations, *, reload_s: float
) -> AsyncIterator[InvalidationListener | None]:
    """Keep ``revocations`` in step with other replicas: their broadcasts, and the store every ``reload_s``."""
    tasks: set[asyncio.Task[None]] = set()

    def spawn(coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def reload_forever() -> None:
        while True:
            await asyncio.sleep(reload_s)
            await reload_once()

    async def reload_once() -> None:
        try:
            await revocations.reload()
        except SidecarError as exc:
            log.warning("could not re-read token revocations: %s; will retry", exc.reason)

    spawn(reload_forever())
    listener = None
    if tier is not None:
        listener = InvalidationListener(
            tier.client,
            tier.revocations.channel,
            on_message=revocations.apply_message,
            on_subscribed=lambda: spawn(reload_once()),  # broadcasts may have been missed
        )
        spawn(listener.run())
    try:
        yield listener
    finally:
        for task in list(tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
