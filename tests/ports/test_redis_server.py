"""The test Redis itself: reachable on 127.0.0.1, emptied between tests, restartable on its port."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from tests.redis_fixtures import RedisProcess


async def test_redis_answers_on_loopback_and_starts_empty(redis_url: str) -> None:
    assert redis_url.startswith("redis://127.0.0.1:")
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.dbsize() == 0
        await client.set("left-behind", "1")
    finally:
        await client.aclose()


async def test_the_next_test_sees_an_empty_redis(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.get("left-behind") is None
    finally:
        await client.aclose()


async def test_own_redis_can_be_killed_and_restarted_on_its_port(own_redis: RedisProcess) -> None:
    client = aioredis.Redis.from_url(own_redis.url, socket_timeout=1, socket_connect_timeout=1)
    try:
        assert await client.ping()
        own_redis.kill()
        with pytest.raises(redis.exceptions.ConnectionError):
            await client.ping()
        own_redis.start()
        assert await client.ping()
    finally:
        await client.aclose()
