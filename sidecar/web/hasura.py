"""``GET`` and ``POST /v1/hasura/webhook``: Hasura's auth webhook (hasura-contract.md §1, §2, §5.7).

An allowed request is a 200 with the session as a flat JSON object of strings; every refusal
is a 401 (the error middleware renders ``Unauthorized``), since Hasura turns any other status
into a 500 (§1.7).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sidecar.domain.decision import NOT_SENT, Credentials, CredentialSources, Decider, Decision, FoldedHeaders
from sidecar.errors import BrowserCredentialRefused, InvalidRequest
from sidecar.web.state import METRICS

routes = web.RouteTableDef()


@dataclass(frozen=True, slots=True)
class HasuraWebhook:
    decider: Decider
    sources: CredentialSources
    max_body_bytes: int


HASURA_WEBHOOK = web.AppKey("hasura_webhook", HasuraWebhook)


@routes.get("/v1/hasura/webhook")
async def webhook_get(request: web.Request) -> web.Response:
    """GET mode: the client's headers arrive as this request's headers (§1.4)."""
    hook = request.app[HASURA_WEBHOOK]
    creds = Credentials.from_headers(request.headers, hook.sources)
    return _allow(await _decide(request, hook, creds, NOT_SENT))


@routes.post("/v1/hasura/webhook")
async def webhook_post(request: web.Request) -> web.Response:
    """POST mode: ``{"headers": {...}, "request": ...}`` (§2.2, §2.3; v3 sends no ``request``, §5.7)."""
    hook = request.app[HASURA_WEBHOOK]
    payload = await _read_payload(request, hook.max_body_bytes)
    headers = payload.get("headers")
    if not isinstance(headers, dict):
        raise InvalidRequest("the body must have a 'headers' object", reason="webhook_headers_missing")
    creds = Credentials.from_headers(FoldedHeaders(headers), hook.sources)
    return _allow(await _decide(request, hook, creds, payload.get("request", NOT_SENT)))


async def _decide(request: web.Request, hook: HasuraWebhook, creds: Credentials, body: object) -> Decision:
    try:
        return await hook.decider.decide(creds, body)
    except BrowserCredentialRefused as exc:
        request.app[METRICS].browser_credential_refused(exc.reason, exc.key_type)
        raise


def _allow(decision: Decision) -> web.Response:
    return web.Response(body=decision.body, content_type="application/json")


async def _read_payload(request: web.Request, limit: int) -> dict[str, Any]:
    """The JSON object body, up to ``limit`` bytes (POST mode carries the client's whole request)."""
    if request.content_length is not None and request.content_length > limit:
        raise InvalidRequest("the request body is larger than the allowed size", reason="body_too_large")
    raw = bytearray()
    async for chunk in request.content.iter_any():
        raw += chunk
        if len(raw) > limit:
            raise InvalidRequest("the request body is larger than the allowed size", reason="body_too_large")
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("the request body is not valid JSON", reason="body_malformed") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("the request body must be a JSON object", reason="body_not_object")
    return payload
