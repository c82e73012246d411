"""Signing-key rotation as Hasura sees it: no token ever fails while keys come and go."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sidecar.app import create_app
from sidecar.domain import jwk
from sidecar.domain.signing_keys import RingTiming
from sidecar.errors import ConfigError
from sidecar.ports.clock import FrozenClock
from sidecar.settings import JwtSettings, Settings
from sidecar.web.state import SERVICES
from tests.conftest import Bootstrap, ClientFactory, bearer
from tests.hasura_jwt_rules import HasuraRejects, JwksCache, check_v2, check_v3

Client = TestClient[Any, Any]
# max-age 300 + reload 30 + skew 60: a next key signs 390 s after a rotation
ACTIVATION_DELAY = 390
RETENTION = 3600 + 60


async def exchange(client: Client, key: str) -> str:
    resp = await client.post("/v1/auth/token", headers=bearer(key))
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["access_token"])


async def signing_keys(client: Client, admin_key: str) -> list[dict[str, Any]]:
    resp = await client.get("/v1/signing_keys", headers=bearer(admin_key))
    assert resp.status == 200, await resp.text()
    return list((await resp.json())["data"])


def states(keys: list[dict[str, Any]]) -> list[str]:
    return [k["state"] for k in keys]


#: Rotations, in seconds from the start: the first right after the simulated Hasura fetched the
#: JWKS (t=300, a max-age boundary), the second 100 s after a fetch (not aligned with max-age).
#: Either way the verifier holds a JWKS without the new key for a while, as a real Hasura would.
ROTATIONS = (300, 5200)
STEP = 100


async def rotate_while_hasura_verifies(client: Client, admin_key: str, clock: FrozenClock) -> JwksCache:
    """Every STEP seconds over 2.5 h: Hasura refreshes its JWKS as max-age allows, keys may rotate,
    a token is issued, and every unexpired token so far must pass Hasura v2, v3 and /v1/auth/validate."""
    hasura = JwksCache(client)
    issued: list[tuple[str, float]] = []  # (token, exp)
    start = clock.now().timestamp()
    signing_kids: list[str] = []
    for _ in range(0, 9000 // STEP):
        now = clock.now().timestamp()
        await hasura.refresh(now)  # first, so a rotation in this step is one the verifier has not seen
        if now - start in ROTATIONS:
            resp = await client.post("/v1/signing_keys/rotate", headers=bearer(admin_key))
            assert resp.status == 201, await resp.text()
            rotated = await resp.json()
            assert rotated["state"] == "next"
            assert rotated["kid"] not in hasura.kids()  # the verifier's cached JWKS predates the new key
        token = await exchange(client, admin_key)
        issued.append((token, now + 3600))
        kid = client.server.app[SERVICES].signing_keys.view().signer.kid
        if not signing_kids or signing_kids[-1] != kid:
            signing_kids.append(kid)
        for old, exp in issued:
            if now < exp:
                session = check_v2(old, hasura, now=now)  # raises if Hasura would reject it
                assert session["x-hasura-role"] == "super_admin"
                check_v3(old, hasura, now=now, namespace="https://hasura.io/jwt/claims", audience="hasura")
                assert (await client.get("/v1/auth/validate", headers=bearer(old))).status == 200
        clock.advance(STEP)
    assert len(signing_kids) == 3
    assert clock.now().timestamp() - start > ROTATIONS[-1] + ACTIVATION_DELAY
    return hasura


async def test_rotation_never_breaks_a_verifier_that_honours_max_age(
    client: Client, admin_key: str, clock: FrozenClock
) -> None:
    hasura = await rotate_while_hasura_verifies(client, admin_key, clock)
    assert hasura.fetches > 15  # refetched every max-age, as Hasura v2 does
    keys = await signing_keys(client, admin_key)
    assert states(keys) == ["current", "previous", "retired"]


@pytest.mark.parametrize("delay_s", [1, 200])
async def test_the_rotation_check_catches_a_key_that_signs_before_verifiers_refetch(
    monkeypatch: pytest.MonkeyPatch,
    aiohttp_client: ClientFactory,
    settings: Settings,
    clock: FrozenClock,
    delay_s: int,
) -> None:
    """The scenario above fails if a next key signs sooner than JWKS max-age (300 s) after a rotation."""
    monkeypatch.setattr(RingTiming, "activation_delay", property(lambda _: timedelta(seconds=delay_s)))
    boot = Bootstrap()
    client = await aiohttp_client(create_app(settings, clock=clock, on_bootstrap=boot))
    with pytest.raises(HasuraRejects, match="invalid-jwt"):
        await rotate_while_hasura_verifies(client, boot.key, clock)


async def test_rotation_timeline(client: Client, admin_key: str, clock: FrozenClock) -> None:
    first = await signing_keys(client, admin_key)
    assert states(first) == ["current"]
    old_kid = first[0]["kid"]
    resp = await client.post("/v1/signing_keys/rotate", headers=bearer(admin_key))
    assert resp.status == 201
    new = await resp.json()
    jwks = await (await client.get("/.well-known/jwks.json")).json()
    assert {k["kid"] for k in jwks["keys"]} == {old_kid, new["kid"]}  # published at once
    assert client.server.app[SERVICES].signing_keys.view().signer.kid == old_kid  # but not signing yet
    again = await client.post("/v1/signing_keys/rotate", headers=bearer(admin_key))
    assert again.status == 409  # one rotation at a time
    clock.advance(ACTIVATION_DELAY)
    assert states(await signing_keys(client, admin_key)) == ["current", "previous"]
    assert client.server.app[SERVICES].signing_keys.view().signer.kid == new["kid"]
    clock.advance(RETENTION - 1)
    assert len((await (await client.get("/.well-known/jwks.json")).json())["keys"]) == 2
    clock.advance(1)
    assert states(await signing_keys(client, admin_key)) == ["current", "retired"]
    assert [k["kid"] for k in (await (await client.get("/.well-known/jwks.json")).json())["keys"]] == [new["kid"]]


async def test_immediate_rotation_signs_at_once(client: Client, admin_key: str, clock: FrozenClock) -> None:
    clock.advance(1)
    resp = await client.post("/v1/signing_keys/rotate", json={"immediate": True}, headers=bearer(admin_key))
    assert resp.status == 201
    new = await resp.json()
    assert new["state"] == "current"
    assert client.server.app[SERVICES].signing_keys.view().signer.kid == new["kid"]


async def audit_rotations(client: Client, admin_key: str) -> list[dict[str, Any]]:
    resp = await client.get("/v1/audit_events?action=signing_key.rotated", headers=bearer(admin_key))
    assert resp.status == 200, await resp.text()
    return list((await resp.json())["data"])


async def test_rotations_are_audited_with_actor_and_origin(client: Client, admin_key: str, clock: FrozenClock) -> None:
    admin_id = (await (await client.get("/v1/auth/validate", headers=bearer(admin_key))).json())["key_id"]
    assert await audit_rotations(client, admin_key) == []  # creating the first key is not a rotation
    headers = {**bearer(admin_key), "User-Agent": "ops-console/2.0", "X-Request-Id": "req-rotate"}
    scheduled = await (await client.post("/v1/signing_keys/rotate", headers=headers)).json()
    clock.advance(ACTIVATION_DELAY)
    urgent = await client.post("/v1/signing_keys/rotate", json={"immediate": True}, headers=bearer(admin_key))
    at_once = await urgent.json()
    refused = await client.post("/v1/signing_keys/rotate", json={"immediate": "soon"}, headers=bearer(admin_key))
    assert refused.status == 400  # a refused rotation records nothing

    second, first = await audit_rotations(client, admin_key)
    assert first["actor"] == second["actor"] == {"id": admin_id, "type": "api_key"}
    assert first["target"] == {"type": "signing_key", "id": scheduled["kid"]}
    assert first["origin"] == {"ip": "127.0.0.1", "user_agent": "ops-console/2.0", "request_id": "req-rotate"}
    assert first["detail"] == {"alg": "RS256", "activates_at": scheduled["activates_at"].replace("Z", "+00:00"),
                               "immediate": "false"}  # fmt: skip
    assert second["target"]["id"] == at_once["kid"]
    assert second["detail"]["immediate"] == "true"


async def test_signing_key_api_needs_the_system_scope(client: Client, admin_key: str) -> None:
    created = await client.post("/v1/api_keys", json={"role": "admin"}, headers=bearer(admin_key))
    admin = (await created.json())["key"]
    for resp in (
        await client.get("/v1/signing_keys", headers=bearer(admin)),
        await client.post("/v1/signing_keys/rotate", headers=bearer(admin)),
    ):
        assert resp.status == 403
        assert "system:signing_keys" in (await resp.json())["message"]
    assert (await client.get("/v1/signing_keys")).status == 401
    listed = await signing_keys(client, admin_key)
    assert set(listed[0]) >= {"kid", "alg", "state", "activates_at", "retires_at"}
    assert not any("sealed" in k or "private" in k for k in listed[0])


async def test_replicas_share_keys_and_agree_on_rotation(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], clock: FrozenClock
) -> None:
    await replicas_agree(aiohttp_client, make_settings(), clock)


async def test_replicas_on_postgresql_agree(
    pg_url: str, aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], clock: FrozenClock
) -> None:
    """``pg_url`` comes first so its schema outlives the apps (fixtures tear down in reverse)."""
    await replicas_agree(aiohttp_client, make_settings(database_url=pg_url), clock)


async def replicas_agree(aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock) -> None:
    boot = Bootstrap()
    one = await aiohttp_client(create_app(settings, clock=clock, on_bootstrap=boot))
    two = await aiohttp_client(create_app(settings, clock=clock))
    ring_one = one.server.app[SERVICES].signing_keys
    ring_two = two.server.app[SERVICES].signing_keys
    assert ring_one.view().signer.kid == ring_two.view().signer.kid  # the first key is created once
    token = await exchange(one, boot.key)
    assert (await two.get("/v1/auth/validate", headers=bearer(token))).status == 200
    resp = await one.post("/v1/signing_keys/rotate", headers=bearer(boot.key))
    new_kid = (await resp.json())["kid"]
    assert await ring_two.reload()  # the periodic reload
    assert new_kid in ring_two.view().verifiers
    clock.advance(ACTIVATION_DELAY)
    assert ring_one.view().signer.kid == ring_two.view().signer.kid == new_kid
    token = await exchange(two, boot.key)
    assert (await one.get("/v1/auth/validate", headers=bearer(token))).status == 200


async def test_keys_survive_a_restart_sealed(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], clock: FrozenClock, tmp_path: Path
) -> None:
    boot = Bootstrap()
    settings = make_settings()
    first = await aiohttp_client(create_app(settings, clock=clock, on_bootstrap=boot))
    token = await exchange(first, boot.key)
    await first.close()
    database = (tmp_path / "data" / "sidecar.db").read_bytes()
    assert b"PRIVATE KEY" not in database
    second = await aiohttp_client(create_app(settings, clock=clock))
    assert (await second.get("/v1/auth/validate", headers=bearer(token))).status == 200


async def test_algorithm_change_schedules_a_rotation(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], clock: FrozenClock
) -> None:
    boot = Bootstrap()
    first = await aiohttp_client(create_app(make_settings(), clock=clock, on_bootstrap=boot))
    token = await exchange(first, boot.key)
    await first.close()
    only_new = make_settings(jwt=JwtSettings(algorithm="EdDSA"))
    with pytest.raises(ConfigError, match=r"\(RS256, current\) is published, .* accept RS256 too"):
        await aiohttp_client(create_app(only_new, clock=clock))  # its RS256 tokens would be refused
    both = JwtSettings(algorithm="EdDSA", accepted_algorithms=("EdDSA", "RS256"))
    second = await aiohttp_client(create_app(make_settings(jwt=both), clock=clock))
    ring = second.server.app[SERVICES].signing_keys
    assert ring.view().signer.algorithm == "RS256"  # keeps signing until the EdDSA key may
    assert (await second.get("/v1/auth/validate", headers=bearer(token))).status == 200
    clock.advance(ACTIVATION_DELAY)
    assert ring.view().signer.algorithm == "EdDSA"
    assert (await second.get("/v1/auth/validate", headers=bearer(token))).status == 200
    (event,) = await audit_rotations(second, boot.key)
    assert event["actor"] == {"id": "system", "type": "system"}
    assert event["target"] == {"type": "signing_key", "id": ring.view().signer.kid}
    assert event["detail"]["alg"] == "EdDSA"
    await second.close()
    clock.advance(RETENTION)  # the RS256 key has retired: EdDSA alone may be accepted again
    third = await aiohttp_client(create_app(only_new, clock=clock))
    assert (await third.get("/v1/auth/validate", headers=bearer(token))).status == 401
    assert third.server.app[SERVICES].signing_keys.view().signer.algorithm == "EdDSA"


async def test_pem_files_newest_signs_all_publish(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], clock: FrozenClock, tmp_path: Path
) -> None:
    paths = []
    for i, algorithm in enumerate(("RS256", "ES256")):
        path = tmp_path / f"key{i}.pem"
        path.write_bytes(jwk.to_pem(jwk.generate(algorithm)))
        paths.append(path)
    boot = Bootstrap()
    jwt = JwtSettings(algorithm="ES256", accepted_algorithms=("ES256", "RS256"), key_files=tuple(paths))
    client = await aiohttp_client(create_app(make_settings(jwt=jwt), clock=clock, on_bootstrap=boot))
    jwks = JwksCache(client)
    await jwks.refresh(clock.now().timestamp())
    assert sorted(k["alg"] for k in jwks.keys["keys"]) == ["ES256", "RS256"]
    token = await exchange(client, boot.key)
    check_v2(token, jwks, now=clock.now().timestamp(), algorithm="ES256")
    with pytest.raises(HasuraRejects):
        check_v2(token, jwks, now=clock.now().timestamp(), algorithm="RS256")
    resp = await client.post("/v1/signing_keys/rotate", headers=bearer(boot.key))
    assert resp.status == 409
    clock.advance(86_400 * 30)
    assert len((await (await client.get("/.well-known/jwks.json")).json())["keys"]) == 2  # files never retire


async def test_key_files_must_use_an_accepted_algorithm(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], clock: FrozenClock, tmp_path: Path
) -> None:
    old, new = tmp_path / "old.pem", tmp_path / "new.pem"
    old.write_bytes(jwk.to_pem(jwk.generate("RS256")))
    new.write_bytes(jwk.to_pem(jwk.generate("ES256")))
    jwt = JwtSettings(algorithm="ES256", key_files=(old, new))  # accepts ES256 only
    with pytest.raises(ConfigError, match=f"{old} holds an RS256 key, but the accepted algorithms are ES256"):
        await aiohttp_client(create_app(make_settings(jwt=jwt), clock=clock))


async def test_a_replica_refuses_tokens_in_an_algorithm_it_does_not_accept(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], clock: FrozenClock
) -> None:
    """Replica A moves to EdDSA; replica B, still configured for RS256 alone, loads A's new key
    from the shared store but refuses the EdDSA tokens A signs with it."""
    boot = Bootstrap()
    b = await aiohttp_client(create_app(make_settings(), clock=clock, on_bootstrap=boot))
    moving = JwtSettings(algorithm="EdDSA", accepted_algorithms=("EdDSA", "RS256"))
    a = await aiohttp_client(create_app(make_settings(jwt=moving), clock=clock))
    rs256_token = await exchange(a, boot.key)
    clock.advance(ACTIVATION_DELAY)
    await b.server.app[SERVICES].signing_keys.reload()
    eddsa_token = await exchange(a, boot.key)
    assert a.server.app[SERVICES].signing_keys.view().signer.kid in b.server.app[SERVICES].signing_keys.view().verifiers
    assert (await a.get("/v1/auth/validate", headers=bearer(eddsa_token))).status == 200
    refused = await b.get("/v1/auth/validate", headers=bearer(eddsa_token))
    assert refused.status == 401
    assert (await refused.json())["error"] == "INVALID_TOKEN"
    assert (await b.get("/v1/auth/validate", headers=bearer(rs256_token))).status == 200
