"""Hasura's JWT checks, as shared/hasura-contract.md states them, for testing tokens we issue.

Hasura cannot run here, so these functions stand in for it. Signatures are checked with joserfc
(an independent JOSE implementation, not the pyjwt that signs) against a JWKS fetched over HTTP and
cached the way Hasura v2 caches it (§3.5, §3.6). Each rule cites its section; a broken rule raises
``HasuraRejects`` with the code Hasura would answer with.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestClient
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey

V2_NAMESPACE = "https://hasura.io/jwt/claims"
V3_NAMESPACE = "claims.jwt.hasura.io"
ALGORITHMS = ["RS256", "ES256", "EdDSA", "HS256"]
_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*(\d+)", re.IGNORECASE)


class HasuraRejects(AssertionError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def _reject_unless(condition: bool, code: str, message: str) -> None:
    if not condition:
        raise HasuraRejects(code, message)


@dataclass
class JwksCache:
    """Hasura v2's JWKS cache: fetched, then refetched once ``Cache-Control: max-age`` has passed (§3.6)."""

    client: TestClient[Any, Any]
    path: str = "/.well-known/jwks.json"
    keys: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    expires_at: float | None = None
    fetches: int = 0

    async def refresh(self, now: float) -> None:
        if self.fetches and (self.expires_at is None or now < self.expires_at):
            return
        resp = await self.client.get(self.path)
        _reject_unless(200 <= resp.status < 300, "fatal", f"non-2xx response on fetching JWK: {resp.status}")
        self.keys = json.loads(await resp.read())
        match = _MAX_AGE.search(resp.headers.get("Cache-Control", ""))
        # no usable expiry: Hasura never fetches again (§3.6, pitfall 12)
        self.expires_at = now + int(match.group(1)) if match else None
        self.fetches += 1

    def key_set(self) -> KeySet:
        return KeySet.import_key_set(self.keys)

    def kids(self) -> set[str]:
        return {k["kid"] for k in self.keys["keys"]}


