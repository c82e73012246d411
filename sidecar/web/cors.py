"""CORS (the Fetch standard's CORS protocol) on the endpoints a browser calls.

Only ``BROWSER_ROUTES`` take part. A preflight (``OPTIONS`` with ``Access-Control-Request-Method``)
is answered from the configured origins alone, since it carries no credential; the real request's
answer names the origin only if it is configured, and the credential it carries is then checked
against that origin (``sidecar.domain.origins``). No ``Access-Control-Allow-Credentials``: these
endpoints take bearer headers, never cookies, so a browser never sends ambient credentials here.

A small module of our own rather than aiohttp-cors: four routes, the per-key decision needs the
authenticated credential (aiohttp-cors decides from the origin alone), and refusals must be our
JSON errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from sidecar.domain.origins import BrowserOrigins, request_origin
from sidecar.errors import CorsRefused

#: path → the methods a browser may use on it
BROWSER_ROUTES: dict[str, tuple[str, ...]] = {
    "/v1/auth/token": ("POST",),
    "/v1/auth/validate": ("GET", "HEAD"),
    "/v1/auth/permissions": ("GET",),
    "/oauth/token": ("POST",),
}
ALLOWED_HEADERS = ("authorization", "content-type", "x-request-id")
EXPOSED_HEADERS = (
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "Retry-After",
    "WWW-Authenticate",
    "X-Request-Id",
)


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    origins: BrowserOrigins
    max_age_s: int


CORS = web.AppKey("cors", CorsPolicy)
routes = web.RouteTableDef()


def origin_of(request: web.Request) -> str | None:
    """The browser origin the request came from (``None``: not from a browser page)."""
    return request_origin(request.headers.get("Origin"))


async def preflight(request: web.Request) -> web.Response:
    """``OPTIONS``: 204 with what may be sent, or 403 ``ORIGIN_NOT_ALLOWED`` (the browser then stops)."""
    policy = request.app[CORS]
    methods = BROWSER_ROUTES.get(request.path, ())
    origin = origin_of(request)
    method = request.headers.get("Access-Control-Request-Method", "").strip()
    if origin is None or not method:
        return web.Response(status=204, headers={"Allow": ", ".join((*methods, "OPTIONS")), "Vary": "Origin"})
    if not policy.origins.allows(origin):
        raise CorsRefused("this origin may not call this endpoint from a browser", reason="cors_origin_refused")
    if method not in methods:
        raise CorsRefused(f"a browser may not use {method[:16]} on this endpoint", reason="cors_method_refused")
    asked = [h.strip().lower() for h in request.headers.get("Access-Control-Request-Headers", "").split(",")]
    refused = sorted({h for h in asked if h and h not in ALLOWED_HEADERS})
    if refused:
        raise CorsRefused(
            f"a browser may not send these headers here: {', '.join(refused)[:200]}", reason="cors_header_refused"
        )
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": ", ".join(methods),
            "Access-Control-Allow-Headers": ", ".join(ALLOWED_HEADERS),
            "Access-Control-Max-Age": str(policy.max_age_s),
            "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        },
    )


for _path in BROWSER_ROUTES:
    routes.options(_path)(preflight)


def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Before a response goes out (``on_response_prepare``, see ``sidecar.app``): ``Vary: Origin``
    on every browser route, and the origin when it is allowed.

    Error answers get them too, so a page can read why it was refused.
    """
    if request.path not in BROWSER_ROUTES or request.method == "OPTIONS":
        return
    vary = response.headers.get("Vary")
    if vary is None:
        response.headers["Vary"] = "Origin"
    elif "origin" not in vary.lower():
        response.headers["Vary"] = f"{vary}, Origin"
    origin = origin_of(request)
    if origin is not None and request.app[CORS].origins.allows(origin):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
