"""The API-key life cycle over real HTTP, as a user of CONTRACT.md would drive it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sidecar.ports.clock import FrozenClock
from tests.conftest import bearer

Client = TestClient[Any, Any]


async def create(client: Client, admin_key: str, **body: Any) -> dict[str, Any]:
    resp = await client.post("/v1/api_keys", json=body, headers=bearer(admin_key))
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


async def test_bootstrap_key_validates_with_get_and_head(client: Client, admin_key: str) -> None:
    resp = await client.get("/v1/auth/validate", headers=bearer(admin_key))
    assert resp.status == 200
    assert (await resp.json())["role"] == "super_admin"
    head = await client.head("/v1/auth/validate", headers=bearer(admin_key))
    assert head.status == 200
    assert await head.read() == b""


async def test_wrong_key_is_401_invalid_api_key(client: Client, admin_key: str) -> None:
    wrong = admin_key[:-1] + ("A" if admin_key[-1] != "A" else "B")
    resp = await client.get("/v1/auth/validate", headers=bearer(wrong))
    assert resp.status == 401
    body = await resp.json()
    assert body["error"] == "INVALID_API_KEY"
    assert wrong not in body["message"]


async def test_no_credentials_is_401_unauthenticated(client: Client) -> None:
    resp = await client.get("/v1/auth/validate")
    assert resp.status == 401
    assert (await resp.json())["error"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    ("body", "prefix", "role"),
    [
        ({"type": "secret"}, "sk_live_", "operator"),
        ({"type": "secret", "role": "manager"}, "sk_mgr_", "manager"),
        ({"type": "secret", "role": "admin"}, "sk_admin_", "admin"),
        ({"type": "secret", "role": "super_admin"}, "sk_super_", "super_admin"),
        ({"type": "secret", "role": "viewer"}, "rk_view_", "viewer"),
        ({"type": "restricted", "permissions": ["orders:read"]}, "rk_live_", "restricted"),
        ({"type": "publishable"}, "pk_live_", "anonymous"),
        ({"type": "secret", "environment": "test"}, "sk_test_", "operator"),
        ({"type": "restricted", "environment": "test", "permissions": ["returns:*"]}, "rk_test_", "restricted"),
        ({"type": "publishable", "environment": "test"}, "pk_test_", "anonymous"),
    ],
)
async def test_every_prefix_of_the_contract_can_be_created_and_used(
    client: Client, admin_key: str, body: dict[str, Any], prefix: str, role: str
) -> None:
    created = await create(client, admin_key, name="k", **body)
    assert created["key"].startswith(prefix)
    assert created["role"] == role
    assert created["display"] == f"{prefix}…{created['key'][-4:]}"
    resp = await client.get("/v1/auth/permissions", headers=bearer(created["key"]))
    assert resp.status == 200
    perms = await resp.json()
    assert perms["role"] == role
    assert perms["environment"] == body.get("environment", "live")


async def test_key_is_never_shown_again(client: Client, admin_key: str) -> None:
    created = await create(client, admin_key, name="once")
    shown = await (await client.get(f"/v1/api_keys/{created['id']}", headers=bearer(admin_key))).json()
    listed = await (await client.get("/v1/api_keys", headers=bearer(admin_key))).text()
    assert "key" not in shown
    assert created["key"] not in listed
    assert created["key"][8:-4] not in listed


async def test_revoked_key_is_401_revoked(client: Client, admin_key: str) -> None:
    created = await create(client, admin_key)
    assert (await client.get("/v1/auth/validate", headers=bearer(created["key"]))).status == 200
    resp = await client.delete(f"/v1/api_keys/{created['id']}", headers=bearer(admin_key))
    assert resp.status == 200
    assert (await resp.json())["status"] == "revoked"
    resp = await client.get("/v1/auth/validate", headers=bearer(created["key"]))
    assert resp.status == 401
    assert (await resp.json())["error"] == "REVOKED_API_KEY"


async def test_expired_key_is_401_expired(client: Client, admin_key: str, clock: FrozenClock) -> None:
    expires = (clock.now() + timedelta(hours=1)).isoformat()
    created = await create(client, admin_key, expires_at=expires)
    assert (await client.get("/v1/auth/validate", headers=bearer(created["key"]))).status == 200
    clock.advance(3601)
    resp = await client.get("/v1/auth/validate", headers=bearer(created["key"]))
    assert resp.status == 401
    assert (await resp.json())["error"] == "EXPIRED_API_KEY"


async def test_roll_keeps_old_key_until_its_expiry(client: Client, admin_key: str, clock: FrozenClock) -> None:
    old = await create(client, admin_key, role="manager")
    resp = await client.post(f"/v1/api_keys/{old['id']}/roll", json={"expires_in": 86400}, headers=bearer(admin_key))
    assert resp.status == 201
    new = await resp.json()
    assert new["key"].startswith("sk_mgr_")
    assert new["key"] != old["key"]
    for key in (old["key"], new["key"]):
        assert (await client.get("/v1/auth/validate", headers=bearer(key))).status == 200
    clock.advance(86400)
    assert (await client.get("/v1/auth/validate", headers=bearer(old["key"]))).status == 401
    assert (await client.get("/v1/auth/validate", headers=bearer(new["key"]))).status == 200


async def test_list_paginates_and_filters(client: Client, admin_key: str, clock: FrozenClock) -> None:
    for i in range(5):
        clock.advance(1)
        await create(client, admin_key, name=f"k{i}", org_id="org_a", type="publishable" if i % 2 else "secret")
    seen: list[str] = []
    cursor = None
    while True:
        query = "org_id=org_a&limit=2" + (f"&starting_after={cursor}" if cursor else "")
        page = await (await client.get(f"/v1/api_keys?{query}", headers=bearer(admin_key))).json()
        seen += [k["name"] for k in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["data"][-1]["id"]
    assert seen == ["k4", "k3", "k2", "k1", "k0"]
    page = await (await client.get("/v1/api_keys?org_id=org_a&type=publishable", headers=bearer(admin_key))).json()
    assert [k["name"] for k in page["data"]] == ["k3", "k1"]


async def test_management_needs_admin_scope(client: Client, admin_key: str) -> None:
    manager = await create(client, admin_key, role="manager")
    resp = await client.get("/v1/api_keys", headers=bearer(manager["key"]))
    assert resp.status == 403
    body = await resp.json()
    assert body["error"] == "INSUFFICIENT_PERMISSIONS"
    assert "admin" in body["message"]


async def test_admin_cannot_mint_super_admin(client: Client, admin_key: str) -> None:
    admin = await create(client, admin_key, role="admin")
    resp = await client.post("/v1/api_keys", json={"role": "super_admin"}, headers=bearer(admin["key"]))
    assert resp.status == 403
    assert (await resp.json())["error"] == "INSUFFICIENT_PERMISSIONS"
    resp = await client.post("/v1/api_keys", json={"role": "manager"}, headers=bearer(admin["key"]))
    assert resp.status == 201


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"type": "gold"}', "type"),
        (b'{"permissions": "orders:read"}', "permissions"),
        (b'{"colour": "red"}', "colour"),
        (b'{"type": "restricted"}', "permission"),
        (b'{"type": "restricted", "permissions": ["nope:read"]}', "unknown scope"),
        (b'{"expires_at": "2020-01-01T00:00:00Z"}', "future"),
        (b'{"expires_at": "2030-01-01T00:00:00"}', "expires_at"),
        (b'{"role": "viewer", "permissions": ["orders:write"]}', "beyond"),
        (b"null", "JSON object"),
        (b'{"name": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", "not valid JSON"),  # deeper than Python's stack
    ],
)
async def test_bad_input_is_400_with_a_useful_message(
    client: Client, admin_key: str, raw: bytes, fragment: str
) -> None:
    resp = await client.post(
        "/v1/api_keys", data=raw, headers={**bearer(admin_key), "Content-Type": "application/json"}
    )
    assert resp.status == 400
    body = await resp.json()
    assert body["error"] == "INVALID_REQUEST"
    assert fragment in body["message"]


async def test_admin_cannot_revoke_a_super_admin_key(client: Client, admin_key: str) -> None:
    admin = await create(client, admin_key, role="admin")
    root = await create(client, admin_key, role="super_admin")
    resp = await client.delete(f"/v1/api_keys/{root['id']}", headers=bearer(admin["key"]))
    assert resp.status == 403
    assert (await resp.json())["error"] == "INSUFFICIENT_PERMISSIONS"
    assert (await client.get("/v1/auth/validate", headers=bearer(root["key"]))).status == 200
    manager = await create(client, admin_key, role="manager")
    assert (await client.delete(f"/v1/api_keys/{manager['id']}", headers=bearer(admin["key"]))).status == 200


@pytest.mark.parametrize("expires_in", ["60", True, 1.5])
async def test_roll_refuses_a_number_in_disguise(client: Client, admin_key: str, expires_in: object) -> None:
    old = await create(client, admin_key)
    resp = await client.post(
        f"/v1/api_keys/{old['id']}/roll", json={"expires_in": expires_in}, headers=bearer(admin_key)
    )
    assert resp.status == 400
    assert "expires_in" in (await resp.json())["message"]


async def test_oversized_body_is_400(client: Client, admin_key: str) -> None:
    resp = await client.post("/v1/api_keys", data=b'{"name": "' + b"x" * 200_000 + b'"}', headers=bearer(admin_key))
    assert resp.status == 400
    assert (await resp.json())["error"] == "INVALID_REQUEST"
