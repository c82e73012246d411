"""POSTing webhook deliveries with aiohttp: one session per process, no redirects, bounded time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import aiohttp

from sidecar.ports import SendResult

USER_AGENT = "sidecar-webhooks/1"


class AiohttpSender:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    @classmethod
    @asynccontextmanager
    async def open(cls, *, max_connections: int = 100) -> AsyncIterator[AiohttpSender]:
        connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=8)
        async with aiohttp.ClientSession(connector=connector, headers={"User-Agent": USER_AGENT}) as session:
            yield cls(session)

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float) -> SendResult:
        try:
            async with self._session.post(
                url,
                data=body,
                headers={**headers, "Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                allow_redirects=False,  # a redirect could carry the signed body somewhere unintended
            ) as resp:
                await resp.content.read(1024)  # a little of the body, so the connection can be reused
                return SendResult(resp.status)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            # The kind of failure only: exception texts can carry URLs with credentials.
            return SendResult(None, type(exc).__name__)
