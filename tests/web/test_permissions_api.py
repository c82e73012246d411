"""``GET /v1/auth/permissions``: the caller's effective row of the permission matrix, over HTTP."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import bearer

Client = TestClient[Any, Any]
CRUD = ["create", "read", "update", "delete"]


async def new_key(client: Client, admin_key: str, **body: Any) -> str:
    resp = await client.post("/v1/api_keys", json=body, headers=bearer(admin_key))
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["key"])


async def permissions(client: Client, key: str) -> dict[str, Any]:
    resp = await client.get("/v1/auth/permissions", headers=bearer(key))
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def test_an_operator_sees_its_row_of_the_matrix(client: Client, admin_key: str) -> None:
    key = await new_key(client, admin_key, type="secret", role="operator", team_id="team_1", user_id="user_1")
    body = await permissions(client, key)
    assert body["role"] == "operator"
    assert body["hasura_role"] == "operator"
    assert body["allowed_roles"] == ["operator", "anonymous"]
    assert (body["org_id"], body["team_id"], body["user_id"]) == ("org_default", "team_1", "user_1")
    assert body["all_orgs"] is False
    assert body["matrix"] == {
        "orders": {"actions": CRUD, "ownership": "own"},
        "customers": {"actions": ["read"], "ownership": "own"},
        "inventory": {"actions": ["read"], "ownership": "all"},
        "returns": {"actions": CRUD, "ownership": "own"},
        "reports": {"actions": ["read"], "ownership": "own"},
        "settings": {"actions": ["read"], "ownership": "own"},
    }


async def test_a_restricted_key_sees_the_row_its_scopes_describe(client: Client, admin_key: str) -> None:
    key = await new_key(client, admin_key, type="restricted", permissions=["orders:read", "returns:*"])
    body = await permissions(client, key)
    assert body["role"] == "restricted"
    assert body["scopes"] == ["orders:read", "returns:*"]
    assert body["matrix"] == {
        "orders": {"actions": ["read"], "ownership": "all"},
        "returns": {"actions": CRUD, "ownership": "all"},
    }


async def test_the_admin_role_is_org_admin_in_hasura(client: Client, admin_key: str) -> None:
    key = await new_key(client, admin_key, type="secret", role="admin")
    body = await permissions(client, key)
    assert body["hasura_role"] == "org_admin"
    assert body["all_orgs"] is False
    assert set(body["matrix"]) == {"orders", "customers", "inventory", "returns", "reports", "settings"}


async def test_super_admin_reaches_every_org(client: Client, admin_key: str) -> None:
    body = await permissions(client, admin_key)
    assert body["role"] == "super_admin"
    assert body["all_orgs"] is True


async def test_a_publishable_key_reads_inventory_only(client: Client, admin_key: str) -> None:
    body = await permissions(client, await new_key(client, admin_key, type="publishable"))
    assert body["matrix"] == {"inventory": {"actions": ["read"], "ownership": "all"}}


async def test_permissions_needs_credentials(client: Client) -> None:
    resp = await client.get("/v1/auth/permissions")
    assert resp.status == 401
    assert (await resp.json())["error"] == "UNAUTHENTICATED"


async def test_an_admin_cannot_mint_a_wildcard_key_that_reaches_system_configuration(
    client: Client, admin_key: str
) -> None:
    admin = await new_key(client, admin_key, type="secret", role="admin")
    wide = await new_key(client, admin, type="restricted", permissions=["*:*"])
    body = await permissions(client, wide)
    assert body["all_orgs"] is False
    resp = await client.post(
        "/v1/api_keys", json={"type": "restricted", "permissions": ["system:*"]}, headers=bearer(admin)
    )
    assert resp.status == 403
    assert "system:*" in (await resp.json())["message"]
