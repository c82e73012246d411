"""Webhook endpoints and their secrets in PostgreSQL; secrets sealed with ``Sealer`` (as in SQLite)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sidecar.models import Page
from sidecar.ports.migrations import Migration
from sidecar.ports.postgres import PostgresDatabase
from sidecar.ports.rows import to_ts
from sidecar.ports.sealer import Sealer
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
            id TEXT COLLATE "C" PRIMARY KEY,
            url TEXT NOT NULL,
            events TEXT NOT NULL,
            format TEXT NOT NULL,
            enabled BOOLEAN NOT NULL,
            description TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX webhook_endpoints_by_created ON webhook_endpoints (created_at DESC, id DESC);
        CREATE TABLE webhook_endpoint_secrets (
            seq BIGSERIAL PRIMARY KEY,
            endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
            sealed TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION
        );
        CREATE INDEX webhook_endpoint_secrets_by_endpoint ON webhook_endpoint_secrets (endpoint_id, seq);
        """,
    ),
    Migration(
        "webhooks",
        2,
        """
        CREATE TABLE webhook_deliveries (
            id TEXT COLLATE "C" PRIMARY KEY,
            endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
            event_id TEXT NOT NULL,
            trigger_name TEXT NOT NULL,
            table_name TEXT NOT NULL,
            op TEXT NOT NULL,
            body BYTEA NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            next_attempt_at DOUBLE PRECISION,
            delivered_at DOUBLE PRECISION,
            last_status_code INTEGER,
            last_error TEXT,
            UNIQUE (endpoint_id, event_id)
        );
        CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
        CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);
        CREATE TABLE webhook_delivery_attempts (
            delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
            number INTEGER NOT NULL,
            at DOUBLE PRECISION NOT NULL,
            status_code INTEGER,
            error TEXT,
            duration_ms INTEGER NOT NULL,
            PRIMARY KEY (delivery_id, number)
        );
        """,
    ),
    # As in SQLite: endpoints made before this become endpoints of every organisation (NULL),
    # switched off until an operator holding system:orgs re-enables them.
    Migration(
        "webhooks",
        3,
        """
        ALTER TABLE webhook_endpoints ADD COLUMN org_id TEXT;
        UPDATE webhook_endpoints SET enabled = FALSE;
        CREATE INDEX webhook_endpoints_by_org ON webhook_endpoints (org_id, created_at DESC, id DESC);
        """,
    ),
)

_DELIVERY_COLUMNS = ", ".join(DELIVERY_COLUMNS)
_SELECT_DELIVERY = f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries"  # noqa: S608 - fixed column list
_ENQUEUE = (
    f"INSERT INTO webhook_deliveries ({_DELIVERY_COLUMNS})"  # noqa: S608 - fixed SQL
    f" VALUES ({', '.join(f'${i}' for i in range(1, len(DELIVERY_COLUMNS) + 1))})"
    " ON CONFLICT (endpoint_id, event_id) DO NOTHING RETURNING id"
)
_CLAIM = (
    "UPDATE webhook_deliveries SET next_attempt_at = $1 WHERE id IN ("  # noqa: S608 - fixed SQL
    " SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $2"
    f" ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING {_DELIVERY_COLUMNS}"
)

_SELECT = f"SELECT {', '.join(ENDPOINT_COLUMNS)} FROM webhook_endpoints"  # noqa: S608 - fixed column list
_INSERT = (
    f"INSERT INTO webhook_endpoints ({', '.join(ENDPOINT_COLUMNS)})"  # noqa: S608 - fixed column list
    f" VALUES ({', '.join(f'${i}' for i in range(1, len(ENDPOINT_COLUMNS) + 1))})"
)
_INSERT_SEALED = (
    "INSERT INTO webhook_endpoint_secrets (endpoint_id, sealed, created_at, expires_at) VALUES ($1, $2, $3, $4)"
)


