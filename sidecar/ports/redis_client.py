"""Connecting to Redis from ``SIDECAR_REDIS_URL``: one server, Sentinel, or Cluster, through redis-py.

URL forms (``rediss`` variants use TLS):

- ``redis://[[user]:password@]host[:port][/db]``, ``rediss://…``, ``unix:///path/to/redis.sock[?db=N]``:
  one server (redis-py's own URL parsing; its query options such as ``ssl_cert_reqs`` work).
- ``redis+sentinel://[[user]:password@]host:port[,host:port…]/service_name[/db]``: ask the Sentinels
  for the master of ``service_name``; the password authenticates to the master, not to the Sentinels.
- ``redis+cluster://[[user]:password@]host:port[,host:port…]``: a Redis Cluster, from any startup nodes.

Every client gets short timeouts and no retries beyond one reconnect: the caller's circuit breaker
and fallback decide what happens when Redis does not answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from sidecar.errors import ConfigError
from sidecar.ports.circuit import CircuitBreaker

log = logging.getLogger("sidecar.redis")
T = TypeVar("T")

RedisClient = Redis | RedisCluster
SINGLE_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


@dataclass(frozen=True, slots=True)
class RedisOptions:
    pool_size: int
    timeout_s: float
    connect_timeout_s: float


def redacted(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc}").geturl()


def _common(options: RedisOptions) -> dict[str, Any]:
    return {
        "socket_timeout": options.timeout_s,
        "socket_connect_timeout": options.connect_timeout_s,
        "health_check_interval": 10,
        # One immediate retry, on a fresh connection, and only for a dropped one: after a network blip
        # every pooled connection is dead, and each would otherwise count as a failure of Redis.
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    }


def _nodes(netloc: str, url: str) -> list[tuple[str, int]]:
    nodes = []
    for part in netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"SIDECAR_REDIS_URL: expected host:port in {redacted(url)!r}")
        nodes.append((host.strip("[]"), int(port)))
    return nodes


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def check_url(url: str) -> None:
    """Raise ``ConfigError`` unless ``url`` is one of the supported forms; no I/O."""
    scheme = _scheme(url)
    if scheme in SINGLE_SCHEMES:
        try:
            parse_url(url)
        except ValueError as exc:
            raise ConfigError(f"SIDECAR_REDIS_URL: {exc}") from None
        return
    if scheme in SENTINEL_SCHEMES:
        _nodes(urlsplit(url).netloc, url)
        _sentinel_path(url)
        return
    if scheme in CLUSTER_SCHEMES:
        _nodes(urlsplit(url).netloc, url)
        return
    raise ConfigError(
        "SIDECAR_REDIS_URL must start with redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://"
    )


def _sentinel_path(url: str) -> tuple[str, int]:
    path = [p for p in urlsplit(url).path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ConfigError("SIDECAR_REDIS_URL: a Sentinel URL ends in /service_name[/db]")
    return path[0], int(path[1]) if len(path) == 2 else 0


def connect(url: str, options: RedisOptions) -> RedisClient:
    """A client for ``url`` (no I/O yet: connections open on first use)."""
    check_url(url)
    scheme = _scheme(url)
    common = _common(options)
    if scheme in SINGLE_SCHEMES:
        pool = BlockingConnectionPool.from_url(
            url, max_connections=options.pool_size, timeout=options.timeout_s, **common
        )
        return Redis.from_pool(pool)
    parts = urlsplit(url)
    auth: dict[str, Any] = {
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
    }
    tls = scheme.startswith("rediss")
    if scheme in SENTINEL_SCHEMES:
        service, db = _sentinel_path(url)
        sentinel = Sentinel(_nodes(parts.netloc, url), sentinel_kwargs=dict(common), ssl=tls, **auth, **common)
        master: Redis = sentinel.master_for(service, db=db, max_connections=options.pool_size)
        return master
    nodes = [ClusterNode(host, port) for host, port in _nodes(parts.netloc, url)]
    return RedisCluster(startup_nodes=nodes, ssl=tls, max_connections=options.pool_size, **auth, **common)


class RedisGuard:
    """Runs Redis calls under a deadline and a circuit breaker; a failure yields the caller's default."""

    def __init__(self, breaker: CircuitBreaker, *, timeout_s: float) -> None:
        self.breaker = breaker
        self._timeout_s = timeout_s

    async def run(self, call: Callable[[], Awaitable[T]], default: T) -> T:
        if not self.breaker.allow():
            return default
        try:
            async with asyncio.timeout(self._timeout_s):
                result = await call()
        except (RedisError, OSError, TimeoutError) as exc:
            log.debug("redis call failed: %s", type(exc).__name__)
            self.breaker.failure()
            return default
        self.breaker.success()
        return result
