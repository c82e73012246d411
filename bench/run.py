"""Run the webhook benchmark: baseline vs the real sidecar, same machine, same run; then the
session-JWT benchmark (``bench.tokens``). ``--only webhook`` or ``--only tokens`` runs one.

Both servers run in their own processes pinned to core 0; the load generator runs on core 1.
Every round runs every scenario back to back; ratios are taken within a round and their median
reported, so other load on the machine affects both sides of a ratio alike. Throughput is also
given per CPU-second of the server process, which other processes barely disturb. Then the
baseline and each sidecar scenario run again at half their median rate, for the latency a Hasura
under normal load would see.

The sidecar runs with its default settings (only ``SIDECAR_DATA_DIR`` is set): JSON logs at INFO
with one access-log line per request (written to a file, as a container's stdout/stderr would be),
metrics on, operation checks on. ``--quiet-log`` measures with ``SIDECAR_LOG_LEVEL=WARNING``
instead, which drops the access-log line; the run prints which settings it used either way.
The calls are shaped like Hasura v2's: GET mode carries the client headers Hasura forwards
(hasura-contract.md §1.4, §1.5); the POST body carries every header a server-side client sent,
Authorization included (§2.2), plus the GraphQL request (§2.3).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
from bench.processes import free_port, stop
from sidecar.app import build_key_service, open_stores
from sidecar.domain.keys import NewKey
from sidecar.domain.rbac import Policy
from sidecar.ports.clock import SystemClock
from sidecar.settings import (
    HasuraWebhookSettings,
    MetricsSettings,
    RequestLogSettings,
    Settings,
    load_role_model,
)

SERVER_CPU = 0
LOAD_CPU = 1
HASURA = {"Content-Type": "application/json", "User-Agent": "hasura-graphql-engine/v2.44.0"}
GRAPHQL = {
    "query": "query Orders($limit: Int!) { orders(limit: $limit) { id status total customer { id name } } }",
    "operationName": "Orders",
    "variables": {"limit": 10},
}
#: A server-side client's request to Hasura's /v1/graphql (a backend holding a restricted key: a
#: browser's request, with Origin, would have that key refused: README, "Publishable keys and their origins");
#: Hasura v2 puts all of them, in the client's case, in a POST body's ``headers`` (§2.2).
CLIENT = {
    "Host": "hasura.internal:8080",
    "User-Agent": "node-fetch",
    "Accept": "application/graphql-response+json, application/json",
    "Accept-Encoding": "gzip, deflate, br",
    "Content-Type": "application/json",
    "Content-Length": str(len(json.dumps(GRAPHQL))),
    "Connection": "keep-alive",
    "X-Request-Id": "4f6c2a1e-8a55-4f0e-9d1b-2f3c4d5e6f70",
    "Traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
}
#: Settings that would make the measurement flattering rather than representative.
_QUIET_LOG = {"SIDECAR_LOG_LEVEL": "WARNING"}
#: The issue's targets: ratio of the sidecar's throughput to the bare handler's.
TARGETS = {"webhook GET, API key": 0.7, "webhook POST, GraphQL body": 0.5}
P99_TARGET_MS = 2.0


@dataclass(frozen=True)
class Scenario:
    name: str
    load: Load
    baseline: str | None  # the baseline scenario it is compared with
    server_pid: int
    #: the role the answer must carry: a scenario answered as someone else measures the wrong thing
    role: str | None = None


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
        stop(proc, timeout=10)


def session_jwt(base: str, api_key: str) -> str:
    """A session JWT from ``POST /v1/auth/token``; the benchmark stops if there is none."""
    try:
        answer = http(f"{base}/v1/auth/token", method="POST", headers={"Authorization": f"Bearer {api_key}"})
    except urllib.error.HTTPError as exc:
        sys.exit(f"POST /v1/auth/token answered {exc.code}: {exc.read().decode(errors='replace')}")
    except (urllib.error.URLError, ConnectionError) as exc:
        sys.exit(f"POST /v1/auth/token failed: {exc}")
    token = json.loads(answer).get("access_token")
    if not isinstance(token, str) or not token:
        sys.exit(f"POST /v1/auth/token answered without an access_token: {answer.decode(errors='replace')}")
    return token


def hasura_post_body(api_key: str) -> str:
    """A Hasura v2 POST-mode body: every client header plus Authorization (§2.2), and the request."""
    return json.dumps({"headers": {**CLIENT, "Authorization": f"Bearer {api_key}"}, "request": GRAPHQL})


def scenarios(
    urls: tuple[str, str], pids: tuple[int, int], operator: str, viewer: str, token: str, conns: int
) -> list[Scenario]:
    (baseline, sidecar), (base_pid, side_pid) = urls, pids
    hook = f"{sidecar}/v1/hasura/webhook"
    post_body = hasura_post_body(viewer)
    found = [
        Scenario("baseline GET", Load(f"{baseline}/", headers=HASURA, connections=conns), None, base_pid),
        Scenario("baseline POST", Load(f"{baseline}/", "POST", HASURA, post_body, conns), None, base_pid),
        Scenario(
            "webhook GET, API key",
            Load(hook, headers={**HASURA, "Authorization": f"Bearer {operator}"}, connections=conns),
            "baseline GET",
            side_pid,
            "operator",
        ),
        Scenario(
            "webhook POST, GraphQL body",
            Load(hook, "POST", HASURA, post_body, conns),
            "baseline GET",
            side_pid,
            "viewer",
        ),
    ]
    found.append(
        Scenario(
            "webhook GET, session JWT",
            Load(hook, headers={**HASURA, "Authorization": f"Bearer {token}"}, connections=conns),
            "baseline GET",
            side_pid,
            "operator",
        )
    )
    return found


def check_answers(found: list[Scenario]) -> None:
    """Each sidecar scenario's request, sent once, must be answered for the role it means to measure."""
    for scenario in found:
        if scenario.role is None:
            continue
        load = scenario.load
        body = None if load.body is None else load.body.encode()
        try:
            answer = json.loads(http(load.url, method=load.method, headers=load.headers, body=body))
        except urllib.error.HTTPError as exc:
            sys.exit(f"{scenario.name}: answered {exc.code}: {exc.read().decode(errors='replace')}")
        if answer.get("X-Hasura-Role") != scenario.role:
            sys.exit(f"{scenario.name}: answered {answer}, not a session for role {scenario.role}")


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


