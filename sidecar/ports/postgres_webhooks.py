"""Webhook endpoints and their secrets in PostgreSQL; secrets sealed with ``Sealer`` (as in SQLite)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sidecar.models import Page
from sidecar.ports.migrations import Migration
from sidecar.ports.postgres import PostgresDatabase
from sidecar.ports.rows import to_ts
from sidecar.ports.sealer import Sealer
from sidecar.ports.webhook_rows import endpoint_to_row, endpoints_from_rows, secret_to_row
from sidecar.webhook_models import EndpointSecret, WebhookEndpoint

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
)

_SELECT = "SELECT id, url, events, format, enabled, description, created_at FROM webhook_endpoints"
_INSERT_SEALED = (
    "INSERT INTO webhook_endpoint_secrets (endpoint_id, sealed, created_at, expires_at) VALUES ($1, $2, $3, $4)"
)


class PostgresWebhookStore:
    def __init__(self, database: PostgresDatabase, sealer: Sealer) -> None:
        self._database = database
        self._sealer = sealer

    async def insert_endpoint(self, endpoint: WebhookEndpoint) -> None:
        async with self._database.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO webhook_endpoints (id, url, events, format, enabled, description, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                *endpoint_to_row(endpoint),
            )
            for secret in reversed(endpoint.secrets):
                await conn.execute(_INSERT_SEALED, *secret_to_row(self._sealer, endpoint.id, secret))

    async def get_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        found = await self._fetch(_SELECT + " WHERE id = $1", endpoint_id)
        return found[0] if found else None

    async def list_endpoints(self, *, limit: int, starting_after: str | None) -> Page[WebhookEndpoint]:
        if starting_after is None:
            rows = await self._fetch(_SELECT + " ORDER BY created_at DESC, id DESC LIMIT $1", limit + 1)
        else:
            rows = await self._fetch(
                _SELECT  # noqa: S608 - fixed SQL
                + " WHERE (created_at, id) < (SELECT created_at, id FROM webhook_endpoints WHERE id = $1)"
                " ORDER BY created_at DESC, id DESC LIMIT $2",
                starting_after,
                limit + 1,
            )
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
