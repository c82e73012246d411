"""``POST /v1/hasura/events``: Hasura's event triggers hand us their events to deliver, signed.

Point an event trigger's webhook at this URL and add the shared-secret header to the trigger's
headers (``value_from_env``). A 200 means the event is durably queued for every subscribed
endpoint; anything else makes Hasura retry, and a retried event id is never queued twice.
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sidecar.domain.webhook_delivery import HasuraEvent
from sidecar.errors import InvalidRequest
from sidecar.web.bodies import describe, read_json
from sidecar.web.state import SERVICES

routes = web.RouteTableDef()
EVENTS_HEADER = web.AppKey("hasura_events_header", str)


class _Table(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    schema_name: str = Field(alias="schema", min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=128)


class _Trigger(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1, max_length=128)


class _Data(BaseModel):
    model_config = ConfigDict(extra="allow")
    old: dict[str, Any] | None = None
    new: dict[str, Any] | None = None


class _Event(BaseModel):
    model_config = ConfigDict(extra="allow")
    op: Literal["INSERT", "UPDATE", "DELETE", "MANUAL"]
    data: _Data


class HasuraEventBody(BaseModel):
    """Hasura's event-trigger payload (https://hasura.io/docs/latest/event-triggers/payload/)."""

    model_config = ConfigDict(extra="allow")
    id: str = Field(min_length=1, max_length=128)
    created_at: str = Field(min_length=1, max_length=64)
    trigger: _Trigger
    table: _Table
    event: _Event


def parse_event(data: Any) -> HasuraEvent:
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object", reason="body_not_object")
    try:
        body = HasuraEventBody.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(f"not a Hasura event: {describe(exc)}", reason="body_invalid") from None
    # Receivers get Hasura's payload as sent, less Hasura's own retry counters.
    payload = {k: v for k, v in data.items() if k != "delivery_info"}
    return HasuraEvent(
        id=body.id,
        trigger=body.trigger.name,
        schema=body.table.schema_name,
        table=body.table.name,
        op=body.event.op,
        payload=payload,
        old=body.event.data.old,
        new=body.event.data.new,
    )


@routes.post("/v1/hasura/events")
async def hasura_events(request: web.Request) -> web.Response:
    deliveries = request.app[SERVICES].deliveries
    deliveries.authenticate_hasura(request.headers.get(request.app[EVENTS_HEADER]))
    event = parse_event(await read_json(request))
    subscribed, queued = await deliveries.accept(event)
    return web.json_response({"event_id": event.id, "endpoints": subscribed, "queued": queued})
