"""Fixtures for tests over real sockets: the app served as ``sidecar serve`` serves it, raw connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sidecar.app import create_app, server_options
from sidecar.ports.clock import FrozenClock
from sidecar.settings import Settings
from tests.conftest import Bootstrap, SidecarTestServer

ServerFactory = Callable[..., Awaitable[TestServer]]
HOST = "127.0.0.1"


@pytest.fixture
async def serve(
    make_settings: Callable[..., Settings], clock: FrozenClock, bootstrap: Bootstrap
) -> AsyncIterator[Callable[..., Awaitable[TestServer]]]:
    """Start the app on 127.0.0.1 as ``sidecar serve`` does: its runner and its server options."""
    started: list[TestServer] = []

    async def start(*, before: Callable[[web.Application], None] | None = None, **overrides: Any) -> TestServer:
        settings = make_settings(**overrides)
        app = create_app(settings, clock=clock, on_bootstrap=bootstrap)
        if before is not None:
            before(app)
        server = SidecarTestServer(app, host=HOST)
        await server.start_server(**server_options(settings))
        started.append(server)
        return server

    yield start
    for server in started:
        await server.close()


class Raw:
    """One raw TCP connection to the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, within_s: float = 5.0) -> tuple[int, dict[str, str], bytes]:
        """Read one response (status, headers, body by Content-Length)."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), within_s)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        body = await asyncio.wait_for(self.reader.readexactly(int(headers.get("content-length", "0"))), within_s)
        return status, headers, body

    async def closed_within(self, seconds: float) -> bool:
        """True when the server closes the connection (EOF or reset) within ``seconds``."""
        try:
            rest = await asyncio.wait_for(self.reader.read(), seconds)
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        return rest == b"" or b"\r\n\r\n" in rest

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[TestServer], Awaitable[Raw]]]:
    opened: list[Raw] = []

    async def open_to(server: TestServer) -> Raw:
        raw = Raw(*await asyncio.open_connection(HOST, server.port))
        opened.append(raw)
        return raw

    yield open_to
    for raw in opened:
        raw.close()
