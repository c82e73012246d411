"""The audit trail in the embedded SQLite database."""

from __future__ import annotations

import sqlite3
from typing import Any

from sidecar.errors import Unavailable
from sidecar.models import AuditEvent, AuditQuery, Page
from sidecar.ports.audit_rows import AUDIT_COLUMNS, event_to_row, list_sql, row_to_event
from sidecar.ports.migrations import Migration
from sidecar.ports.sqlite import SqliteDatabase

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "audit_events",
        1,
        """
        CREATE TABLE audit_events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            occurred_at REAL NOT NULL,
            action TEXT NOT NULL,
            actor_id TEXT NOT NULL,
            actor_type TEXT NOT NULL,
            org_id TEXT,
            target_type TEXT,
            target_id TEXT,
            ip TEXT,
            user_agent TEXT,
            request_id TEXT,
            detail TEXT NOT NULL
        );
        CREATE INDEX audit_events_by_time ON audit_events (occurred_at);
        CREATE INDEX audit_events_by_action ON audit_events (action, seq);
        CREATE INDEX audit_events_by_actor ON audit_events (actor_id, seq);
        CREATE INDEX audit_events_by_target ON audit_events (target_id, seq);
        CREATE INDEX audit_events_by_org ON audit_events (org_id, seq);
        """,
    ),
)

_INSERT = f"INSERT INTO audit_events ({', '.join(AUDIT_COLUMNS)}) VALUES ({', '.join('?' for _ in AUDIT_COLUMNS)})"  # noqa: S608


class SqliteAuditStore:
    def __init__(self, database: SqliteDatabase) -> None:
        self._database = database
        self._db = database.connection

    async def insert_event(self, event: AuditEvent) -> None:
        try:
            async with self._database.write() as db:
                await db.execute(_INSERT, event_to_row(event))
        except (sqlite3.Error, ValueError) as exc:
            raise Unavailable("the audit store is unavailable", reason="store_unavailable") from exc

    async def list_events(self, query: AuditQuery) -> Page[AuditEvent]:
        try:
            cursor_seq = None
            if query.starting_after is not None:
                async with self._db.execute(
                    "SELECT seq FROM audit_events WHERE id = ?", (query.starting_after,)
                ) as cur:
                    found = await cur.fetchone()
                if found is None:
                    return Page(data=[], has_more=False)
                cursor_seq = int(found[0])
            params: list[Any] = []

            def param(value: Any) -> str:
                params.append(value)
                return "?"

            sql = list_sql(query, cursor_seq, param)
            async with self._db.execute(sql, params) as cur:
                rows = await cur.fetchall()
        except (sqlite3.Error, ValueError) as exc:
            raise Unavailable("the audit store is unavailable", reason="store_unavailable") from exc
        events = [row_to_event(r) for r in rows]
        return Page(data=events[: query.limit], has_more=len(events) > query.limit)
