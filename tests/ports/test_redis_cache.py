"""The shared key cache against a real Redis: entries, negatives, invalidation, and a Redis that is gone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from sidecar.domain import keyformat
from sidecar.models import ApiKeyRecord, Environment, KeyType
from sidecar.ports.circuit import CircuitBreaker
from sidecar.ports.clock import FrozenClock
from sidecar.ports.redis_cache import RedisKeyCache
from sidecar.ports.redis_client import RedisGuard, RedisOptions, connect
from tests.redis_fixtures import HOST, RedisProcess, free_port

OPTIONS = RedisOptions(pool_size=4, timeout_s=1.0, connect_timeout_s=1.0)


def record(key: str) -> ApiKeyRecord:
    return ApiKeyRecord(
        id="key_abc",
        digest=keyformat.digest(key),
        prefix="sk_live_",
        last4=key[-4:],
        name="orders backend",
        type=KeyType.SECRET,
        role="operator",
        environment=Environment.LIVE,
        org_id="org_1",
        team_id=None,
        user_id="u_1",
        permissions=("orders:read",),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        expires_at=datetime(2026, 6, 1, 12, 30, tzinfo=UTC),
        allowed_origins=("https://shop.example",),
    )


def a_key() -> str:
    return keyformat.mint(keyformat.prefix_for(KeyType.SECRET, "operator", Environment.LIVE))


def make_cache(url: str, clock: FrozenClock, *, options: RedisOptions = OPTIONS) -> tuple[RedisKeyCache, RedisGuard]:
    client = connect(url, options)
    guard = RedisGuard(CircuitBreaker(clock, name="redis", failures=2, reset_s=5), timeout_s=options.timeout_s)
    return RedisKeyCache(client, guard, prefix="t:", ttl_s=60, negative_ttl_s=5), guard


@pytest.fixture
async def cache(redis_url: str, clock: FrozenClock) -> AsyncIterator[RedisKeyCache]:
    cache, _guard = make_cache(redis_url, clock)
    yield cache
    await cache._client.aclose()


async def test_a_stored_record_comes_back_whole_with_its_digest(cache: RedisKeyCache) -> None:
    key = a_key()
    rec = record(key)
    assert await cache.get(rec.digest) == (False, None)
    await cache.put(rec.digest, rec)
    assert await cache.get(rec.digest) == (True, rec)


async def test_the_entry_holds_no_secret_and_expires(cache: RedisKeyCache, redis_url: str) -> None:
    key = a_key()
    rec = record(key)
    await cache.put(rec.digest, rec)
    raw = aioredis.Redis.from_url(redis_url)
    try:
        value = await raw.get(f"t:key:{rec.digest}")
        ttl_ms = await raw.pttl(f"t:key:{rec.digest}")
    finally:
        await raw.aclose()
    assert value is not None
    assert key.encode() not in value
    assert rec.digest.encode() not in value
    assert 0 < ttl_ms <= 60_000


async def test_unknown_keys_are_cached_as_unknown(cache: RedisKeyCache) -> None:
    digest = keyformat.digest(a_key())
    await cache.put(digest, None)
    assert await cache.get(digest) == (True, None)


async def test_invalidation_drops_the_entry_and_a_stale_put_cannot_bring_it_back(cache: RedisKeyCache) -> None:
    rec = record(a_key())
    await cache.put(rec.digest, rec)
    assert await cache.invalidate(rec.digest)
    assert await cache.get(rec.digest) == (False, None)
    await cache.put(rec.digest, rec)  # a replica that read the store just before the revoke
    assert await cache.get(rec.digest) == (False, None)


async def test_invalidation_is_published_to_subscribers(cache: RedisKeyCache, redis_url: str) -> None:
    sub = aioredis.Redis.from_url(redis_url)
    pubsub = sub.pubsub()
    try:
        await pubsub.subscribe(cache.channel)
        await pubsub.get_message(timeout=1)  # the subscribe confirmation
        digest = keyformat.digest(a_key())
        await cache.invalidate(digest)
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
    finally:
        await pubsub.aclose()
        await sub.aclose()
    assert message is not None
    assert message["data"] == digest.encode()


async def test_a_dead_redis_is_a_miss_and_opens_the_circuit(own_redis: RedisProcess, clock: FrozenClock) -> None:
    cache, guard = make_cache(own_redis.url, clock)
    rec = record(a_key())
    try:
        await cache.put(rec.digest, rec)
        own_redis.kill()
        assert await cache.get(rec.digest) == (False, None)
        assert await cache.get(rec.digest) == (False, None)
        assert guard.breaker.state == "open"
        assert not await cache.invalidate(rec.digest)
        own_redis.start()
        assert await cache.get(rec.digest) == (False, None)  # still open: Redis is not even asked
        clock.advance(5)
        await cache.put(rec.digest, rec)  # the half-open trial succeeds
        assert guard.breaker.state == "closed"
        assert await cache.get(rec.digest) == (True, rec)
    finally:
        await cache._client.aclose()


async def test_a_redis_that_never_answers_costs_one_timeout_then_nothing(clock: FrozenClock) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    port = free_port()
    server = await asyncio.start_server(silent, HOST, port)
    options = RedisOptions(pool_size=4, timeout_s=0.05, connect_timeout_s=0.05)
    cache, guard = make_cache(f"redis://{HOST}:{port}", clock, options=options)
    digest = keyformat.digest(a_key())
    try:
        async with asyncio.timeout(5):  # a hang fails the test instead of stalling the suite
            assert await cache.get(digest) == (False, None)
            assert await cache.get(digest) == (False, None)
            assert guard.breaker.state == "open"
            for _ in range(100):
                assert await cache.get(digest) == (False, None)
        assert len(accepted) <= 2  # once open, the circuit stops dialling the silent server
    finally:
        await cache._client.aclose()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_flood_of_unknown_keys_leaves_only_entries_that_expire(redis_url: str, clock: FrozenClock) -> None:
    """Every random well-formed key is remembered as unknown in Redis, always with a TTL, and gone
    after it: the shared tier cannot grow without bound however many keys are tried."""
    client = connect(redis_url, OPTIONS)
    guard = RedisGuard(CircuitBreaker(clock, name="redis", failures=2, reset_s=5), timeout_s=OPTIONS.timeout_s)
    cache = RedisKeyCache(client, guard, prefix="flood:", ttl_s=60, negative_ttl_s=1.0)
    raw = aioredis.Redis.from_url(redis_url)
    try:
        digests = [keyformat.digest(a_key()) for _ in range(2000)]
        for digest in digests:
            await cache.put(digest, None)
        stored = [k async for k in raw.scan_iter(match="flood:key:*", count=1000)]
        assert 0 < len(stored) <= len(digests)  # on a slow machine the first may have expired already
        pipe = raw.pipeline(transaction=False)
        for k in stored:
            pipe.pttl(k)
        ttls = await pipe.execute()
        assert all(0 < ttl <= 1000 for ttl in ttls), ttls
        assert (await cache.get(digests[-1])) == (True, None)
        await asyncio.sleep(1.2)
        assert [k async for k in raw.scan_iter(match="flood:*", count=1000)] == []
    finally:
        await raw.aclose()
        await client.aclose()
