"""What to paste into Hasura so it trusts the sidecar (shared/hasura-contract.md §1.1, §3.1, §5.1).

JWT mode: v2's ``HASURA_GRAPHQL_JWT_SECRET`` and v3's ``AuthConfig``. Webhook mode: the auth
hook settings. Hasura runs one mode or the other, never both (§1.1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

WEBHOOK_PATH = "/v1/hasura/webhook"
JWKS_PATH = "/.well-known/jwks.json"


@dataclass(frozen=True, slots=True)
class JwtPublication:
    base_url: str
    issuer: str
    audience: str | None
    claims_namespace: str
    claims_format: str
    algorithm: str
    #: HS256 only: Hasura uses the raw bytes of this string as the key (§3.2)
    hs256_secret: str | None = None


def json_pointer(key: str) -> str:
    """RFC 6901 pointer to a top-level key (v3's ``claimsConfig.namespace.location``)."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


def v2_jwt_secret(p: JwtPublication) -> dict[str, Any]:
    """The JSON object of ``HASURA_GRAPHQL_JWT_SECRET`` (§3.1): ``jwk_url``, or ``type``+``key`` for HS256."""
    secret: dict[str, Any] = (
        {"type": "HS256", "key": p.hs256_secret} if p.hs256_secret is not None else {"jwk_url": p.base_url + JWKS_PATH}
    )
    secret |= {"claims_namespace": p.claims_namespace, "claims_format": p.claims_format, "issuer": p.issuer}
    if p.audience is not None:
        secret["audience"] = p.audience
    return secret


def v3_auth_config(p: JwtPublication) -> dict[str, Any]:
    """A Hasura v3 ``AuthConfig`` object in JWT mode (§5.1, §5.3)."""
    key: dict[str, Any] = (
        {"fixed": {"algorithm": "HS256", "key": {"value": p.hs256_secret}}}
        if p.hs256_secret is not None
        else {"jwkFromUrl": p.base_url + JWKS_PATH}
    )
    jwt: dict[str, Any] = {
        "claimsConfig": {
            "namespace": {
                "claimsFormat": "StringifiedJson" if p.claims_format == "stringified_json" else "Json",
                "location": json_pointer(p.claims_namespace),
            }
        },
        "tokenLocation": {"type": "BearerAuthorization"},
        "key": key,
        "issuer": p.issuer,
    }
    if p.audience is not None:  # v3 rejects a token with aud when no audience is configured (§5.3)
        jwt["audience"] = [p.audience]
    return {"kind": "AuthConfig", "version": "v3", "definition": {"mode": {"jwt": jwt}}}


def webhook_settings(base_url: str) -> dict[str, str]:
    """Webhook mode for v2 (§1.1); never together with a JWT secret or an unauthorized role (§4.1)."""
    return {"HASURA_GRAPHQL_AUTH_HOOK": base_url + WEBHOOK_PATH, "HASURA_GRAPHQL_AUTH_HOOK_MODE": "GET"}


def hasura_config(p: JwtPublication) -> dict[str, Any]:
    secret = v2_jwt_secret(p)
    return {
        "jwt_mode": {
            "v2": {"HASURA_GRAPHQL_JWT_SECRET": json.dumps(secret, separators=(",", ":"))},
            "v3": v3_auth_config(p),
        },
        "webhook_mode": {"v2": webhook_settings(p.base_url)},
    }