class PostgresWebhookStore:
    def __init__(self, database: PostgresDatabase, sealer: Sealer | None) -> None:
        self._database = database
        self._sealer = sealer

    async def insert_endpoint(self, endpoint: WebhookEndpoint) -> None:
        async with self._database.connection() as conn, conn.transaction():
            await conn.execute(_INSERT, *endpoint_to_row(endpoint))
            for secret in reversed(endpoint.secrets):
                await conn.execute(_INSERT_SEALED, *secret_to_row(self._sealer, endpoint.id, secret))

    async def get_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        found = await self._fetch(_SELECT + " WHERE id = $1", endpoint_id)
        return found[0] if found else None

    async def list_endpoints(
        self, *, org_id: str | None, limit: int, starting_after: str | None
    ) -> Page[WebhookEndpoint]:
        # $1 NULL lists every organisation's; a cursor that names no endpoint matches nothing
        sql = _SELECT + " WHERE ($1::text IS NULL OR org_id = $1)"
        args: list[Any] = [org_id, limit + 1]
        if starting_after is not None:
            sql += " AND (created_at, id) < (SELECT created_at, id FROM webhook_endpoints WHERE id = $3)"
            args.append(starting_after)
        rows = await self._fetch(sql + " ORDER BY created_at DESC, id DESC LIMIT $2", *args)
        return Page(data=rows[:limit], has_more=len(rows) > limit)

    async def list_enabled_endpoints(self) -> list[WebhookEndpoint]:
        return await self._fetch(_SELECT + " WHERE enabled ORDER BY id")

    async def update_endpoint(self, endpoint: WebhookEndpoint) -> None:
        async with self._database.connection() as conn:
            await conn.execute(
                "UPDATE webhook_endpoints SET url = $1, events = $2, format = $3, enabled = $4, description = $5"
                " WHERE id = $6",
                endpoint.url,
                json.dumps(list(endpoint.events)),
                endpoint.format.value,
                endpoint.enabled,
                endpoint.description,
                endpoint.id,
            )

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        async with self._database.connection() as conn:
            deleted = await conn.fetchval("DELETE FROM webhook_endpoints WHERE id = $1 RETURNING id", endpoint_id)
        return deleted is not None

    async def roll_secret(self, endpoint_id: str, new: EndpointSecret, old_expire_at: datetime) -> None:
        at = to_ts(old_expire_at)
        async with self._database.connection() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM webhook_endpoint_secrets WHERE endpoint_id = $1 AND expires_at <= $2",
                endpoint_id,
                to_ts(new.created_at),
            )
            await conn.execute(
                "UPDATE webhook_endpoint_secrets SET expires_at = $1"
                " WHERE endpoint_id = $2 AND (expires_at IS NULL OR expires_at > $1)",
                at,
                endpoint_id,
            )
            await conn.execute(_INSERT_SEALED, *secret_to_row(self._sealer, endpoint_id, new))

    async def _fetch(self, sql: str, *args: Any) -> list[WebhookEndpoint]:
        async with self._database.connection() as conn:
            rows = await conn.fetch(sql, *args)
            ids = [row["id"] for row in rows]
            secret_rows = await conn.fetch(
                "SELECT endpoint_id, sealed, created_at, expires_at FROM webhook_endpoint_secrets"
                " WHERE endpoint_id = ANY($1::text[]) ORDER BY seq DESC",
                ids,
            )
        return endpoints_from_rows(self._sealer, rows, secret_rows)

    # --- the delivery outbox ------------------------------------------------------------------

    async def enqueue(self, deliveries: Sequence[Delivery]) -> int:
        added = 0
        async with self._database.connection() as conn, conn.transaction():
            for delivery in deliveries:
                if await conn.fetchval(_ENQUEUE, *delivery_to_row(delivery)) is not None:
                    added += 1
        return added

    async def claim_due(self, now: datetime, *, lease_until: datetime, limit: int) -> list[Delivery]:
        async with self._database.connection() as conn:
            rows = await conn.fetch(_CLAIM, to_ts(lease_until), to_ts(now), limit)
        return sorted((delivery_from_row(r) for r in rows), key=lambda d: (d.created_at, d.id))

    async def record_attempt(
        self,
        attempt: DeliveryAttempt,
        *,
        status: DeliveryStatus,
        next_attempt_at: datetime | None,
    ) -> None:
        async with self._database.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO webhook_delivery_attempts (delivery_id, number, at, status_code, error, duration_ms)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (delivery_id, number) DO UPDATE SET"
                " at = excluded.at, status_code = excluded.status_code, error = excluded.error,"
                " duration_ms = excluded.duration_ms",
                *attempt_to_row(attempt),
            )
            await conn.execute(
                "UPDATE webhook_deliveries SET attempts = $1, status = $2, next_attempt_at = $3, delivered_at = $4,"
                " last_status_code = $5, last_error = $6 WHERE id = $7",
                attempt.number,
                status.value,
                to_ts(next_attempt_at),
                to_ts(attempt.at) if status is DeliveryStatus.DELIVERED else None,
                attempt.status_code,
                attempt.error,
                attempt.delivery_id,
            )

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        async with self._database.connection() as conn:
            row = await conn.fetchrow(_SELECT_DELIVERY + " WHERE id = $1", delivery_id)
        return None if row is None else delivery_from_row(row)

    async def list_deliveries(self, endpoint_id: str, *, limit: int, starting_after: str | None) -> Page[Delivery]:
        async with self._database.connection() as conn:
            if starting_after is None:
                rows = await conn.fetch(
                    _SELECT_DELIVERY + " WHERE endpoint_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
                    endpoint_id,
                    limit + 1,
                )
            else:
                rows = await conn.fetch(
                    _SELECT_DELIVERY  # noqa: S608 - fixed SQL
                    + " WHERE endpoint_id = $1 AND (created_at, id) <"
                    " (SELECT created_at, id FROM webhook_deliveries WHERE id = $2)"
                    " ORDER BY created_at DESC, id DESC LIMIT $3",
                    endpoint_id,
                    starting_after,
                    limit + 1,
                )
        return Page(data=[delivery_from_row(r) for r in rows[:limit]], has_more=len(rows) > limit)

    async def list_attempts(self, delivery_ids: Sequence[str]) -> dict[str, list[DeliveryAttempt]]:
        found: dict[str, list[DeliveryAttempt]] = {i: [] for i in delivery_ids}
        async with self._database.connection() as conn:
            rows = await conn.fetch(
                "SELECT delivery_id, number, at, status_code, error, duration_ms FROM webhook_delivery_attempts"
                " WHERE delivery_id = ANY($1::text[]) ORDER BY delivery_id, number",
                list(delivery_ids),
            )
        for row in rows:
            found[row["delivery_id"]].append(attempt_from_row(row))
        return found
