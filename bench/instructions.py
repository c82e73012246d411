"""Instructions per request, counted by callgrind: the same ratios as ``make bench``, without its noise.

    python -m bench.instructions [--requests 1000] [--only get,post,jwt,token,jwks]

Wall-clock and CPU-time figures on a shared 2-core machine move by 15-25 % between identical runs;
valgrind's callgrind counts the instructions a process executes, which do not depend on what
else the machine is doing. Each server (the bare baseline of ``bench.baseline``, then the sidecar
on its default settings, access log included) runs under ``valgrind --tool=callgrind
--instr-atstart=no``, at near-native speed until it is warmed up (300 requests); then counting
is switched on (``callgrind_control -i on``) for ``--requests`` requests sent one after another
on one keep-alive connection, and off again. The figure is the count divided by the requests, and
the ratio is the baseline's count over the scenario's: what the throughput ratio would be if
every instruction cost the same. It does not see system calls or cache misses, so the wall-clock
ratios of ``make bench`` are lower; use this one to compare changes.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.processes import free_port, stop
from bench.run import HASURA, hasura_post_body, make_keys, session_jwt
from sidecar.settings import Settings

WARM_UP = 300


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None = None


@contextmanager
def counted(cmd: list[str], env: dict[str, str], out: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``cmd`` under callgrind with counting off, once it answers on ``port``."""
    vg = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    with (out.parent / f"{out.name}.log").open("wb") as log:
        proc = subprocess.Popen([*vg, *cmd], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", "/")
                conn.getresponse().read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"{cmd[2:4]} did not start under valgrind: see {out}.log")
                time.sleep(0.3)
        yield proc
    finally:
        stop(proc, timeout=60)


def per_request(proc: subprocess.Popen[bytes], out: Path, port: int, call: Call, requests: int) -> float:
    """Instructions per answered ``call``, counted over ``requests`` of them after a warm-up."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def send(n: int) -> None:
        for _ in range(n):
            conn.request(call.method, call.path, body=call.body, headers=call.headers)
            resp = conn.getresponse()
            answer = resp.read()
            if resp.status != 200:
                sys.exit(f"{call.method} {call.path} answered {resp.status}: {answer[:300]!r}")

    send(WARM_UP)
    for earlier in out.parent.glob(f"{out.name}*"):  # the dumps of a previous scenario on this server
        if earlier.suffix != ".log":
            earlier.unlink()
    subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True)
    send(requests)
    subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True, capture_output=True)
    subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
    total = 0
    for dump in out.parent.glob(f"{out.name}*"):
        if dump.suffix == ".log":
            continue
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                total = max(total, int(line.split()[1]))
    if total == 0:
        sys.exit(f"callgrind counted nothing: see {out}.log")
    return total / requests


SCENARIOS = ("get", "post", "jwt", "token", "jwks")
NAMES = {
    "get": "webhook GET, API key",
    "post": "webhook POST, GraphQL body",
    "jwt": "webhook GET, session JWT",
    "token": "POST /v1/auth/token (RS256)",
    "jwks": "GET /.well-known/jwks.json",
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--requests", type=int, default=1000, help="requests counted per scenario")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated, of {', '.join(SCENARIOS)}")
    args = parser.parse_args()
    chosen = [s for s in args.only.split(",") if s]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="sidecar-instr-") as tmp:
        root = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")}
        env["SIDECAR_DATA_DIR"] = str(root / "data")
        operator, viewer = asyncio.run(make_keys(Settings(data_dir=root / "data")))
        body = root / "body.json"
        body.write_bytes(b'{"X-Hasura-Role":"operator","X-Hasura-User-Id":"u"}')
        base_port = free_port()
        base_cmd = [sys.executable, "-m", "bench.baseline", str(base_port), str(body)]
        with counted(base_cmd, env, root / "baseline.cg", base_port) as proc:
            baseline = per_request(proc, root / "baseline.cg", base_port, Call("GET", "/", dict(HASURA)), args.requests)
        print(f"{'scenario':30} {'k instr/request':>16} {'ratio':>6}")
        print(f"{'baseline GET':30} {baseline / 1000:16.1f} {1.0:6.2f}", flush=True)
        port = free_port()
        side_cmd = [sys.executable, "-m", "sidecar", "serve", "--port", str(port)]
        with counted(side_cmd, env, root / "sidecar.cg", port) as proc:
            session = {**HASURA, "Authorization": f"Bearer {session_jwt(f'http://127.0.0.1:{port}', operator)}"}
            calls = {
                "get": Call("GET", "/v1/hasura/webhook", {**HASURA, "Authorization": f"Bearer {operator}"}),
                "post": Call("POST", "/v1/hasura/webhook", dict(HASURA), hasura_post_body(viewer).encode()),
                "jwt": Call("GET", "/v1/hasura/webhook", session),
                "token": Call("POST", "/v1/auth/token", {"Authorization": f"Bearer {operator}"}),
                "jwks": Call("GET", "/.well-known/jwks.json", dict(HASURA)),
            }
            for name in chosen:
                count = per_request(proc, root / "sidecar.cg", port, calls[name], args.requests)
                print(f"{NAMES[name]:30} {count / 1000:16.1f} {baseline / count:6.2f}", flush=True)


if __name__ == "__main__":
    main()
