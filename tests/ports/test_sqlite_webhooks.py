"""The SQLite webhook store: secrets sealed at rest, rolls atomic, endpoints survive a reopen."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from sidecar.domain.signatures import new_secret
from sidecar.errors import ConfigError
from sidecar.ports.sealer import Sealer
from sidecar.ports.sqlite import SqliteDatabase
from sidecar.ports.sqlite_webhooks import MIGRATIONS, SqliteWebhookStore
from sidecar.webhook_models import EndpointSecret, SignatureFormat, WebhookEndpoint

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SEALER = Sealer(b"k" * 32)


def endpoint(secret: str) -> WebhookEndpoint:
    return WebhookEndpoint(
        id="we_1",
        url="https://example.com/hook",
        events=("orders_insert",),
        format=SignatureFormat.STANDARD,
        enabled=True,
        description="",
        created_at=NOW,
        org_id="org_a",
        secrets=(EndpointSecret(secret, NOW),),
    )


def files_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in directory.iterdir())


async def test_secrets_are_sealed_at_rest_and_read_back(tmp_path: Path) -> None:
    secret = new_secret()
    path = tmp_path / "db.sqlite"
    async with SqliteDatabase.open(path, MIGRATIONS) as db:
        await SqliteWebhookStore(db, SEALER).insert_endpoint(endpoint(secret))
    raw = files_bytes(tmp_path)
    assert secret.encode() not in raw
    assert secret.removeprefix("whsec_").encode() not in raw
    async with SqliteDatabase.open(path, MIGRATIONS) as db:
        found = await SqliteWebhookStore(db, SEALER).get_endpoint("we_1")
        assert found == endpoint(secret)
        with pytest.raises(ConfigError, match="master key"):
            await SqliteWebhookStore(db, Sealer(b"x" * 32)).get_endpoint("we_1")
