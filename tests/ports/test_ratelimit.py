"""GCRA limiters: one contract, run in-process (frozen clock) and in a real Redis (Redis's clock)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sidecar.ports.circuit import CircuitBreaker
from sidecar.ports.clock import FrozenClock
from sidecar.ports.ratelimit import Limit, MemoryRateLimiter, RateLimiter
from sidecar.ports.redis_client import RedisGuard, RedisOptions, connect
from sidecar.ports.redis_ratelimit import RedisRateLimiter
from tests.redis_fixtures import RedisProcess

#: slow enough that the real clock moving during a test cannot refill a request
THREE_PER_MINUTE = Limit(requests=1, period_s=20, burst=3)
OPTIONS = RedisOptions(pool_size=4, timeout_s=1.0, connect_timeout_s=1.0)


class RateLimiterContract:
    async def test_a_burst_is_allowed_then_the_next_call_waits_one_interval(self, limiter: RateLimiter) -> None:
        decisions = [await limiter.hit("key:a", THREE_PER_MINUTE) for _ in range(4)]
        assert [d.allowed for d in decisions] == [True, True, True, False]
        assert [d.remaining for d in decisions] == [2, 1, 0, 0]
        assert all(d.limit == 3 for d in decisions)
        denied = decisions[-1]
        assert 19 < denied.retry_after_s <= 20
        assert 59 < denied.reset_s <= 60

    async def test_buckets_are_independent(self, limiter: RateLimiter) -> None:
        for _ in range(3):
            await limiter.hit("key:a", THREE_PER_MINUTE)
        assert not (await limiter.hit("key:a", THREE_PER_MINUTE)).allowed
        assert (await limiter.hit("key:b", THREE_PER_MINUTE)).allowed

    async def test_denied_calls_do_not_dig_the_hole_deeper(self, limiter: RateLimiter) -> None:
        for _ in range(3):
            await limiter.hit("key:a", THREE_PER_MINUTE)
        first = await limiter.hit("key:a", THREE_PER_MINUTE)
        for _ in range(10):
            await limiter.hit("key:a", THREE_PER_MINUTE)
        again = await limiter.hit("key:a", THREE_PER_MINUTE)
        assert again.retry_after_s <= first.retry_after_s


class TestMemoryRateLimiter(RateLimiterContract):
    @pytest.fixture
    def limiter(self, clock: FrozenClock) -> RateLimiter:
        return MemoryRateLimiter(clock)

    async def test_the_budget_refills_with_time(self, clock: FrozenClock) -> None:
        limiter = MemoryRateLimiter(clock)
        for _ in range(3):
            await limiter.hit("key:a", THREE_PER_MINUTE)
        clock.advance(20)
        assert (await limiter.hit("key:a", THREE_PER_MINUTE)).allowed
        assert not (await limiter.hit("key:a", THREE_PER_MINUTE)).allowed
        clock.advance(60)
        assert (await limiter.hit("key:a", THREE_PER_MINUTE)).remaining == 2

    async def test_a_stream_of_new_callers_levels_off(self, clock: FrozenClock) -> None:
        limiter = MemoryRateLimiter(clock, max_buckets=500)
        sizes = []
        for n in range(5000):  # one new caller every 0.1 s, each bucket full again 20 s later
            await limiter.hit(f"ip:{n}", Limit(requests=1, period_s=20, burst=1))
            clock.advance(0.1)
            sizes.append(len(limiter))
        assert max(sizes) <= 201  # what 20 s of callers hold, far below the bound
        await limiter.hit("ip:again", THREE_PER_MINUTE)
        assert len(limiter) <= 201

    async def test_at_the_bound_the_least_recently_used_goes(self, clock: FrozenClock) -> None:
        limiter = MemoryRateLimiter(clock, max_buckets=100)
        for n in range(1000):
            await limiter.hit(f"ip:{n}", THREE_PER_MINUTE)
        assert len(limiter) == 100
        assert (await limiter.hit("ip:999", THREE_PER_MINUTE)).remaining == 1  # recent: still counted
        assert (await limiter.hit("ip:0", THREE_PER_MINUTE)).remaining == 2  # the oldest: forgotten


def redis_limiter(url: str, clock: FrozenClock) -> tuple[RedisRateLimiter, MemoryRateLimiter]:
    guard = RedisGuard(CircuitBreaker(clock, name="redis", failures=1, reset_s=5), timeout_s=1.0)
    local = MemoryRateLimiter(clock)
    return RedisRateLimiter(connect(url, OPTIONS), guard, local, prefix="t:"), local


class TestRedisRateLimiter(RateLimiterContract):
    @pytest.fixture
    async def limiter(self, redis_url: str, clock: FrozenClock) -> AsyncIterator[RateLimiter]:
        limiter, _ = redis_limiter(redis_url, clock)
        yield limiter
        await limiter._script.registered_client.aclose()

    async def test_replicas_share_one_budget(self, redis_url: str, clock: FrozenClock) -> None:
        a, _ = redis_limiter(redis_url, clock)
        b, _ = redis_limiter(redis_url, clock)
        try:
            assert (await a.hit("key:a", THREE_PER_MINUTE)).allowed
            assert (await b.hit("key:a", THREE_PER_MINUTE)).allowed
            assert (await a.hit("key:a", THREE_PER_MINUTE)).allowed
            assert not (await b.hit("key:a", THREE_PER_MINUTE)).allowed
        finally:
            await a._script.registered_client.aclose()
            await b._script.registered_client.aclose()

    async def test_without_redis_each_replica_limits_on_its_own(
        self, own_redis: RedisProcess, clock: FrozenClock
    ) -> None:
        limiter, _local = redis_limiter(own_redis.url, clock)
        try:
            assert (await limiter.hit("key:a", THREE_PER_MINUTE)).allowed
            own_redis.kill()
            decisions = [await limiter.hit("key:a", THREE_PER_MINUTE) for _ in range(4)]
            assert [d.allowed for d in decisions] == [True, True, True, False]
            own_redis.start()
            clock.advance(5)  # the circuit tries Redis again; the script is loaded anew
            assert (await limiter.hit("key:a", THREE_PER_MINUTE)).allowed
        finally:
            await limiter._script.registered_client.aclose()
