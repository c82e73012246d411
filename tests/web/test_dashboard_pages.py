"""The dashboard's other pages (signing keys, OAuth clients, webhook endpoints, audit trail),
driven in real headless Chromium (Playwright), and their checks over plain HTTP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sidecar.ports.clock import FrozenClock
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.conftest import bearer

Client = TestClient[Any, Any]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def base_url(client: Client) -> str:
    return str(client.make_url("")).rstrip("/")


@pytest.fixture
async def page(client: Client, admin_key: str) -> AsyncIterator[Any]:
    """A Chromium page signed in to the dashboard with the bootstrap super-admin key."""
    require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = await browser.new_context(permissions=["clipboard-read", "clipboard-write"])
        tab = await context.new_page()
        await tab.goto(base_url(client) + "/dashboard/login")
        await tab.get_by_label("Admin API key", exact=True).fill(admin_key)
        await tab.get_by_role("button", name="Sign in").click()
        await tab.wait_for_url(re.compile(r"/dashboard/api_keys$"))
        yield tab
        await browser.close()


async def copy_secret(tab: Any) -> str:
    """The secret shown once: copied with the Copy button, checked against the clipboard."""
    await tab.get_by_text("shown only once").wait_for()
    secret = str(await tab.locator("#new_secret").input_value())
    await tab.get_by_role("button", name="Copy").click()
    await tab.get_by_text("Copied.").wait_for()
    assert await tab.evaluate("navigator.clipboard.readText()") == secret
    return secret


async def test_signing_keys_are_listed_and_rotated(
    page: Any, client: Client, admin_key: str, clock: FrozenClock
) -> None:
    await page.get_by_role("navigation", name="Settings").get_by_role("link", name="Signing keys").click()
    await page.wait_for_url(re.compile(r"/dashboard/signing_keys$"))
    before = await page.locator("tbody tr").count()
    assert await page.locator("td.state", has_text="current").count() == 1

    await page.get_by_role("button", name="Rotate signing key").click()
    await page.wait_for_url(re.compile(r"/dashboard/signing_keys\?rotated="))
    notice = await page.get_by_role("status").inner_text()
    kid = re.search(r"New signing key (\S+) added", notice)
    assert kid is not None
    assert await page.locator("tbody tr").count() == before + 1
    row = page.locator(f'tr[data-kid="{kid.group(1)}"]')
    assert await row.locator("td.state").inner_text() == "next"
    api = await (await client.get("/v1/signing_keys", headers=bearer(admin_key))).json()
    assert api["data"][0]["kid"] == kid.group(1)

    # a second rotation while the first is pending is refused, plainly, on the page
    await page.get_by_role("button", name="Rotate signing key").click()
    assert "already in progress" in await page.get_by_role("alert").inner_text()

    await page.get_by_label(re.compile("Sign with it at once")).check()
    await page.get_by_role("button", name="Rotate signing key").click()
    await page.wait_for_url(re.compile(r"rotated="))
    urgent = re.search(r"rotated=(.+)$", page.url)
    assert urgent is not None
    clock.advance(1)  # it signs a tick after the key it replaces; the frozen clock needs a nudge
    await page.reload()
    assert await page.locator(f'tr[data-kid="{urgent.group(1)}"] td.state').inner_text() == "current"
    assert await page.locator("td.state", has_text="current").count() == 1


async def test_oauth_clients_are_registered_with_the_secret_shown_once_and_deleted(
    page: Any, client: Client, admin_key: str
) -> None:
    await page.get_by_role("link", name="OAuth clients").click()
    await page.wait_for_url(re.compile(r"/dashboard/oauth_clients$"))
    await page.get_by_label("Name", exact=True).fill("Partner CRM")
    await page.get_by_label("Client type", exact=True).select_option("confidential")
    await page.get_by_label(re.compile("Redirect URIs")).fill("https://crm.example/callback\nhttps://crm.example/cb2")
    await page.get_by_role("checkbox", name=re.compile("^orders:read ")).check()
    await page.get_by_role("button", name="Register client").click()
    secret = await copy_secret(page)
    assert secret.startswith("ocs_")
    client_id = re.search(r"Client id: (oc_\w+)", await page.content())
    assert client_id is not None

    await page.get_by_role("link", name="Back to OAuth clients").click()
    row = page.locator(f'tr[data-client-id="{client_id.group(1)}"]')
    assert await row.count() == 1
    listing = await page.content()
    assert secret not in listing
    assert f"ocs_…{secret[-4:]}" in listing

    # a public client has no secret to show
    await page.get_by_label("Name", exact=True).fill("Mobile app")
    await page.get_by_label("Client type", exact=True).select_option("public")
    await page.get_by_label(re.compile("Redirect URIs")).fill("https://app.example/cb")
    await page.get_by_role("checkbox", name=re.compile("^orders:read ")).check()
    await page.get_by_role("button", name="Register client").click()
    await page.get_by_text("Public clients have no secret").wait_for()
    assert await page.locator("#new_secret").count() == 0

    await page.goto(base_url(client) + "/dashboard/oauth_clients")
    await row.get_by_role("link", name="Delete").click()
    await page.get_by_role("button", name="Delete client").click()
    await page.wait_for_url(re.compile(r"/dashboard/oauth_clients\?deleted=1$"))
    assert await page.locator(f'tr[data-client-id="{client_id.group(1)}"]').count() == 0
    gone = await client.get(f"/v1/oauth/clients/{client_id.group(1)}", headers=bearer(admin_key))
    assert gone.status == 404


async def test_webhook_endpoints_are_created_rolled_and_deleted(page: Any, client: Client, admin_key: str) -> None:
    await page.get_by_role("link", name="Webhook endpoints").click()
    await page.wait_for_url(re.compile(r"/dashboard/webhook_endpoints$"))
    await page.get_by_label("URL", exact=True).fill("https://hooks.example/sidecar")
    await page.get_by_label(re.compile("^Events")).fill("orders.insert, orders.update")
    await page.get_by_label("Signature format", exact=True).select_option("standard")
    await page.get_by_label("Description", exact=True).fill("orders feed")
    await page.get_by_role("button", name="Create endpoint").click()
    first = await copy_secret(page)
    assert first.startswith("whsec_")
    endpoint_id = re.search(r"Endpoint id: (we_\w+)", await page.content())
    assert endpoint_id is not None
    row = page.locator(f'tr[data-endpoint-id="{endpoint_id.group(1)}"]')

    await page.get_by_role("link", name="Back to webhook endpoints").click()
    assert "orders.insert, orders.update" in await row.inner_text()
    assert first not in await page.content()

    await row.get_by_role("link", name="Roll secret").click()
    await page.get_by_label("The old secret keeps signing for", exact=True).select_option("3600")
    await page.get_by_role("button", name="Roll secret").click()
    second = await copy_secret(page)
    assert second.startswith("whsec_")
    assert second != first
    await page.get_by_text("The previous secret keeps signing until").wait_for()
    shown = await (await client.get(f"/v1/webhook_endpoints/{endpoint_id.group(1)}", headers=bearer(admin_key))).json()
    assert len(shown["secrets"]) == 2

    await page.get_by_role("link", name="Back to webhook endpoints").click()
    await row.get_by_role("link", name="Delete").click()
    await page.get_by_role("button", name="Delete endpoint").click()
    await page.wait_for_url(re.compile(r"\?deleted=1$"))
    assert await row.count() == 0
    gone = await client.get(f"/v1/webhook_endpoints/{endpoint_id.group(1)}", headers=bearer(admin_key))
    assert gone.status == 404


async def test_audit_trail_shows_the_actions_just_taken(page: Any, client: Client) -> None:
    base = base_url(client)
    await page.get_by_label("Name", exact=True).fill("audited")
    await page.get_by_role("button", name="Create key").click()
    await page.get_by_text("API keys are shown only once").wait_for()
    await page.goto(base + "/dashboard/api_keys")
    await page.locator("tr", has_text="audited").get_by_role("link", name="Revoke").click()
    await page.get_by_role("button", name="Revoke key").click()
    await page.wait_for_url(re.compile(r"/dashboard/api_keys$"))
    await page.goto(base + "/dashboard/signing_keys")
    await page.get_by_role("button", name="Rotate signing key").click()
    await page.wait_for_url(re.compile(r"rotated="))

    await page.get_by_role("link", name="Audit trail").click()
    await page.wait_for_url(re.compile(r"/dashboard/audit$"))
    actions = await page.locator("tbody tr td:nth-child(2)").all_inner_texts()
    assert actions[:3] == ["signing_key.rotated", "api_key.revoked", "api_key.created"]
    assert "name=audited" in await page.locator("tbody tr").nth(1).inner_text()

    await page.get_by_label("Action", exact=True).select_option("api_key.revoked")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url(re.compile(r"action=api_key.revoked"))
    assert set(await page.locator("tbody tr td:nth-child(2)").all_inner_texts()) == {"api_key.revoked"}

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-audit.png"), full_page=True)


# --- over plain HTTP: scopes, CSRF, pagination, bad input --------------------------------------


async def sign_in(client: Client, key: str) -> str:
    """Sign in over plain HTTP; returns the session's CSRF token."""
    login = await client.get("/dashboard/login")
    token = CSRF.search(await login.text())
    assert token is not None
    resp = await client.post("/dashboard/login", data={"csrf_token": token.group(1), "api_key": key})
    found = CSRF.search(await resp.text())
    assert resp.status == 200
    assert found is not None
    return found.group(1)


