"""The key-scope table Hasura reads follows each key's listed scopes through create, roll and revoke."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from sidecar.settings import Settings
from tests.conftest import bearer

Client = TestClient[Any, Any]


def scopes_in_db(settings: Settings, key_id: str) -> set[str]:
    with sqlite3.connect(Path(settings.store_url().removeprefix("sqlite:///"))) as db:
        rows = db.execute("SELECT scope FROM api_key_scopes WHERE key_id = ?", (key_id,)).fetchall()
    return {r[0] for r in rows}


async def test_create_roll_and_revoke_keep_the_table_in_step(
    client: Client, admin_key: str, settings: Settings
) -> None:
    resp = await client.post(
        "/v1/api_keys",
        json={"type": "restricted", "permissions": ["orders:read", "returns:*", "orders:read"]},
        headers=bearer(admin_key),
    )
    assert resp.status == 201
    key = await resp.json()
    assert scopes_in_db(settings, key["id"]) == {"orders:read", "returns:*"}

    resp = await client.post(f"/v1/api_keys/{key['id']}/roll", json={"expires_in": 3600}, headers=bearer(admin_key))
    assert resp.status == 201
    rolled = await resp.json()
    assert scopes_in_db(settings, rolled["id"]) == {"orders:read", "returns:*"}
    assert scopes_in_db(settings, key["id"]) == {"orders:read", "returns:*"}  # still valid for an hour

    resp = await client.delete(f"/v1/api_keys/{rolled['id']}", headers=bearer(admin_key))
    assert resp.status == 200
    assert scopes_in_db(settings, rolled["id"]) == set()


async def test_a_key_without_listed_scopes_has_no_rows(client: Client, admin_key: str, settings: Settings) -> None:
    resp = await client.post("/v1/api_keys", json={"type": "secret", "role": "viewer"}, headers=bearer(admin_key))
    assert scopes_in_db(settings, (await resp.json())["id"]) == set()