def report(found: list[Scenario], measured: Rounds, half: dict[str, Result]) -> None:
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
            verdicts.append(f"per-cpu {'ok' if ratio >= target else 'BELOW'} {target}")
            verdicts.append(f"wall {'ok' if wall >= target else 'BELOW'} {target}")
        if h is not None:
            verdicts.append(f"p99 {'ok' if h.p99_ms <= P99_TARGET_MS else 'ABOVE'} {P99_TARGET_MS} ms")
        print(line.format(ratio=f"{ratio:6.2f}", wall=f"{wall:6.2f}") + "  (" + ", ".join(verdicts) + ")")
    print(
        "\nMedians over the rounds. req/cpu-s: requests per CPU-second of the server process (its rate on"
        " one free core,\nrobust to other load); req/s: wall-clock rate. Ratios: median of each round's"
        " ratio to that round's baseline GET.\nThe targets apply to both ratios: per-cpu is the server's"
        " capacity on a free core, wall what this run's machine gave it."
    )


def sidecar_settings(quiet_log: bool) -> tuple[dict[str, str], str]:
    """The environment the sidecar runs with beyond its data dir, and a line saying so."""
    if quiet_log:
        return dict(_QUIET_LOG), (
            "sidecar settings: defaults, except SIDECAR_LOG_LEVEL=WARNING (--quiet-log): no access-log line"
            " per request, so these figures are better than a default deployment's"
        )
    fields = Settings.model_fields  # the defaults, whatever this shell's SIDECAR_* say (they are dropped)
    log, hook, metrics = RequestLogSettings(), HasuraWebhookSettings(), MetricsSettings()
    return {}, (
        f"sidecar settings: defaults (log level {fields['log_level'].default}, {fields['log_format'].default}"
        f" logs, request log {log.mode} at sample rate {log.sample_rate:g}, metrics"
        f" {'on' if metrics.enabled else 'off'}, operation checks {'on' if hook.operation_checks else 'off'});"
        " the log goes to a file"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every scenario; medians are reported")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--quiet-log",
        action="store_true",
        help="run the sidecar with SIDECAR_LOG_LEVEL=WARNING (no access-log line); default: its defaults",
    )
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
        tokens.run(args.duration, args.connections, list(tokens.ALGORITHMS), args.rounds)


def webhook(args: argparse.Namespace) -> None:
    """The webhook benchmark: the baseline and the sidecar's scenarios, ``args.rounds`` rounds."""
    extra_env, described = sidecar_settings(args.quiet_log)
    print(described, flush=True)
    with tempfile.TemporaryDirectory(prefix="sidecar-bench-") as tmp:
        root = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")}
        env.update({"SIDECAR_DATA_DIR": str(root / "data"), **extra_env})
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
                check_answers(found)
                print(f"measuring {len(found)} scenarios x {args.rounds} rounds of {args.duration:g} s", flush=True)
                measured = measure(found, args.rounds, args.duration)
                half = {
                    s.name: run(replace(s.load, rate=_median([r[s.name].result.rps for r in measured]) / 2), LOAD_CPU)
                    for s in found
                    if s.baseline is not None or s.name == "baseline GET"
                }
        report(found, measured, half)
        print(described)
