"""`sidecar serve` as the container runs it: healthy, then a clean exit on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthcheck(env: dict[str, str]) -> int:
    return subprocess.run(
        [sys.executable, "-m", "sidecar.healthcheck"], env=env, capture_output=True, check=False
    ).returncode


def test_serve_answers_the_healthcheck_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SIDECAR_PORT": str(port), "SIDECAR_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 20
        while healthcheck(env) != 0:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the server did not become healthy"
            time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as resp:
            assert resp.status == 200

        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
        assert proc.returncode == 0, stderr.decode()
        assert b"Traceback" not in stderr
        assert healthcheck(env) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
