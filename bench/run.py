"""Run the webhook benchmark: baseline vs the real sidecar, same machine, same run; then the
session-JWT benchmark (``bench.tokens``). ``--only webhook`` or ``--only tokens`` runs one.

Both servers run in their own processes pinned to core 0; the load generator runs on core 1.
Every round runs every scenario back to back; ratios are taken within a round and their median
reported, so other load on the machine affects both sides of a ratio alike. Throughput is also
given per CPU-second of the server process, which other processes barely disturb. Then the
baseline and each sidecar scenario run again at half their median rate, for the latency a Hasura
under normal load would see.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from bench import tokens
from bench.load import Load, Result, pinned, run
from sidecar.app import build_key_service, open_stores
from sidecar.domain.keys import NewKey
from sidecar.domain.rbac import Policy
from sidecar.ports.clock import SystemClock
from sidecar.settings import Settings, load_role_model

SERVER_CPU = 0
LOAD_CPU = 1
HASURA = {"Content-Type": "application/json", "User-Agent": "hasura-graphql-engine/v2.44.0"}
GRAPHQL = {
    "query": "query Orders($limit: Int!) { orders(limit: $limit) { id status total customer { id name } } }",
    "operationName": "Orders",
    "variables": {"limit": 10},
}
#: The issue's targets: ratio of the sidecar's throughput to the bare handler's.
TARGETS = {"webhook GET, API key": 0.7, "webhook POST, GraphQL body": 0.5}
P99_TARGET_MS = 2.0


@dataclass(frozen=True)
class Scenario:
    name: str
    load: Load
    baseline: str | None  # the baseline scenario it is compared with
    server_pid: int


@dataclass(frozen=True)
class Measured:
    result: Result
    cpu_s: float  # CPU time the server process spent during the run

    @property
    def per_cpu_s(self) -> float:
        """Requests per CPU-second of the server: its capacity on one free core, whatever else runs."""
        return self.result.requests / self.cpu_s if self.cpu_s > 0 else 0.0


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def measure_once(scenario: Scenario, load: Load) -> Measured:
    before = cpu_seconds(scenario.server_pid)
    result = run(load, LOAD_CPU)
    return Measured(result, cpu_seconds(scenario.server_pid) - before)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def make_keys(settings: Settings) -> tuple[str, str]:
    """An operator key (may write) and a viewer key (read-only: POST mode parses its queries)."""
    async with open_stores(settings.store_url()) as stores:
        keys = build_key_service(settings, stores.keys, SystemClock(), Policy(load_role_model(None)))
        operator = await keys.create(NewKey(role="operator", name="bench", org_id="org_bench"), grantor=None)
        viewer = await keys.create(NewKey(role="viewer", name="bench", org_id="org_bench"), grantor=None)
        return operator.key, viewer.key


def http(url: str, *, method: str = "GET", headers: dict[str, str] | None = None, body: bytes | None = None) -> bytes:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310 - local
    with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - 127.0.0.1 only
        return bytes(resp.read())


def wait_until_up(url: str, headers: dict[str, str], proc: subprocess.Popen[bytes], log: Path) -> bytes:
    for _ in range(200):
        if proc.poll() is not None:
            sys.exit(f"server exited early:\n{log.read_text()}")
        try:
            return http(url, headers=headers)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    sys.exit(f"server did not come up:\n{log.read_text()}")


@contextmanager
def server(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(pinned(cmd, SERVER_CPU), env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def session_jwt(base: str, api_key: str) -> str | None:
    """A session JWT from ``POST /v1/auth/token``, or ``None`` while that endpoint is not built."""
    try:
        answer = http(f"{base}/v1/auth/token", method="POST", headers={"Authorization": f"Bearer {api_key}"})
    except urllib.error.HTTPError:
        return None
    token = json.loads(answer).get("access_token")
    return token if isinstance(token, str) else None


def scenarios(
    urls: tuple[str, str], pids: tuple[int, int], operator: str, viewer: str, token: str | None, conns: int
) -> list[Scenario]:
    (baseline, sidecar), (base_pid, side_pid) = urls, pids
    hook = f"{sidecar}/v1/hasura/webhook"
    post_body = json.dumps(
        {"headers": {"Authorization": f"Bearer {viewer}", "Content-Type": "application/json"}, "request": GRAPHQL}
    )
    found = [
        Scenario("baseline GET", Load(f"{baseline}/", headers=HASURA, connections=conns), None, base_pid),
        Scenario("baseline POST", Load(f"{baseline}/", "POST", HASURA, post_body, conns), None, base_pid),
        Scenario(
            "webhook GET, API key",
            Load(hook, headers={**HASURA, "Authorization": f"Bearer {operator}"}, connections=conns),
            "baseline GET",
            side_pid,
        ),
        Scenario("webhook POST, GraphQL body", Load(hook, "POST", HASURA, post_body, conns), "baseline GET", side_pid),
    ]
    if token is not None:
        found.append(
            Scenario(
                "webhook GET, session JWT",
                Load(hook, headers={**HASURA, "Authorization": f"Bearer {token}"}, connections=conns),
                "baseline GET",
                side_pid,
            )
        )
    return found


Rounds = list[dict[str, Measured]]


def measure(found: list[Scenario], rounds: int, duration: float) -> Rounds:
    """Every scenario once per round, back to back, so that each round's ratios share conditions."""
    measured: Rounds = []
    for round_no in range(1, rounds + 1):
        this: dict[str, Measured] = {}
        for scenario in found:
            m = measure_once(scenario, replace(scenario.load, duration_s=duration))
            if m.result.bad:
                sys.exit(f"{scenario.name}: {m.result.bad} failed requests; the benchmark is not measuring answers")
            print(
                f"  round {round_no}: {scenario.name:28} {m.result.rps:9.0f} req/s {m.per_cpu_s:9.0f} req/cpu-s",
                flush=True,
            )
            this[scenario.name] = m
        measured.append(this)
    return measured


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def report(found: list[Scenario], measured: Rounds, half: dict[str, Result], token: bool) -> None:
    print()
    print(f"{'scenario':28} {'req/cpu-s':>9} {'ratio':>6} {'req/s':>8} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7}"
          f"  | half rate: {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7}")  # fmt: skip
    for scenario in found:
        runs = [r[scenario.name] for r in measured]
        line = (
            f"{scenario.name:28} {_median([m.per_cpu_s for m in runs]):9.0f} {{ratio}} "
            f"{_median([m.result.rps for m in runs]):8.0f} {{wall}} "
            f"{_median([m.result.p50_ms for m in runs]):7.2f} {_median([m.result.p99_ms for m in runs]):7.2f}"
        )
        h = half.get(scenario.name)
        if h is not None:
            line += f"  | {'':10} {h.rps:7.0f} {h.p50_ms:7.2f} {h.p99_ms:7.2f}"
        if scenario.baseline is None:
            print(line.format(ratio=" " * 6, wall=" " * 6))
            continue
        ratio = _median([r[scenario.name].per_cpu_s / r[scenario.baseline].per_cpu_s for r in measured])
        wall = _median([r[scenario.name].result.rps / r[scenario.baseline].result.rps for r in measured])
        verdicts = []
        target = TARGETS.get(scenario.name)
        if target is not None:
            verdicts.append(f"ratio {'ok' if ratio >= target else 'BELOW'} {target}")
        if h is not None:
            verdicts.append(f"p99 {'ok' if h.p99_ms <= P99_TARGET_MS else 'ABOVE'} {P99_TARGET_MS} ms")
        print(line.format(ratio=f"{ratio:6.2f}", wall=f"{wall:6.2f}") + "  (" + ", ".join(verdicts) + ")")
    print(
        "\nMedians over the rounds. req/cpu-s: requests per CPU-second of the server process (its rate on"
        " one free core,\nrobust to other load); req/s: wall-clock rate. Ratios: median of each round's"
        " ratio to that round's baseline GET."
    )
    if not token:
        print("session JWT: skipped (POST /v1/auth/token is not available in this build)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every scenario; medians are reported")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--only",
        choices=("webhook", "tokens"),
        help="one benchmark: the webhook, or session JWTs (bench.tokens); default: both, webhook first",
    )
    args = parser.parse_args()
    if args.only != "tokens":
        webhook(args)
    if args.only != "webhook":
        print("\nsession JWTs (python -m bench.tokens):", flush=True)
        tokens.run(args.duration, args.connections, list(tokens.ALGORITHMS))


