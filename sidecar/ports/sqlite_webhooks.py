"""Webhook endpoints and their secrets in the shared SQLite database; secrets sealed with ``Sealer``."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sidecar.errors import Unavailable
from sidecar.models import Page
from sidecar.ports.migrations import Migration
from sidecar.ports.rows import Row, to_ts
from sidecar.ports.sealer import Sealer
from sidecar.ports.sqlite import SqliteDatabase
from sidecar.ports.webhook_rows import (
    DELIVERY_COLUMNS,
    ENDPOINT_COLUMNS,
    attempt_from_row,
    attempt_to_row,
    delivery_from_row,
    delivery_to_row,
    endpoint_to_row,
    endpoints_from_rows,
    secret_to_row,
)
from sidecar.webhook_models import Delivery, DeliveryAttempt, DeliveryStatus, EndpointSecret, WebhookEndpoint

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "webhooks",
        1,
        """
        CREATE TABLE webhook_endpoints (
            id TEXT PRIMARY KEY,
            url TEXT NOT NULL,
            events TEXT NOT NULL,
            format TEXT NOT NULL,
            enabled INTEGER NOT NULL,
            description TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE INDEX webhook_endpoints_by_created ON webhook_endpoints (created_at DESC, id DESC);
        CREATE TABLE webhook_endpoint_secrets (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
            sealed TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL
        );
        CREATE INDEX webhook_endpoint_secrets_by_endpoint ON webhook_endpoint_secrets (endpoint_id, seq)
        """,
    ),
    Migration(
        "webhooks",
        2,
        """
        CREATE TABLE webhook_deliveries (
            id TEXT PRIMARY KEY,
            endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
            event_id TEXT NOT NULL,
            trigger_name TEXT NOT NULL,
            table_name TEXT NOT NULL,
            op TEXT NOT NULL,
            body BLOB NOT NULL,
            created_at REAL NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            next_attempt_at REAL,
            delivered_at REAL,
            last_status_code INTEGER,
            last_error TEXT,
            UNIQUE (endpoint_id, event_id)
        );
        CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
        CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);
        CREATE TABLE webhook_delivery_attempts (
            delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
            number INTEGER NOT NULL,
            at REAL NOT NULL,
            status_code INTEGER,
            error TEXT,
            duration_ms INTEGER NOT NULL,
            PRIMARY KEY (delivery_id, number)
        )
        """,
    ),
    # Endpoints belong to an organisation. Endpoints made before this had none and received every
    # organisation's events: they become endpoints of every organisation (NULL), switched off
    # until an operator holding system:orgs re-enables them (or recreates them in one org).
    Migration(
        "webhooks",
        3,
        """
        ALTER TABLE webhook_endpoints ADD COLUMN org_id TEXT;
        UPDATE webhook_endpoints SET enabled = 0;
        CREATE INDEX webhook_endpoints_by_org ON webhook_endpoints (org_id, created_at DESC, id DESC)
        """,
    ),
)

_DELIVERY_COLUMNS = ", ".join(DELIVERY_COLUMNS)
_CLAIM = (
    "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id IN ("  # noqa: S608 - fixed SQL
    " SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ?"
    f" ORDER BY next_attempt_at LIMIT ?) RETURNING {_DELIVERY_COLUMNS}"
)
_SELECT_DELIVERY = f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries"  # noqa: S608 - fixed column list

_SELECT = f"SELECT {', '.join(ENDPOINT_COLUMNS)} FROM webhook_endpoints"  # noqa: S608 - fixed column list
_INSERT = (
    f"INSERT INTO webhook_endpoints ({', '.join(ENDPOINT_COLUMNS)})"  # noqa: S608 - fixed column list
    f" VALUES ({', '.join('?' for _ in ENDPOINT_COLUMNS)})"
)


class SqliteWebhookStore:
    def __init__(self, database: SqliteDatabase, sealer: Sealer | None) -> None:
        self._database = database
        self._db = database.connection
        self._sealer = sealer

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            async with self._db.execute(sql, params) as cur:
                return list(await cur.fetchall())
        except (sqlite3.Error, ValueError) as exc:
            raise Unavailable("the webhook store is unavailable", reason="store_unavailable") from exc

    async def _write(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """One statement under the database's write lock (never inside another task's transaction)."""
        try:
            async with self._database.write() as db, db.execute(sql, params) as cur:
                return list(await cur.fetchall())
        except (sqlite3.Error, ValueError) as exc:
            raise Unavailable("the webhook store is unavailable", reason="store_unavailable") from exc

    async def _transaction(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> int:
        """The statements as one transaction; how many rows they changed."""
        try:
            async with self._database.transaction() as db:
                before = db.total_changes
                for sql, params in statements:
                    await db.execute(sql, params)
                return db.total_changes - before
        except (sqlite3.Error, ValueError) as exc:
            raise Unavailable("the webhook store is unavailable", reason="store_unavailable") from exc

    def _secret_insert(self, endpoint_id: str, secret: EndpointSecret) -> tuple[str, Sequence[Any]]:
        return (
            "INSERT INTO webhook_endpoint_secrets (endpoint_id, sealed, created_at, expires_at) VALUES (?, ?, ?, ?)",
            secret_to_row(self._sealer, endpoint_id, secret),
        )

    async def insert_endpoint(self, endpoint: WebhookEndpoint) -> None:
        row = endpoint_to_row(endpoint)
        await self._transaction(
            [
                (_INSERT, row),
                *(self._secret_insert(endpoint.id, s) for s in reversed(endpoint.secrets)),
            ]
        )

    async def get_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        rows = await self._rows(_SELECT + " WHERE id = ?", (endpoint_id,))
        found = await self._with_secrets(rows)
        return found[0] if found else None

    async def list_endpoints(
        self, *, org_id: str | None, limit: int, starting_after: str | None
    ) -> Page[WebhookEndpoint]:
        where: list[str] = []
        params: list[Any] = []
        if org_id is not None:
            where.append("org_id = ?")
            params.append(org_id)
        if starting_after is not None:
            cursor = await self._rows("SELECT created_at FROM webhook_endpoints WHERE id = ?", (starting_after,))
            if not cursor:
                return Page(data=[], has_more=False)
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            params += [cursor[0]["created_at"], cursor[0]["created_at"], starting_after]
        sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "")
        rows = await self._rows(sql + " ORDER BY created_at DESC, id DESC LIMIT ?", [*params, limit + 1])
        endpoints = await self._with_secrets(rows[:limit])
        return Page(data=endpoints, has_more=len(rows) > limit)

    async def list_enabled_endpoints(self) -> list[WebhookEndpoint]:
        rows = await self._rows(_SELECT + " WHERE enabled = 1 ORDER BY id")
        return await self._with_secrets(rows)

    async def update_endpoint(self, endpoint: WebhookEndpoint) -> None:
        await self._write(
            "UPDATE webhook_endpoints SET url = ?, events = ?, format = ?, enabled = ?, description = ? WHERE id = ?",
            (
                endpoint.url,
                json.dumps(list(endpoint.events)),
                endpoint.format.value,
                int(endpoint.enabled),
                endpoint.description,
                endpoint.id,
            ),
        )

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        changed = await self._transaction([("DELETE FROM webhook_endpoints WHERE id = ?", (endpoint_id,))])
        return changed > 0

    async def roll_secret(self, endpoint_id: str, new: EndpointSecret, old_expire_at: datetime) -> None:
        at = to_ts(old_expire_at)
        await self._transaction(
            [
                (
                    "DELETE FROM webhook_endpoint_secrets WHERE endpoint_id = ? AND expires_at <= ?",
                    (endpoint_id, to_ts(new.created_at)),
                ),
                (
                    "UPDATE webhook_endpoint_secrets SET expires_at = ?"
                    " WHERE endpoint_id = ? AND (expires_at IS NULL OR expires_at > ?)",
                    (at, endpoint_id, at),
                ),
                self._secret_insert(endpoint_id, new),
            ]
        )

    async def _with_secrets(self, rows: list[Row]) -> list[WebhookEndpoint]:
        if not rows:
            return []
        ids = [row["id"] for row in rows]
        marks = ", ".join("?" for _ in ids)
        secret_rows = await self._rows(
            "SELECT endpoint_id, sealed, created_at, expires_at FROM webhook_endpoint_secrets"  # noqa: S608
            f" WHERE endpoint_id IN ({marks}) ORDER BY seq DESC",
            ids,
        )
        return endpoints_from_rows(self._sealer, rows, secret_rows)

    # --- the delivery outbox ------------------------------------------------------------------

    async def enqueue(self, deliveries: Sequence[Delivery]) -> int:
        if not deliveries:
            return 0
        marks = ", ".join("?" for _ in DELIVERY_COLUMNS)
        return await self._transaction(
            (f"INSERT OR IGNORE INTO webhook_deliveries ({_DELIVERY_COLUMNS}) VALUES ({marks})", delivery_to_row(d))  # noqa: S608
            for d in deliveries
        )

    async def claim_due(self, now: datetime, *, lease_until: datetime, limit: int) -> list[Delivery]:
        rows = await self._write(
            _CLAIM,
            (to_ts(lease_until), to_ts(now), limit),
        )
        return sorted((delivery_from_row(r) for r in rows), key=lambda d: (d.created_at, d.id))

    async def record_attempt(
        self,
        attempt: DeliveryAttempt,
        *,
        status: DeliveryStatus,
        next_attempt_at: datetime | None,
    ) -> None:
        await self._transaction(
            [
                (
                    "INSERT OR REPLACE INTO webhook_delivery_attempts"
                    " (delivery_id, number, at, status_code, error, duration_ms) VALUES (?, ?, ?, ?, ?, ?)",
                    attempt_to_row(attempt),
                ),
                (
                    "UPDATE webhook_deliveries SET attempts = ?, status = ?, next_attempt_at = ?, delivered_at = ?,"
                    " last_status_code = ?, last_error = ? WHERE id = ?",
                    (
                        attempt.number,
                        status.value,
                        to_ts(next_attempt_at),
                        to_ts(attempt.at) if status is DeliveryStatus.DELIVERED else None,
                        attempt.status_code,
                        attempt.error,
                        attempt.delivery_id,
                    ),
                ),
            ]
        )

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        rows = await self._rows(_SELECT_DELIVERY + " WHERE id = ?", (delivery_id,))
        return delivery_from_row(rows[0]) if rows else None

    async def list_deliveries(self, endpoint_id: str, *, limit: int, starting_after: str | None) -> Page[Delivery]:
        sql = _SELECT_DELIVERY + " WHERE endpoint_id = ?"
        params: list[Any] = [endpoint_id]
        if starting_after is not None:
            cursor = await self.get_delivery(starting_after)
            if cursor is None:
                return Page(data=[], has_more=False)
            sql += " AND (created_at < ? OR (created_at = ? AND id < ?))"
            params += [to_ts(cursor.created_at), to_ts(cursor.created_at), cursor.id]
        rows = await self._rows(sql + " ORDER BY created_at DESC, id DESC LIMIT ?", [*params, limit + 1])
        return Page(data=[delivery_from_row(r) for r in rows[:limit]], has_more=len(rows) > limit)

    async def list_attempts(self, delivery_ids: Sequence[str]) -> dict[str, list[DeliveryAttempt]]:
        found: dict[str, list[DeliveryAttempt]] = {i: [] for i in delivery_ids}
        if not delivery_ids:
            return found
        marks = ", ".join("?" for _ in delivery_ids)
        rows = await self._rows(
            "SELECT delivery_id, number, at, status_code, error, duration_ms FROM webhook_delivery_attempts"  # noqa: S608
            f" WHERE delivery_id IN ({marks}) ORDER BY delivery_id, number",
            list(delivery_ids),
        )
        for row in rows:
            found[row["delivery_id"]].append(attempt_from_row(row))
        return found
