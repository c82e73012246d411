"""Mapping between ``ApiKeyRecord`` and the flat row both SQL adapters store.

Timestamps are stored as UNIX seconds (float) so both SQL dialects sort and compare them the same.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Protocol

from sidecar.errors import Conflict, NotFound, SidecarError
from sidecar.models import ApiKeyRecord, Environment, KeyType


class Row(Protocol):
    def __getitem__(self, key: str, /) -> Any: ...


KEY_COLUMNS = (
    "id",
    "digest",
    "prefix",
    "last4",
    "name",
    "type",
    "role",
    "environment",
    "org_id",
    "team_id",
    "user_id",
    "permissions",
    "allowed_origins",
    "created_at",
    "expires_at",
    "revoked_at",
    "last_used_at",
    "rolled_to",
)


def to_ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def from_ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def key_to_row(record: ApiKeyRecord) -> tuple[Any, ...]:
    return (
        record.id,
        record.digest,
        record.prefix,
        record.last4,
        record.name,
        record.type.value,
        record.role,
        record.environment.value,
        record.org_id,
        record.team_id,
        record.user_id,
        json.dumps(list(record.permissions)),
        json.dumps(list(record.allowed_origins)),
        to_ts(record.created_at),
        to_ts(record.expires_at),
        to_ts(record.revoked_at),
        to_ts(record.last_used_at),
        record.rolled_to,
    )


def row_to_key(row: Row) -> ApiKeyRecord:
    created = from_ts(row["created_at"])
    assert created is not None
    return ApiKeyRecord(
        id=row["id"],
        digest=row["digest"],
        prefix=row["prefix"],
        last4=row["last4"],
        name=row["name"],
        type=KeyType(row["type"]),
        role=row["role"],
        environment=Environment(row["environment"]),
        org_id=row["org_id"],
        team_id=row["team_id"],
        user_id=row["user_id"],
        permissions=tuple(json.loads(row["permissions"])),
        allowed_origins=tuple(json.loads(row["allowed_origins"])),
        created_at=created,
        expires_at=from_ts(row["expires_at"]),
        revoked_at=from_ts(row["revoked_at"]),
        last_used_at=from_ts(row["last_used_at"]),
        rolled_to=row["rolled_to"],
    )


def roll_refused(key_id: str, row: Row | None) -> SidecarError:
    """Why a key could not be rolled, given its (``rolled_to``, ``revoked_at``) row or ``None``."""
    if row is None:
        return NotFound(f"no API key with id {key_id}", reason="key_not_found")
    if row["rolled_to"] is not None:
        return Conflict(f"this key was already rolled to {row['rolled_to']}", reason="key_already_rolled")
    return Conflict("only an active key can be rolled", reason="key_not_active")
