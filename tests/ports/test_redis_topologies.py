"""The Sentinel and Cluster URL forms, against real servers: a one-node Cluster, a master behind a Sentinel."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from sidecar.domain import keyformat
from sidecar.errors import ConfigError
from sidecar.models import Environment, KeyType
from sidecar.ports.circuit import CircuitBreaker
from sidecar.ports.clock import FrozenClock
from sidecar.ports.ratelimit import Limit, MemoryRateLimiter
from sidecar.ports.redis_cache import InvalidationListener, RedisKeyCache
from sidecar.ports.redis_client import RedisClient, RedisGuard, RedisOptions, check_url, connect
from sidecar.ports.redis_ratelimit import RedisRateLimiter
from tests.ports.test_redis_cache import record
from tests.redis_fixtures import HOST, RedisProcess, free_port, server_binary, wait_ready

OPTIONS = RedisOptions(pool_size=4, timeout_s=2.0, connect_timeout_s=2.0)


def spawn(args: list[str], workdir: Path) -> subprocess.Popen[bytes]:
    with (workdir / "server.log").open("wb") as log:
        return subprocess.Popen(args, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)


def cluster_port() -> int:
    """A free port whose cluster-bus port (port + 10000) is a valid, free port too."""
    for _ in range(100):
        port = free_port()
        if port + 10000 <= 65535:
            with socket.socket() as sock:
                try:
                    sock.bind((HOST, port + 10000))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair for a cluster node")


@pytest.fixture(scope="module")
def cluster_url() -> Iterator[str]:
    """A one-node Redis Cluster owning all 16384 slots."""
    port, workdir = cluster_port(), Path(tempfile.mkdtemp(prefix="sidecar-cluster-"))
    proc = spawn(
        [server_binary(), "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
         "--cluster-enabled", "yes", "--cluster-config-file", str(workdir / "nodes.conf")],
        workdir,
    )  # fmt: skip
    try:
        wait_ready(port, log=workdir / "server.log")
        _assign_all_slots(port)
        yield f"redis+cluster://{HOST}:{port}"
    finally:
        proc.kill()
        proc.wait()


def _assign_all_slots(port: int) -> None:
    node = redis.Redis(host=HOST, port=port)
    try:
        node.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        for _ in range(200):
            info = node.execute_command("CLUSTER", "INFO")
            if b"cluster_state:ok" in (info if isinstance(info, bytes) else str(info).encode()):
                return
            time.sleep(0.05)
        raise RuntimeError("the one-node cluster never became ok")
    finally:
        node.close()


@pytest.fixture(scope="module")
def sentinel_url() -> Iterator[str]:
    """A master and one Sentinel watching it as ``mymaster``."""
    master = RedisProcess().start()
    port, workdir = free_port(), Path(tempfile.mkdtemp(prefix="sidecar-sentinel-"))
    conf = workdir / "sentinel.conf"
    conf.write_text(f"port {port}\nbind {HOST}\nsentinel monitor mymaster {HOST} {master.port} 1\n")
    proc = spawn([server_binary(), str(conf), "--sentinel"], workdir)
    try:
        wait_ready(port, log=workdir / "server.log")
        yield f"redis+sentinel://{HOST}:{port}/mymaster"
    finally:
        proc.kill()
        proc.wait()
        master.close()


@pytest.fixture(params=["cluster", "sentinel"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[RedisClient]:
    url = request.getfixturevalue(f"{request.param}_url")
    client = connect(url, OPTIONS)
    yield client
    await client.aclose()


def guard(clock: FrozenClock) -> RedisGuard:
    return RedisGuard(CircuitBreaker(clock, name="redis", failures=1, reset_s=5), timeout_s=OPTIONS.timeout_s)


async def test_the_shared_cache_works_through_the_topology(client: RedisClient, clock: FrozenClock) -> None:
    cache = RedisKeyCache(client, guard(clock), prefix="topo:", ttl_s=60, negative_ttl_s=5)
    await client.delete(f"topo:key:{record('x' * 46).digest}")
    rec = record(keyformat.mint(keyformat.prefix_for(KeyType.SECRET, "operator", Environment.LIVE)))
    await cache.put(rec.digest, rec)
    assert await cache.get(rec.digest) == (True, rec)

    heard: list[str] = []
    listener = InvalidationListener(client, cache.channel, on_message=heard.append, on_subscribed=lambda: None)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.subscribed.wait(), 5)
        assert await cache.invalidate(rec.digest)
        for _ in range(200):
            if heard:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert heard == [rec.digest]
    assert await cache.get(rec.digest) == (False, None)


async def test_the_rate_limit_script_runs_through_the_topology(client: RedisClient, clock: FrozenClock) -> None:
    limiter = RedisRateLimiter(client, guard(clock), MemoryRateLimiter(clock), prefix="topo:")
    limit = Limit(requests=1, period_s=60, burst=2)
    decisions = [await limiter.hit("key:topo", limit) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert await client.exists("topo:rl:key:topo") == 1  # decided in Redis, not by the fallback


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://127.0.0.1:26379",
        "redis+sentinel://127.0.0.1:26379/svc/notadb",
        "redis+cluster://127.0.0.1",
        "memcached://127.0.0.1:11211",
        "redis://127.0.0.1:notaport",
    ],
)
def test_bad_urls_stop_the_process_with_a_message(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_url(url)
    assert "SIDECAR_REDIS_URL" in caught.value.message
