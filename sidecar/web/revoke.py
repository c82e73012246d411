"""``POST /v1/auth/revoke``: revoke a session JWT before it expires (the webhook then refuses it).

``{"token": "<jwt>"}`` revokes that token: whoever holds a token may revoke it (as RFC 7009's
revocation endpoint allows), and its own expiry bounds the entry. ``{"jti": "tok_…"}`` revokes a
token by id without holding it, which needs the ``admin`` scope.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sidecar.errors import TokenExpired, Unavailable
from sidecar.web.auth import caller
from sidecar.web.bodies import parse_body
from sidecar.web.render import iso
from sidecar.web.state import SERVICES

routes = web.RouteTableDef()
REVOKE_BY_ID_SCOPE = "admin"


class RevokeBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    token: str | None = Field(None, min_length=1, max_length=16_384)
    jti: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def one_of(self) -> RevokeBody:
        if (self.token is None) == (self.jti is None):
            raise ValueError("send exactly one of token or jti")
        return self


@routes.post("/v1/auth/revoke")
async def revoke_token(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    body = await parse_body(request, RevokeBody)
    revocations = services.revocations
    if revocations is None:
        raise Unavailable("token revocation is not available", reason="revocations_unavailable")
    if body.jti is not None:
        await caller(request, scope=REVOKE_BY_ID_SCOPE)
        until = await revocations.revoke_token(body.jti)
        return web.json_response({"revoked": True, "jti": body.jti, "until": iso(until)})
    assert body.token is not None
    try:
        principal = services.tokens.verify_now(body.token)
    except TokenExpired:
        return web.json_response({"revoked": True, "jti": None, "until": None})  # nothing left to revoke
    assert principal.token_id is not None
    until = await revocations.revoke_token(principal.token_id, principal.expires_at)
    return web.json_response({"revoked": True, "jti": principal.token_id, "until": iso(until)})
