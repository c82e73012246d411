"""The fallback load generator (no ``wrk``): ``python -m bench.loadgen '<Load as JSON>'``.

Connections loop request after request (or paced, for a target rate) for the duration and the
process prints a ``Result`` as JSON. One Python process saturates long before a good server
does, so its numbers understate throughput: ratios remain comparable, absolute figures not.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict

import aiohttp
import uvloop

from bench.load import Load, Result


async def _worker(
    session: aiohttp.ClientSession, load: Load, deadline: float, period: float | None, latencies: list[float]
) -> int:
    bad = 0
    data = load.body.encode() if load.body is not None else None
    next_at = time.perf_counter()
    while True:
        now = time.perf_counter()
        if now >= deadline:
            return bad
        if period is not None:
            next_at += period
            if next_at > now:
                await asyncio.sleep(next_at - now)
        start = time.perf_counter()
        try:
            async with session.request(load.method, load.url, headers=load.headers, data=data) as resp:
                await resp.read()
                if resp.status >= 400:
                    bad += 1
        except aiohttp.ClientError:
            bad += 1
        latencies.append(time.perf_counter() - start)


async def generate(load: Load) -> Result:
    latencies: list[float] = []
    period = load.connections / load.rate if load.rate else None
    connector = aiohttp.TCPConnector(limit=load.connections)
    async with aiohttp.ClientSession(connector=connector, skip_auto_headers=["User-Agent"]) as session:
        start = time.perf_counter()
        deadline = start + load.duration_s
        bads = await asyncio.gather(
            *(_worker(session, load, deadline, period, latencies) for _ in range(load.connections))
        )
        elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000 if latencies else 0.0

    return Result(len(latencies) / elapsed, pct(0.50), pct(0.99), len(latencies), sum(bads))


def main() -> None:
    load = Load(**json.loads(sys.argv[1]))
    uvloop.install()
    print(json.dumps(asdict(asyncio.run(generate(load)))))


if __name__ == "__main__":
    main()
