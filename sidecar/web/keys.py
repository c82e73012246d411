"""``/v1/api_keys``: create (the key is in this response only), list, show, revoke, roll."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt

from sidecar.domain.keys import NewKey
from sidecar.errors import InvalidRequest
from sidecar.models import Environment, KeyType
from sidecar.web.audit import RequestAudit
from sidecar.web.auth import caller
from sidecar.web.bodies import parse_body, query_int
from sidecar.web.render import key_json, page_json
from sidecar.web.state import SERVICES

routes = web.RouteTableDef()
MANAGE_SCOPE = "admin"
MAX_ROLL_OVERLAP_S = 30 * 86_400


class CreateKeyBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field("", max_length=200)
    type: KeyType = KeyType.SECRET
    role: str | None = Field(None, min_length=1, max_length=64)
    environment: Environment = Environment.LIVE
    org_id: str | None = Field(None, min_length=1, max_length=128)
    team_id: str | None = Field(None, min_length=1, max_length=128)
    user_id: str | None = Field(None, min_length=1, max_length=128)
    permissions: list[str] = Field(default_factory=list, max_length=100)
    expires_at: AwareDatetime | None = None
    allowed_origins: list[str] = Field(default_factory=list, max_length=50)

    def to_spec(self) -> NewKey:
        return NewKey(
            type=self.type,
            role=self.role,
            environment=self.environment,
            name=self.name,
            org_id=self.org_id,
            team_id=self.team_id,
            user_id=self.user_id,
            permissions=tuple(self.permissions),
            expires_at=self.expires_at,
            allowed_origins=tuple(self.allowed_origins),
        )


class RollKeyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expires_in: StrictInt = Field(0, ge=0, le=MAX_ROLL_OVERLAP_S)


def _now(request: web.Request) -> datetime:
    return request.app[SERVICES].keys.now()


@routes.post("/v1/api_keys")
async def create_key(request: web.Request) -> web.Response:
    grantor = await caller(request, scope=MANAGE_SCOPE)
    body = await parse_body(request, CreateKeyBody)
    issued = await request.app[SERVICES].keys.create(body.to_spec(), grantor=grantor)
    await RequestAudit(request, grantor).key_created(issued.record)
    return web.json_response({**key_json(issued.record, _now(request)), "key": issued.key}, status=201)


@routes.get("/v1/api_keys")
async def list_keys(request: web.Request) -> web.Response:
    viewer = await caller(request, scope=MANAGE_SCOPE)
    raw_type = request.query.get("type")
    try:
        key_type = KeyType(raw_type) if raw_type else None
    except ValueError:
        raise InvalidRequest("type must be secret, restricted or publishable", reason="bad_query") from None
    page = await request.app[SERVICES].keys.list(
        viewer=viewer,
        org_id=request.query.get("org_id") or None,
        key_type=key_type,
        limit=query_int(request, "limit", default=10, low=1, high=100),
        starting_after=request.query.get("starting_after") or None,
    )
    return web.json_response(page_json(page, _now(request), url="/v1/api_keys"))


@routes.get("/v1/api_keys/{key_id}")
async def show_key(request: web.Request) -> web.Response:
    viewer = await caller(request, scope=MANAGE_SCOPE)
    record = await request.app[SERVICES].keys.get(request.match_info["key_id"], viewer=viewer)
    return web.json_response(key_json(record, _now(request)))


@routes.delete("/v1/api_keys/{key_id}")
async def revoke_key(request: web.Request) -> web.Response:
    viewer = await caller(request, scope=MANAGE_SCOPE)
    record = await request.app[SERVICES].keys.revoke(request.match_info["key_id"], viewer=viewer)
    await RequestAudit(request, viewer).key_revoked(record)
    return web.json_response(key_json(record, _now(request)))


@routes.post("/v1/api_keys/{key_id}/roll")
async def roll_key(request: web.Request) -> web.Response:
    viewer = await caller(request, scope=MANAGE_SCOPE)
    body = await parse_body(request, RollKeyBody, optional=True)
    issued, old = await request.app[SERVICES].keys.roll(
        request.match_info["key_id"], expires_in_s=body.expires_in, viewer=viewer
    )
    await RequestAudit(request, viewer).key_rolled(old, issued.record)
    now = _now(request)
    return web.json_response(
        {**key_json(issued.record, now), "key": issued.key, "previous": key_json(old, now)}, status=201
    )
