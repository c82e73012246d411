"""Tokens from trusted external issuers (Clerk-like and Auth0-like) at the Hasura webhook,
``POST /v1/auth/token`` and RFC 8693 token exchange at ``/oauth/token``.

A fake identity provider serves its JWKS on 127.0.0.1 (keys made here); its tokens are signed
with joserfc, an independent JOSE implementation (the product verifies with pyjwt)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from joserfc import jws
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, RSAKey

from sidecar.app import create_app
from sidecar.ports.clock import FrozenClock
from tests.conftest import Bootstrap, ClientFactory, bearer
from tests.hasura_rules import hasura_reads
from tests.oauth_support import register_client

Client = TestClient[Any, Any]
CLERK = "https://clerk.shop.example"
AUTH0 = "https://shop.eu.auth0.com/"
STRANGER = "https://idp.stranger.example"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"


@dataclass
class FakeIdp:
    """The provider's JWKS endpoint: the keys it publishes, its caching header, and how often it was asked."""

    keys: list[Any] = field(default_factory=list)
    cache_control: str = "public, max-age=600"
    fetches: int = 0

    async def jwks(self, request: web.Request) -> web.Response:
        self.fetches += 1
        body = {"keys": [k.as_dict(private=False) for k in self.keys]}
        return web.json_response(body, headers={"Cache-Control": self.cache_control})


@pytest.fixture
def clerk_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "ins_1", "alg": "RS256", "use": "sig"})


@pytest.fixture
def idp(clerk_key: RSAKey) -> FakeIdp:
    return FakeIdp(keys=[clerk_key])


@pytest.fixture
async def http(
    aiohttp_client: ClientFactory,
    aiohttp_server: Any,
    make_settings: Any,
    clock: FrozenClock,
    bootstrap: Bootstrap,
    idp: FakeIdp,
) -> Client:
    auth0 = FakeIdp(keys=[AUTH0_KEY])
    app = web.Application()
    app.router.add_get("/clerk/.well-known/jwks.json", idp.jwks)
    app.router.add_get("/auth0/.well-known/jwks.json", auth0.jwks)
    server = await aiohttp_server(app, host="127.0.0.1")
    settings = make_settings(
        trusted_issuers=[
            {
                "issuer": CLERK,
                "jwks_url": str(server.make_url("/clerk/.well-known/jwks.json")),
                "provider": "clerk",
                "audience": "stateset",
                "algorithms": ["RS256"],
                "roles": {"org:admin": "manager", "org:member": "viewer"},
            },
            {
                "issuer": AUTH0,
                "jwks_url": str(server.make_url("/auth0/.well-known/jwks.json")),
                "provider": "auth0",
                "algorithms": ["ES256"],
                "roles": {"admin": "manager", "support": "operator"},
            },
        ]
    )
    return await aiohttp_client(create_app(settings, clock=clock, on_bootstrap=bootstrap))


AUTH0_KEY = ECKey.generate_key("P-256", parameters={"kid": "auth0-1", "alg": "ES256"})


def clerk_token(clock: FrozenClock, key: Any, *, alg: str = "RS256", kid: str = "ins_1", **claims: Any) -> str:
    """What ``getToken({ template: 'stateset' })`` returns with the README's template."""
    now = int(clock.now().timestamp())
    payload = {"iss": CLERK, "sub": "user_2abc", "aud": "stateset", "azp": "https://shop.example",
               "org_id": "org_2xyz", "org_role": "org:admin", "team_id": "team_west",
               "iat": now, "nbf": now, "exp": now + 60, **claims}  # fmt: skip
    return jose_jwt.encode({"alg": alg, "kid": kid, "typ": "JWT"}, payload, key, algorithms=[alg])


def auth0_token(clock: FrozenClock, **claims: Any) -> str:
    now = int(clock.now().timestamp())
    payload = {"iss": AUTH0, "sub": "auth0|64ab", "org_id": "org_auth0", "iat": now, "exp": now + 300,
               "https://stateset.com/roles": ["billing", "support"],
               "https://stateset.com/team_id": "team_eu", **claims}  # fmt: skip
    return jose_jwt.encode({"alg": "ES256", "kid": "auth0-1"}, payload, AUTH0_KEY)


async def webhook(http: Client, token: str) -> Any:
    resp = await http.get("/v1/hasura/webhook", headers=bearer(token))
    return hasura_reads(resp.status, await resp.read())


