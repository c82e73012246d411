"""The whole partner flow, end to end, with independent peers on both sides of our server:
Authlib's OAuth client plays the partner, real headless Chromium (Playwright) plays the
merchant on the consent page, and both talk to the sidecar listening on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

import httpx2
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from playwright.async_api import Browser

from sidecar.app import create_app
from sidecar.ports.clock import SystemClock
from sidecar.settings import Settings
from tests.conftest import Bootstrap

ServerFactory = Callable[..., Awaitable[TestServer]]


@pytest.fixture
async def partner_callback(aiohttp_server: ServerFactory) -> tuple[str, list[str]]:
    """The partner's redirect endpoint, on loopback: it records the URL the browser lands on."""
    landed: list[str] = []

    async def callback(request: web.Request) -> web.Response:
        landed.append(str(request.url))
        return web.Response(text="partner received the authorization response")

    app = web.Application()
    app.router.add_get("/callback", callback)
    server = await aiohttp_server(app, host="127.0.0.1")
    return str(server.make_url("/callback")), landed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_partner_flow_with_authlib_and_chromium(
    aiohttp_server: ServerFactory,
    make_settings: Callable[..., Settings],
    bootstrap: Bootstrap,
    browser: Browser,
    partner_callback: tuple[str, list[str]],
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(public_url=base)
    await aiohttp_server(create_app(settings, clock=SystemClock(), on_bootstrap=bootstrap), host="127.0.0.1", port=port)
    redirect_uri, landed = partner_callback
    admin = {"Authorization": f"Bearer {bootstrap.key}"}

    async with httpx2.AsyncClient() as ops:  # an operator's plain HTTP calls, to set the scene
        # the partner finds every endpoint in the discovery document
        meta = (await ops.get(f"{base}/.well-known/openid-configuration")).json()
        assert meta["code_challenge_methods_supported"] == ["S256"]
        registered = await ops.post(
            f"{base}/v1/oauth/clients",
            json={
                "name": "Acme Analytics",
                "type": "confidential",
                "redirect_uris": [redirect_uri],
                "scopes": ["orders:read", "customers:read", "orders:write"],
            },
            headers=admin,
        )
        assert registered.status_code == 201
        client_info = registered.json()
        merchant = await ops.post(
            f"{base}/v1/api_keys", json={"type": "secret", "role": "manager", "user_id": "merchant_7"}, headers=admin
        )
        merchant_key = merchant.json()["key"]

    partner = AsyncOAuth2Client(
        client_id=client_info["id"],
        client_secret=client_info["client_secret"],
        scope="orders:read customers:read",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    async with partner:
        verifier = generate_token(64)
        url, state = partner.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)

        # --- the merchant, in a real browser -------------------------------------------------
        page = await browser.new_page()
        await page.goto(url)
        assert "Sign in to continue to Acme Analytics" in await page.content()
        await page.fill("#credential", merchant_key)
        await page.click("button[value=sign_in]")
        await page.wait_for_selector("button[value=approve]")
        consent = await page.content()
        assert "Acme Analytics wants to access your account" in consent
        assert "Read order data" in consent
        assert "Read customer data" in consent
        cookies = await page.context.cookies()
        assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [("sidecar_oauth", True, "Lax")]
        await page.click("button[value=approve]")
        await page.wait_for_url(redirect_uri + "?**")
        assert len(landed) == 1
        await page.close()

        # --- the partner: code exchange with PKCE, then the API ------------------------------
        token = await partner.fetch_token(
            meta["token_endpoint"], authorization_response=landed[0], code_verifier=verifier, state=state
        )
        assert token["scope"] == "orders:read customers:read"
        me = (await partner.get(f"{base}/v1/auth/permissions")).json()
        assert (me["role"], me["user_id"]) == ("restricted", "merchant_7")
        assert me["scopes"] == ["orders:read", "customers:read"]

        # --- refresh with rotation, then reuse detection -------------------------------------
        first_refresh = token["refresh_token"]
        refreshed = await partner.refresh_token(meta["token_endpoint"], refresh_token=first_refresh)
        assert refreshed["refresh_token"] != first_refresh
        assert (await partner.get(f"{base}/v1/auth/permissions")).status_code == 200
        info = (await partner.introspect_token(meta["introspection_endpoint"], token=refreshed["access_token"])).json()
        assert (info["active"], info["client_id"]) == (True, client_info["id"])

        with pytest.raises(OAuthError) as reused:
            await partner.refresh_token(meta["token_endpoint"], refresh_token=first_refresh)
        assert reused.value.error == "invalid_grant"
        # the family is revoked: the current access token no longer works, and says so
        assert (await partner.get(f"{base}/v1/auth/permissions")).status_code == 401
        info = (await partner.introspect_token(meta["introspection_endpoint"], token=refreshed["access_token"])).json()
        assert info == {"active": False}

    # --- client credentials, then revocation -------------------------------------------------
    async with AsyncOAuth2Client(
        client_id=client_info["id"], client_secret=client_info["client_secret"], scope="orders:read"
    ) as machine:
        cc = await machine.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
        assert "refresh_token" not in cc
        me = (await machine.get(f"{base}/v1/auth/permissions")).json()
        assert (me["role"], me["org_id"]) == ("restricted", client_info["org_id"])
        revoked = await machine.revoke_token(meta["revocation_endpoint"], token=cc["access_token"])
        assert revoked.status_code == 200
        assert (await machine.get(f"{base}/v1/auth/permissions")).status_code == 401
