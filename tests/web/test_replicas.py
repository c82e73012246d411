"""Several replicas in one process, sharing one store and one Redis, seen through their HTTP APIs."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from sidecar.app import create_app
from sidecar.ports.clock import FrozenClock
from sidecar.redis_wiring import INVALIDATIONS
from sidecar.settings import Settings
from tests.conftest import Bootstrap, bearer
from tests.redis_fixtures import HOST, RedisProcess, TcpRelay, free_port

Client = TestClient[Any, Any]
ClientFactory = Callable[..., Awaitable[Client]]
#: The propagation bound the README states for replicas sharing a Redis.
PROPAGATION_BOUND_S = 1.0


def replica_settings(tmp_path: Path, redis_url: str, **overrides: Any) -> Settings:
    """Every replica sees the same store file and Redis; big in-process TTLs, so only pub/sub can evict."""
    return Settings(
        data_dir=tmp_path / "shared",
        redis_url=redis_url,
        key_cache={"ttl_s": 3600, "negative_ttl_s": 3600},
        redis={"timeout_s": 1.0, "connect_timeout_s": 1.0, "breaker_reset_s": 0.2},
        **overrides,
    )


async def start_replicas(aiohttp_client: ClientFactory, settings: Settings, n: int = 2) -> tuple[list[Client], str]:
    bootstrap = Bootstrap()
    replicas = [await aiohttp_client(create_app(settings, on_bootstrap=bootstrap)) for _ in range(n)]
    return replicas, bootstrap.key


async def new_key(client: Client, admin: str) -> dict[str, Any]:
    resp = await client.post("/v1/api_keys", json={"name": "backend"}, headers=bearer(admin))
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


async def status_of(client: Client, key: str) -> int:
    resp = await client.get("/v1/auth/validate", headers=bearer(key))
    return resp.status


async def seconds_until_denied(client: Client, key: str, *, give_up_s: float = 10.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < give_up_s:
        if await status_of(client, key) == 401:
            return time.monotonic() - start
        await asyncio.sleep(0.005)
    return float("inf")


async def wait_subscribed(client: Client, subscribed: bool = True) -> None:
    """Until the replica's invalidation listener is (or is no longer) subscribed; it runs in the background."""
    for _ in range(1000):
        if client.app[INVALIDATIONS].subscribed.is_set() == subscribed:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the replica's listener never reached subscribed={subscribed}")


async def test_a_key_revoked_on_one_replica_is_denied_by_the_other_within_the_bound(
    aiohttp_client: ClientFactory, tmp_path: Path, redis_url: str
) -> None:
    (a, b), admin = await start_replicas(aiohttp_client, replica_settings(tmp_path, redis_url))
    await wait_subscribed(b)
    created = await new_key(a, admin)
    assert await status_of(b, created["key"]) == 200  # now in B's in-process cache for an hour

    resp = await a.delete(f"/v1/api_keys/{created['id']}", headers=bearer(admin))
    assert resp.status == 200
    assert await seconds_until_denied(b, created["key"]) < PROPAGATION_BOUND_S
    body = await (await b.get("/v1/auth/validate", headers=bearer(created["key"]))).json()
    assert body["error"] == "REVOKED_API_KEY"


async def test_a_rolled_key_gets_its_new_expiry_on_every_replica(
    aiohttp_client: ClientFactory, tmp_path: Path, redis_url: str
) -> None:
    (a, b), admin = await start_replicas(aiohttp_client, replica_settings(tmp_path, redis_url))
    await wait_subscribed(b)
    created = await new_key(a, admin)
    assert await status_of(b, created["key"]) == 200
    resp = await a.post(f"/v1/api_keys/{created['id']}/roll", json={"expires_in": 0}, headers=bearer(admin))
    assert resp.status == 201
    rolled = await resp.json()
    assert await seconds_until_denied(b, created["key"]) < PROPAGATION_BOUND_S
    assert await status_of(b, rolled["key"]) == 200


async def test_a_replica_finds_a_key_another_replica_cached_in_redis(
    aiohttp_client: ClientFactory, tmp_path: Path, redis_url: str
) -> None:
    (a, b), admin = await start_replicas(aiohttp_client, replica_settings(tmp_path, redis_url))
    created = await new_key(a, admin)
    assert await status_of(a, created["key"]) == 200

    raw = aioredis.Redis.from_url(redis_url)
    try:
        names = [name async for name in raw.scan_iter(match="sidecar:key:*")]
    finally:
        await raw.aclose()
    assert len(names) >= 1
    assert await status_of(b, created["key"]) == 200