async def test_clerk_token_gets_the_mapped_session(http: Client, clock: FrozenClock, clerk_key: RSAKey) -> None:
    view = await webhook(http, clerk_token(clock, clerk_key))
    assert not view.denied
    assert view.session["x-hasura-role"] == "manager"
    assert view.session["x-hasura-user-id"] == "user_2abc"
    assert view.session["x-hasura-org-id"] == "org_2xyz"
    assert view.session["x-hasura-team-id"] == "team_west"
    assert view.max_age is not None
    assert view.max_age <= 60  # never cached past the provider token's exp


async def test_auth0_namespaced_claims_and_role_lists(http: Client, clock: FrozenClock) -> None:
    view = await webhook(http, auth0_token(clock))
    assert (view.session["x-hasura-role"], view.session["x-hasura-team-id"]) == ("operator", "team_eu")
    assert view.session["x-hasura-user-id"] == "auth0|64ab"
    assert (await webhook(http, auth0_token(clock, **{"https://stateset.com/roles": ["billing"]}))).denied


async def test_x_hasura_role_may_only_narrow(http: Client, clock: FrozenClock, clerk_key: RSAKey) -> None:
    token = clerk_token(clock, clerk_key, org_role="org:member")
    resp = await http.get("/v1/hasura/webhook", headers={**bearer(token), "X-Hasura-Role": "manager"})
    assert resp.status == 401


