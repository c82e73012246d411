"""Revoking session JWTs: by the token, by id, with its key; on one replica and across replicas."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
from aiohttp.test_utils import TestClient

from sidecar.app import create_app
from sidecar.ports.clock import FrozenClock
from sidecar.redis_wiring import REVOCATION_UPDATES
from sidecar.settings import Settings
from sidecar.web.state import SERVICES
from tests.conftest import Bootstrap, bearer
from tests.hasura_rules import BROWSER_HEADERS, get_mode_headers, hasura_reads
from tests.web.test_replicas import PROPAGATION_BOUND_S, replica_settings

Client = TestClient[Any, Any]
ClientFactory = Callable[..., Awaitable[Client]]


async def new_key(client: Client, admin: str, **body: Any) -> dict[str, Any]:
    resp = await client.post("/v1/api_keys", json={"name": "svc", **body}, headers=bearer(admin))
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


async def session_token(client: Client, key: str) -> str:
    resp = await client.post("/v1/auth/token", headers=bearer(key))
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["access_token"])


async def hasura_denies(client: Client, token: str) -> bool:
    headers = get_mode_headers({**BROWSER_HEADERS, **bearer(token)})
    resp = await client.get("/v1/hasura/webhook", headers=headers, skip_auto_headers={"User-Agent"})
    return hasura_reads(resp.status, await resp.read()).denied


async def test_the_holder_of_a_token_can_revoke_it(client: Client, admin_key: str) -> None:
    key = (await new_key(client, admin_key))["key"]
    token, other = await session_token(client, key), await session_token(client, key)
    assert not await hasura_denies(client, token)

    resp = await client.post("/v1/auth/revoke", json={"token": token})
    assert resp.status == 200
    body = await resp.json()
    assert body["revoked"] is True
    assert body["jti"].startswith("tok_")

    assert await hasura_denies(client, token)
    validate = await client.get("/v1/auth/validate", headers=bearer(token))
    assert validate.status == 401
    assert (await validate.json())["error"] == "INVALID_TOKEN"
    assert not await hasura_denies(client, other)  # only that token
    assert (await client.get("/v1/auth/validate", headers=bearer(key))).status == 200  # and not the key


async def test_an_admin_can_revoke_a_token_by_id(client: Client, admin_key: str) -> None:
    operator = (await new_key(client, admin_key))["key"]
    token = await session_token(client, operator)
    token_id = jwt.decode(token, options={"verify_signature": False})["jti"]
    refused = await client.post("/v1/auth/revoke", json={"jti": token_id}, headers=bearer(operator))
    assert refused.status == 403
    assert not await hasura_denies(client, token)
    resp = await client.post("/v1/auth/revoke", json={"jti": token_id}, headers=bearer(admin_key))
    assert resp.status == 200
    assert (await resp.json())["jti"] == token_id
    assert await hasura_denies(client, token)


async def test_revoking_a_key_revokes_every_token_it_was_exchanged_for(client: Client, admin_key: str) -> None:
    created, bystander = await new_key(client, admin_key), await new_key(client, admin_key)
    tokens = [await session_token(client, created["key"]) for _ in range(2)]
    kept = await session_token(client, bystander["key"])
    resp = await client.delete(f"/v1/api_keys/{created['id']}", headers=bearer(admin_key))
    assert resp.status == 200
    assert [await hasura_denies(client, t) for t in tokens] == [True, True]
    assert not await hasura_denies(client, kept)


async def test_a_token_the_webhook_remembers_is_refused_once_revoked_by_id_or_with_its_key(
    client: Client, admin_key: str
) -> None:
    """Verified tokens are remembered (SIDECAR_JWT__VERIFIED_CACHE_ENTRIES); revocation is checked anyway."""
    created = await new_key(client, admin_key)
    by_id, by_key = await session_token(client, created["key"]), await session_token(client, created["key"])
    for token in (by_id, by_key):
        assert not await hasura_denies(client, token)
        assert not await hasura_denies(client, token)
    tokens = client.server.app[SERVICES].tokens
    assert tokens.verify_now(by_id) is tokens.verify_now(by_id)  # remembered: the same principal, not decoded again

    jti = jwt.decode(by_id, options={"verify_signature": False})["jti"]
    assert (await client.post("/v1/auth/revoke", json={"jti": jti}, headers=bearer(admin_key))).status == 200
    assert await hasura_denies(client, by_id)
    assert (await client.get("/v1/auth/validate", headers=bearer(by_id))).status == 401
    assert not await hasura_denies(client, by_key)

    assert (await client.delete(f"/v1/api_keys/{created['id']}", headers=bearer(admin_key))).status == 200
    assert await hasura_denies(client, by_key)
    assert (await client.get("/v1/auth/validate", headers=bearer(by_key))).status == 401


async def test_the_request_must_name_exactly_one_token(client: Client, admin_key: str) -> None:
    for body in ({}, {"token": "a.b.c", "jti": "tok_x"}, {"jti": ""}):
        resp = await client.post("/v1/auth/revoke", json=body, headers=bearer(admin_key))
        assert resp.status == 400, body
        assert (await resp.json())["error"] == "INVALID_REQUEST"
    forged = await client.post("/v1/auth/revoke", json={"token": "a.b.c"})
    assert forged.status == 401


async def test_revocations_survive_a_restart(aiohttp_client: ClientFactory, tmp_path: Path, clock: FrozenClock) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    bootstrap = Bootstrap()
    first = await aiohttp_client(create_app(settings, clock=clock, on_bootstrap=bootstrap))
    token = await session_token(first, (await new_key(first, bootstrap.key))["key"])
    assert (await first.post("/v1/auth/revoke", json={"token": token})).status == 200
    await first.close()
    again = await aiohttp_client(create_app(settings, clock=clock))
    assert await hasura_denies(again, token)


async def subscribed_replicas(
    aiohttp_client: ClientFactory, settings: Settings, bootstrap: Bootstrap
) -> tuple[Client, Client]:
    """Two replicas of one app, the second listening to the first's revocation broadcasts."""
    a, b = [await aiohttp_client(create_app(settings, on_bootstrap=bootstrap)) for _ in range(2)]
    for _ in range(1000):
        if b.app[REVOCATION_UPDATES].subscribed.is_set():
            break
        await asyncio.sleep(0.01)
    return a, b