async def test_replicas_keep_answering_when_redis_dies_and_resync_when_it_returns(
    aiohttp_client: ClientFactory, tmp_path: Path, own_redis: RedisProcess
) -> None:
    (a, b), admin = await start_replicas(aiohttp_client, replica_settings(tmp_path, own_redis.url))
    await wait_subscribed(b)
    created = await new_key(a, admin)
    assert await status_of(b, created["key"]) == 200

    own_redis.kill()
    async with asyncio.timeout(10):
        assert await status_of(a, created["key"]) == 200
        assert await status_of(b, created["key"]) == 200
        other = await new_key(a, admin)
        assert await status_of(b, other["key"]) == 200  # from the store, with Redis gone
        await wait_subscribed(b, subscribed=False)

    own_redis.start()
    await wait_subscribed(b)  # the listener reconnects by itself
    resp = await a.delete(f"/v1/api_keys/{other['id']}", headers=bearer(admin))
    assert resp.status == 200
    assert await seconds_until_denied(b, other["key"]) < PROPAGATION_BOUND_S


async def test_without_redis_the_in_process_ttl_is_the_bound(
    aiohttp_client: ClientFactory, tmp_path: Path, clock: FrozenClock
) -> None:
    settings = Settings(data_dir=tmp_path / "shared", key_cache={"ttl_s": 30})
    bootstrap = Bootstrap()
    a, b = [await aiohttp_client(create_app(settings, clock=clock, on_bootstrap=bootstrap)) for _ in range(2)]
    created = await new_key(a, bootstrap.key)
    assert await status_of(b, created["key"]) == 200
    assert (await a.delete(f"/v1/api_keys/{created['id']}", headers=bearer(bootstrap.key))).status == 200
    assert await status_of(a, created["key"]) == 401
    assert await status_of(b, created["key"]) == 200  # B cannot know yet
    clock.advance(30)
    assert await status_of(b, created["key"]) == 401


async def test_the_cli_publishes_its_revocations_to_running_replicas(
    aiohttp_client: ClientFactory, tmp_path: Path, redis_url: str
) -> None:
    settings = replica_settings(tmp_path, redis_url)
    (server,), admin = await start_replicas(aiohttp_client, settings, n=1)
    await wait_subscribed(server)
    created = await new_key(server, admin)
    assert await status_of(server, created["key"]) == 200

    env = {**os.environ, "SIDECAR_DATA_DIR": str(settings.data_dir), "SIDECAR_REDIS_URL": redis_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sidecar",
        "keys",
        "revoke",
        created["id"],
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert await seconds_until_denied(server, created["key"]) < PROPAGATION_BOUND_S


async def test_a_revoke_made_while_cut_off_from_redis_reaches_the_others_when_the_link_heals(
    aiohttp_client: ClientFactory, tmp_path: Path, redis_url: str
) -> None:
    port = int(redis_url.rsplit(":", 1)[1])
    relay = TcpRelay(port)
    await relay.start()
    bootstrap = Bootstrap()
    a = await aiohttp_client(create_app(replica_settings(tmp_path, relay.url), on_bootstrap=bootstrap))
    b = await aiohttp_client(create_app(replica_settings(tmp_path, redis_url), on_bootstrap=bootstrap))
    admin = bootstrap.key
    await wait_subscribed(a)
    await wait_subscribed(b)
    created = await new_key(a, admin)
    assert await status_of(b, created["key"]) == 200

    await relay.cut()  # only A loses Redis
    await wait_subscribed(a, subscribed=False)
    assert (await a.delete(f"/v1/api_keys/{created['id']}", headers=bearer(admin))).status == 200
    assert await status_of(b, created["key"]) == 200  # B cannot know yet: its cache holds the key for an hour

    await relay.start()
    await wait_subscribed(a)
    assert await seconds_until_denied(b, created["key"]) < PROPAGATION_BOUND_S
    await relay.cut()


async def test_a_redis_that_never_answers_never_hangs_a_request(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    port = free_port()
    server = await asyncio.start_server(silent, HOST, port)
    try:
        settings = Settings(data_dir=tmp_path / "data", redis_url=f"redis://{HOST}:{port}", redis={"timeout_s": 0.05})
        bootstrap = Bootstrap()
        client = await aiohttp_client(create_app(settings, on_bootstrap=bootstrap))
        async with asyncio.timeout(10):  # a hang fails here instead of stalling the suite
            created = await new_key(client, bootstrap.key)
            for _ in range(20):
                assert await status_of(client, created["key"]) == 200
            ready = await (await client.get("/readyz")).json()
        assert ready["status"] == "degraded"
        assert not client.app[INVALIDATIONS].subscribed.is_set()
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
