"""The operator's dashboard, driven in real headless Chromium (Playwright) and over plain HTTP."""

from __future__ import annotations

import ipaddress
import re
import ssl
from datetime import UTC, datetime, timedelta
from http.cookies import Morsel
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sidecar.app import create_app
from sidecar.ports.clock import FrozenClock
from sidecar.settings import Settings
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.conftest import Bootstrap, ClientFactory, bearer

Client = TestClient[Any, Any]


def base_url(client: Client) -> str:
    return str(client.make_url("")).rstrip("/")


async def test_sign_in_create_copy_roll_revoke_sign_out_in_chromium(client: Client, admin_key: str) -> None:
    require_chromium()
    from playwright.async_api import async_playwright

    base = base_url(client)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = await browser.new_context(permissions=["clipboard-read", "clipboard-write"])
        page = await context.new_page()

        await page.goto(base + "/dashboard")
        assert page.url.endswith("/dashboard/login")
        await page.get_by_label("Admin API key", exact=True).fill(admin_key)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(re.compile(r"/dashboard/api_keys$"))

        created: dict[str, str] = {}
        for label, choose in [
            ("secret-manager", {"type": "secret", "role": "manager"}),
            ("restricted", {"type": "restricted", "permissions": ["orders:read", "customers:read"]}),
            ("publishable", {"type": "publishable"}),
            ("test-secret", {"type": "secret", "environment": "test"}),
        ]:
            await page.goto(base + "/dashboard/api_keys")
            await page.get_by_label("Name", exact=True).fill(label)
            await page.get_by_label("Key type", exact=True).select_option(choose["type"])
            if "role" in choose:
                await page.get_by_label("Role (secret keys)", exact=True).select_option(choose["role"])
            if "environment" in choose:
                await page.get_by_label("Environment", exact=True).select_option(choose["environment"])
            for scope in choose.get("permissions", []):
                await page.get_by_role("checkbox", name=re.compile(f"^{scope} ")).check()
            await page.get_by_role("button", name="Create key").click()
            await page.get_by_text("API keys are shown only once").wait_for()
            key = await page.locator("#new_key").input_value()
            await page.get_by_role("button", name="Copy").click()
            await page.get_by_text("Copied.").wait_for()
            assert await page.evaluate("navigator.clipboard.readText()") == key
            created[label] = key

        assert created["secret-manager"].startswith("sk_mgr_")
        assert created["restricted"].startswith("rk_live_")
        assert created["publishable"].startswith("pk_live_")
        assert created["test-secret"].startswith("sk_test_")
        perms = await (await client.get("/v1/auth/permissions", headers=bearer(created["restricted"]))).json()
        assert perms["scopes"] == ["orders:read", "customers:read"]

        await page.goto(base + "/dashboard/api_keys")
        listing = await page.content()
        for key in created.values():
            assert key not in listing
            assert f"{key[: key.index('_', 3) + 1]}…{key[-4:]}" in listing

        row = page.locator("tr", has_text="secret-manager")
        await row.get_by_role("link", name="Roll").click()
        await page.get_by_label("The old key keeps working for", exact=True).select_option("86400")
        await page.get_by_role("button", name="Roll key").click()
        rolled = await page.locator("#new_key").input_value()
        assert rolled.startswith("sk_mgr_")
        assert rolled != created["secret-manager"]
        assert (await client.get("/v1/auth/validate", headers=bearer(created["secret-manager"]))).status == 200

        await page.goto(base + "/dashboard/api_keys")
        await page.locator("tr", has_text="publishable").get_by_role("link", name="Revoke").click()
        await page.get_by_role("button", name="Revoke key").click()
        await page.wait_for_url(re.compile(r"/dashboard/api_keys$"))
        assert await page.locator("tr", has_text="publishable").locator("td.status").inner_text() == "revoked"
        denied = await client.get("/v1/auth/validate", headers=bearer(created["publishable"]))
        assert (await denied.json())["error"] == "REVOKED_API_KEY"

        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "dashboard-api-keys.png"), full_page=True)

        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url(re.compile(r"/dashboard/login$"))
        await page.goto(base + "/dashboard/api_keys")
        assert page.url.endswith("/dashboard/login")
        await browser.close()


async def test_keys_page_reads_without_javascript(client: Client, admin_key: str) -> None:
    require_chromium()
    from playwright.async_api import async_playwright

    await client.post("/v1/api_keys", json={"name": "visible-without-js"}, headers=bearer(admin_key))
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = await (await browser.new_context(java_script_enabled=False)).new_page()
        await page.goto(base_url(client) + "/dashboard/login")
        await page.get_by_label("Admin API key", exact=True).fill(admin_key)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(re.compile(r"/dashboard/api_keys$"))
        assert await page.get_by_role("cell", name="visible-without-js").count() == 1
        await browser.close()


