"""The audit trail in PostgreSQL (``SIDECAR_DATABASE_URL=postgresql://…``)."""

from __future__ import annotations

from typing import Any

from sidecar.models import AuditEvent, AuditQuery, Page
from sidecar.ports.audit_rows import AUDIT_COLUMNS, event_to_row, list_sql, row_to_event
from sidecar.ports.migrations import Migration
from sidecar.ports.postgres import PostgresDatabase

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "audit_events",
        1,
        """
        CREATE TABLE audit_events (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id TEXT COLLATE "C" NOT NULL UNIQUE,
            occurred_at DOUBLE PRECISION NOT NULL,
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

_INSERT = (
    f"INSERT INTO audit_events ({', '.join(AUDIT_COLUMNS)}) "  # noqa: S608 - fixed column list
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(AUDIT_COLUMNS) + 1))})"
)


class PostgresAuditStore:
    def __init__(self, database: PostgresDatabase) -> None:
        self._database = database

    async def insert_event(self, event: AuditEvent) -> None:
        async with self._database.connection() as conn:
            await conn.execute(_INSERT, *event_to_row(event))

    async def list_events(self, query: AuditQuery) -> Page[AuditEvent]:
        async with self._database.connection() as conn:
            cursor_seq = None
            if query.starting_after is not None:
                cursor_seq = await conn.fetchval("SELECT seq FROM audit_events WHERE id = $1", query.starting_after)
                if cursor_seq is None:
                    return Page(data=[], has_more=False)
            args: list[Any] = []

            def param(value: Any) -> str:
                args.append(value)
                return f"${len(args)}"

            rows = await conn.fetch(list_sql(query, cursor_seq, param), *args)
        events = [row_to_event(r) for r in rows]
        return Page(data=events[: query.limit], has_more=len(events) > query.limit)
