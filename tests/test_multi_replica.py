"""Two ``sidecar serve`` processes on one PostgreSQL and one Redis: what an operator running replicas relies on."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.redis_fixtures import RedisProcess
from tests.replica_processes import Replica, replica_env

#: The bound the README states for a revocation to reach every replica sharing a Redis.
PROPAGATION_BOUND_S = 1.0


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


@pytest.fixture
async def replicas(
    tmp_path: Path, pg_url: str, own_redis: RedisProcess, session: aiohttp.ClientSession
) -> AsyncIterator[tuple[Replica, Replica, str]]:
    env = replica_env(
        database_url=pg_url,
        redis_url=own_redis.url,
        SIDECAR_KEY_CACHE__TTL_S="3600",
        SIDECAR_REDIS__BREAKER_RESET_S="0.5",
        SIDECAR_RATE_LIMIT__ENABLED="true",
        SIDECAR_RATE_LIMIT__BY_ROLE=json.dumps({"operator": {"requests": 1, "per_s": 60, "burst": 4}}),
    )
    a, b = Replica("a", env, tmp_path / "a"), Replica("b", env, tmp_path / "b")
    try:
        await a.start(session)  # first: it imports the bootstrap key into the empty store
        await b.start(session)
        yield a, b, env["SIDECAR_BOOTSTRAP_ADMIN_KEY"]
    finally:
        await asyncio.gather(a.stop(), b.stop())


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def status(session: aiohttp.ClientSession, replica: Replica, key: str) -> int:
    async with session.get(f"{replica.url}/v1/auth/validate", headers=bearer(key)) as resp:
        return resp.status


async def create_key(session: aiohttp.ClientSession, replica: Replica, admin: str) -> dict[str, str]:
    async with session.post(f"{replica.url}/v1/api_keys", json={"name": "svc"}, headers=bearer(admin)) as resp:
        assert resp.status == 201, await resp.text()
        return dict(await resp.json())


async def seconds_until_denied(session: aiohttp.ClientSession, replica: Replica, key: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < 10:
        if await status(session, replica, key) == 401:
            return time.monotonic() - start
        await asyncio.sleep(0.005)
    return float("inf")


async def test_two_replicas_share_revocations_and_rate_limits_and_survive_redis_dying(
    replicas: tuple[Replica, Replica, str], session: aiohttp.ClientSession, own_redis: RedisProcess
) -> None:
    a, b, admin = replicas

    revoked = await create_key(session, a, admin)
    assert await status(session, b, revoked["key"]) == 200  # cached in B's process for an hour
    async with session.delete(f"{a.url}/v1/api_keys/{revoked['id']}", headers=bearer(admin)) as resp:
        assert resp.status == 200
    assert await seconds_until_denied(session, b, revoked["key"]) < PROPAGATION_BOUND_S

    token_key = (await create_key(session, a, admin))["key"]
    async with session.post(f"{a.url}/v1/auth/token", headers=bearer(token_key)) as resp:
        token = (await resp.json())["access_token"]
    assert await status(session, b, token) == 200
    async with session.post(f"{a.url}/v1/auth/revoke", json={"token": token}) as resp:
        assert resp.status == 200
    assert await seconds_until_denied(session, b, token) < PROPAGATION_BOUND_S

    limited = (await create_key(session, a, admin))["key"]
    statuses = [await status(session, replica, limited) for replica in (a, b, a, b, a, b)]
    assert statuses == [200, 200, 200, 200, 429, 429]  # burst 4, shared

    cached = (await create_key(session, a, admin))["key"]
    assert await status(session, b, cached) == 200
    own_redis.kill()
    fresh = (await create_key(session, a, admin))["key"]
    for replica in (a, b):
        assert await status(session, replica, cached) == 200
        assert await status(session, replica, fresh) == 200  # from the store
        assert await status(session, replica, revoked["key"]) == 401
        async with session.get(f"{replica.url}/readyz") as resp:
            assert resp.status == 200  # still serving: stays in the load balancer
            body = await resp.json()
        assert body["status"] == "degraded"
        assert body["checks"]["cache"]["ok"] is False
        assert body["checks"]["store"] == {"ok": True}
