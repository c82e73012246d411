"""POSTing webhook deliveries with aiohttp: one session per process, no redirects, bounded time.

With an ``address_allowed`` policy every address is checked at delivery time: a literal one in the
URL before connecting, and each address a host name resolves to inside the connector's resolver,
so the connection goes only to addresses that were checked (no second lookup to rebind).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from sidecar.ports import SendResult

USER_AGENT = "sidecar-webhooks/1"
ADDRESS_REFUSED = "address_not_allowed"

AddressPolicy = Callable[[ipaddress.IPv4Address | ipaddress.IPv6Address], bool]


class AddressNotAllowed(OSError):
    """A host name resolved to an address the policy refuses."""


class CheckingResolver(AbstractResolver):
    """Resolves with aiohttp's resolver, then refuses the host if any address fails the policy."""

    def __init__(self, allowed: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self._allowed = allowed
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not results or not all(_allowed(self._allowed, r["host"]) for r in results):
            raise AddressNotAllowed(f"{host} resolves to an address webhooks may not be delivered to")
        return results

    async def close(self) -> None:
        await self._inner.close()


def _allowed(policy: AddressPolicy, text: str) -> bool:
    try:
        return policy(ipaddress.ip_address(text.split("%", 1)[0]))
    except ValueError:
        return False


class AiohttpSender:
    def __init__(self, session: aiohttp.ClientSession, *, address_allowed: AddressPolicy | None = None) -> None:
        self._session = session
        self._allowed = address_allowed

    @classmethod
    @asynccontextmanager
    async def open(
        cls, *, max_connections: int = 100, address_allowed: AddressPolicy | None = None
    ) -> AsyncIterator[AiohttpSender]:
        """``address_allowed`` ``None`` delivers anywhere; else only to addresses it allows."""
        resolver = CheckingResolver(address_allowed) if address_allowed is not None else None
        connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=8, resolver=resolver)
        async with aiohttp.ClientSession(connector=connector, headers={"User-Agent": USER_AGENT}) as session:
            yield cls(session, address_allowed=address_allowed)

    def _literal_refused(self, url: str) -> bool:
        """aiohttp connects to a literal address without asking the resolver: check it here."""
        if self._allowed is None:
            return False
        try:
            host = urlsplit(url).hostname or ""
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False  # a name: the resolver checks what it resolves to
        return not self._allowed(address)

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float) -> SendResult:
        if self._literal_refused(url):
            return SendResult(None, ADDRESS_REFUSED)
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
        except aiohttp.ClientConnectorError as exc:
            return SendResult(
                None, ADDRESS_REFUSED if isinstance(exc.os_error, AddressNotAllowed) else type(exc).__name__
            )
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            # The kind of failure only: exception texts can carry URLs with credentials.
            return SendResult(None, type(exc).__name__)
