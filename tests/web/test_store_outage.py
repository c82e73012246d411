"""PostgreSQL away, Redis up: cached keys keep working until their entries expire; nothing else is guessed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from sidecar.app import create_app
from sidecar.domain import keyformat
from sidecar.models import Environment, KeyType
from sidecar.ports.clock import FrozenClock
from sidecar.settings import Settings
from tests.conftest import Bootstrap, bearer
from tests.ports.pgproxy import PgRelay

Client = TestClient[Any, Any]
ClientFactory = Callable[..., Awaitable[Client]]


async def test_with_postgres_away_keys_live_as_long_as_a_cache_holds_them(
    aiohttp_client: ClientFactory,
    tmp_path: Path,
    pg_url: str,
    relay: PgRelay,
    redis_url: str,
    clock: FrozenClock,
) -> None:
    settings = Settings(
        data_dir=tmp_path / "shared",
        database_url=relay.url(pg_url),
        database_timeout_s=2,
        redis_url=redis_url,
        key_cache={"ttl_s": 30},
        redis={"timeout_s": 1.0},
    )
    bootstrap = Bootstrap()
    a, b = [await aiohttp_client(create_app(settings, clock=clock, on_bootstrap=bootstrap)) for _ in range(2)]
    created = await a.post("/v1/api_keys", json={"name": "svc"}, headers=bearer(bootstrap.key))
    key = (await created.json())["key"]
    assert (await a.get("/v1/auth/validate", headers=bearer(key))).status == 200  # now in A's cache and Redis

    await relay.cut()
    assert (await b.get("/v1/auth/validate", headers=bearer(key))).status == 200  # B never saw it: Redis
    clock.advance(31)  # past the in-process TTL: Redis still holds the key
    assert (await a.get("/v1/auth/validate", headers=bearer(key))).status == 200
    assert (await b.get("/v1/auth/validate", headers=bearer(key))).status == 200  # B's copy, renewed from Redis

    never_seen = keyformat.mint(keyformat.prefix_for(KeyType.SECRET, "operator", Environment.LIVE))
    resp = await a.get("/v1/auth/validate", headers=bearer(never_seen))
    assert resp.status == 503
    assert (await resp.json())["error"] == "SERVICE_UNAVAILABLE"

    raw = aioredis.Redis.from_url(redis_url)
    try:
        await raw.flushall()  # the shared entry expires too
    finally:
        await raw.aclose()
    assert (await b.get("/v1/auth/validate", headers=bearer(key))).status == 200  # B's own copy, until its TTL
    clock.advance(31)
    assert (await b.get("/v1/auth/validate", headers=bearer(key))).status == 503

    await relay.start()
    assert (await b.get("/v1/auth/validate", headers=bearer(key))).status == 200
