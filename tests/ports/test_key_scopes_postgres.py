"""Hasura's ``_exists`` scope check, as the generated metadata states it, run by a real PostgreSQL
against the key-scope table the sidecar's PostgreSQL store creates and keeps in step."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from sidecar.domain.hasura_metadata import table_entries
from sidecar.ports.postgres import PostgresDatabase, PostgresKeyStore
from sidecar.settings import load_role_model, load_table_model
from tests.contracts import make_record


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresKeyStore]:
    async with PostgresDatabase.open(pg_url, pool_size=2) as database:
        yield PostgresKeyStore(database)


def restricted_check(action_key: str, table: str) -> dict[str, Any]:
    """The ``_exists`` clause of the generated ``restricted`` permission for one table and action."""
    roles = load_role_model(None)
    entries = {e["table"]["name"]: e for e in table_entries(roles, load_table_model(None, roles))}
    (permission,) = [p["permission"] for p in entries[table][action_key] if p["role"] == "restricted"]
    row_filter = permission["check"] if action_key == "insert_permissions" else permission["filter"]
    (clause,) = [c for c in row_filter["_and"] if "_exists" in c]
    return dict(clause["_exists"])


async def holds(pg_url: str, exists: dict[str, Any], key_id: str) -> bool:
    """Evaluate the clause as Hasura would: one EXISTS over the named table and columns."""
    table = exists["_table"]["name"]  # the test's schema is on the search path
    (key_clause, scope_clause) = exists["_where"]["_and"]
    ((key_column, key_cmp),) = key_clause.items()
    ((scope_column, scope_cmp),) = scope_clause.items()
    assert key_cmp == {"_eq": "X-Hasura-Key-Id"}
    conn = await asyncpg.connect(pg_url)
    try:
        return bool(
            await conn.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {key_column} = $1 AND {scope_column} = ANY($2::text[]))",  # noqa: S608
                key_id,
                scope_cmp["_in"],
            )
        )
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("action_key", "table", "granted", "expected"),
    [
        ("select_permissions", "orders", ["orders:read"], True),
        ("select_permissions", "orders", ["*:read"], True),
        ("select_permissions", "orders", ["customers:read"], False),
        ("insert_permissions", "orders", ["orders:read"], False),
        ("insert_permissions", "orders", ["orders:*"], True),
        ("delete_permissions", "returns", ["admin"], True),
        ("update_permissions", "settings", ["*:write"], True),
        ("update_permissions", "settings", ["*:*", "system:orgs"], True),
        ("select_permissions", "reports", ["system:*"], False),
    ],
)
async def test_the_generated_check_reads_the_stores_table(
    pg_url: str, store: PostgresKeyStore, action_key: str, table: str, granted: list[str], expected: bool
) -> None:
    await store.insert_key(make_record(1, permissions=tuple(granted)))
    await store.set_key_scopes("key_000001", granted)
    await store.set_key_scopes("key_000002", ["admin"])  # another key's scopes never count
    exists = restricted_check(action_key, table)
    assert await holds(pg_url, exists, "key_000001") is expected
    await store.set_key_scopes("key_000001", [])  # what revoking does
    assert await holds(pg_url, exists, "key_000001") is False