async def _signed_in(client: Client, admin_key: str) -> str:
    """Sign in over plain HTTP; returns the CSRF token of the keys page."""
    login = await client.get("/dashboard/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', await login.text())
    assert token is not None
    resp = await client.post(
        "/dashboard/login", data={"csrf_token": token.group(1), "api_key": admin_key}, allow_redirects=False
    )
    assert resp.status == 303
    cookie = resp.cookies["sidecar_session"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    page = await client.get("/dashboard/api_keys")
    found = re.search(r'name="csrf_token" value="([^"]+)"', await page.text())
    assert found is not None
    return found.group(1)


async def test_forms_without_the_csrf_token_are_refused(client: Client, admin_key: str) -> None:
    csrf = await _signed_in(client, admin_key)
    resp = await client.post("/dashboard/api_keys", data={"name": "forged"}, allow_redirects=False)
    assert resp.status == 401
    resp = await client.post("/dashboard/api_keys", data={"name": "real", "csrf_token": csrf})
    assert resp.status == 201
    assert "API keys are shown only once" in await resp.text()


async def test_pages_carry_a_strict_content_security_policy(client: Client) -> None:
    resp = await client.get("/dashboard/login")
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "https://" not in await resp.text()


@pytest.mark.parametrize("key_kind", ["non-admin", "garbage"])
async def test_only_admin_keys_sign_in(client: Client, admin_key: str, key_kind: str) -> None:
    key = "sk_live_nope"
    if key_kind == "non-admin":
        made = await client.post("/v1/api_keys", json={"role": "manager"}, headers=bearer(admin_key))
        key = (await made.json())["key"]
    login = await client.get("/dashboard/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', await login.text())
    assert token is not None
    resp = await client.post(
        "/dashboard/login", data={"csrf_token": token.group(1), "api_key": key}, allow_redirects=False
    )
    assert resp.status in (401, 403)
    assert "sidecar_session" not in resp.cookies


async def test_revoking_the_signed_in_key_ends_its_session(client: Client, admin_key: str) -> None:
    made = await client.post("/v1/api_keys", json={"role": "admin"}, headers=bearer(admin_key))
    other_admin = await made.json()
    await _signed_in(client, other_admin["key"])
    assert (await client.get("/dashboard/api_keys", allow_redirects=False)).status == 200
    await client.delete(f"/v1/api_keys/{other_admin['id']}", headers=bearer(admin_key))
    resp = await client.get("/dashboard/api_keys", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/dashboard/login"


def _self_signed_tls(tmp_path: Path) -> ssl.SSLContext:
    """A TLS server context with a fresh self-signed certificate for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


async def _session_cookie(client: Client, admin_key: str) -> Morsel[str]:
    login = await client.get("/dashboard/login", ssl=False)
    token = re.search(r'name="csrf_token" value="([^"]+)"', await login.text())
    assert token is not None
    csrf_cookie = login.cookies["sidecar_login_csrf"]
    assert csrf_cookie["samesite"] == "Strict"
    # sent by hand: a Secure cookie never leaves the client's jar over plain HTTP (as in a browser
    # talking https to a proxy that terminates TLS, which is what "always" is for)
    resp = await client.post(
        "/dashboard/login",
        data={"csrf_token": token.group(1), "api_key": admin_key},
        headers={"Cookie": f"sidecar_login_csrf={csrf_cookie.value}"},
        allow_redirects=False,
        ssl=False,
    )
    assert resp.status == 303
    return resp.cookies["sidecar_session"]


async def test_the_session_cookie_is_secure_over_tls_strict_and_short_lived(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock, bootstrap: Bootstrap, tmp_path: Path
) -> None:
    app = create_app(settings, clock=clock, on_bootstrap=bootstrap)
    server = TestServer(app)
    await server.start_server(ssl=_self_signed_tls(tmp_path))
    client = await aiohttp_client(server)
    assert str(client.make_url("")).startswith("https://")
    cookie = await _session_cookie(client, bootstrap.key)
    assert cookie["secure"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/dashboard"
    assert cookie["max-age"] == str(settings.dashboard_session_ttl_s) == "1800"


async def test_the_session_cookie_is_not_secure_over_plain_http_unless_told(
    aiohttp_client: ClientFactory, make_settings: Any, clock: FrozenClock, bootstrap: Bootstrap
) -> None:
    plain = await aiohttp_client(create_app(make_settings(), clock=clock, on_bootstrap=bootstrap))
    assert not (await _session_cookie(plain, bootstrap.key))["secure"]
    behind_proxy = make_settings(dashboard_cookie_secure="always", dashboard_session_ttl_s=600)
    told = await aiohttp_client(create_app(behind_proxy, clock=clock, on_bootstrap=bootstrap))
    cookie = await _session_cookie(told, bootstrap.issued[-1].key)
    assert cookie["secure"]
    assert cookie["max-age"] == "600"


async def test_the_session_expires_after_its_lifetime(client: Client, admin_key: str, clock: FrozenClock) -> None:
    await _signed_in(client, admin_key)
    clock.advance(1801)
    resp = await client.get("/dashboard/api_keys", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/dashboard/login"


async def test_signing_out_needs_the_sessions_csrf_token(client: Client, admin_key: str) -> None:
    csrf = await _signed_in(client, admin_key)
    forged = await client.post("/dashboard/logout", data={}, allow_redirects=False)
    assert forged.status == 401
    assert (await client.get("/dashboard/api_keys", allow_redirects=False)).status == 200
    out = await client.post("/dashboard/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert out.status == 303
    assert out.cookies["sidecar_session"].value == ""
    assert (await client.get("/dashboard/api_keys", allow_redirects=False)).status == 303


async def test_an_unknown_type_filter_is_said_plainly(client: Client, admin_key: str) -> None:
    await _signed_in(client, admin_key)
    resp = await client.get("/dashboard/api_keys?type=bogus")
    assert resp.status == 200
    assert "no key type &#39;bogus&#39;; choose one from the list" in await resp.text()