def verify_signature(token: str, keys: KeySet | OctKey, algorithm: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims, once joserfc has checked the signature with the key the ``kid`` names."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # joserfc flags "EdDSA" as superseded by RFC 9864's "Ed25519"
            decoded = jose_jwt.decode(token, keys, algorithms=[algorithm])
    except (JoseError, ValueError) as exc:
        raise HasuraRejects("invalid-jwt", f"Could not verify JWT: {exc!r}") from None
    return dict(decoded.header), dict(decoded.claims)


def _namespace_object(claims: dict[str, Any], namespace: str, claims_format: str) -> dict[str, Any]:
    """§3.11, §3.12 (v2) and §5.1 (v3): the claims object under the namespace, in its format."""
    _reject_unless(namespace in claims, "jwt-invalid-claims", f"claims key: '{namespace}' not found")
    value = claims[namespace]
    if claims_format == "stringified_json":
        _reject_unless(isinstance(value, str), "jwt-invalid-claims", "expecting a string")
        value = json.loads(value)
    _reject_unless(isinstance(value, dict), "jwt-invalid-claims", "expecting a json object")
    return dict(value)


def _role_claims(session: dict[str, Any]) -> tuple[str, list[str]]:
    """§3.14, §3.15, §5.2: non-empty string default role, inside unique non-empty string allowed roles."""
    lower = {k.lower(): v for k, v in session.items()}
    allowed = lower.get("x-hasura-allowed-roles")
    default = lower.get("x-hasura-default-role")
    _reject_unless(allowed is not None, "jwt-missing-role-claims", "no x-hasura-allowed-roles")
    _reject_unless(default is not None, "jwt-missing-role-claims", "no x-hasura-default-role")
    _reject_unless(
        isinstance(allowed, list) and bool(allowed) and all(isinstance(r, str) and r for r in allowed),
        "jwt-invalid-claims",
        "invalid x-hasura-allowed-roles; should be a list of roles",
    )
    _reject_unless(isinstance(default, str) and bool(default), "jwt-invalid-claims", "invalid x-hasura-default-role")
    _reject_unless(len(set(allowed)) == len(allowed), "unexpected", "DuplicateAllowedRoleFound (v3: a 500)")
    _reject_unless(default in allowed, "access-denied", "Your requested role is not in allowed roles")
    return default, allowed


def _session_variables(session: dict[str, Any]) -> dict[str, str]:
    """§3.13, §3.16, §3.17: only x-hasura-* keys count; every other one must be a string; no x-hasura-role."""
    variables: dict[str, str] = {}
    for name, value in session.items():
        lower = name.lower()
        if not lower.startswith("x-hasura-") or lower in ("x-hasura-default-role", "x-hasura-allowed-roles"):
            continue
        _reject_unless(lower != "x-hasura-role", "sidecar-rule", "x-hasura-role must not be a claim (pitfall 20)")
        _reject_unless(
            isinstance(value, str),
            "jwt-invalid-claims",
            f"x-hasura-* claims: parsing Text failed, expected String, but encountered {type(value).__name__}",
        )
        variables[lower] = value
    return variables


def check_v2(
    token: str,
    jwks: JwksCache,
    *,
    now: float,
    algorithm: str = "RS256",
    hs256_secret: bytes | None = None,
    namespace: str = V2_NAMESPACE,
    claims_format: str = "json",
    issuer: str | None = None,
    audience: str | None = None,
    allowed_skew: int = 0,
) -> dict[str, str]:
    """Hasura v2 JWT mode: the session variables it would build, or ``HasuraRejects``."""
    keys: KeySet | OctKey = OctKey.import_key(hs256_secret) if hs256_secret is not None else jwks.key_set()
    _, claims = verify_signature(token, keys, algorithm)
    # §3.9 registered claim types
    for name in ("sub", "iss"):
        _reject_unless(name not in claims or isinstance(claims[name], str), "invalid-jwt", f"{name} not a string")
    for name in ("exp", "iat", "nbf"):
        value = claims.get(name, 0)
        _reject_unless(isinstance(value, int | float) and not isinstance(value, bool), "invalid-jwt", f"bad {name}")
    # §3.8 time checks at the configured skew (default 0); exp required by pitfall 9
    _reject_unless("exp" in claims, "sidecar-rule", "a token without exp never expires (pitfall 9)")
    _reject_unless(now < claims["exp"] + allowed_skew, "invalid-jwt", "JWTExpired")
    _reject_unless(claims.get("nbf", now) <= now + allowed_skew, "invalid-jwt", "JWTNotYetValid")
    _reject_unless(claims.get("iat", now) <= now + allowed_skew, "invalid-jwt", "JWTIssuedAtFuture")
    if issuer is not None and "iss" in claims:
        _reject_unless(claims["iss"] == issuer, "invalid-jwt", "JWTNotInIssuer")
    if audience is not None and "aud" in claims:
        auds = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        _reject_unless(audience in auds, "invalid-jwt", "JWTNotInAudience")
    session = _namespace_object(claims, namespace, claims_format)
    default, _ = _role_claims(session)
    return {"x-hasura-role": default, **_session_variables(session)}


def check_v3(
    token: str,
    jwks: JwksCache,
    *,
    now: float,
    algorithm: str = "RS256",
    hs256_secret: bytes | None = None,
    namespace: str = V3_NAMESPACE,
    claims_format: str = "json",
    issuer: str | None = None,
    audience: str | None = None,
    leeway: int = 60,
) -> dict[str, str]:
    """Hasura v3 (§5.1-5.3): kid required with jwkFromUrl, exp required, aud only if configured."""
    if hs256_secret is None:
        header, _ = verify_signature(token, jwks.key_set(), algorithm)
        _reject_unless("kid" in header, "400", "`kid` (Key ID) header claim not found in the header")
        _reject_unless(header["kid"] in jwks.kids(), "500", "NoMatchingJWKFound")
        _, claims = verify_signature(token, jwks.key_set(), algorithm)
    else:
        _, claims = verify_signature(token, OctKey.import_key(hs256_secret), algorithm)
    _reject_unless("exp" in claims, "400", "MissingRequiredClaim exp")
    _reject_unless(now <= claims["exp"] + leeway, "400", "ExpiredSignature")
    # the brief's stricter rule for both engines: iat never in the future, even at zero skew
    _reject_unless(claims.get("iat", now) <= now, "400", "iat in the future")
    if "iss" in claims and issuer is not None:
        _reject_unless(claims["iss"] == issuer, "400", "InvalidIssuer")
    if "aud" in claims:
        _reject_unless(audience is not None, "400", "aud present but no audience configured")
        auds = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        _reject_unless(audience in auds, "400", "InvalidAudience")
    session = _namespace_object(claims, namespace, claims_format)
    default, _ = _role_claims(session)
    return {"x-hasura-role": default, **_session_variables(session)}


def parse_pg_array(text: str) -> list[str]:
    """A one-dimensional PostgreSQL array literal (quoted or bare elements), as Hasura hands it on."""
    _reject_unless(text.startswith("{") and text.endswith("}"), "pg", f"not an array literal: {text!r}")
    body, items, i = text[1:-1], [], 0
    while i < len(body):
        if body[i] == '"':
            i += 1
            chars = []
            while body[i] != '"':
                if body[i] == "\\":
                    i += 1
                chars.append(body[i])
                i += 1
            items.append("".join(chars))
            i += 1
        else:
            end = body.find(",", i)
            end = len(body) if end < 0 else end
            items.append(body[i:end])
            i = end
        if i < len(body):
            _reject_unless(body[i] == ",", "pg", f"bad separator in {text!r}")
            i += 1
    return items
