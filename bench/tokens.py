"""Session-JWT throughput: raw signing (the reference), token exchange over HTTP, the JWKS endpoint.

    python -m bench.tokens [--seconds 2] [--connections 16] [--rounds 5] [--algorithms RS256,ES256,EdDSA,HS256]

``make bench`` (``python -m bench``) runs it after the webhook benchmark; ``--only tokens`` alone.

The server runs pinned to core 0 (as is the in-process signing loop); ``wrk`` runs on core 1.
Figures from these shared machines vary 15-25 % between runs, so read the same-run ratios:
token exchange vs raw signing of its algorithm (the median of rounds that each measure raw
signing just before and just after the exchange, against their mean), and the JWKS endpoint vs a
bare aiohttp handler.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jwt import get_algorithm_by_name

from bench.processes import free_port, stop
from sidecar.domain import jwk, keyformat
from sidecar.models import Environment, KeyType

ALGORITHMS = ("RS256", "ES256", "EdDSA", "HS256")
HS_SECRET = "bench-hs256-secret-of-at-least-thirty-two-bytes"  # noqa: S105 - a benchmark-only key
SERVER_CORE, LOAD_CORE = 0, 1


def sample_payload() -> dict[str, Any]:
    """Claims the size of a real session token (see sidecar/domain/tokens.py)."""
    now = int(time.time())
    return {
        "sub": "user_1234567890",
        "org_id": "org_default",
        "role": "operator",
        "permissions": ["orders:read", "orders:write", "customers:read", "inventory:read", "returns:read"],
        "iat": now - 5,
        "exp": now + 3600,
        "iss": "http://127.0.0.1:8080",
        "aud": "hasura",
        "jti": "tok_abcdefghijklmnopqrstuvwx",
        "key_id": "key_abcdefghijklmnopqrstuvwx",
        "key_type": "secret",
        "environment": "live",
        "https://hasura.io/jwt/claims": {
            "x-hasura-default-role": "operator",
            "x-hasura-allowed-roles": ["operator", "viewer", "anonymous"],
            "x-hasura-user-id": "user_1234567890",
            "x-hasura-org-id": "org_default",
            "x-hasura-key-id": "key_abcdefghijklmnopqrstuvwx",
            "x-hasura-environment": "live",
            "x-hasura-permissions": '{"orders:read","orders:write","customers:read","inventory:read","returns:read"}',
        },
    }


def signing_input(kid: str, algorithm: str) -> bytes:
    """``base64url(header) . base64url(payload)`` of a real-sized session token: what gets signed."""
    header = json.dumps({"alg": algorithm, "typ": "JWT", "kid": kid}, separators=(",", ":")).encode()
    payload = json.dumps(sample_payload(), separators=(",", ":")).encode()
    return (jwk.b64url(header) + "." + jwk.b64url(payload)).encode()


def raw_signing_rate(algorithm: str, seconds: float) -> float:
    """Raw signatures per CPU-second, in-process: the reference a token exchange is measured against.

    Only the signature primitive is timed (pyjwt's algorithm object, its key prepared once) over
    a fixed signing input: no claims, no JSON, no base64, none of ``jwt.encode``'s per-call work.
    """
    hs = algorithm == "HS256"
    material = jwk.hmac_secret(HS_SECRET.encode()) if hs else jwk.asymmetric(jwk.generate(algorithm))
    signer = get_algorithm_by_name(algorithm)
    key = signer.prepare_key(material.sign_key)
    message = signing_input(material.kid, algorithm)
    count, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() < start + seconds:
        for _ in range(50):
            signer.sign(message, key)
        count += 50
    return count / (time.process_time() - cpu)


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"server exited with {proc.returncode}: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.1)
    raise RuntimeError("server did not start listening")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def server(argv: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[int]:
    """A server process pinned to ``SERVER_CORE``; yields its pid."""
    cmd = ["taskset", "-c", str(SERVER_CORE), *argv]
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_listening(port, proc)
        yield proc.pid  # taskset execs the command, so the pid is the server's
    finally:
        stop(proc, timeout=10)


@dataclass(frozen=True)
class Load:
    """One ``wrk`` run: wall-clock requests/s, and requests per CPU-second of the server."""

    wall_rate: float
    cpu_rate: float


def wrk(
    url: str, seconds: float, connections: int, *, pid: int, headers: dict[str, str] | None = None, post: bool = False
) -> Load:
    """Drive ``url`` with ``wrk``; fails if any response is not 2xx."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write('wrk.method = "POST"\n' if post else "")
        for name, value in (headers or {}).items():
            script.write(f'wrk.headers["{name}"] = "{value}"\n')
    duration = f"-d{max(1, round(seconds))}s"
    cpu_before = cpu_seconds(pid)
    try:
        out = subprocess.run(
            ["taskset", "-c", str(LOAD_CORE), "wrk", "-t1", f"-c{connections}", duration, "-s", script.name, url],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        Path(script.name).unlink()
    cpu = cpu_seconds(pid) - cpu_before
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx responses from {url}:\n{out}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if rate is None or total is None:
        raise RuntimeError(f"cannot read wrk output:\n{out}")
    return Load(float(rate.group(1)), int(total.group(1)) / cpu)


def sidecar_env(algorithm: str, data_dir: Path, port: int, admin_key: str) -> dict[str, str]:
    env = {
        "SIDECAR_DATA_DIR": str(data_dir),
        "SIDECAR_PORT": str(port),
        "SIDECAR_BOOTSTRAP_ADMIN_KEY": admin_key,
        "SIDECAR_JWT__ALGORITHM": algorithm,
        "SIDECAR_LOG_LEVEL": "WARNING",
    }
    if algorithm == "HS256":
        env["SIDECAR_JWT__HS256_SECRET"] = HS_SECRET
    return env


@dataclass(frozen=True)
class Round:
    """One round: the raw signing rate, the token exchange, the raw signing rate again.

    The machine's speed drifts within seconds; against the mean of the raw rates on either side,
    a steady drift cancels out of the ratio."""

    raw_before: float
    exchange: Load
    raw_after: float

    @property
    def raw(self) -> float:
        return (self.raw_before + self.raw_after) / 2

    @property
    def ratio(self) -> float:
        return self.exchange.cpu_rate / self.raw


def exchange_rounds(
    algorithm: str, seconds: float, connections: int, rounds: int, with_jwks: bool
) -> tuple[list[Round], Load | None]:
    """``rounds`` rounds of raw signing (in-process, the server idle), token exchange (over HTTP)
    and raw signing again, then the JWKS endpoint. Each ratio is taken within its round: these
    machines' speed drifts by 15-25 % over a minute, which would otherwise fall between the figures."""
    port = free_port()
    admin_key = keyformat.mint(keyformat.prefix_for(KeyType.SECRET, "super_admin", Environment.LIVE))
    auth = {"Authorization": f"Bearer {admin_key}"}
    with tempfile.TemporaryDirectory() as tmp:
        env = sidecar_env(algorithm, Path(tmp), port, admin_key)
        with server([sys.executable, "-m", "sidecar", "serve", "--port", str(port)], port, env) as pid:
            base = f"http://127.0.0.1:{port}"
            wrk(base + "/v1/auth/token", 1, connections, pid=pid, headers=auth, post=True)  # warm-up
            raw_s = max(1.0, seconds / 2)
            measured = [
                Round(
                    raw_signing_rate(algorithm, raw_s),
                    wrk(base + "/v1/auth/token", seconds, connections, pid=pid, headers=auth, post=True),
                    raw_signing_rate(algorithm, raw_s),
                )
                for _ in range(rounds)
            ]
            jwks = wrk(base + "/.well-known/jwks.json", seconds, connections, pid=pid) if with_jwks else None
    return measured, jwks


def bare_handler_rate(seconds: float, connections: int) -> Load:
    port = free_port()
    with server([sys.executable, "-m", "bench.tokens", "--bare-server", str(port)], port) as pid:
        url = f"http://127.0.0.1:{port}/"
        wrk(url, 1, connections, pid=pid)
        return wrk(url, seconds, connections, pid=pid)


def run_bare_server(port: int) -> None:
    """An aiohttp app with one handler returning constant bytes: what the JWKS endpoint aims at."""
    import uvloop
    from aiohttp import web

    body = b'{"keys":[{"kty":"RSA","e":"AQAB","n":"' + b"x" * 342 + b'"}]}'

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json", headers={"Cache-Control": "max-age=300"})

    app = web.Application()
    app.router.add_get("/", handler)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def run(seconds: float, connections: int, algorithms: list[str], rounds: int = 5) -> None:
    """Every algorithm's raw signing rate and token exchange, then the JWKS endpoint vs a bare handler."""
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {SERVER_CORE})
    try:
        _run(seconds, connections, algorithms, rounds)
    finally:
        os.sched_setaffinity(0, affinity)


def _run(seconds: float, connections: int, algorithms: list[str], rounds: int) -> None:
    print("Rates per CPU-second of the server process (wall-clock req/s in brackets); target ratio >= 0.80")
    print(f"Medians of {rounds} rounds; each round measures raw signing, the exchange, raw signing, and its ratio")
    print(f"{'algorithm':10} {'raw sign/s':>11} {'exchange/s':>11} {'(wall)':>8} {'ratio':>6}   ratio per round")
    jwks: Load | None = None
    for i, algorithm in enumerate(algorithms):
        measured, jwks_load = exchange_rounds(algorithm, seconds, connections, rounds, with_jwks=i == 0)
        jwks = jwks or jwks_load
        raw = statistics.median(r.raw for r in measured)
        cpu = statistics.median(r.exchange.cpu_rate for r in measured)
        wall = statistics.median(r.exchange.wall_rate for r in measured)
        ratio = statistics.median(r.ratio for r in measured)
        each = " ".join(f"{r.ratio:.2f}" for r in measured)
        print(f"{algorithm:10} {raw:11.0f} {cpu:11.0f} {wall:8.0f} {ratio:6.2f}   {each}", flush=True)
    bare = bare_handler_rate(seconds, connections)
    assert jwks is not None
    print(f"\n{'endpoint':24} {'req/cpu-s':>10} {'(wall)':>8} {'ratio':>6}   (target ~1.0)")
    print(f"{'bare aiohttp handler':24} {bare.cpu_rate:10.0f} {bare.wall_rate:8.0f} {1.0:6.2f}")
    print(
        f"{'GET /.well-known/jwks':24} {jwks.cpu_rate:10.0f} {jwks.wall_rate:8.0f} {jwks.cpu_rate / bare.cpu_rate:6.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="of each exchange run (raw signing: half)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5, help="rounds per algorithm; the median ratio is reported")
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        run_bare_server(args.bare_server)
        return
    algorithms = [a for a in args.algorithms.split(",") if a]
    unknown = sorted(set(algorithms) - set(ALGORITHMS))
    if unknown:
        parser.error(f"unknown algorithm(s) {', '.join(unknown)}; choose from {', '.join(ALGORITHMS)}")
    run(args.seconds, args.connections, algorithms, args.rounds)


if __name__ == "__main__":
    main()
