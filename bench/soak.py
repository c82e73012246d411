"""Soak: mixed traffic against ``sidecar serve`` replicas for a set time; errors, latency, memory.

    python -m bench.soak --seconds 300 --replicas 2 --concurrency 32

Starts the replicas on 127.0.0.1 (one store, one master key, one bootstrap admin key;
``--database-url`` for PostgreSQL, which several replicas need for their writes, and
``--redis-url`` for a shared Redis), then runs a weighted mix spread over them: the Hasura webhook
with API keys and session JWTs, token exchange, key create/show/revoke (and the webhook refusing
the revoked key), session-token revocation, and OAuth client-credentials grants. Prints a JSON
report: per operation the count, unexpected answers and p50/p99 latency; per replica its RSS at
the start (after a warm-up), every ``--sample-every`` seconds and at the end. ``--token-ttl`` shortens
the session-token lifetime, so that token revocations (kept until the tokens expire) level off
within the run. Exit status 1 when any answer was unexpected.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.processes import free_port
from sidecar.domain import keyformat
from sidecar.models import Environment, KeyType

HOST = "127.0.0.1"


def rss_kib(pid: int) -> int:
    """The resident set size of ``pid`` in KiB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


@contextmanager
def replicas(
    count: int, workdir: Path, redis_url: str | None, database_url: str | None, token_ttl_s: int | None = None
) -> Iterator[tuple[list[subprocess.Popen[bytes]], str]]:
    admin = keyformat.mint(keyformat.prefix_for(KeyType.SECRET, "super_admin", Environment.LIVE))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")}
    env.update(
        SIDECAR_DATA_DIR=str(workdir),
        SIDECAR_MASTER_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        SIDECAR_BOOTSTRAP_ADMIN_KEY=admin,
        SIDECAR_REQUEST_LOG__MODE="errors",
        SIDECAR_JWT__ALGORITHM="ES256",
        SIDECAR_PUBLIC_URL="http://sidecar.soak.internal",  # one issuer: a token from one replica works on all
    )
    if redis_url:
        env["SIDECAR_REDIS_URL"] = redis_url
    if database_url:
        env["SIDECAR_DATABASE_URL"] = database_url
    if token_ttl_s:
        env["SIDECAR_JWT__TTL_S"] = str(token_ttl_s)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(count):
            port = free_port()
            log = (workdir / f"replica{i}.log").open("wb")
            proc = subprocess.Popen(
                [sys.executable, "-m", "sidecar", "serve", "--host", HOST, "--port", str(port)],
                env=env, stdout=log, stderr=log,
            )  # fmt: skip
            proc.port = port  # type: ignore[attr-defined]
            procs.append(proc)
            if i == 0:
                time.sleep(1.5)  # the first creates the store and the bootstrap key
        yield procs, admin
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


