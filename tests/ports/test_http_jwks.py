"""An identity provider's JWKS over real HTTP: cached, refetched for a new kid at most every 30 s."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import jwt
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import ec

from sidecar.ports.clock import FrozenClock
from sidecar.ports.http_jwks import HttpJwks, cache_lifetime

ServerFactory = Callable[..., Awaitable[TestServer]]


def jwk(kid: str) -> dict[str, Any]:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    return {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public)), "kid": kid, "alg": "ES256"}


async def test_new_kid_is_fetched_but_not_more_than_every_30_s(aiohttp_server: ServerFactory) -> None:
    published = {"keys": [jwk("k1")]}
    fetches = []

    async def handler(request: web.Request) -> web.Response:
        fetches.append(1)
        return web.json_response(published)

    app = web.Application()
    app.router.add_get("/jwks", handler)
    server = await aiohttp_server(app, host="127.0.0.1")
    clock = FrozenClock()
    jwks = HttpJwks(str(server.make_url("/jwks")), clock)

    key = await jwks.key("k1")
    assert key is not None
    assert key.algorithm_name == "ES256"
    assert await jwks.key("k1") is not None
    assert len(fetches) == 1  # cached

    published["keys"].append(jwk("k2"))
    assert await jwks.key("k2") is None  # just fetched: an unknown kid does not refetch yet
    assert await jwks.key("made-up") is None
    assert len(fetches) == 1
    clock.advance(31)
    assert await jwks.key("k2") is not None  # the provider rotated: fetched once more
    assert len(fetches) == 2


async def test_unreachable_provider_fails_closed(aiohttp_server: ServerFactory) -> None:
    async def down(request: web.Request) -> web.Response:
        return web.Response(status=503)

    app = web.Application()
    app.router.add_get("/jwks", down)
    server = await aiohttp_server(app, host="127.0.0.1")
    jwks = HttpJwks(str(server.make_url("/jwks")), FrozenClock())
    assert await jwks.key("k1") is None


def test_cache_lifetime_reads_cache_control_then_expires() -> None:
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    assert cache_lifetime({"Cache-Control": "public, max-age=600"}, now) == 600
    assert cache_lifetime({"Cache-Control": "max-age=600, s-maxage=60"}, now) == 60
    assert cache_lifetime({"Cache-Control": "no-store"}, now) == 0
    assert cache_lifetime({"Cache-Control": "no-cache, max-age=600"}, now) == 0
    assert cache_lifetime({"Expires": "Mon, 05 Jan 2026 12:02:00 GMT"}, now) == 120
    assert cache_lifetime({"Expires": "0"}, now) == 0
    assert cache_lifetime({"Cache-Control": "max-age=abc"}, now) is None
    assert cache_lifetime({}, now) is None


async def test_the_providers_max_age_is_honoured(aiohttp_server: ServerFactory) -> None:
    published = {"keys": [jwk("k1")]}
    fetches = []
    max_age = ["max-age=120"]

    async def handler(request: web.Request) -> web.Response:
        fetches.append(1)
        return web.json_response(published, headers={"Cache-Control": max_age[0]})

    app = web.Application()
    app.router.add_get("/jwks", handler)
    server = await aiohttp_server(app, host="127.0.0.1")
    clock = FrozenClock()
    jwks = HttpJwks(str(server.make_url("/jwks")), clock, max_age_s=300)
    assert await jwks.key("k1") is not None
    clock.advance(119)
    assert await jwks.key("k1") is not None
    assert len(fetches) == 1
    max_age[0] = "no-store"  # now as short as we allow: the 30 s floor
    clock.advance(2)
    assert await jwks.key("k1") is not None
    assert len(fetches) == 2
    clock.advance(29)
    await jwks.key("k1")
    assert len(fetches) == 2
    clock.advance(2)
    await jwks.key("k1")
    assert len(fetches) == 3
