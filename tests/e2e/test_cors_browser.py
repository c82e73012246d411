"""Publishable keys in a real browser: Chromium loads pages from three origins on 127.0.0.1, each of
which exchanges a publishable key at the sidecar on a fourth. Only the allowed page gets a token."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser
from prometheus_client.parser import text_string_to_metric_families

from sidecar.app import create_app
from sidecar.ports.clock import SystemClock
from sidecar.settings import Settings
from tests.conftest import Bootstrap

ServerFactory = Callable[..., Awaitable[TestServer]]

#: The page's script: what a storefront does with its publishable key.
PAGE = """<!doctype html><html><body><script>
window.result = (async () => {
  try {
    const resp = await fetch("%(sidecar)s/v1/auth/token", {
      method: "POST",
      headers: {"Authorization": "Bearer %(key)s", "Content-Type": "application/json"},
      body: JSON.stringify({ttl: 300}),
    });
    return {status: resp.status, body: await resp.json()};
  } catch (err) {
    return {blocked: String(err)};
  }
})();
</script></body></html>"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def storefront(aiohttp_server: ServerFactory, port: int, sidecar: str, key: str) -> str:
    """A tiny site on its own 127.0.0.1 port (its own origin) serving the page; returns its origin."""

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=PAGE % {"sidecar": sidecar, "key": key}, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    server = await aiohttp_server(app, host="127.0.0.1", port=port)
    return f"http://127.0.0.1:{server.port}"


async def run_page(browser: Browser, origin: str) -> dict[str, Any]:
    page = await browser.new_page()
    try:
        await page.goto(origin + "/")
        return dict(await page.evaluate("window.result"))
    finally:
        await page.close()


def token_posts(exposition: str) -> dict[str, float]:
    """``POST /v1/auth/token`` requests the sidecar answered, by status."""
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        if family.name != "sidecar_http_request_duration_seconds":
            continue
        for s in family.samples:
            if s.name.endswith("_count") and s.labels["route"] == "/v1/auth/token" and s.labels["method"] == "POST":
                counts[s.labels["status"]] = s.value
    return counts


async def test_publishable_key_from_allowed_and_refused_origins(
    aiohttp_server: ServerFactory, make_settings: Callable[..., Settings], bootstrap: Bootstrap, browser: Browser
) -> None:
    port = free_port()
    sidecar = f"http://127.0.0.1:{port}"
    # the origins are only known once the sites listen, so the key is made first, then the sites
    site_ports = [free_port() for _ in range(3)]
    shop, partner_site, stranger = (f"http://127.0.0.1:{p}" for p in site_ports)
    settings = make_settings(public_url=sidecar, cors={"allowed_origins": [shop, partner_site]})
    await aiohttp_server(create_app(settings, clock=SystemClock(), on_bootstrap=bootstrap), host="127.0.0.1", port=port)
    async with httpx2.AsyncClient() as ops:
        created = await ops.post(
            f"{sidecar}/v1/api_keys",
            json={"type": "publishable", "name": "storefront", "allowed_origins": [shop]},
            headers={"Authorization": f"Bearer {bootstrap.key}"},
        )
        assert created.status_code == 201, created.text
        key = created.json()["key"]

    origins = [await storefront(aiohttp_server, p, sidecar, key) for p in site_ports]
    assert origins == [shop, partner_site, stranger]

    # the shop: CORS allowed and the key's own origin → a session token for the anonymous role
    allowed = await run_page(browser, shop)
    assert allowed["status"] == 200, allowed
    assert allowed["body"]["token_type"] == "Bearer"
    assert allowed["body"]["expires_in"] == 300

    # a CORS-allowed site the key does not name: the page can read why it was refused
    other = await run_page(browser, partner_site)
    assert other["status"] == 401, other
    assert other["body"]["error"] == "ORIGIN_NOT_ALLOWED"

    # a stranger's site: the preflight is refused, so the browser never sends the key at all
    refused = await run_page(browser, stranger)
    assert "blocked" in refused, refused
    assert "Failed to fetch" in refused["blocked"]

    async with httpx2.AsyncClient() as ops:
        metrics = (await ops.get(f"{sidecar}/metrics")).text
    assert token_posts(metrics) == {"200": 1.0, "401": 1.0}  # the stranger's POST never arrived