async def wait_up(session: aiohttp.ClientSession, url: str) -> None:
    async with asyncio.timeout(60):
        while True:
            try:
                async with session.get(url + "/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    unexpected: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    samples: dict[str, str] = field(default_factory=dict)

    def record(self, op: str, seconds: float, ok: bool, detail: str) -> None:
        self.latencies[op].append(seconds)
        if not ok:
            self.unexpected[op] += 1
            self.samples.setdefault(op, detail[:300])


class Traffic:
    def __init__(self, session: aiohttp.ClientSession, urls: list[str], admin: str, stats: Stats) -> None:
        self.session, self.urls, self.admin, self.stats = session, urls, admin, stats
        self.keys: list[str] = []
        self.client: tuple[str, str] | None = None

    async def call(
        self, op: str, method: str, path: str, expect: set[int], *, at: str | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        """One request to replica ``at`` (default: any) expecting a status in ``expect``."""
        started = time.perf_counter()
        try:
            async with self.session.request(method, (at or random.choice(self.urls)) + path, **kwargs) as resp:
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.stats.record(op, time.perf_counter() - started, False, repr(exc))
            return 0, None
        self.stats.record(op, time.perf_counter() - started, status in expect, f"{status} {body[:200]!r}")
        try:
            return status, json.loads(body) if body else None
        except ValueError:
            return status, None

    def bearer(self, credential: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {credential}"}

    async def setup(self) -> None:
        for _ in range(20):
            _, body = await self.call("setup", "POST", "/v1/api_keys", {201}, json={"name": "soak"},
                                      headers=self.bearer(self.admin))  # fmt: skip
            self.keys.append(body["key"])
        _, client = await self.call(
            "setup", "POST", "/v1/oauth/clients", {201}, headers=self.bearer(self.admin),
            json={"name": "soak", "type": "confidential", "redirect_uris": ["https://partner.example/cb"],
                  "scopes": ["orders:read"]},
        )  # fmt: skip
        self.client = (client["id"], client["client_secret"])

    async def webhook_key(self) -> None:
        await self.call("webhook_api_key", "GET", "/v1/hasura/webhook", {200},
                        headers=self.bearer(random.choice(self.keys)))  # fmt: skip

    async def webhook_jwt(self) -> None:
        status, body = await self.call("token_exchange", "POST", "/v1/auth/token", {200},
                                       headers=self.bearer(random.choice(self.keys)))  # fmt: skip
        if status == 200:
            await self.call("webhook_jwt", "GET", "/v1/hasura/webhook", {200},
                            headers=self.bearer(body["access_token"]))  # fmt: skip

    async def key_lifecycle(self) -> None:
        """On one replica: without Redis another replica trusts its cache for SIDECAR_KEY_CACHE__TTL_S."""
        admin, at = self.bearer(self.admin), random.choice(self.urls)
        status, body = await self.call("key_create", "POST", "/v1/api_keys", {201}, json={"name": "churn"},
                                       headers=admin, at=at)  # fmt: skip
        if status != 201:
            return
        await self.call("key_show", "GET", f"/v1/api_keys/{body['id']}", {200}, headers=admin, at=at)
        await self.call("key_revoke", "DELETE", f"/v1/api_keys/{body['id']}", {200}, headers=admin, at=at)
        await self.call("webhook_revoked_key", "GET", "/v1/hasura/webhook", {401}, headers=self.bearer(body["key"]),
                        at=at)  # fmt: skip

    async def token_revocation(self) -> None:
        status, body = await self.call("token_exchange", "POST", "/v1/auth/token", {200},
                                       headers=self.bearer(random.choice(self.keys)))  # fmt: skip
        if status == 200:
            await self.call("token_revoke", "POST", "/v1/auth/revoke", {200}, json={"token": body["access_token"]})

    async def oauth_grant(self) -> None:
        assert self.client is not None
        await self.call(
            "oauth_client_credentials", "POST", "/oauth/token", {200},
            data={"grant_type": "client_credentials", "scope": "orders:read"},
            headers={"Authorization": "Basic " + base64.b64encode(":".join(self.client).encode()).decode()},
        )  # fmt: skip

    def mix(self) -> list[tuple[Callable[[], Awaitable[None]], int]]:
        return [
            (self.webhook_key, 50),
            (self.webhook_jwt, 15),
            (self.key_lifecycle, 10),
            (self.token_revocation, 10),
            (self.oauth_grant, 15),
        ]


async def worker(traffic: Traffic, deadline: float) -> None:
    actions, weights = zip(*traffic.mix(), strict=True)
    while time.monotonic() < deadline:
        await random.choices(actions, weights)[0]()


async def sample_rss(procs: list[subprocess.Popen[bytes]], every_s: float, into: list[list[int]]) -> None:
    """Every ``every_s`` seconds, each replica's RSS (KiB): whether memory levels off, not just how far it went."""
    while True:
        await asyncio.sleep(every_s)
        into.append([rss_kib(p.pid) for p in procs])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        replicas(args.replicas, Path(tmp), args.redis_url, args.database_url, args.token_ttl) as (procs, admin),
    ):
        urls = [f"http://{HOST}:{p.port}" for p in procs]  # type: ignore[attr-defined]
        connector = aiohttp.TCPConnector(limit=args.concurrency * 2)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
            for url in urls:
                await wait_up(session, url)
            stats = Stats()
            traffic = Traffic(session, urls, admin, stats)
            await traffic.setup()
            warm = time.monotonic() + min(10.0, args.seconds / 10)
            await asyncio.gather(*(worker(traffic, warm) for _ in range(args.concurrency)))
            rss_start = [rss_kib(p.pid) for p in procs]
            stats.latencies.clear()
            stats.unexpected.clear()
            started = time.monotonic()
            samples: list[list[int]] = []
            sampler = asyncio.create_task(sample_rss(procs, args.sample_every, samples))
            await asyncio.gather(*(worker(traffic, started + args.seconds) for _ in range(args.concurrency)))
            elapsed = time.monotonic() - started
            sampler.cancel()
            rss_end = [rss_kib(p.pid) for p in procs]
    total = sum(len(v) for v in stats.latencies.values())
    errors = sum(stats.unexpected.values())
    return {
        "seconds": round(elapsed, 1),
        "replicas": args.replicas,
        "concurrency": args.concurrency,
        "requests": total,
        "throughput_rps": round(total / elapsed, 1),
        "unexpected": errors,
        "error_rate": round(errors / total, 6) if total else 0.0,
        "operations": {
            op: {
                "count": len(values),
                "unexpected": stats.unexpected.get(op, 0),
                "p50_ms": round(percentile(values, 0.50) * 1000, 2),
                "p99_ms": round(percentile(values, 0.99) * 1000, 2),
            }
            for op, values in sorted(stats.latencies.items())
        },
        "samples_of_unexpected": stats.samples,
        "rss_kib": [
            {"start": s, "end": e, "growth_pct": round(100 * (e - s) / s, 1)}
            for s, e in zip(rss_start, rss_end, strict=True)
        ],
        f"rss_kib_every_{args.sample_every:g}_s": [list(replica) for replica in zip(*samples, strict=True)],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the measured run (after a warm-up)")
    parser.add_argument(
        "--replicas", type=int, default=1, help="sidecar serve processes sharing one store (2+: use --database-url)"
    )
    parser.add_argument("--database-url", default=None, help="e.g. postgresql://… (default: a SQLite file)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent client loops")
    parser.add_argument("--redis-url", default=None, help="a Redis the replicas share (default: none)")
    parser.add_argument(
        "--token-ttl", type=int, default=None, help="session-token lifetime in seconds (default: the sidecar's, 3600)"
    )
    parser.add_argument("--sample-every", type=float, default=60.0, help="seconds between RSS samples")
    args = parser.parse_args(argv)
    report = asyncio.run(soak(args))
    print(json.dumps(report, indent=2))
    sys.exit(1 if report["unexpected"] else 0)


if __name__ == "__main__":
    main()
