"""`sidecar serve` as the container runs it: healthy, JSON even for what aiohttp refuses, a clean exit on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sidecar.domain import keyformat
from sidecar.models import Environment, KeyType
from tests.redis_fixtures import RedisProcess


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthcheck(env: dict[str, str]) -> int:
    return subprocess.run(
        [sys.executable, "-m", "sidecar.healthcheck"], env=env, capture_output=True, check=False
    ).returncode


@contextmanager
def serving(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """``sidecar serve`` with ``env``, once its healthcheck passes; killed if the test leaves it running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 20
        while healthcheck(env) != 0:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the server did not become healthy"
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_answers_the_healthcheck_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SIDECAR_PORT": str(port), "SIDECAR_DATA_DIR": str(tmp_path / "data")}
    with serving(env) as proc:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as resp:
            assert resp.status == 200

        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
        assert proc.returncode == 0, stderr.decode()
        assert b"Traceback" not in stderr
        assert healthcheck(env) == 1


def test_sigterm_lets_a_request_in_flight_finish(tmp_path: Path, own_redis: RedisProcess) -> None:
    admin = keyformat.mint(keyformat.prefix_for(KeyType.SECRET, "super_admin", Environment.LIVE))
    port = free_port()
    env = {
        **os.environ,
        "SIDECAR_PORT": str(port),
        "SIDECAR_DATA_DIR": str(tmp_path / "data"),
        "SIDECAR_BOOTSTRAP_ADMIN_KEY": admin,
        "SIDECAR_REDIS_URL": own_redis.url,
        "SIDECAR_REDIS__TIMEOUT_S": "2",  # a hung Redis holds the lookup this long, then the store answers
    }
    with serving(env) as proc:
        own_redis.pause()
        try:
            answers: list[int] = []
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/hasura/webhook", headers={"Authorization": f"Bearer {admin}"}
            )

            def call_the_webhook() -> None:
                with urllib.request.urlopen(request, timeout=15) as resp:  # noqa: S310 - an http://127.0.0.1 URL
                    answers.append(resp.status)

            in_flight = threading.Thread(target=call_the_webhook)
            in_flight.start()
            time.sleep(0.5)  # the key's lookup is waiting on Redis
            proc.send_signal(signal.SIGTERM)
            in_flight.join(timeout=15)
            assert answers == [200]
            _, stderr = proc.communicate(timeout=15)
            assert proc.returncode == 0, stderr.decode()
            assert b"Traceback" not in stderr
        finally:
            own_redis.resume()


def test_serve_writes_one_json_access_line_per_request_to_stderr(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SIDECAR_PORT": str(port), "SIDECAR_DATA_DIR": str(tmp_path / "data")}
    with serving(env) as proc:
        for request_id in ("first", "last"):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/hasura/webhook", headers={"X-Request-Id": request_id}
            )
            with urllib.request.urlopen(request, timeout=3) as resp:  # noqa: S310 - http://127.0.0.1
                assert resp.status == 200  # anonymous
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "sidecar.access"]
    assert [line["request_id"] for line in access] == ["first", "last"]  # the healthcheck's /healthz is quiet
    assert access[-1]["route"] == "/v1/hasura/webhook"
    assert access[-1]["status"] == 200
    assert access[-1]["level"] == "INFO"
    assert isinstance(access[-1]["latency_ms"], float)


def test_serve_answers_an_oversized_header_in_json(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "SIDECAR_PORT": str(port),
        "SIDECAR_DATA_DIR": str(tmp_path / "data"),
        "SIDECAR_LIMITS__MAX_FIELD_BYTES": "2048",
    }
    with serving(env) as proc, socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"a" * 4096 + b"\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):  # the server closes the connection after it
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.split(b" ")[1] == b"431"
        assert b"Content-Type: application/json" in head
        assert json.loads(body) == {
            "error": "INVALID_REQUEST",
            "message": "a request header field is longer than 2048 bytes",
        }
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
        assert proc.returncode == 0, stderr.decode()
        assert b"a" * 100 not in stderr  # the log line quotes nothing of the header
