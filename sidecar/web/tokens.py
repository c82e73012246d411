"""Session JWTs on the wire: token exchange, JWKS, discovery, and the signing-key admin API."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from sidecar.domain.signing_keys import KeyRing, KeyStatus
from sidecar.domain.tokens import TokenRequest
from sidecar.models import Principal
from sidecar.web.audit import RequestAudit
from sidecar.web.auth import caller
from sidecar.web.bodies import parse_body
from sidecar.web.oauth import authorization_server_metadata
from sidecar.web.render import iso, issued_token_text
from sidecar.web.state import SERVICES, Services
from sidecar.web.turn_batch import TurnBatch

routes = web.RouteTableDef()
SIGNING_KEYS_SCOPE = "system:signing_keys"
JWKS_PATH = "/.well-known/jwks.json"
TOKEN_PATH = "/v1/auth/token"  # noqa: S105 - a URL path
_AS_HELD = TokenRequest()


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    role: str | None = Field(None, min_length=1, max_length=64)
    permissions: list[str] | None = Field(None, max_length=100)
    ttl: StrictInt | None = Field(None, ge=1, description="seconds; at most the configured lifetime")

    def to_request(self) -> TokenRequest:
        permissions = None if self.permissions is None else tuple(self.permissions)
        return TokenRequest(role=self.role, permissions=permissions, ttl_s=self.ttl)


class RotateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    immediate: StrictBool = False


#: a token is a secret: never cached (RFC 6749 §5.1 says the same of OAuth's)
TOKEN_HEADERS = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))


#: where the exchanges of one loop turn are signed together (``TurnBatch``)
TOKEN_SIGNING = web.AppKey("token_signing", TurnBatch)


async def exchange(
    services: Services, signing: TurnBatch, principal: Principal, wanted: TokenRequest = _AS_HELD
) -> str:
    """The token answer's JSON for ``principal`` (aiohttp's route and the fast lane's)."""
    await services.keys.note_token_exchange(principal)  # first: revoking the key then revokes the token
    unsigned = services.tokens.prepare_exchange(principal, wanted)
    return issued_token_text(unsigned.with_signature(await signing.run(unsigned.signature)))


@routes.post(TOKEN_PATH)
async def exchange_token(request: web.Request) -> web.Response:
    principal = await caller(request)
    # no body (the usual case) asks for nothing narrower: no model to validate
    wanted = (await parse_body(request, TokenBody, optional=True)).to_request() if request.can_read_body else _AS_HELD
    text = await exchange(request.app[SERVICES], request.app[TOKEN_SIGNING], principal, wanted)
    return web.Response(text=text, content_type="application/json", headers=dict(TOKEN_HEADERS))


def jwks_answer(ring: KeyRing) -> tuple[bytes, str]:
    """The JWKS, precomputed by the ring, and its ``Cache-Control`` (aiohttp's route and the fast lane's)."""
    return ring.view().jwks_body, f"public, max-age={ring.timing.jwks_max_age_s}"


@routes.get(JWKS_PATH)
async def jwks(request: web.Request) -> web.Response:
    body, cache_control = jwks_answer(request.app[SERVICES].signing_keys)
    return web.Response(body=body, content_type="application/json", headers={"Cache-Control": cache_control})


@routes.get("/.well-known/openid-configuration")
async def discovery(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    base = services.public_url
    algorithms = sorted({k.algorithm for k in services.signing_keys.view().verifiers.values()})
    document: dict[str, Any] = {
        "issuer": services.tokens.config.issuer,
        "jwks_uri": base + JWKS_PATH,
        "token_endpoint": base + TOKEN_PATH,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algorithms,
        "token_endpoint_auth_methods_supported": ["bearer"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "jti", "org_id", "role", "permissions"],
    }
    if services.oauth is not None:
        # the OAuth authorization server's endpoints; token_endpoint then means OAuth's, as OAuth
        # clients read it, and the API-key exchange moves to session_token_endpoint
        oauth_metadata = authorization_server_metadata(
            base, services.oauth.clients.delegable_scopes(), services.oauth.tokens.grant_types
        )
        document.update({k: v for k, v in oauth_metadata.items() if k not in ("issuer", "jwks_uri")})
        document["session_token_endpoint"] = base + TOKEN_PATH
    return web.json_response(
        document,
        headers={"Cache-Control": f"public, max-age={services.signing_keys.timing.jwks_max_age_s}"},
    )


def signing_key_json(status: KeyStatus) -> dict[str, Any]:
    key = status.key
    return {
        "object": "signing_key",
        "kid": key.material.kid,
        "alg": key.material.algorithm,
        "state": status.state.value,
        "source": key.source.value,
        "published": key.material.public_jwk is not None and status.state.value != "retired",
        "created_at": iso(key.created_at),
        "activates_at": iso(key.activates_at),
        "superseded_at": iso(status.superseded_at),
        "retires_at": iso(status.retires_at),
    }


@routes.get("/v1/signing_keys")
async def list_signing_keys(request: web.Request) -> web.Response:
    await caller(request, scope=SIGNING_KEYS_SCOPE)
    ring = request.app[SERVICES].signing_keys
    await ring.reload()
    statuses = ring.statuses()
    return web.json_response({"object": "list", "data": [signing_key_json(s) for s in reversed(statuses)]})


@routes.post("/v1/signing_keys/rotate")
async def rotate_signing_key(request: web.Request) -> web.Response:
    principal = await caller(request, scope=SIGNING_KEYS_SCOPE)
    body = await parse_body(request, RotateBody, optional=True)
    status = await request.app[SERVICES].signing_keys.rotate(immediate=body.immediate)
    await RequestAudit(request, principal).signing_key_rotated(status, immediate=body.immediate)
    return web.json_response(signing_key_json(status), status=201)