async def test_a_key_without_the_signing_keys_scope_is_not_offered_the_page(client: Client, admin_key: str) -> None:
    made = await client.post("/v1/api_keys", json={"role": "admin"}, headers=bearer(admin_key))
    csrf = await sign_in(client, (await made.json())["key"])
    keys_page = await (await client.get("/dashboard/api_keys")).text()
    assert "Signing keys" not in keys_page
    assert "Audit trail" in keys_page
    refused = await client.get("/dashboard/signing_keys")
    assert refused.status == 403
    assert refused.content_type == "text/html"
    assert "lacks the system:signing_keys scope" in await refused.text()
    rotate = await client.post("/dashboard/signing_keys/rotate", data={"csrf_token": csrf})
    assert rotate.status == 403
    listed = await (await client.get("/v1/signing_keys", headers=bearer(admin_key))).json()
    assert len(listed["data"]) == 1


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/signing_keys/rotate",
        "/dashboard/oauth_clients",
        "/dashboard/webhook_endpoints",
        "/dashboard/webhook_endpoints/we_x/roll",
        "/dashboard/webhook_endpoints/we_x/delete",
        "/dashboard/oauth_clients/oc_x/delete",
        "/dashboard/logout",
    ],
)
async def test_every_form_needs_the_csrf_token(client: Client, admin_key: str, path: str) -> None:
    await sign_in(client, admin_key)
    resp = await client.post(path, data={"csrf_token": "forged"}, allow_redirects=False)
    assert resp.status == 401
    assert resp.content_type == "text/html"
    assert "the form has expired" in await resp.text()
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")


