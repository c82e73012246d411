"""``/v1/oauth/clients`` over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sidecar.app import create_app
from sidecar.ports.clock import FrozenClock
from sidecar.settings import Settings
from tests.conftest import Bootstrap, ClientFactory, bearer
from tests.oauth_support import create_key, register_client

Client = TestClient[Any, Any]


@pytest.fixture
async def http(aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock, bootstrap: Bootstrap) -> Client:
    app = create_app(settings, clock=clock, on_bootstrap=bootstrap)
    return await aiohttp_client(app)


async def test_create_shows_the_secret_once(http: Client, bootstrap: Bootstrap) -> None:
    created = await register_client(http, bootstrap.key)
    assert created["id"].startswith("oc_")
    assert created["client_secret"].startswith("ocs_")
    assert created["secret_display"] == "ocs_…" + created["client_secret"][-4:]
    shown = await (await http.get(f"/v1/oauth/clients/{created['id']}", headers=bearer(bootstrap.key))).json()
    assert "client_secret" not in shown
    listed = await (await http.get("/v1/oauth/clients", headers=bearer(bootstrap.key))).json()
    assert [c["id"] for c in listed["data"]] == [created["id"]]
    assert created["client_secret"] not in str(listed)


async def test_delete_then_404(http: Client, bootstrap: Bootstrap) -> None:
    created = await register_client(http, bootstrap.key)
    url = f"/v1/oauth/clients/{created['id']}"
    assert (await http.delete(url, headers=bearer(bootstrap.key))).status == 200
    resp = await http.get(url, headers=bearer(bootstrap.key))
    assert resp.status == 404
    assert (await resp.json())["error"] == "NOT_FOUND"


async def test_admin_scope_is_required(http: Client, bootstrap: Bootstrap) -> None:
    operator = await create_key(http, bootstrap.key, type="secret", role="operator")
    resp = await http.get("/v1/oauth/clients", headers=bearer(operator))
    assert resp.status == 403
    assert (await resp.json())["error"] == "INSUFFICIENT_PERMISSIONS"
    assert (await http.get("/v1/oauth/clients")).status == 401


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"redirect_uris": ["http://partner.example/cb"]}, "https"),
        ({"redirect_uris": ["https://partner.example/cb#frag"]}, "fragment"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "https"),
        ({"redirect_uris": ["com.example.app:/cb"]}, "https"),  # private schemes: public clients only
        ({"scopes": ["admin"]}, "resource scopes only"),
        ({"scopes": ["system:orgs"]}, "resource scopes only"),
        ({"scopes": ["*:read"]}, "resource scopes only"),
        ({"scopes": ["orders:fly"]}, "unknown scope"),
        ({"type": "other"}, "type"),
    ],
)
async def test_bad_registrations_are_400(
    http: Client, bootstrap: Bootstrap, body: dict[str, Any], fragment: str
) -> None:
    full = {"name": "P", "type": "confidential", "redirect_uris": ["https://p.example/cb"], "scopes": ["orders:read"]}
    resp = await http.post("/v1/oauth/clients", json={**full, **body}, headers=bearer(bootstrap.key))
    assert resp.status == 400
    error = await resp.json()
    assert error["error"] == "INVALID_REQUEST"
    assert fragment in error["message"]


async def test_loopback_and_private_scheme_redirects_for_public_clients(http: Client, bootstrap: Bootstrap) -> None:
    created = await register_client(
        http,
        bootstrap.key,
        type="public",
        redirect_uris=("http://127.0.0.1:8765/cb", "com.example.app:/oauth"),
    )
    assert created["type"] == "public"


async def test_registration_and_deletion_are_audited(http: Client, bootstrap: Bootstrap) -> None:
    created = await register_client(http, bootstrap.key)
    await http.delete(f"/v1/oauth/clients/{created['id']}", headers=bearer(bootstrap.key))
    events = await (await http.get("/v1/audit_events", headers=bearer(bootstrap.key))).json()
    oauth_events = [e for e in events["data"] if e["action"].startswith("oauth_client.")]
    assert sorted(e["action"] for e in oauth_events) == ["oauth_client.created", "oauth_client.deleted"]
    assert all(e["target"] == {"type": "oauth_client", "id": created["id"]} for e in oauth_events)
    assert created["client_secret"] not in str(events)
