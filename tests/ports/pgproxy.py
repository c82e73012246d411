"""A TCP relay on 127.0.0.1 in front of the test PostgreSQL server, which a test can cut.

Pulling the plug on a shared server would break every other test; cutting this relay makes the
database unreachable for one store only: open connections drop and new ones are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


class PgRelay:
    def __init__(self, server_url: str) -> None:
        parts = urlsplit(server_url)
        query = dict(parse_qsl(parts.query))
        self._socket_dir = query.get("host") if not parts.hostname else None
        self._target = (parts.hostname or "", parts.port or int(query.get("port", 5432)))
        self._server_url = server_url
        self._listener: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    def url(self, via: str) -> str:
        """``via`` (a URL on the same server, e.g. with a search_path) rerouted through the relay."""
        parts = urlsplit(via)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("host", "port")]
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query)))

    async def start(self) -> None:
        self._listener = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._listener.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self._socket_dir is not None:
            server_r, server_w = await asyncio.open_unix_connection(f"{self._socket_dir}/.s.PGSQL.{self._target[1]}")
        else:
            server_r, server_w = await asyncio.open_connection(*self._target)
        self._writers |= {client_w, server_w}
        await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))
        self._writers -= {client_w, server_w}


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()
