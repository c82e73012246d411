"""JSON shapes of our objects on the wire (never containing a key or its digest)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from sidecar.domain.rbac import Policy, matrix_json
from sidecar.domain.tokens import IssuedToken
from sidecar.models import ApiKeyRecord, Page, Principal


def iso(value: datetime | None) -> str | None:
    return None if value is None else _iso(value)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


@functools.lru_cache(maxsize=4)
def iso_at(epoch: int) -> str:
    """``iso`` of a time in seconds since the epoch: the tokens of one second share their expiry,
    so it is written once for all of them."""
    return _iso(datetime.fromtimestamp(epoch, UTC))


def issued_token_text(issued: IssuedToken) -> str:
    """``POST /v1/auth/token``'s answer, byte for byte as ``json.dumps`` writes it, but written
    directly: the token is a compact JWS, base64url segments and dots only (RFC 7515 §7.1), and the
    expiry an ISO date, so nothing needs escaping, and scanning the 1-2 KB token for characters to
    escape costs more than everything else in the answer."""
    return (
        f'{{"access_token": "{issued.token}", "token_type": "Bearer", '
        f'"expires_in": {issued.expires_in}, "expires_at": "{iso_at(issued.exp)}"}}'
    )


def key_json(record: ApiKeyRecord, now: datetime) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "api_key",
        "name": record.name,
        "type": record.type.value,
        "role": record.role,
        "environment": record.environment.value,
        "org_id": record.org_id,
        "team_id": record.team_id,
        "user_id": record.user_id,
        "permissions": list(record.permissions),
        "allowed_origins": list(record.allowed_origins),
        "prefix": record.prefix,
        "last4": record.last4,
        "display": record.display,
        "status": record.status(now),
        "created_at": iso(record.created_at),
        "expires_at": iso(record.expires_at),
        "revoked_at": iso(record.revoked_at),
        "last_used_at": iso(record.last_used_at),
        "rolled_to": record.rolled_to,
    }


def page_json(page: Page[ApiKeyRecord], now: datetime, *, url: str) -> dict[str, Any]:
    return {
        "object": "list",
        "url": url,
        "data": [key_json(r, now) for r in page.data],
        "has_more": page.has_more,
    }


def principal_json(principal: Principal, policy: Policy, *, with_matrix: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "credential_type": principal.credential_type.value,
        "role": principal.role,
        "allowed_roles": list(principal.allowed_roles),
        "scopes": list(principal.scopes),
        "org_id": principal.org_id,
        "team_id": principal.team_id,
        "user_id": principal.user_id,
        "key_id": principal.key_id,
        "key_type": principal.key_type.value if principal.key_type else None,
        "environment": principal.environment.value,
        "expires_at": iso(principal.expires_at),
    }
    if with_matrix:
        # the caller's effective row: its role's row as far as its scopes reach (restricted keys:
        # the row their scopes describe), and whether it reaches beyond its own org
        body["hasura_role"] = policy.hasura_role(principal.role)
        body["matrix"] = matrix_json(policy.effective_row(principal.role, principal.scopes))
        body["all_orgs"] = policy.all_orgs(principal.scopes)
    return body
