"""The audit trail's columns and query, shared by the SQLite and PostgreSQL adapters.

Events are ordered by ``seq``, an ever-growing integer the database assigns on insert, so the
newest-first order is the insertion order even when many events share a timestamp.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sidecar.models import AuditEvent, AuditQuery
from sidecar.ports.rows import Row, from_ts, to_ts

AUDIT_COLUMNS = (
    "id",
    "occurred_at",
    "action",
    "actor_id",
    "actor_type",
    "org_id",
    "target_type",
    "target_id",
    "ip",
    "user_agent",
    "request_id",
    "detail",
)


def event_to_row(event: AuditEvent) -> tuple[Any, ...]:
    return (
        event.id,
        to_ts(event.occurred_at),
        event.action,
        event.actor_id,
        event.actor_type,
        event.org_id,
        event.target_type,
        event.target_id,
        event.ip,
        event.user_agent,
        event.request_id,
        json.dumps(event.detail, sort_keys=True),
    )


def row_to_event(row: Row) -> AuditEvent:
    occurred = from_ts(row["occurred_at"])
    assert occurred is not None
    return AuditEvent(
        id=row["id"],
        occurred_at=occurred,
        action=row["action"],
        actor_id=row["actor_id"],
        actor_type=row["actor_type"],
        org_id=row["org_id"],
        target_type=row["target_type"],
        target_id=row["target_id"],
        ip=row["ip"],
        user_agent=row["user_agent"],
        request_id=row["request_id"],
        detail=dict(json.loads(row["detail"])),
    )


def list_sql(query: AuditQuery, cursor_seq: int | None, param: Callable[[Any], str]) -> str:
    """The page query; ``param(value)`` adds a bound value and returns its placeholder."""
    where: list[str] = []
    if query.action is not None:
        where.append(f"action = {param(query.action)}")
    if query.key_id is not None:
        where.append(f"(actor_id = {param(query.key_id)} OR target_id = {param(query.key_id)})")
    if query.org_id is not None:
        where.append(f"org_id = {param(query.org_id)}")
    if query.since is not None:
        where.append(f"occurred_at >= {param(to_ts(query.since))}")
    if query.until is not None:
        where.append(f"occurred_at < {param(to_ts(query.until))}")
    if cursor_seq is not None:
        where.append(f"seq < {param(cursor_seq)}")
    sql = f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_events"  # noqa: S608 - fixed column list
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + f" ORDER BY seq DESC LIMIT {param(query.limit + 1)}"
