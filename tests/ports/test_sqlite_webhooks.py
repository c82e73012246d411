"""The SQLite webhook store: secrets sealed at rest, rolls atomic, endpoints survive a reopen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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


async def test_roll_expires_current_secrets_and_drops_expired_ones(tmp_path: Path) -> None:
    first, second, third = new_secret(), new_secret(), new_secret()
    async with SqliteDatabase.open(tmp_path / "db.sqlite", MIGRATIONS) as db:
        store = SqliteWebhookStore(db, SEALER)
        await store.insert_endpoint(endpoint(first))
        later = NOW + timedelta(hours=1)
        await store.roll_secret("we_1", EndpointSecret(second, later), later + timedelta(hours=2))
        found = await store.get_endpoint("we_1")
        assert found is not None
        assert found.signing_secrets(later) == (second, first)
        much_later = NOW + timedelta(days=1)
        await store.roll_secret("we_1", EndpointSecret(third, much_later), much_later + timedelta(hours=1))
        found = await store.get_endpoint("we_1")
        assert found is not None
        assert [s.secret for s in found.secrets] == [third, second]  # the expired first one is gone
        assert await store.delete_endpoint("we_1") is True
        assert await store.delete_endpoint("we_1") is False
        assert await store.get_endpoint("we_1") is None
