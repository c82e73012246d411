"""``GET`` and ``POST /v1/hasura/webhook``: Hasura's auth webhook (hasura-contract.md §1, §2, §5.7).

An allowed request is a 200 with the session as a flat JSON object of strings; every refusal
is a 401 (the error middleware renders ``Unauthorized``), since Hasura turns any other status
into a 500 (§1.7): that includes a POST body Hasura would never send (too large, not JSON, no
``headers`` object). The one exception is a 503, when the service truly cannot decide (the key
store unreachable and nothing cached); Hasura then fails the client's request, which is right.

Every answer is counted in ``sidecar_webhook_decisions_total`` (result ``allow``, ``deny`` or
``error``; the reason; the credential type) when metrics are on, and an allowed request's log
line carries the caller's key id.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from sidecar.domain.decision import (
    NOT_SENT,
    OVER_LIMIT,
    Credentials,
    CredentialSources,
    Decider,
    FoldedHeaders,
)
from sidecar.errors import BrowserCredentialRefused, SidecarError, Unauthorized
from sidecar.metrics import Metrics
from sidecar.web.observe import note
from sidecar.web.state import METRICS

routes = web.RouteTableDef()

#: The credential type of a refusal decided before any header was read (a bad POST body).
UNREAD = "unknown"


@dataclass(frozen=True, slots=True)
class HasuraWebhook:
    decider: Decider
    sources: CredentialSources
    max_body_bytes: int
    #: where decisions are counted; ``None`` when metrics are switched off
    metrics: Metrics | None = None

    def count(self, result: str, reason: str, credential_type: str) -> None:
        if self.metrics is not None:
            self.metrics.webhook_decision(result, reason, credential_type)


HASURA_WEBHOOK = web.AppKey("hasura_webhook", HasuraWebhook)


@routes.get("/v1/hasura/webhook")
async def webhook_get(request: web.Request) -> web.Response:
    """GET mode: the client's headers arrive as this request's headers (§1.4)."""
    hook = request.app[HASURA_WEBHOOK]
    return await _answer(request, hook, Credentials.from_headers(request.headers, hook.sources), NOT_SENT)


@routes.post("/v1/hasura/webhook")
async def webhook_post(request: web.Request) -> web.Response:
    """POST mode: ``{"headers": {...}, "request": ...}`` (§2.2, §2.3; v3 sends no ``request``, §5.7)."""
    hook = request.app[HASURA_WEBHOOK]
    try:
        payload = await _read_payload(request, hook.max_body_bytes)
    except Unauthorized as exc:
        hook.count("deny", exc.reason, UNREAD)
        raise
    creds = Credentials.from_headers(FoldedHeaders(payload["headers"]), hook.sources)
    return await _answer(request, hook, creds, payload.get("request", NOT_SENT))


async def _answer(request: web.Request, hook: HasuraWebhook, creds: Credentials, operation: object) -> web.Response:
    """Decide, count the decision, and note the caller for the request's log line."""
    try:
        decision = await hook.decider.decide(creds, operation)
    except SidecarError as exc:
        hook.count("deny" if exc.status == 401 else "error", exc.reason, creds.kind)
        if isinstance(exc, BrowserCredentialRefused):
            request.app[METRICS].browser_credential_refused(exc.reason, exc.key_type)
        raise
    hook.count("allow", decision.reason, decision.principal.credential_type.value)
    note(request, principal=decision.principal, reason=OVER_LIMIT if decision.reason == OVER_LIMIT else None)
    return web.Response(body=decision.body, content_type="application/json")


def _parse_json(raw: bytes | bytearray) -> Any:
    """The body as JSON: orjson (about 4 times faster on Hasura's bodies), and the standard
    library for what orjson refuses but JSON allows (integers beyond 64 bits), so the answer
    is the same as ``json.loads``'s; ``Unauthorized`` when neither can read it."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _refuse("the request body is not valid JSON", "body_malformed") from None


def _refuse(message: str, reason: str) -> Unauthorized:
    return Unauthorized(f"{message}; Hasura never sends such a webhook call", reason=reason)


async def _read_payload(request: web.Request, limit: int) -> dict[str, Any]:
    """The JSON object body with a ``headers`` object, up to ``limit`` bytes; else ``Unauthorized``.

    POST mode carries the client's whole request, hence the limit. A body Hasura would never
    send is still a 401, not a 400: Hasura would turn a 400 into a 500 for its client (§1.7).
    """
    length = request.content_length
    if length is not None and length > limit:
        raise _refuse("the request body is larger than the allowed size", "body_too_large")
    raw: bytes | bytearray
    if length is not None:
        try:  # the webhook's own limit, not the app's client_max_size that request.read() applies
            raw = await request.content.readexactly(length)
        except asyncio.IncompleteReadError:
            raise _refuse("the request body ended before its Content-Length", "body_malformed") from None
    else:
        raw = bytearray()
        async for chunk in request.content.iter_any():  # chunked: count as it comes
            raw += chunk
            if len(raw) > limit:
                raise _refuse("the request body is larger than the allowed size", "body_too_large")
    payload = _parse_json(raw)
    if not isinstance(payload, dict):
        raise _refuse("the request body must be a JSON object", "body_not_object")
    if not isinstance(payload.get("headers"), dict):
        raise _refuse("the request body must have a 'headers' object", "webhook_headers_missing")
    return payload
