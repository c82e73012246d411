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
from collections.abc import Awaitable
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
    HeaderLookup,
)
from sidecar.errors import BrowserCredentialRefused, SidecarError, Unauthorized
from sidecar.metrics import Metrics
from sidecar.web.observe import OBSERVATION, Observation

routes = web.RouteTableDef()

WEBHOOK_PATH = "/v1/hasura/webhook"
#: The credential type of a refusal decided before any header was read (a bad POST body).
UNREAD = "unknown"


@dataclass(frozen=True, slots=True)
class HasuraWebhook:
    """The webhook's decisions, whichever HTTP path brought the call (aiohttp's routes below, or
    ``sidecar.web.fast_lane``): headers or body in, the session body out, every answer counted."""

    decider: Decider
    sources: CredentialSources
    max_body_bytes: int
    #: where decisions are counted; ``None`` when metrics are switched off
    metrics: Metrics | None = None

    def count(self, result: str, reason: str, credential_type: str) -> None:
        if self.metrics is not None:
            self.metrics.webhook_decision(result, reason, credential_type)

    def answer_get(self, headers: HeaderLookup, observation: Observation | None) -> Awaitable[bytes]:
        """GET mode: the client's headers arrive as the call's own headers (§1.4)."""
        return self._answer(Credentials.from_headers(headers, self.sources), NOT_SENT, observation)

    async def answer_post(self, body: bytes | bytearray, observation: Observation | None) -> bytes:
        """POST mode: ``{"headers": {...}, "request": ...}`` (§2.2, §2.3; v3 sends no ``request``, §5.7)."""
        try:
            payload = _payload(body, self.max_body_bytes)
        except Unauthorized as exc:
            self.count("deny", exc.reason, UNREAD)
            raise
        creds = Credentials.from_headers(FoldedHeaders(payload["headers"]), self.sources)
        return await self._answer(creds, payload.get("request", NOT_SENT), observation)

    async def _answer(self, creds: Credentials, operation: object, observation: Observation | None) -> bytes:
        """Decide, count the decision, and note the caller for the request's log line."""
        try:
            decision = await self.decider.decide(creds, operation)
        except SidecarError as exc:
            self.count("deny" if exc.status == 401 else "error", exc.reason, creds.kind)
            if isinstance(exc, BrowserCredentialRefused) and self.metrics is not None:
                self.metrics.browser_credential_refused(exc.reason, exc.key_type)
            raise
        self.count("allow", decision.reason, decision.credential_type)
        if observation is not None:
            observation.principal = decision.principal
            if decision.reason == OVER_LIMIT:
                observation.reason = OVER_LIMIT
        return decision.body


HASURA_WEBHOOK = web.AppKey("hasura_webhook", HasuraWebhook)


@routes.get(WEBHOOK_PATH)
async def webhook_get(request: web.Request) -> web.Response:
    hook = request.app[HASURA_WEBHOOK]
    body = await hook.answer_get(request.headers, request.get(OBSERVATION))
    return web.Response(body=body, content_type="application/json")


@routes.post(WEBHOOK_PATH)
async def webhook_post(request: web.Request) -> web.Response:
    hook = request.app[HASURA_WEBHOOK]
    try:
        raw = await _read_body(request, hook.max_body_bytes)
    except Unauthorized as exc:
        hook.count("deny", exc.reason, UNREAD)
        raise
    body = await hook.answer_post(raw, request.get(OBSERVATION))
    return web.Response(body=body, content_type="application/json")


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


async def _read_body(request: web.Request, limit: int) -> bytes | bytearray:
    """The body, up to ``limit`` bytes; else ``Unauthorized``.

    POST mode carries the client's whole request, hence the limit. A body Hasura would never
    send is still a 401, not a 400: Hasura would turn a 400 into a 500 for its client (§1.7).
    """
    length = request.content_length
    if length is not None and length > limit:
        raise _too_large()
    if length is not None:
        try:  # the webhook's own limit, not the app's client_max_size that request.read() applies
            return await request.content.readexactly(length)
        except asyncio.IncompleteReadError:
            raise _refuse("the request body ended before its Content-Length", "body_malformed") from None
    raw = bytearray()
    async for chunk in request.content.iter_any():  # chunked: count as it comes
        raw += chunk
        if len(raw) > limit:
            raise _too_large()
    return raw


def _too_large() -> Unauthorized:
    return _refuse("the request body is larger than the allowed size", "body_too_large")


def _payload(raw: bytes | bytearray, limit: int) -> dict[str, Any]:
    """The JSON object body with a ``headers`` object, of at most ``limit`` bytes; else ``Unauthorized``."""
    if len(raw) > limit:
        raise _too_large()
    payload = _parse_json(raw)
    if not isinstance(payload, dict):
        raise _refuse("the request body must be a JSON object", "body_not_object")
    if not isinstance(payload.get("headers"), dict):
        raise _refuse("the request body must have a 'headers' object", "webhook_headers_missing")
    return payload
