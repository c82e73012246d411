"""Load generation: ``wrk`` where installed, else an async aiohttp client in its own process.

Both run pinned to a core of their own (``taskset``) when the machine has more than one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Load:
    url: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    connections: int = 32
    duration_s: float = 5.0
    #: Aim at this many requests per second in total (``None``: as fast as possible).
    rate: float | None = None


@dataclass(frozen=True)
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    bad: int  # responses that were not 2xx/3xx, or errors


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    if cpu is None or shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return cmd
    return ["taskset", "-c", str(cpu), *cmd]


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run(load: Load, cpu: int | None) -> Result:
    return run_wrk(load, cpu) if have_wrk() else run_python(load, cpu)


# --- wrk ---------------------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _lua(load: Load, delay_ms: int | None) -> str:
    lines = [f"wrk.method = {_lua_str(load.method)}"]
    if load.body is not None:
        lines.append(f"wrk.body = {_lua_str(load.body)}")
    lines += [f"wrk.headers[{_lua_str(k)}] = {_lua_str(v)}" for k, v in load.headers.items()]
    if delay_ms is not None:
        lines.append(f"function delay() return {delay_ms} end")
    return "\n".join(lines) + "\n"


def _lua_str(text: str) -> str:
    """A double-quoted Lua string literal. (A long bracket ``[==[…]==]`` cannot be used: as a
    table index, ``wrk.headers[[==[A]==]]`` opens another long bracket and the script fails to
    parse, which wrk reports on stderr and then runs without the script.)"""
    escaped = "".join(_LUA_ESCAPES.get(c, c) if c >= " " or c in _LUA_ESCAPES else f"\\{ord(c):03d}" for c in text)
    return f'"{escaped}"'


_LUA_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _wrk_once(load: Load, cpu: int | None, connections: int, delay_ms: int | None) -> Result:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_lua(load, delay_ms))
    try:
        cmd = [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(load.duration_s))}s",
            "--latency",
            "-s",
            script.name,
            load.url,
        ]
        done = subprocess.run(pinned(cmd, cpu), capture_output=True, text=True, check=False, timeout=120)
    finally:
        Path(script.name).unlink()
    if done.returncode != 0 or done.stderr.strip():
        # wrk exits 0 when its script does not load, having run without it: never measure that
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return _parse_wrk(done.stdout)


def _parse_wrk(out: str) -> Result:
    def latency(pct: str) -> float:
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if match is None:
            raise RuntimeError(f"cannot read the {pct}% latency from wrk:\n{out}")
        return float(match.group(1)) * _UNITS[match.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if rps is None or total is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = int(bad.group(1)) if bad else 0
    if errors:
        failed += sum(int(g) for g in errors.groups())
    return Result(float(rps.group(1)), latency("50"), latency("99"), int(total.group(1)), failed)


def run_wrk(load: Load, cpu: int | None) -> Result:
    if load.rate is None:
        return _wrk_once(load, cpu, load.connections, None)
    # wrk paces with a per-connection delay (whole milliseconds): choose the connection count
    # for the target rate, then correct it once by what the first short run achieved.
    delay_ms = 1
    connections = max(1, round(load.rate * (delay_ms + 0.3) / 1000))
    probe = _wrk_once(Load(**{**asdict(load), "duration_s": 2.0}), cpu, connections, delay_ms)
    if probe.rps > 0:
        connections = max(1, round(connections * load.rate / probe.rps))
    return _wrk_once(load, cpu, connections, delay_ms)


# --- the Python fallback -----------------------------------------------------------------------


def run_python(load: Load, cpu: int | None) -> Result:
    cmd = pinned([sys.executable, "-m", "bench.loadgen", json.dumps(asdict(load))], cpu)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    return Result(**json.loads(out))
