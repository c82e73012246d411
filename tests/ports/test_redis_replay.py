"""The Redis replay guard against a real server: the shared contract, and failing closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from sidecar.errors import Unavailable
from sidecar.ports.circuit import CircuitBreaker
from sidecar.ports.clock import FrozenClock
from sidecar.ports.redis_client import RedisClient, RedisGuard, RedisOptions, connect
from sidecar.ports.redis_replay import RedisReplayGuard
from tests.ports.replay_contract import PassTime, ReplayGuardContract
from tests.redis_fixtures import RedisProcess

OPTIONS = RedisOptions(pool_size=4, timeout_s=1.0, connect_timeout_s=1.0)


def make_guard(url: str) -> tuple[RedisReplayGuard, RedisClient]:
    client = connect(url, OPTIONS)
    breaker = CircuitBreaker(FrozenClock(), name="redis", failures=3, reset_s=5)
    return RedisReplayGuard(client, RedisGuard(breaker, timeout_s=1.0), prefix="test:"), client


class TestRedisReplayGuard(ReplayGuardContract):
    @pytest.fixture
    async def guard(self, redis_url: str) -> AsyncIterator[RedisReplayGuard]:
        guard, client = make_guard(redis_url)
        yield guard
        await client.aclose()

    @pytest.fixture
    def pass_time(self) -> PassTime:
        async def wait(seconds: float) -> None:
            await asyncio.sleep(seconds)  # the server's own clock expires the key

        return wait


async def test_one_round_trip_stores_a_hashed_key_with_a_ttl(redis_url: str) -> None:
    guard, client = make_guard(redis_url)
    assert await guard.first_use("stateset:1:" + "ab" * 32, 300)
    raw = aioredis.Redis.from_url(redis_url)
    [name] = await raw.keys("test:replay:*")
    assert len(name) == len("test:replay:") + 64
    assert 299_000 < await raw.pttl(name) <= 300_000
    await raw.aclose()
    await client.aclose()


async def test_fails_closed_when_redis_is_gone(own_redis: RedisProcess) -> None:
    guard, client = make_guard(own_redis.url)
    assert await guard.first_use("k", 60)
    own_redis.kill()
    with pytest.raises(Unavailable) as exc:
        await guard.first_use("k2", 60)
    assert exc.value.reason == "replay_guard_unavailable"
    await client.aclose()