@pytest.mark.parametrize(
    ("path", "form", "message"),
    [
        ("/dashboard/oauth_clients", {"name": "x", "redirect_uris": "", "scopes": "orders:read"}, "redirect URI"),
        ("/dashboard/oauth_clients", {"name": "x", "redirect_uris": "https://a.example/cb"}, "at least one scope"),
        ("/dashboard/oauth_clients", {"name": "x", "type": "robot", "redirect_uris": "https://a/cb"}, "client type"),
        ("/dashboard/webhook_endpoints", {"url": "ftp://files.example/"}, "http or https"),
        ("/dashboard/webhook_endpoints", {"url": "https://a.example/", "format": "xml"}, "signature format"),
        ("/dashboard/webhook_endpoints", {"url": "https://a.example/", "description": "d" * 501}, "500 characters"),
        ("/dashboard/webhook_endpoints/we_missing/roll", {"expires_in": "60"}, "no webhook endpoint"),
        ("/dashboard/webhook_endpoints/we_missing/roll", {"expires_in": "-1"}, "how long"),
        ("/dashboard/oauth_clients/oc_missing/delete", {}, "no OAuth client"),
    ],
)
async def test_bad_input_is_a_clear_error_on_the_page(
    client: Client, admin_key: str, path: str, form: dict[str, str], message: str
) -> None:
    csrf = await sign_in(client, admin_key)
    resp = await client.post(path, data={**form, "csrf_token": csrf})
    assert 400 <= resp.status < 500
    assert resp.content_type == "text/html"
    assert message in await resp.text()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("since=yesterday", "since must be a date"),
        ("since=2030-01-02&until=2030-01-01", "since must be before until"),
        ("org_id=org_other", ""),
        ("action=" + "a" * 200, "at most 128 characters"),
    ],
)
async def test_audit_filters_that_cannot_apply_say_why(
    client: Client, admin_key: str, query: str, message: str
) -> None:
    await sign_in(client, admin_key)
    resp = await client.get("/dashboard/audit?" + query)
    text = await resp.text()
    assert resp.status in (200, 400)
    assert message in text
    if not message:  # the super-admin may read any organisation's events: an empty, valid filter
        assert resp.status == 200
        assert "No events match." in text


async def test_audit_trail_pages_through_older_events(client: Client, admin_key: str) -> None:
    for n in range(55):
        await client.post("/v1/api_keys", json={"name": f"k{n}"}, headers=bearer(admin_key))
    await sign_in(client, admin_key)
    first = await (await client.get("/dashboard/audit?action=api_key.created")).text()
    assert first.count('data-event-id="') == 50
    older = re.search(r'href="\?([^"]+)">Older events', first)
    assert older is not None
    assert "action=api_key.created" in older.group(1)
    second = await (await client.get("/dashboard/audit?" + older.group(1).replace("&amp;", "&"))).text()
    assert second.count('data-event-id="') == 5
    assert "Older events" not in second
