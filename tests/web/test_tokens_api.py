"""Token exchange over HTTP, checked the way Hasura v2 and v3 would check the tokens.

Signatures are verified with joserfc against the JWKS fetched from the running app.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from sidecar.app import create_app
from sidecar.ports.clock import FrozenClock
from sidecar.settings import JwtSettings, Settings
from tests.conftest import Bootstrap, ClientFactory, bearer
from tests.hasura_jwt_rules import (
    V2_NAMESPACE,
    V3_NAMESPACE,
    HasuraRejects,
    JwksCache,
    check_v2,
    check_v3,
    parse_pg_array,
)

Client = TestClient[Any, Any]
HS_SECRET = "a-raw-hs256-secret-of-at-least-32-bytes!"
ISSUER = "https://auth.example.test"


async def exchange(client: Client, key: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    resp = await client.post("/v1/auth/token", json=body, headers=bearer(key))
    assert resp.status == 200, await resp.text()
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    text = await resp.text()
    assert text == json.dumps(json.loads(text))  # exactly what json.dumps writes
    return dict(await resp.json())


async def new_key(client: Client, admin_key: str, **body: Any) -> str:
    resp = await client.post("/v1/api_keys", json=body, headers=bearer(admin_key))
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["key"])


def jwt_settings(algorithm: str, **overrides: Any) -> JwtSettings:
    secret = SecretStr(HS_SECRET) if algorithm == "HS256" else None
    return JwtSettings(algorithm=algorithm, hs256_secret=secret, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def app_for(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], clock: FrozenClock
) -> Callable[..., Any]:
    async def start(jwt: JwtSettings) -> tuple[Client, str]:
        boot = Bootstrap()
        settings = make_settings(jwt=jwt, public_url=ISSUER)  # the issuer is the public URL
        client = await aiohttp_client(create_app(settings, clock=clock, on_bootstrap=boot))
        return client, boot.key

    return start


def hs(algorithm: str) -> bytes | None:
    return HS_SECRET.encode() if algorithm == "HS256" else None


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA", "HS256"])
async def test_every_algorithm_passes_hasura_v2_and_v3(
    app_for: Callable[..., Any], clock: FrozenClock, algorithm: str
) -> None:
    client, admin = await app_for(jwt_settings(algorithm))
    key = await new_key(client, admin, role="manager", team_id="team_7", user_id='user 42, "quoted"')
    body = await exchange(client, key)
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    jwks = JwksCache(client)
    now = clock.now().timestamp()
    await jwks.refresh(now)
    if algorithm == "HS256":
        assert jwks.keys == {"keys": []}  # an HMAC secret is never published
    session = check_v2(
        body["access_token"],
        jwks,
        now=now,
        algorithm=algorithm,
        hs256_secret=hs(algorithm),
        issuer=ISSUER,
        audience="hasura",
    )
    assert session["x-hasura-role"] == "manager"
    assert session["x-hasura-user-id"] == 'user 42, "quoted"'
    assert session["x-hasura-team-id"] == "team_7"
    assert session["x-hasura-org-id"] == "org_default"
    assert session["x-hasura-environment"] == "live"
    assert "orders:write" in parse_pg_array(session["x-hasura-permissions"])
    with pytest.raises(HasuraRejects, match="claims key"):  # v3's default namespace differs
        check_v3(
            body["access_token"], jwks, now=now, algorithm=algorithm, hs256_secret=hs(algorithm), audience="hasura"
        )
    v3 = check_v3(
        body["access_token"],
        jwks,
        now=now,
        algorithm=algorithm,
        hs256_secret=hs(algorithm),
        namespace=V2_NAMESPACE,
        issuer=ISSUER,
        audience="hasura",
    )
    assert v3 == session


@pytest.mark.parametrize("claims_format", ["json", "stringified_json"])
async def test_v3_namespace_and_claims_format(
    app_for: Callable[..., Any], clock: FrozenClock, claims_format: str
) -> None:
    client, admin = await app_for(jwt_settings("ES256", claims_namespace=V3_NAMESPACE, claims_format=claims_format))
    token = (await exchange(client, admin))["access_token"]
    jwks = JwksCache(client)
    now = clock.now().timestamp()
    await jwks.refresh(now)
    session = check_v3(token, jwks, now=now, algorithm="ES256", claims_format=claims_format, audience="hasura")
    assert session["x-hasura-role"] == "super_admin"
    check_v2(token, jwks, now=now, algorithm="ES256", namespace=V3_NAMESPACE, claims_format=claims_format)
    other = "json" if claims_format == "stringified_json" else "stringified_json"
    with pytest.raises(HasuraRejects):
        check_v2(token, jwks, now=now, algorithm="ES256", namespace=V3_NAMESPACE, claims_format=other)


async def test_claims_carry_what_the_contract_lists(client: Client, admin_key: str, clock: FrozenClock) -> None:
    key = await new_key(client, admin_key, type="restricted", permissions=["orders:read", "returns:*"], user_id="u1")
    token = (await exchange(client, key))["access_token"]
    jwks = JwksCache(client)
    now = clock.now().timestamp()
    await jwks.refresh(now)
    from tests.hasura_jwt_rules import verify_signature

    header, claims = verify_signature(token, jwks.key_set(), "RS256")
    assert header["typ"] == "JWT"
    assert header["alg"] == "RS256"
    assert header["kid"] in jwks.kids()
    assert claims["sub"] == "u1"
    assert claims["role"] == "restricted"
    assert claims["permissions"] == ["orders:read", "returns:*"]
    assert claims["iat"] == int(now) - 5  # backdated: Hasura v2 allows no skew on iat
    assert claims["exp"] == int(now) + 3600
    assert claims["aud"] == "hasura"
    assert claims["jti"].startswith("tok_")
    hasura = claims[V2_NAMESPACE]
    assert hasura["x-hasura-default-role"] == "restricted"
    assert hasura["x-hasura-allowed-roles"] == ["restricted"]
    assert hasura["x-hasura-permissions"] == '{"orders:read","returns:*"}'
    assert "x-hasura-role" not in hasura
    assert "x-hasura-team-id" not in hasura
    assert all(isinstance(v, str) for k, v in hasura.items() if k != "x-hasura-allowed-roles")


async def test_hasura_role_names_come_from_the_role_model(client: Client, admin_key: str, clock: FrozenClock) -> None:
    """Our ``admin`` is Hasura's ``org_admin``: a token must never carry Hasura's all-powerful ``admin``."""
    key = await new_key(client, admin_key, role="admin")
    token = (await exchange(client, key))["access_token"]
    jwks = JwksCache(client)
    now = clock.now().timestamp()
    await jwks.refresh(now)
    session = check_v2(token, jwks, now=now)
    assert session["x-hasura-role"] == "org_admin"
    from tests.hasura_jwt_rules import verify_signature

    _, claims = verify_signature(token, jwks.key_set(), "RS256")
    assert "admin" not in claims[V2_NAMESPACE]["x-hasura-allowed-roles"]
    assert claims["role"] == "admin"
    perms = await (await client.get("/v1/auth/permissions", headers=bearer(token))).json()
    assert perms["role"] == "admin"
    assert "admin" in perms["allowed_roles"]


async def test_session_jwt_is_accepted_by_validate_and_permissions(client: Client, admin_key: str) -> None:
    key = await new_key(client, admin_key, role="viewer", environment="test", team_id="t1")
    token = (await exchange(client, key))["access_token"]
    resp = await client.get("/v1/auth/validate", headers=bearer(token))
    assert resp.status == 200
    body = await resp.json()
    assert body["credential_type"] == "session_jwt"
    assert body["role"] == "viewer"
    assert body["environment"] == "test"
    assert body["team_id"] == "t1"
    perms = await (await client.get("/v1/auth/permissions", headers=bearer(token))).json()
    assert perms["allowed_roles"] == ["viewer", "anonymous"]
    assert "orders:read" in perms["scopes"]
    assert perms["matrix"]["orders"]["actions"] == ["read"]


async def test_publishable_key_gets_an_anonymous_token(client: Client, admin_key: str, clock: FrozenClock) -> None:
    key = await new_key(client, admin_key, type="publishable")
    token = (await exchange(client, key))["access_token"]
    jwks = JwksCache(client)
    await jwks.refresh(clock.now().timestamp())
    session = check_v2(token, jwks, now=clock.now().timestamp())
    assert session["x-hasura-role"] == "anonymous"
    forbidden = await client.post("/v1/auth/token", json={"role": "viewer"}, headers=bearer(key))
    assert forbidden.status == 403


async def test_narrowing_role_permissions_and_ttl(client: Client, admin_key: str, clock: FrozenClock) -> None:
    key = await new_key(client, admin_key, role="admin")
    body = await exchange(client, key, {"role": "viewer", "permissions": ["orders:read"], "ttl": 600})
    assert body["expires_in"] == 600
    jwks = JwksCache(client)
    now = clock.now().timestamp()
    await jwks.refresh(now)
    session = check_v2(body["access_token"], jwks, now=now)
    assert session["x-hasura-role"] == "viewer"
    assert parse_pg_array(session["x-hasura-permissions"]) == ["orders:read"]
    perms = await (await client.get("/v1/auth/permissions", headers=bearer(body["access_token"]))).json()
    assert perms["allowed_roles"] == ["viewer", "anonymous"]
    assert perms["scopes"] == ["orders:read"]
    # narrowing the role alone keeps only that role's scopes
    viewer = await exchange(client, key, {"role": "viewer"})
    scopes = (await (await client.get("/v1/auth/permissions", headers=bearer(viewer["access_token"]))).json())["scopes"]
    assert "orders:write" not in scopes
    assert "orders:read" in scopes


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"role": "admin"}, "admin"),
        ({"permissions": ["customers:write"]}, "customers:write"),
        ({"role": "viewer"}, "viewer"),  # viewer reads every order of the org, operator only its own
        ({"role": "anonymous", "permissions": ["orders:read"]}, "orders:read"),
        ({"ttl": 3601}, "3600"),
    ],
)
async def test_wider_requests_are_403(client: Client, admin_key: str, body: dict[str, Any], named: str) -> None:
    key = await new_key(client, admin_key, role="operator")
    resp = await client.post("/v1/auth/token", json=body, headers=bearer(key))
    assert resp.status == 403
    error = await resp.json()
    assert error["error"] == "INSUFFICIENT_PERMISSIONS"
    assert named in error["message"]


@pytest.mark.parametrize(
    "body", [{"ttl": 0}, {"ttl": "soon"}, {"permissions": "orders:read"}, {"scope": "x"}, {"permissions": ["nope"]}]
)
async def test_malformed_requests_are_400(client: Client, admin_key: str, body: dict[str, Any]) -> None:
    resp = await client.post("/v1/auth/token", json=body, headers=bearer(admin_key))
    assert resp.status == 400
    assert (await resp.json())["error"] == "INVALID_REQUEST"


async def test_a_session_jwt_cannot_be_exchanged(client: Client, admin_key: str) -> None:
    token = (await exchange(client, admin_key))["access_token"]
    resp = await client.post("/v1/auth/token", headers=bearer(token))
    assert resp.status == 403
    assert "API key" in (await resp.json())["message"]


async def test_bad_credentials_are_401(client: Client) -> None:
    assert (await client.post("/v1/auth/token")).status == 401
    resp = await client.post("/v1/auth/token", headers=bearer("sk_live_notakey"))
    assert resp.status == 401


async def test_token_never_outlives_its_api_key(client: Client, admin_key: str, clock: FrozenClock) -> None:
    from datetime import timedelta

    expires = (clock.now() + timedelta(seconds=900)).isoformat()
    key = await new_key(client, admin_key, expires_at=expires)
    body = await exchange(client, key)
    assert body["expires_in"] == 900


async def test_expired_token_is_401_token_expired(client: Client, admin_key: str, clock: FrozenClock) -> None:
    token = (await exchange(client, admin_key, {"ttl": 60}))["access_token"]
    assert (await client.get("/v1/auth/validate", headers=bearer(token))).status == 200
    clock.advance(60)
    resp = await client.get("/v1/auth/validate", headers=bearer(token))
    assert resp.status == 401
    assert (await resp.json())["error"] == "TOKEN_EXPIRED"


async def test_jwks_and_discovery(client: Client) -> None:
    resp = await client.get("/.well-known/jwks.json")
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "public, max-age=300"
    assert resp.content_type == "application/json"
    (key,) = (await resp.json())["keys"]
    assert key["use"] == "sig"
    assert key["alg"] == "RS256"
    assert key["kty"] == "RSA"
    assert "d" not in key
    assert "p" not in key
    doc = await (await client.get("/.well-known/openid-configuration")).json()
    assert doc["jwks_uri"].endswith("/.well-known/jwks.json")
    assert doc["session_token_endpoint"].endswith("/v1/auth/token")
    assert doc["token_endpoint"].endswith("/oauth/token")  # OAuth's, as OAuth clients read it
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["issuer"] == "http://127.0.0.1:8080"


async def test_one_issuer_in_tokens_discovery_and_oauth_metadata(app_for: Callable[..., Any]) -> None:
    client, admin = await app_for(jwt_settings("ES256"))
    token = (await exchange(client, admin))["access_token"]
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    discovery = await (await client.get("/.well-known/openid-configuration")).json()
    oauth = await (await client.get("/.well-known/oauth-authorization-server")).json()
    assert claims["iss"] == discovery["issuer"] == oauth["issuer"] == ISSUER


async def test_exchanges_arriving_together_each_get_their_own_valid_token(
    app_for: Callable[..., Any], clock: FrozenClock
) -> None:
    """Concurrent exchanges are signed together (``TurnBatch``): still one token each, for its own key."""
    client, admin = await app_for(jwt_settings("RS256"))
    keys = [await new_key(client, admin, role="viewer", user_id=f"user_{n}") for n in range(6)]
    bodies = await asyncio.gather(*(exchange(client, key) for key in keys))
    jwks = JwksCache(client)
    now = clock.now().timestamp()
    await jwks.refresh(now)
    users = [
        check_v2(b["access_token"], jwks, now=now, algorithm="RS256", issuer=ISSUER, audience="hasura")[
            "x-hasura-user-id"
        ]
        for b in bodies
    ]
    assert users == [f"user_{n}" for n in range(6)]
    assert len({b["access_token"] for b in bodies}) == 6
