"""Request parsing at the edge: JSON bodies into pydantic models, query parameters into values."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from sidecar.errors import InvalidRequest

M = TypeVar("M", bound=BaseModel)


def describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


async def read_json(request: web.Request, *, optional: bool = False) -> Any:
    """The parsed JSON body; ``None`` for an empty body when ``optional``."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise InvalidRequest("the request body is larger than the allowed size", reason="body_too_large") from None
    if not raw.strip():
        if optional:
            return None
        raise InvalidRequest("a JSON body is required", reason="body_missing")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nesting deeper than Python's stack
        raise InvalidRequest("the request body is not valid JSON", reason="body_malformed") from None
    if data is None:  # a literal ``null`` is a body, and not an object
        raise InvalidRequest("the request body must be a JSON object", reason="body_not_object")
    return data


async def parse_body(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    data = await read_json(request, optional=optional)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object", reason="body_not_object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(describe(exc), reason="body_invalid") from None


def query_int(request: web.Request, name: str, *, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer", reason="bad_query") from None
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be between {low} and {high}", reason="bad_query")
    return value
