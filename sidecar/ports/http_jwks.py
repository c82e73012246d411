"""An external identity provider's JWKS, fetched over HTTP(S) and cached.

The keys are kept as long as the response's ``Cache-Control`` says (``s-maxage``, else
``max-age``; ``no-store``/``no-cache``: as short as allowed), else its ``Expires``, else
``max_age_s``; never shorter than ``min_refetch_s`` nor longer than a day. An unknown ``kid``
triggers a refetch (the provider rotated), at most once per ``min_refetch_s``, so tokens with
made-up ``kid``s cannot turn us into a request amplifier. A provider that cannot answer leaves
the cached keys in place; its tokens then fail closed.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

import aiohttp
import jwt

from sidecar.ports import Clock

log = logging.getLogger("sidecar.jwks")
MAX_JWKS_BYTES = 256 * 1024
MAX_LIFETIME_S = 86_400.0
_DIRECTIVE = re.compile(r"^\s*([a-z-]+)\s*(?:=\s*\"?(\d{1,10})\"?)?\s*$")


def cache_lifetime(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds a response may be kept, from its ``Cache-Control`` then ``Expires`` (RFC 9111 §4.2.1);
    ``None`` when neither says. ``0`` for ``no-store``/``no-cache``."""
    directives: dict[str, int | None] = {}
    for part in headers.get("Cache-Control", "").lower().split(","):
        match = _DIRECTIVE.match(part)
        if match:
            directives[match.group(1)] = int(match.group(2)) if match.group(2) else None
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    for name in ("s-maxage", "max-age"):
        value = directives.get(name)
        if value is not None:
            return float(value)
    expires = headers.get("Expires")
    if expires:
        try:
            when = parsedate_to_datetime(expires)
        except (TypeError, ValueError, IndexError):
            return 0.0  # RFC 9111 §5.3: an invalid Expires means already expired
        if when.tzinfo is None:
            return 0.0
        return max(0.0, (when - now).total_seconds())
    return None


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
        self._lifetime_s = max_age_s
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> jwt.PyJWK | None:
        if self._due(kid):
            await self._refetch(kid)
        return self._keys.get(kid)

    def _due(self, kid: str) -> bool:
        if self._fetched_at is None:
            return True
        age = self._clock.monotonic() - self._fetched_at
        return age >= self._lifetime_s or (kid not in self._keys and age >= self._min_refetch_s)

    async def _refetch(self, kid: str) -> None:
        async with self._lock:
            if not self._due(kid):  # another request fetched while this one waited
                return
            try:
                async with (
                    aiohttp.ClientSession(timeout=self._timeout) as session,
                    session.get(self._url, headers={"Accept": "application/json"}) as resp,
                ):
                    resp.raise_for_status()
                    body = await resp.content.read(MAX_JWKS_BYTES + 1)
                    lifetime = cache_lifetime(resp.headers, self._clock.now())
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError("JWKS larger than allowed")
                keys = jwt.PyJWKSet.from_json(body.decode("utf-8")).keys
            except (aiohttp.ClientError, TimeoutError, ValueError, jwt.PyJWTError) as exc:
                log.warning("could not fetch the identity provider's JWKS (%s)", type(exc).__name__)
                self._fetched_at = self._clock.monotonic()
                self._lifetime_s = self._min_refetch_s  # keep the keys we have; try again soon
                return
            self._keys = {k.key_id: k for k in keys if k.key_id}
            self._fetched_at = self._clock.monotonic()
            chosen = self._max_age_s if lifetime is None else lifetime
            self._lifetime_s = min(MAX_LIFETIME_S, max(self._min_refetch_s, chosen))
