"""The OAuth authorization server over real HTTP: the consent forms, the token endpoint,
refresh rotation, reuse detection, revocation, introspection and client credentials."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sidecar.app import create_app
from sidecar.ports.clock import FrozenClock
from sidecar.settings import Settings
from tests.conftest import Bootstrap, ClientFactory, bearer
from tests.hasura_jwt_rules import V2_NAMESPACE, JwksCache, check_v2, check_v3, parse_pg_array, verify_signature
from tests.oauth_support import (
    REDIRECT_URI,
    Flow,
    basic,
    create_key,
    register_client,
)

Client = TestClient[Any, Any]


@pytest.fixture
async def http(aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock, bootstrap: Bootstrap) -> Client:
    app = create_app(settings, clock=clock, on_bootstrap=bootstrap)
    return await aiohttp_client(app)


@pytest.fixture
def admin(http: Client, bootstrap: Bootstrap) -> str:
    return bootstrap.key


@pytest.fixture
async def partner(http: Client, admin: str) -> dict[str, Any]:
    return await register_client(http, admin)


@pytest.fixture
async def merchant(http: Client, admin: str) -> str:
    return await create_key(http, admin, type="secret", role="manager", user_id="user_42")


async def token_json(resp: Any, status: int = 200) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.headers["Cache-Control"] == "no-store"
    return dict(await resp.json())


async def test_code_flow_tokens_call_the_api_as_restricted(
    http: Client, partner: dict[str, Any], merchant: str
) -> None:
    flow = Flow(http, partner["id"], scope="orders:read customers:read")
    tokens = await token_json(await flow.exchange(await flow.code(merchant), partner["client_secret"]))
    assert tokens["token_type"] == "Bearer"
    assert tokens["scope"] == "orders:read customers:read"
    assert tokens["refresh_token"].startswith("ort_")
    me = await http.get("/v1/auth/permissions", headers=bearer(tokens["access_token"]))
    assert me.status == 200
    body = await me.json()
    assert body["role"] == "restricted"
    assert body["scopes"] == ["orders:read", "customers:read"]
    assert body["user_id"] == "user_42"


async def test_refresh_rotates_and_reuse_revokes_the_family(
    http: Client, partner: dict[str, Any], merchant: str
) -> None:
    flow = Flow(http, partner["id"])
    secret = partner["client_secret"]
    first = await token_json(await flow.exchange(await flow.code(merchant), secret))
    refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    second = await token_json(await http.post("/oauth/token", data=refresh, headers=basic(partner["id"], secret)))
    assert second["refresh_token"] != first["refresh_token"]

    reused = await http.post("/oauth/token", data=refresh, headers=basic(partner["id"], secret))
    assert (await token_json(reused, 400))["error"] == "invalid_grant"

    # the whole family is gone: the rotated refresh token and the access tokens of the grant
    newest = {"grant_type": "refresh_token", "refresh_token": second["refresh_token"]}
    denied = await http.post("/oauth/token", data=newest, headers=basic(partner["id"], secret))
    assert (await token_json(denied, 400))["error"] == "invalid_grant"
    for access in (first["access_token"], second["access_token"]):
        assert (await http.get("/v1/auth/permissions", headers=bearer(access))).status == 401


async def test_refresh_may_narrow_but_not_widen(http: Client, partner: dict[str, Any], merchant: str) -> None:
    flow = Flow(http, partner["id"], scope="orders:read")
    secret = partner["client_secret"]
    first = await token_json(await flow.exchange(await flow.code(merchant), secret))
    wider = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "scope": "orders:write"}
    resp = await http.post("/oauth/token", data=wider, headers=basic(partner["id"], secret))
    assert (await token_json(resp, 400))["error"] == "invalid_scope"


async def test_replayed_code_is_invalid_grant_and_revokes_its_tokens(
    http: Client, partner: dict[str, Any], merchant: str
) -> None:
    flow = Flow(http, partner["id"])
    code = await flow.code(merchant)
    tokens = await token_json(await flow.exchange(code, partner["client_secret"]))
    replay = await token_json(await flow.exchange(code, partner["client_secret"]), 400)
    assert replay["error"] == "invalid_grant"
    assert code not in replay["error_description"]
    assert (await http.get("/v1/auth/permissions", headers=bearer(tokens["access_token"]))).status == 401
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    resp = await http.post("/oauth/token", data=refresh, headers=basic(partner["id"], partner["client_secret"]))
    assert (await token_json(resp, 400))["error"] == "invalid_grant"


async def test_expired_code_is_invalid_grant(
    http: Client, partner: dict[str, Any], merchant: str, clock: FrozenClock
) -> None:
    flow = Flow(http, partner["id"])
    code = await flow.code(merchant)
    clock.advance(61)
    resp = await token_json(await flow.exchange(code, partner["client_secret"]), 400)
    assert resp["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ({"code_verifier": "x" * 43}, "invalid_grant"),
        ({"code_verifier": "short"}, "invalid_grant"),
        ({"redirect_uri": "https://partner.example/other"}, "invalid_grant"),
    ],
)
async def test_wrong_verifier_or_redirect_at_token_is_invalid_grant(
    http: Client, partner: dict[str, Any], merchant: str, override: dict[str, str], error: str
) -> None:
    flow = Flow(http, partner["id"])
    resp = await flow.exchange(await flow.code(merchant), partner["client_secret"], **override)
    assert (await token_json(resp, 400))["error"] == error


async def test_missing_verifier_is_invalid_request(http: Client, partner: dict[str, Any], merchant: str) -> None:
    flow = Flow(http, partner["id"])
    code = await flow.code(merchant)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    resp = await http.post("/oauth/token", data=form, headers=basic(partner["id"], partner["client_secret"]))
    assert (await token_json(resp, 400))["error"] == "invalid_request"


async def test_wrong_client_secret_is_401_invalid_client(http: Client, partner: dict[str, Any], merchant: str) -> None:
    flow = Flow(http, partner["id"])
    code = await flow.code(merchant)
    wrong = partner["client_secret"][:-1] + ("A" if partner["client_secret"][-1] != "A" else "B")
    resp = await flow.exchange(code, wrong)
    body = await token_json(resp, 401)
    assert body == {"error": "invalid_client", "error_description": "client authentication failed"}
    assert resp.headers["WWW-Authenticate"].startswith("Basic")
    # the code survives a failed client authentication: the real client can still redeem it
    assert (await flow.exchange(code, partner["client_secret"])).status == 200


async def test_client_secret_post_works(http: Client, partner: dict[str, Any], merchant: str) -> None:
    flow = Flow(http, partner["id"])
    form = {
        "grant_type": "authorization_code",
        "code": await flow.code(merchant),
        "redirect_uri": REDIRECT_URI,
        "code_verifier": flow.verifier,
        "client_id": partner["id"],
        "client_secret": partner["client_secret"],
    }
    assert (await http.post("/oauth/token", data=form)).status == 200


async def test_public_client_uses_pkce_alone(http: Client, admin: str, merchant: str) -> None:
    public = await register_client(http, admin, type="public")
    assert public["client_secret"] is None
    flow = Flow(http, public["id"])
    tokens = await token_json(await flow.exchange(await flow.code(merchant), None))
    assert "refresh_token" in tokens
    cc = await http.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": public["id"]})
    assert (await token_json(cc, 400))["error"] == "unauthorized_client"


async def test_client_credentials_acts_in_the_clients_org(http: Client, partner: dict[str, Any]) -> None:
    resp = await http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "orders:read"},
        headers=basic(partner["id"], partner["client_secret"]),
    )
    tokens = await token_json(resp)
    assert "refresh_token" not in tokens
    me = await (await http.get("/v1/auth/permissions", headers=bearer(tokens["access_token"]))).json()
    assert (me["role"], me["org_id"], me["scopes"]) == ("restricted", partner["org_id"], ["orders:read"])
    wide = await http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "inventory:write"},
        headers=basic(partner["id"], partner["client_secret"]),
    )
    assert (await token_json(wide, 400))["error"] == "invalid_scope"


async def test_unsupported_grant_and_bad_content_type(http: Client, partner: dict[str, Any]) -> None:
    auth = basic(partner["id"], partner["client_secret"])
    resp = await http.post("/oauth/token", data={"grant_type": "password"}, headers=auth)
    assert (await token_json(resp, 400))["error"] == "unsupported_grant_type"
    resp = await http.post("/oauth/token", json={"grant_type": "client_credentials"}, headers=auth)
    assert (await token_json(resp, 400))["error"] == "invalid_request"
    resp = await http.post(
        "/oauth/token",
        data="grant_type=a&grant_type=b",
        headers={**auth, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (await token_json(resp, 400))["error"] == "invalid_request"


async def test_revocation_and_introspection(http: Client, partner: dict[str, Any], merchant: str) -> None:
    flow = Flow(http, partner["id"])
    auth = basic(partner["id"], partner["client_secret"])
    tokens = await token_json(await flow.exchange(await flow.code(merchant), partner["client_secret"]))
    info = await token_json(await http.post("/oauth/introspect", data={"token": tokens["access_token"]}, headers=auth))
    assert info["active"] is True
    assert (info["token_type"], info["client_id"], info["scope"]) == ("access_token", partner["id"], "orders:read")
    refresh_info = await token_json(
        await http.post("/oauth/introspect", data={"token": tokens["refresh_token"]}, headers=auth)
    )
    assert (refresh_info["active"], refresh_info["token_type"]) == (True, "refresh_token")

    revoked = await http.post("/oauth/revoke", data={"token": tokens["access_token"]}, headers=auth)
    assert revoked.status == 200
    info = await token_json(await http.post("/oauth/introspect", data={"token": tokens["access_token"]}, headers=auth))
    assert info == {"active": False}
    assert (await http.get("/v1/auth/permissions", headers=bearer(tokens["access_token"]))).status == 401

    # revoking the refresh token ends the grant
    assert (await http.post("/oauth/revoke", data={"token": tokens["refresh_token"]}, headers=auth)).status == 200
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    assert (await http.post("/oauth/token", data=refresh, headers=auth)).status == 400
    # unknown tokens: RFC 7009 §2.2 says 200
    assert (await http.post("/oauth/revoke", data={"token": "nonsense"}, headers=auth)).status == 200


async def test_other_clients_learn_nothing_about_a_token(
    http: Client, admin: str, partner: dict[str, Any], merchant: str
) -> None:
    other = await register_client(http, admin, name="Other")
    flow = Flow(http, partner["id"])
    tokens = await token_json(await flow.exchange(await flow.code(merchant), partner["client_secret"]))
    auth = basic(other["id"], other["client_secret"])
    for token in (tokens["access_token"], tokens["refresh_token"]):
        info = await token_json(await http.post("/oauth/introspect", data={"token": token}, headers=auth))
        assert info == {"active": False}
        assert (await http.post("/oauth/revoke", data={"token": token}, headers=auth)).status == 200
    # ...and cannot revoke it either
    assert (await http.get("/v1/auth/permissions", headers=bearer(tokens["access_token"]))).status == 200
    # ...nor redeem another client's refresh token
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    assert (await token_json(await http.post("/oauth/token", data=refresh, headers=auth), 400))["error"] == (
        "invalid_grant"
    )


async def test_deleting_a_client_revokes_its_tokens(
    http: Client, admin: str, partner: dict[str, Any], merchant: str
) -> None:
    flow = Flow(http, partner["id"])
    tokens = await token_json(await flow.exchange(await flow.code(merchant), partner["client_secret"]))
    assert (await http.delete(f"/v1/oauth/clients/{partner['id']}", headers=bearer(admin))).status == 200
    assert (await http.get("/v1/auth/permissions", headers=bearer(tokens["access_token"]))).status == 401


async def test_concurrent_redemptions_of_one_code_yield_no_live_tokens(
    http: Client, partner: dict[str, Any], merchant: str
) -> None:
    flow = Flow(http, partner["id"])
    code = await flow.code(merchant)
    responses = await asyncio.gather(*(flow.exchange(code, partner["client_secret"]) for _ in range(4)))
    statuses = sorted(r.status for r in responses)
    assert statuses.count(200) <= 1
    assert statuses.count(400) >= 3
    # whichever exchange won, the replay revoked what it issued
    for resp in responses:
        if resp.status == 200:
            token = (await resp.json())["access_token"]
            assert (await http.get("/v1/auth/permissions", headers=bearer(token))).status == 401


async def test_hasura_webhook_accepts_the_access_token_until_revoked(
    http: Client, partner: dict[str, Any], merchant: str
) -> None:
    flow = Flow(http, partner["id"], scope="orders:read customers:read")
    tokens = await token_json(await flow.exchange(await flow.code(merchant), partner["client_secret"]))

    async def hook(query: str) -> Any:
        # POST mode: a restricted token is held to its scopes root field by root field
        body = {"headers": bearer(tokens["access_token"]), "request": {"query": query}}
        return await http.post("/v1/hasura/webhook", json=body)

    allowed = await hook("query { orders { id } customers { id } }")
    assert allowed.status == 200
    session = {k.lower(): v for k, v in (await allowed.json()).items()}  # Hasura matches names case-blind
    assert session["x-hasura-role"] == "restricted"
    assert session["x-hasura-user-id"] == "user_42"
    assert session["x-hasura-permissions"] == "{orders:read,customers:read}"
    assert (await hook("query { returns { id } }")).status == 401  # a scope the partner was not granted
    auth = basic(partner["id"], partner["client_secret"])
    await http.post("/oauth/revoke", data={"token": tokens["refresh_token"]}, headers=auth)
    assert (await hook("query { orders { id } }")).status == 401


async def test_access_token_is_a_hasura_ready_jwt(
    http: Client, partner: dict[str, Any], merchant: str, clock: FrozenClock
) -> None:
    flow = Flow(http, partner["id"], scope="orders:read customers:read")
    tokens = await token_json(await flow.exchange(await flow.code(merchant), partner["client_secret"]))
    jwks = JwksCache(http)
    now = clock.now().timestamp()
    await jwks.refresh(now)
    v2 = check_v2(tokens["access_token"], jwks, now=now, audience="hasura")
    v3 = check_v3(tokens["access_token"], jwks, now=now, audience="hasura", namespace=V2_NAMESPACE)
    for session in (v2, v3):
        assert session["x-hasura-role"] == "restricted"
        assert session["x-hasura-user-id"] == "user_42"
        assert parse_pg_array(session["x-hasura-permissions"]) == ["orders:read", "customers:read"]
    _, claims = verify_signature(tokens["access_token"], jwks.key_set(), "RS256")
    assert claims["client_id"] == partner["id"]
    assert claims["https://hasura.io/jwt/claims"]["x-hasura-allowed-roles"] == ["restricted"]
    assert claims["exp"] - claims["iat"] <= 900 + 5  # SIDECAR_OAUTH__ACCESS_TTL_S, iat backdated


async def test_expires_in_is_the_configured_lifetime(http: Client, partner: dict[str, Any], merchant: str) -> None:
    flow = Flow(http, partner["id"])
    tokens = await token_json(await flow.exchange(await flow.code(merchant), partner["client_secret"]))
    assert tokens["expires_in"] == 900
