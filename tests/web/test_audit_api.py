"""The audit trail through the admin API: key changes and admin-API denials, who and from where."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from sidecar.ports.clock import FrozenClock
from tests.conftest import bearer

Client = TestClient[Any, Any]


async def create(client: Client, key: str, **body: Any) -> dict[str, Any]:
    resp = await client.post("/v1/api_keys", json=body, headers=bearer(key))
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


async def events(client: Client, key: str, query: str = "") -> dict[str, Any]:
    resp = await client.get(f"/v1/audit_events{query}", headers=bearer(key))
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def whoami(client: Client, key: str) -> str:
    return str((await (await client.get("/v1/auth/validate", headers=bearer(key))).json())["key_id"])


async def test_key_changes_are_recorded_with_actor_and_origin(client: Client, admin_key: str) -> None:
    admin_id = await whoami(client, admin_key)
    headers = {**bearer(admin_key), "User-Agent": "ops-console/1.0", "X-Request-Id": "req-create"}
    created = await client.post("/v1/api_keys", json={"name": "billing", "role": "viewer"}, headers=headers)
    key = await created.json()
    rolled = await (
        await client.post(f"/v1/api_keys/{key['id']}/roll", json={"expires_in": 60}, headers=bearer(admin_key))
    ).json()
    assert (await client.delete(f"/v1/api_keys/{rolled['id']}", headers=bearer(admin_key))).status == 200

    page = await events(client, admin_key)
    assert page["object"] == "list"
    assert [e["action"] for e in page["data"]] == ["api_key.revoked", "api_key.rolled", "api_key.created"]
    revoked, roll, made = page["data"]
    assert made["actor"] == {"id": admin_id, "type": "api_key"}
    assert made["target"] == {"type": "api_key", "id": key["id"]}
    assert made["origin"] == {"ip": "127.0.0.1", "user_agent": "ops-console/1.0", "request_id": "req-create"}
    assert made["org_id"] == "org_default"
    assert made["detail"]["role"] == "viewer"
    assert made["detail"]["name"] == "billing"
    assert made["detail"]["display"] == key["display"]
    assert roll["target"]["id"] == key["id"]
    assert roll["detail"]["new_key_id"] == rolled["id"]
    assert revoked["target"]["id"] == rolled["id"]
    assert made["occurred_at"].endswith("Z")

    text = json.dumps(page)
    for secret in (admin_key, key["key"], rolled["key"]):
        assert secret not in text
        assert secret[-20:] not in text


async def test_permission_denied_on_the_admin_api_is_recorded(client: Client, admin_key: str) -> None:
    viewer = await create(client, admin_key, role="viewer", name="read only")
    resp = await client.get("/v1/api_keys", headers={**bearer(viewer["key"]), "X-Request-Id": "req-denied"})
    assert resp.status == 403
    resp = await client.delete(f"/v1/api_keys/{viewer['id']}", headers=bearer(viewer["key"]))
    assert resp.status == 403
    assert (await client.get("/v1/audit_events", headers=bearer(viewer["key"]))).status == 403

    page = await events(client, admin_key, "?action=admin.permission_denied")
    denied = page["data"]
    assert [(e["detail"]["method"], e["detail"]["route"]) for e in denied] == [
        ("GET", "/v1/audit_events"),
        ("DELETE", "/v1/api_keys/{key_id}"),
        ("GET", "/v1/api_keys"),
    ]
    assert all(e["actor"] == {"id": viewer["id"], "type": "api_key"} for e in denied)
    assert denied[-1]["origin"]["request_id"] == "req-denied"
    assert denied[-1]["detail"]["reason"] == "missing_scope"
    assert viewer["key"] not in json.dumps(page)


async def test_denials_outside_the_admin_api_are_not_audited(client: Client, admin_key: str) -> None:
    assert (await client.get("/v1/auth/validate")).status == 401
    page = await events(client, admin_key, "?action=admin.permission_denied")
    assert page["data"] == []


async def test_filters_and_pagination(client: Client, admin_key: str, clock: FrozenClock) -> None:
    first = await create(client, admin_key, name="one")
    clock.advance(3600)
    second = await create(client, admin_key, name="two")
    clock.advance(3600)
    await client.delete(f"/v1/api_keys/{first['id']}", headers=bearer(admin_key))

    by_key = await events(client, admin_key, f"?key_id={first['id']}")
    assert [e["action"] for e in by_key["data"]] == ["api_key.revoked", "api_key.created"]
    created = await events(client, admin_key, "?action=api_key.created")
    assert [e["target"]["id"] for e in created["data"]] == [second["id"], first["id"]]

    start = clock.now() - timedelta(seconds=3600)
    since = await events(client, admin_key, f"?since={int(start.timestamp())}")
    assert [e["action"] for e in since["data"]] == ["api_key.revoked", "api_key.created"]
    until_iso = start.isoformat().replace("+00:00", "Z")
    until = await events(client, admin_key, f"?until={until_iso}")
    assert [e["target"]["id"] for e in until["data"]] == [first["id"]]

    one = await events(client, admin_key, "?limit=1")
    assert one["has_more"] is True
    rest = await events(client, admin_key, f"?limit=2&starting_after={one['data'][0]['id']}")
    assert [e["action"] for e in rest["data"]] == ["api_key.created", "api_key.created"]
    assert rest["has_more"] is False
    assert (await events(client, admin_key, "?starting_after=evt_unknown"))["data"] == []


async def test_bad_queries_are_400(client: Client, admin_key: str) -> None:
    for query in ("?since=yesterday", "?limit=0", "?limit=101", "?since=2026-02-01&until=2026-01-01"):
        resp = await client.get(f"/v1/audit_events{query}", headers=bearer(admin_key))
        assert resp.status == 400, query
        assert (await resp.json())["error"] == "INVALID_REQUEST"


async def test_an_org_admin_sees_only_its_own_org(client: Client, admin_key: str) -> None:
    other_admin = await create(client, admin_key, role="admin", org_id="org_other")
    await create(client, other_admin["key"], name="theirs")
    mine = await events(client, other_admin["key"])
    assert {e["org_id"] for e in mine["data"]} == {"org_other"}
    assert len(mine["data"]) == 2
    resp = await client.get("/v1/audit_events?org_id=org_default", headers=bearer(other_admin["key"]))
    assert resp.status == 403
