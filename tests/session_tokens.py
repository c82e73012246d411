"""A small real session-JWT verifier (pyjwt, HS256, a generated secret) for the webhook's JWT path.

It implements ``sidecar.domain.authn.TokenVerifier`` the way the service's own verifier does its
job: signature, algorithm allowlist, ``exp`` against the injected clock. It stands in until the
service's verifier lands; it is not a mock: tokens are really signed and really checked.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from sidecar.errors import InvalidToken, TokenExpired
from sidecar.models import CredentialType, Environment, Principal
from sidecar.ports import Clock

NAMESPACE = "https://hasura.io/jwt/claims"


class HmacSessionTokens:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._secret = secrets.token_bytes(32)

    def issue(self, *, role: str, allowed: list[str], ttl_s: int = 3600, **claims: Any) -> str:
        now = self._clock.now()
        payload = {
            "sub": claims.pop("sub", "user_42"),
            "org_id": claims.pop("org_id", "org_acme"),
            "role": role,
            "permissions": claims.pop("permissions", ["orders:read"]),
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=ttl_s)).timestamp()),
            "jti": secrets.token_hex(8),
            NAMESPACE: {"x-hasura-default-role": role, "x-hasura-allowed-roles": allowed},
            **claims,
        }
        return jwt.encode(payload, self._secret, algorithm="HS256")

    async def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=["HS256"], options={"verify_exp": False, "require": ["exp", "sub"]}
            )
        except jwt.PyJWTError:
            raise InvalidToken("the token is not valid", reason="token_invalid") from None
        expires_at = datetime.fromtimestamp(claims["exp"], UTC)
        if expires_at <= self._clock.now():
            raise TokenExpired("the token has expired", reason="token_expired")
        hasura = claims[NAMESPACE]
        return Principal(
            credential_type=CredentialType.SESSION_JWT,
            subject=claims["sub"],
            org_id=claims["org_id"],
            role=hasura["x-hasura-default-role"],
            allowed_roles=tuple(hasura["x-hasura-allowed-roles"]),
            scopes=tuple(claims["permissions"]),
            environment=Environment.LIVE,
            user_id=claims["sub"],
            expires_at=expires_at,
            token_id=claims["jti"],
        )
