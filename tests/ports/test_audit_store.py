"""The audit-store contract, run against SQLite and a real PostgreSQL (pgserver)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sidecar.app import POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS
from sidecar.models import AuditEvent, AuditQuery
from sidecar.ports import AuditStore
from sidecar.ports.postgres import PostgresDatabase
from sidecar.ports.postgres_audit import PostgresAuditStore
from sidecar.ports.sqlite import SqliteDatabase
from sidecar.ports.sqlite_audit import SqliteAuditStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def event(n: int, **overrides: Any) -> AuditEvent:
    fields: dict[str, Any] = {
        "id": f"evt_{n:04d}",
        "occurred_at": T0 + timedelta(minutes=n // 2),  # pairs share a timestamp
        "action": "api_key.created",
        "actor_id": "key_admin",
        "actor_type": "api_key",
        "org_id": "org_a",
        "target_type": "api_key",
        "target_id": f"key_{n}",
        "ip": "10.0.0.1",
        "user_agent": "ua",
        "request_id": f"r{n}",
        "detail": {"role": "viewer"},
    }
    return AuditEvent(**{**fields, **overrides})


class AuditStoreContract:
    """Written once; each adapter's test class supplies the ``store`` fixture."""

    async def test_round_trip_and_newest_first(self, store: AuditStore) -> None:
        for n in range(5):
            await store.insert_event(event(n))
        page = await store.list_events(AuditQuery(limit=10))
        assert [e.id for e in page.data] == [f"evt_{n:04d}" for n in (4, 3, 2, 1, 0)]
        assert page.data[-1] == event(0)
        assert page.has_more is False

    async def test_pages_follow_insertion_order_even_on_equal_timestamps(self, store: AuditStore) -> None:
        for n in range(5):
            await store.insert_event(event(n))
        seen: list[str] = []
        cursor = None
        while True:
            page = await store.list_events(AuditQuery(limit=2, starting_after=cursor))
            seen += [e.id for e in page.data]
            if not page.has_more:
                break
            cursor = page.data[-1].id
        assert seen == [f"evt_{n:04d}" for n in (4, 3, 2, 1, 0)]

    async def test_filters(self, store: AuditStore) -> None:
        await store.insert_event(event(0))
        await store.insert_event(event(1, action="api_key.revoked", target_id="key_x"))
        await store.insert_event(event(2, actor_id="key_x", org_id="org_b"))
        await store.insert_event(event(4, action="admin.permission_denied", target_id=None))

        async def ids(**query: Any) -> list[str]:
            return [e.id for e in (await store.list_events(AuditQuery(**query))).data]

        assert await ids(action="api_key.revoked") == ["evt_0001"]
        assert await ids(key_id="key_x") == ["evt_0002", "evt_0001"]
        assert await ids(org_id="org_b") == ["evt_0002"]
        assert await ids(since=T0 + timedelta(minutes=1)) == ["evt_0004", "evt_0002"]
        assert await ids(until=T0 + timedelta(minutes=1)) == ["evt_0001", "evt_0000"]
        assert await ids(starting_after="evt_nope") == []


class TestSqliteAuditStore(AuditStoreContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[AuditStore]:
        async with SqliteDatabase.open(tmp_path / "audit.db", SQLITE_MIGRATIONS) as db:
            yield SqliteAuditStore(db)


@pytest.fixture(scope="session")
def audit_pg_url() -> Iterator[str]:
    """``DATABASE_URL`` when set, else a pgserver PostgreSQL of this session.

    Running as root, pgserver runs the server as the system user ``pgserver``, which cannot enter
    pytest's private temp dirs: the data directory goes directly under the system temp dir.
    """
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    pgserver = pytest.importorskip("pgserver")
    server = pgserver.get_server(tempfile.mkdtemp(prefix="sidecar-audit-pg-"), cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


class TestPostgresAuditStore(AuditStoreContract):
    @pytest.fixture
    async def store(self, audit_pg_url: str) -> AsyncIterator[AuditStore]:
        async with PostgresDatabase.open(audit_pg_url, POSTGRES_MIGRATIONS) as db:
            async with db.connection() as conn:
                await conn.execute("TRUNCATE audit_events")
            yield PostgresAuditStore(db)