def hs256_forgery(secret: bytes, payload: dict[str, Any]) -> str:
    """The classic algorithm-confusion forgery: HMAC keyed with the provider's public key.
    joserfc rightly refuses to make one, so it is built by hand."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = b64(json.dumps({"alg": "HS256", "kid": "ins_1"}).encode()) + "." + b64(json.dumps(payload).encode())
    return signing_input + "." + b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


def other_rsa() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "ins_1"})


def doubled_org(clock: FrozenClock, key: RSAKey) -> str:
    """A genuine Clerk token whose payload names ``org_id`` twice (parsers differ on which wins)."""
    claims = jose_jwt.decode(clerk_token(clock, key), key).claims
    payload = json.dumps(claims)[:-1] + ', "org_id": "org_victim"}'
    return jws.serialize_compact({"alg": "RS256", "kid": "ins_1", "typ": "JWT"}, payload, key)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("unknown issuer", "issuer"),
        ("unknown kid", "not signed by the provider"),
        ("bad signature", "signature"),
        ("expired", "expired"),
        ("unmapped role", "role"),
        ("wrong audience", "not meant for"),
        ("no org", "organisation"),
        ("alg not allowed", "algorithm"),
        ("hs256 with the public key", "algorithm"),
        ("a claim named twice", "twice"),
    ],
)
async def test_refusals_are_401(
    http: Client, clock: FrozenClock, clerk_key: RSAKey, bootstrap: Bootstrap, case: str, reason: str
) -> None:
    tokens = {
        "unknown issuer": lambda: clerk_token(clock, clerk_key, iss=STRANGER),
        "unknown kid": lambda: clerk_token(clock, clerk_key, kid="ins_unknown"),
        "bad signature": lambda: clerk_token(clock, other_rsa()),
        "expired": lambda: clerk_token(clock, clerk_key, exp=int(clock.now().timestamp()) - 120),
        "unmapped role": lambda: clerk_token(clock, clerk_key, org_role="org:billing"),
        "wrong audience": lambda: clerk_token(clock, clerk_key, aud="someone-else"),
        "no org": lambda: clerk_token(clock, clerk_key, org_id=None),
        "alg not allowed": lambda: clerk_token(
            clock,
            RSAKey.import_key({k: v for k, v in clerk_key.as_dict(private=True).items() if k != "alg"}),
            alg="PS256",
        ),
        "a claim named twice": lambda: doubled_org(clock, clerk_key),
        "hs256 with the public key": lambda: hs256_forgery(
            clerk_key.as_pem(private=False), {"iss": CLERK, "sub": "u", "exp": int(clock.now().timestamp()) + 60}
        ),
    }
    token = tokens[case]()
    assert (await webhook(http, token)).denied
    resp = await http.post("/v1/auth/token", headers=bearer(token))
    assert resp.status == 401
    body = await resp.json()
    assert body["error"] in ("INVALID_TOKEN", "TOKEN_EXPIRED")
    assert reason in body["message"]


async def test_rotation_at_the_idp(http: Client, clock: FrozenClock, clerk_key: RSAKey, idp: FakeIdp) -> None:
    assert not (await webhook(http, clerk_token(clock, clerk_key))).denied
    assert idp.fetches == 1
    assert not (await webhook(http, clerk_token(clock, clerk_key))).denied
    assert idp.fetches == 1  # cached

    # the provider publishes a new key and signs with it
    new_key = RSAKey.generate_key(2048, parameters={"kid": "ins_2", "alg": "RS256"})
    idp.keys.append(new_key)
    clock.advance(10)
    assert (await webhook(http, clerk_token(clock, new_key, kid="ins_2"))).denied  # refetched < 30 s ago
    assert idp.fetches == 1
    clock.advance(25)
    assert not (await webhook(http, clerk_token(clock, new_key, kid="ins_2"))).denied  # unknown kid: refetched
    assert idp.fetches == 2

    # the provider retires the old key: it stays trusted until the JWKS's max-age (600 s) runs out
    idp.keys.remove(clerk_key)
    clock.advance(60)
    assert not (await webhook(http, clerk_token(clock, clerk_key))).denied
    assert idp.fetches == 2
    clock.advance(600)
    assert (await webhook(http, clerk_token(clock, clerk_key))).denied
    assert idp.fetches == 3
    assert not (await webhook(http, clerk_token(clock, new_key, kid="ins_2"))).denied


async def test_exchange_for_a_session_jwt(http: Client, clock: FrozenClock, clerk_key: RSAKey) -> None:
    member = clerk_token(clock, clerk_key, org_role="org:member")  # viewer (a manager may not act as one)
    resp = await http.post("/v1/auth/token", headers=bearer(member), json={"role": "viewer"})
    assert resp.status == 200, await resp.text()
    issued = await resp.json()
    assert issued["expires_in"] == 60  # never outlives the provider's token
    me = await (await http.get("/v1/auth/permissions", headers=bearer(issued["access_token"]))).json()
    assert (me["role"], me["org_id"], me["user_id"], me["team_id"]) == ("viewer", "org_2xyz", "user_2abc", "team_west")
    assert (await webhook(http, issued["access_token"])).session["x-hasura-role"] == "viewer"


async def test_rfc8693_token_exchange(
    http: Client, clock: FrozenClock, clerk_key: RSAKey, bootstrap: Bootstrap
) -> None:
    spa = await register_client(http, bootstrap.key, type="public", scopes=("orders:read", "customers:read"))
    form = {
        "grant_type": EXCHANGE,
        "client_id": spa["id"],
        "subject_token": clerk_token(clock, clerk_key),
        "subject_token_type": JWT_TYPE,
    }
    resp = await http.post("/oauth/token", data=form)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Cache-Control"] == "no-store"
    body = await resp.json()
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert (body["token_type"], body["scope"]) == ("Bearer", "orders:read customers:read")
    me = await (await http.get("/v1/auth/permissions", headers=bearer(body["access_token"]))).json()
    assert (me["user_id"], me["org_id"], me["scopes"]) == ("user_2abc", "org_2xyz", ["orders:read", "customers:read"])

    narrowed = await http.post("/oauth/token", data={**form, "scope": "orders:read"})
    assert (await narrowed.json())["scope"] == "orders:read"
    meta = await (await http.get("/.well-known/oauth-authorization-server")).json()
    assert EXCHANGE in meta["grant_types_supported"]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"}, "invalid_request"),
        ({"subject_token": "not.a.token"}, "invalid_request"),
        ({"actor_token": "x", "actor_token_type": JWT_TYPE}, "invalid_request"),
        ({"scope": "orders:write"}, "invalid_scope"),
        ({"audience": "https://elsewhere.example"}, "invalid_target"),
        ({"subject_token": None}, "invalid_request"),
    ],
)
async def test_rfc8693_refusals(
    http: Client, clock: FrozenClock, clerk_key: RSAKey, bootstrap: Bootstrap, change: dict[str, Any], error: str
) -> None:
    spa = await register_client(http, bootstrap.key, type="public", scopes=("orders:read",))
    form = {"grant_type": EXCHANGE, "client_id": spa["id"], "subject_token": clerk_token(clock, clerk_key),
            "subject_token_type": JWT_TYPE, **change}  # fmt: skip
    resp = await http.post("/oauth/token", data={k: v for k, v in form.items() if v is not None})
    assert resp.status == 400
    assert (await resp.json())["error"] == error


async def test_our_own_tokens_are_not_subject_tokens(http: Client, bootstrap: Bootstrap) -> None:
    spa = await register_client(http, bootstrap.key, type="public", scopes=("orders:read",))
    ours = (await (await http.post("/v1/auth/token", headers=bearer(bootstrap.key))).json())["access_token"]
    form = {"grant_type": EXCHANGE, "client_id": spa["id"], "subject_token": ours, "subject_token_type": JWT_TYPE}
    resp = await http.post("/oauth/token", data=form)
    assert (resp.status, (await resp.json())["error"]) == (400, "invalid_request")
