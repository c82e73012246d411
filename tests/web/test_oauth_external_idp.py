"""Merchants signing in on the consent page with an external identity provider's token (Clerk-like),
verified against the provider's JWKS served by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from sidecar.app import create_app
from sidecar.ports.clock import FrozenClock
from tests.conftest import Bootstrap, ClientFactory, bearer
from tests.oauth_support import Flow, hidden_fields, register_client

Client = TestClient[Any, Any]
ServerFactory = Callable[..., Awaitable[TestServer]]
ISSUER = "https://clerk.acme.example"
PROVIDER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def jwks_url(aiohttp_server: ServerFactory) -> str:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(PROVIDER_KEY.public_key()))
    body = {"keys": [{**jwk, "kid": "clerk-1", "alg": "RS256", "use": "sig"}]}

    async def jwks(request: web.Request) -> web.Response:
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", jwks)
    server = await aiohttp_server(app, host="127.0.0.1")
    return str(server.make_url("/.well-known/jwks.json"))


@pytest.fixture
async def http(
    aiohttp_client: ClientFactory, make_settings: Any, clock: FrozenClock, bootstrap: Bootstrap, jwks_url: str
) -> Client:
    settings = make_settings(
        oauth={
            "idp_jwks_url": jwks_url,
            "idp_issuer": ISSUER,
            "idp_roles": {"org:admin": "manager", "org:member": "viewer"},
        }
    )
    app = create_app(settings, clock=clock, on_bootstrap=bootstrap)
    return await aiohttp_client(app)


def id_token(clock: FrozenClock, *, key: Any = PROVIDER_KEY, kid: str = "clerk-1", **claims: Any) -> str:
    now = int(clock.now().timestamp())
    payload = {"iss": ISSUER, "sub": "user_clerk_9", "org_id": "org_acme", "org_role": "org:admin",
               "iat": now, "exp": now + 60, **claims}  # fmt: skip
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


async def test_provider_token_signs_in_and_grants_as_the_mapped_role(
    http: Client, bootstrap: Bootstrap, clock: FrozenClock
) -> None:
    partner = await register_client(http, bootstrap.key)
    flow = Flow(http, partner["id"], scope="orders:write")
    html = await flow.sign_in(id_token(clock))
    assert "user_clerk_9" in html
    assert "org_acme" in html
    code = (await flow.decide(html, "approve"))["code"]
    tokens = await (await flow.exchange(code, partner["client_secret"])).json()
    me = await (await http.get("/v1/auth/permissions", headers=bearer(tokens["access_token"]))).json()
    assert (me["org_id"], me["user_id"], me["role"], me["scopes"]) == (
        "org_acme",
        "user_clerk_9",
        "restricted",
        ["orders:write"],
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"key": OTHER_KEY},
        {"kid": "unknown"},
        {"iss": "https://evil.example"},
        {"org_role": "org:guest"},
        {"org_id": None},
        {"exp": 1},
    ],
)
async def test_bad_provider_tokens_cannot_sign_in(
    http: Client, bootstrap: Bootstrap, clock: FrozenClock, bad: dict[str, Any]
) -> None:
    partner = await register_client(http, bootstrap.key)
    flow = Flow(http, partner["id"])
    options = {k: bad[k] for k in ("key", "kid") if k in bad}
    claims = {k: v for k, v in bad.items() if k not in ("key", "kid")}
    token = id_token(clock, **options, **claims)
    page = await http.get("/oauth/authorize", params=flow.params())
    form = {**hidden_fields(await page.text()), "credential": token, "action": "sign_in"}
    resp = await http.post("/oauth/authorize", data=form, allow_redirects=False)
    assert resp.status == 401
    assert "was not accepted" in await resp.text()


async def test_member_role_cannot_grant_writes(http: Client, bootstrap: Bootstrap, clock: FrozenClock) -> None:
    partner = await register_client(http, bootstrap.key)
    html = await Flow(http, partner["id"], scope="orders:write").sign_in(id_token(clock, org_role="org:member"))
    assert "cannot grant" in html
