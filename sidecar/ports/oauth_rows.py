"""Mapping between the OAuth records and the flat rows both SQL adapters store."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sidecar.models import (
    AccessTokenRecord,
    AuthorizationCode,
    ClientType,
    Environment,
    OAuthClient,
    OAuthGrant,
    OAuthSubject,
    RefreshTokenRecord,
)
from sidecar.ports.rows import Row, from_ts, to_ts

CLIENT_COLUMNS = "id, name, type, secret_digest, secret_last4, redirect_uris, scopes, org_id, created_at"


def _ts(value: Any) -> datetime:
    parsed = from_ts(value)
    assert parsed is not None
    return parsed


def subject_json(subject: OAuthSubject) -> str:
    return json.dumps(
        {
            "subject": subject.subject,
            "org_id": subject.org_id,
            "environment": subject.environment.value,
            "team_id": subject.team_id,
            "user_id": subject.user_id,
        }
    )


def _subject(text: str) -> OAuthSubject:
    data = json.loads(text)
    return OAuthSubject(
        subject=data["subject"],
        org_id=data["org_id"],
        environment=Environment(data["environment"]),
        team_id=data["team_id"],
        user_id=data["user_id"],
    )


def client_from_row(row: Row) -> OAuthClient:
    return OAuthClient(
        id=row["id"],
        name=row["name"],
        type=ClientType(row["type"]),
        secret_digest=row["secret_digest"],
        secret_last4=row["secret_last4"],
        redirect_uris=tuple(json.loads(row["redirect_uris"])),
        scopes=tuple(json.loads(row["scopes"])),
        org_id=row["org_id"],
        created_at=_ts(row["created_at"]),
    )


def code_from_row(row: Row) -> AuthorizationCode:
    return AuthorizationCode(
        digest=row["digest"],
        client_id=row["client_id"],
        redirect_uri=row["redirect_uri"],
        code_challenge=row["code_challenge"],
        scopes=tuple(json.loads(row["scopes"])),
        subject=_subject(row["subject"]),
        grant_id=row["grant_id"],
        expires_at=_ts(row["expires_at"]),
        used_at=from_ts(row["used_at"]),
    )


def grant_from_row(row: Row) -> OAuthGrant:
    return OAuthGrant(
        id=row["id"],
        client_id=row["client_id"],
        scopes=tuple(json.loads(row["scopes"])),
        subject=_subject(row["subject"]),
        created_at=_ts(row["created_at"]),
        revoked_at=from_ts(row["revoked_at"]),
    )


def refresh_from_row(row: Row) -> RefreshTokenRecord:
    return RefreshTokenRecord(
        digest=row["digest"],
        grant_id=row["grant_id"],
        client_id=row["client_id"],
        issued_at=_ts(row["issued_at"]),
        expires_at=_ts(row["expires_at"]),
        used_at=from_ts(row["used_at"]),
    )


def access_from_row(row: Row) -> AccessTokenRecord:
    return AccessTokenRecord(
        jti=row["jti"],
        grant_id=row["grant_id"],
        client_id=row["client_id"],
        issued_at=_ts(row["issued_at"]),
        expires_at=_ts(row["expires_at"]),
        revoked_at=from_ts(row["revoked_at"]),
    )


def client_row(client: OAuthClient) -> tuple[Any, ...]:
    return (
        client.id,
        client.name,
        client.type.value,
        client.secret_digest,
        client.secret_last4,
        json.dumps(list(client.redirect_uris)),
        json.dumps(list(client.scopes)),
        client.org_id,
        to_ts(client.created_at),
    )


def code_row(code: AuthorizationCode) -> tuple[Any, ...]:
    return (
        code.digest,
        code.client_id,
        code.redirect_uri,
        code.code_challenge,
        json.dumps(list(code.scopes)),
        subject_json(code.subject),
        code.grant_id,
        to_ts(code.expires_at),
        to_ts(code.used_at),
    )


def grant_row(grant: OAuthGrant) -> tuple[Any, ...]:
    return (
        grant.id,
        grant.client_id,
        json.dumps(list(grant.scopes)),
        subject_json(grant.subject),
        to_ts(grant.created_at),
        to_ts(grant.revoked_at),
    )


def refresh_row(record: RefreshTokenRecord) -> tuple[Any, ...]:
    return (
        record.digest,
        record.grant_id,
        record.client_id,
        to_ts(record.issued_at),
        to_ts(record.expires_at),
        to_ts(record.used_at),
    )
