"""``GET /openapi.json``: the OpenAPI 3.1 document, built from ``sidecar.web.api_spec`` at start-up.

Bodies are the handlers' own pydantic models (``model_json_schema``); nothing here is written by
hand but the error statuses each kind of operation may answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from sidecar.web import wire
from sidecar.web.api_spec import JSON, Operation, operations

routes = web.RouteTableDef()
OPENAPI_PATH = "/openapi.json"
DOCUMENT = web.AppKey("openapi_document", bytes)
_PATH_PARAM = re.compile(r"\{([a-z_]+)\}")
_REF = "#/components/schemas/{model}"
_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "bearer": [{"bearer": []}],
    "client": [{"clientBasic": []}, {}],  # or client_id/client_secret in the form, or a public client
    "metrics": [{"metricsToken": []}, {}],
    "events": [{"eventsSecret": []}],
    "page": [{"sessionCookie": []}, {}],
    "public": [{}],
}
_DESCRIPTIONS = {
    200: "OK",
    201: "Created",
    302: "Redirect",
    303: "See other",
    400: "Invalid request (body, query or form)",
    401: "Missing, invalid, expired or revoked credentials",
    403: "The credential lacks a scope (the message names it)",
    404: "No such object, or not visible to the caller",
    408: "The request body did not arrive in time",
    409: "Conflicts with the object's state",
    414: "The request line is longer than SIDECAR_LIMITS__MAX_LINE_BYTES (refused before routing)",
    429: "Over a rate limit (Retry-After)",
    431: "A header field is longer than SIDECAR_LIMITS__MAX_FIELD_BYTES, or there are more than "
    "SIDECAR_LIMITS__MAX_HEADERS (refused before routing)",
    503: "Too many requests in flight, or a dependency is down (Retry-After when overloaded)",
}


#: answered by the HTTP parser before any route is known (``sidecar/web/server.py``): always ``Error``
BEFORE_ROUTING = (414, 431)


def errors_of(op: Operation) -> list[int]:
    """The error statuses ``op`` may answer: its own, and those of its kind."""
    statuses = {400, 429, 503, *BEFORE_ROUTING, *op.errors}
    if op.body is not None:
        statuses.add(408)
    if op.auth in ("bearer", "client", "events", "metrics"):
        statuses.add(401)
    if op.auth in ("bearer", "page"):
        statuses |= {401, 403}
    if "{" in op.path:
        statuses.add(404)
    return sorted(statuses)


class _Schemas:
    """``components.schemas``: every model once, under its class name."""

    def __init__(self) -> None:
        self.found: dict[str, Any] = {}

    def ref(self, model: type[BaseModel], *, request: bool) -> dict[str, str]:
        schema = model.model_json_schema(ref_template=_REF, mode="validation" if request else "serialization")
        for name, sub in schema.pop("$defs", {}).items():
            self.found.setdefault(name, sub)
        self.found.setdefault(model.__name__, schema)
        return {"$ref": _REF.format(model=model.__name__)}


def _content(body: type[BaseModel] | str, schemas: _Schemas) -> dict[str, Any] | None:
    if isinstance(body, str):
        if not body:
            return None
        return {body: {"schema": {"type": "object"} if body == JSON else {"type": "string"}}}
    return {JSON: {"schema": schemas.ref(body, request=False)}}


def _error_content(op: Operation, schemas: _Schemas) -> dict[str, Any]:
    model = wire.OAuthError if op.auth == "client" else wire.Error
    content: dict[str, Any] = {JSON: {"schema": schemas.ref(model, request=False)}}
    if op.auth == "page" or op.path == "/oauth/authorize":
        content["text/html"] = {"schema": {"type": "string"}}
    return content


def _responses(op: Operation, schemas: _Schemas) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, body in op.ok.items():
        response: dict[str, Any] = {"description": _DESCRIPTIONS.get(status, "OK")}
        content = _content(body, schemas)
        if content is not None:
            response["content"] = content
        if status in (302, 303):
            response["headers"] = {"Location": {"schema": {"type": "string"}}}
        out[str(status)] = response
    for status in errors_of(op):
        if str(status) in out:
            continue
        content = _error_content(op, schemas) if status not in BEFORE_ROUTING else _content(wire.Error, schemas)
        response = {"description": _DESCRIPTIONS[status], "content": content}
        if status == 429:
            response["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "required": True}}
        out[str(status)] = response
    return out


def _operation(op: Operation, schemas: _Schemas) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for name in _PATH_PARAM.findall(op.path)
    ]
    params += [
        {"name": q.name, "in": "query", "required": False, "schema": dict(q.schema), "description": q.description}
        for q in op.query
    ]
    doc: dict[str, Any] = {
        "operationId": f"{op.method.lower()}{re.sub(r'[^A-Za-z0-9]+', '_', op.path)}",
        "summary": op.summary,
        "tags": [op.tag],
        "security": _SECURITY[op.auth],
        "responses": _responses(op, schemas),
    }
    if params:
        doc["parameters"] = params
    if op.body is not None:
        doc["requestBody"] = {
            "required": op.body_required,
            "content": {op.body_type: {"schema": schemas.ref(op.body, request=True)}},
        }
    return doc


def build_document(
    ops: Iterable[Operation], *, version: str, server_url: str, events_header: str = "X-Sidecar-Events-Secret"
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``ops``."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sidecar",
            "version": version,
            "description": "Auth sidecar for Hasura: API keys, session JWTs, the auth webhook, OAuth 2.0. "
            'Every error is {"error": CODE, "message": …} (OAuth endpoints: RFC 6749 §5.2).',
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.found.items())),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API key or a session JWT"},
                "clientBasic": {"type": "http", "scheme": "basic", "description": "OAuth client id and secret"},
                "metricsToken": {"type": "http", "scheme": "bearer", "description": "SIDECAR_METRICS__BEARER_TOKEN"},
                "eventsSecret": {"type": "apiKey", "in": "header", "name": events_header},
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "sidecar_session"},
            },
        },
    }


def document_bytes(*, version: str, server_url: str, events_header: str) -> bytes:
    """The app's document, serialised once at start-up."""
    document = build_document(operations(), version=version, server_url=server_url, events_header=events_header)
    return json.dumps(document).encode()


@routes.get(OPENAPI_PATH)
async def openapi(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[DOCUMENT], content_type="application/json", headers={"Cache-Control": "public, max-age=300"}
    )
