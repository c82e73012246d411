"""The one place where exceptions become HTTP responses: ``{"error": CODE, "message": …}``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from sidecar.errors import (
    InvalidClient,
    InvalidRequest,
    NotFound,
    OAuthError,
    Overloaded,
    RateLimited,
    RequestTimeout,
    SidecarError,
)
from sidecar.web.observe import note

log = logging.getLogger("sidecar.web")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES = {
    400: "INVALID_REQUEST",
    401: "UNAUTHENTICATED",
    403: "INSUFFICIENT_PERMISSIONS",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "INVALID_REQUEST",
    429: "RATE_LIMITED",
}


#: RFC 6749 §5.1: token responses, and errors of the token endpoint, are never cached
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error_response(error: OAuthError) -> web.Response:
    """RFC 6749 §5.2: ``{"error", "error_description"}``; ``invalid_client`` is a 401 with a challenge."""
    headers = dict(NO_STORE)
    if isinstance(error, InvalidClient):
        headers["WWW-Authenticate"] = 'Basic realm="sidecar"'
    body = {"error": error.code, "error_description": error.message}
    return web.json_response(body, status=error.status, headers=headers)


def error_response(error: SidecarError) -> web.Response:
    if isinstance(error, OAuthError):
        return oauth_error_response(error)
    headers = {}
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after)
        if error.limit is not None:
            headers["RateLimit-Limit"] = str(error.limit)
            headers["RateLimit-Remaining"] = str(error.remaining)
            headers["RateLimit-Reset"] = str(error.reset if error.reset is not None else error.retry_after)
    if isinstance(error, Overloaded):
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, RequestTimeout):
        headers["Connection"] = "close"  # the rest of the body may still be on its way
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="sidecar"'
    return web.json_response({"error": error.code, "message": error.message}, status=error.status, headers=headers)


def failed_response(error: SidecarError, path: str) -> web.Response:
    """What a handler's ``SidecarError`` answers; a 5xx one is logged by its reason, never its detail."""
    if error.status >= 500:
        log.error("request failed: %s (%s)", error.reason, path)
    return error_response(error)


def unhandled_response(method: str, path: str) -> web.Response:
    """A 500 for an exception no handler expected; call it in the ``except`` block, which it logs."""
    log.exception("unhandled error on %s %s", method, path)
    return web.json_response({"error": "SERVER_ERROR", "message": "internal error; see the server log"}, status=500)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except SidecarError as exc:
        note(request, reason=exc.reason)
        return failed_response(exc, request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            return error_response(NotFound(f"no route for {request.method} {request.path}", reason="no_route"))
        if exc.status == 413:
            return error_response(
                InvalidRequest("the request body is larger than the allowed size", reason="body_too_large")
            )
        code = _HTTP_CODES.get(exc.status, "INVALID_REQUEST" if exc.status < 500 else "SERVER_ERROR")
        return web.json_response({"error": code, "message": exc.reason}, status=exc.status, headers=_allow_header(exc))
    except Exception:
        return unhandled_response(request.method, request.path)


def _allow_header(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}
