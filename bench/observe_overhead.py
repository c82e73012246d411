"""Cost of the observe middleware (request id + latency histogram + log decision) on the hot path.

Two measurements, both as same-run ratios (absolute numbers on shared machines vary 15-25 %):

1. in-process: µs added per request by calling ``observe`` around a trivial handler, against
   calling the handler directly (no sockets, so the middleware's own cost is isolated);
2. over HTTP: requests/s of a trivial JSON handler served bare, against the same handler behind
   the error middleware alone, and behind the sidecar's middleware stack with metrics on: with
   the per-request log line filtered out by level (WARNING), written as JSON (INFO, to
   /dev/null), and written for 1 % of successful requests (``sample_rate=0.01``). Server and load generator are
   separate processes (``wrk`` when installed, pinned to another core with ``taskset``; else an
   aiohttp client); each configuration runs ``--rounds`` times, interleaved, best kept.

    .venv/bin/python -m bench.observe_overhead [--seconds 3] [--rounds 3] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import shutil
import sys
import time
from typing import Any

from aiohttp import ClientSession, TCPConnector, web
from aiohttp.test_utils import make_mocked_request

from bench.processes import free_port
from sidecar.logs import JsonFormatter
from sidecar.metrics import Metrics
from sidecar.web.errors import error_middleware
from sidecar.web.observe import RequestLogPolicy, RequestObserver, observe_middleware

BODY = {"x-hasura-role": "operator", "x-hasura-user-id": "u_1"}
CONFIGS = ("bare", "errors", "metrics", "metrics+log", "metrics+log1%")


async def _handler(request: web.Request) -> web.Response:
    return web.json_response(BODY)


def build_app(config: str) -> web.Application:
    if config == "bare":
        app = web.Application()
    elif config == "errors":
        app = web.Application(middlewares=[error_middleware])
    else:
        metrics = Metrics(version="bench")
        policy = RequestLogPolicy(sample_rate=0.01 if config.endswith("1%") else 1.0)
        app = web.Application(middlewares=[observe_middleware(RequestObserver(metrics, policy)), error_middleware])
        handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the server
        handler.setFormatter(JsonFormatter())
        logging.getLogger("sidecar.access").addHandler(handler)
        logging.getLogger("sidecar.access").setLevel(logging.INFO if "+log" in config else logging.WARNING)
    app.router.add_get("/v1/hasura/webhook", _handler)
    return app


def serve(config: str, port: int) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    web.run_app(build_app(config), host="127.0.0.1", port=port, access_log=None, print=None)


async def in_process(n: int) -> tuple[float, float]:
    """(µs per direct handler call, µs per call through observe + error middleware)."""
    metrics = Metrics(version="bench")
    logging.getLogger("sidecar.access").setLevel(logging.WARNING)
    observe = observe_middleware(RequestObserver(metrics, RequestLogPolicy()))
    app = web.Application()
    resource = app.router.add_get("/v1/hasura/webhook", _handler)
    request = make_mocked_request("GET", "/v1/hasura/webhook", headers={"Authorization": "Bearer x"}, app=app)
    match = await app.router.resolve(request)
    request._match_info = match
    assert resource is not None

    async def through(req: web.Request) -> web.StreamResponse:
        return await observe(req, lambda r: error_middleware(r, _handler))

    timings = []
    for call in (_handler, through):
        for _ in range(1000):
            await call(request)
        start = time.perf_counter()
        for _ in range(n):
            await call(request)
        timings.append((time.perf_counter() - start) / n * 1e6)
    return timings[0], timings[1]


async def _load(port: int, seconds: float, concurrency: int) -> float:
    url = f"http://127.0.0.1:{port}/v1/hasura/webhook"
    count = 0
    deadline = time.perf_counter() + seconds
    async with ClientSession(connector=TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                async with session.get(url, headers={"Authorization": "Bearer sk_live_x"}) as resp:
                    await resp.read()
                count += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - start)


async def _wrk(port: int, seconds: float, concurrency: int) -> float:
    """Requests/s measured by wrk, pinned to the second core (the server has the first)."""
    wrk = shutil.which("wrk")
    assert wrk is not None
    cmd = [wrk, "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "-H", "Authorization: Bearer sk_live_x"]
    cmd.append(f"http://127.0.0.1:{port}/v1/hasura/webhook")
    taskset = shutil.which("taskset")
    if taskset:
        cmd = [taskset, "-c", "1", *cmd]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    match = re.search(rb"Requests/sec:\s+([0-9.]+)", out)
    assert match is not None, out.decode()
    return float(match.group(1))


async def _wait_up(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("server did not start")


async def over_http(seconds: float, rounds: int, concurrency: int) -> dict[str, float]:
    best: dict[str, float] = dict.fromkeys(CONFIGS, 0.0)
    for _ in range(rounds):
        for config in CONFIGS:
            port = free_port()
            server = [sys.executable, "-m", "bench.observe_overhead", "--serve", config, str(port)]
            taskset = shutil.which("taskset")
            proc = await asyncio.create_subprocess_exec(*([taskset, "-c", "0", *server] if taskset else server))
            try:
                await _wait_up(port)
                load = _wrk if shutil.which("wrk") else _load
                await load(port, 1, concurrency)  # warm-up
                best[config] = max(best[config], await load(port, seconds, concurrency))
            finally:
                proc.terminate()
                await proc.wait()
    return best


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", nargs=2, metavar=("CONFIG", "PORT"))
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--calls", type=int, default=50_000)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return {}
    direct, observed = asyncio.run(in_process(args.calls))
    print(f"in-process: handler {direct:.2f} µs, with observe+errors {observed:.2f} µs, +{observed - direct:.2f} µs")
    rates = asyncio.run(over_http(args.seconds, args.rounds, args.concurrency))
    for config in CONFIGS:
        print(f"http {config:12} {rates[config]:9.0f} req/s  ratio {rates[config] / rates['bare']:.2f}")
    return {"in_process_us": (direct, observed), "http": rates}


if __name__ == "__main__":
    main()