async def test_a_token_revoked_on_one_replica_is_refused_by_the_other_within_the_bound(
    aiohttp_client: ClientFactory, tmp_path: Path, redis_url: str
) -> None:
    bootstrap = Bootstrap()
    a, b = await subscribed_replicas(aiohttp_client, replica_settings(tmp_path, redis_url), bootstrap)
    key = (await new_key(a, bootstrap.key))["key"]
    by_token, by_key = await session_token(a, key), await session_token(b, key)
    assert not await hasura_denies(b, by_token)

    assert (await a.post("/v1/auth/revoke", json={"token": by_token})).status == 200
    start = time.monotonic()
    while not await hasura_denies(b, by_token):
        assert time.monotonic() - start < PROPAGATION_BOUND_S
        await asyncio.sleep(0.005)
    assert not await hasura_denies(b, by_key)


async def test_a_key_revoked_on_one_replica_takes_the_tokens_the_other_issued(
    aiohttp_client: ClientFactory, tmp_path: Path, redis_url: str
) -> None:
    bootstrap = Bootstrap()
    a, b = await subscribed_replicas(aiohttp_client, replica_settings(tmp_path, redis_url), bootstrap)
    created = await new_key(a, bootstrap.key)
    token = await session_token(b, created["key"])  # only B knows a token was issued
    never_exchanged = await new_key(a, bootstrap.key)
    assert not await hasura_denies(b, token)

    assert (await a.delete(f"/v1/api_keys/{never_exchanged['id']}", headers=bearer(bootstrap.key))).status == 200
    assert (await a.delete(f"/v1/api_keys/{created['id']}", headers=bearer(bootstrap.key))).status == 200
    assert await hasura_denies(a, token)  # at once where it was revoked
    start = time.monotonic()
    while not await hasura_denies(b, token):
        assert time.monotonic() - start < PROPAGATION_BOUND_S
        await asyncio.sleep(0.005)
    assert len(a.app[SERVICES].revocations or ()) == 1  # the key that never exchanged a token left nothing


async def test_without_redis_other_replicas_learn_from_the_store_within_the_reload_interval(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "shared", key_cache={"ttl_s": 1})  # re-read every second
    bootstrap = Bootstrap()
    a, b = [await aiohttp_client(create_app(settings, on_bootstrap=bootstrap)) for _ in range(2)]
    token = await session_token(a, (await new_key(a, bootstrap.key))["key"])
    assert (await a.post("/v1/auth/revoke", json={"token": token})).status == 200
    assert await hasura_denies(a, token)
    start = time.monotonic()
    while not await hasura_denies(b, token):
        assert time.monotonic() - start < 5, "B never re-read the store"
        await asyncio.sleep(0.05)