def webhook(args: argparse.Namespace) -> None:
    """The webhook benchmark: the baseline and the sidecar's scenarios, ``args.rounds`` rounds."""
    with tempfile.TemporaryDirectory(prefix="sidecar-bench-") as tmp:
        root = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")}
        env.update({"SIDECAR_DATA_DIR": str(root / "data"), "SIDECAR_LOG_LEVEL": "WARNING"})
        settings = Settings(data_dir=root / "data")
        operator, viewer = asyncio.run(make_keys(settings))
        side_port, base_port = free_port(), free_port()
        sidecar, baseline = f"http://127.0.0.1:{side_port}", f"http://127.0.0.1:{base_port}"
        side_cmd = [sys.executable, "-m", "sidecar", "serve", "--port", str(side_port)]
        with server(side_cmd, env, root / "sidecar.log") as proc:
            answer = wait_until_up(
                f"{sidecar}/v1/hasura/webhook",
                {**HASURA, "Authorization": f"Bearer {operator}"},
                proc,
                root / "sidecar.log",
            )
            (root / "body.json").write_bytes(answer)
            base_cmd = [sys.executable, "-m", "bench.baseline", str(base_port), str(root / "body.json")]
            with server(base_cmd, env, root / "baseline.log") as base_proc:
                wait_until_up(f"{baseline}/", {}, base_proc, root / "baseline.log")
                token = session_jwt(sidecar, operator)
                pids = (base_proc.pid, proc.pid)
                found = scenarios((baseline, sidecar), pids, operator, viewer, token, args.connections)
                print(f"measuring {len(found)} scenarios x {args.rounds} rounds of {args.duration:g} s", flush=True)
                measured = measure(found, args.rounds, args.duration)
                half = {
                    s.name: run(replace(s.load, rate=_median([r[s.name].result.rps for r in measured]) / 2), LOAD_CPU)
                    for s in found
                    if s.baseline is not None or s.name == "baseline GET"
                }
        report(found, measured, half, token is not None)
