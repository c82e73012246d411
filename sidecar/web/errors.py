"""The one place where exceptions become HTTP responses: ``{"error": CODE, "message": …}``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from sidecar.errors import InvalidRequest, NotFound, RateLimited, SidecarError

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


def error_response(error: SidecarError) -> web.Response:
    headers = {}
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after)
        if error.limit is not None:
            headers["RateLimit-Limit"] = str(error.limit)
            headers["RateLimit-Remaining"] = str(error.remaining)
            headers["RateLimit-Reset"] = str(error.reset if error.reset is not None else error.retry_after)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="sidecar"'
    return web.json_response({"error": error.code, "message": error.message}, status=error.status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except SidecarError as exc:
        if exc.status >= 500:
            log.error("request failed: %s (%s)", exc.reason, request.path)
        return error_response(exc)
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
        log.exception("unhandled error on %s %s", request.method, request.path)
        return web.json_response({"error": "SERVER_ERROR", "message": "internal error; see the server log"}, status=500)


def _allow_header(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}
