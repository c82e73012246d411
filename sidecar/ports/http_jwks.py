"""An external identity provider's JWKS, fetched over HTTP(S) and cached.

An unknown ``kid`` triggers a refetch (the provider rotated), at most once per
``min_refetch_s``, so tokens with made-up ``kid``s cannot turn us into a request amplifier.
A provider that cannot answer leaves the cached keys in place; its tokens then fail closed.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import jwt

from sidecar.ports import Clock

log = logging.getLogger("sidecar.jwks")
MAX_JWKS_BYTES = 256 * 1024


class HttpJwks:
    def __init__(
        self,
        url: str,
        clock: Clock,
        *,
        max_age_s: float = 300.0,
        min_refetch_s: float = 30.0,
        timeout_s: float = 5.0,
    ) -> None:
        self._url = url
        self._clock = clock
        self._max_age_s = max_age_s
        self._min_refetch_s = min_refetch_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> jwt.PyJWK | None:
        now = self._clock.monotonic()
        stale = self._fetched_at is None or now - self._fetched_at >= self._max_age_s
        if stale or (kid not in self._keys and now - (self._fetched_at or 0.0) >= self._min_refetch_s):
            await self._refetch()
        return self._keys.get(kid)

    async def _refetch(self) -> None:
        async with self._lock:
            try:
                async with (
                    aiohttp.ClientSession(timeout=self._timeout) as session,
                    session.get(self._url, headers={"Accept": "application/json"}) as resp,
                ):
                    resp.raise_for_status()
                    body = await resp.content.read(MAX_JWKS_BYTES + 1)
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError("JWKS larger than allowed")
                keys = jwt.PyJWKSet.from_json(body.decode("utf-8")).keys
            except (aiohttp.ClientError, TimeoutError, ValueError, jwt.PyJWTError) as exc:
                log.warning("could not fetch the identity provider's JWKS (%s)", type(exc).__name__)
                self._fetched_at = self._clock.monotonic()
                return
            self._keys = {k.key_id: k for k in keys if k.key_id}
            self._fetched_at = self._clock.monotonic()
