"""What every dashboard page shares: the signed-in session, CSRF checks, rendering, headers, nav.

Each page module (API keys, signing keys, OAuth clients, webhook endpoints, audit trail) renders
through the domain services the API handlers use, never through our own HTTP API.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jinja2
from aiohttp import web
from multidict import MultiDictProxy

from sidecar.domain import scopes
from sidecar.domain.console import ConsoleSession
from sidecar.errors import Forbidden, SidecarError
from sidecar.web.observe import note
from sidecar.web.state import AUDIT, SERVICES

HERE = Path(__file__).parent
SESSION_COOKIE = "sidecar_session"
TEMPLATES = web.AppKey("dashboard_templates", jinja2.Environment)
#: Secure flag on the dashboard's cookies: ``auto`` sets it when the request came over TLS.
COOKIE_SECURE = web.AppKey("dashboard_cookie_secure", str)
SIGNING_KEYS_SCOPE = "system:signing_keys"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_SESSION = web.RequestKey("dashboard_session", ConsoleSession)
Handler = Callable[[web.Request], Awaitable[web.Response]]
Form = MultiDictProxy[str | bytes | bytearray | web.FileField]
Section = Literal["keys", "signing_keys", "oauth_clients", "webhooks", "audit"]


@dataclass(frozen=True, slots=True)
class NavLink:
    section: Section
    href: str
    label: str


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["short"] = lambda value: value[:16].replace("T", " ") if value else "—"
    return env


def cookie_secure(request: web.Request) -> bool:
    choice = request.app.get(COOKIE_SECURE, "auto")
    return choice == "always" or (choice == "auto" and request.secure)


def nav_links(request: web.Request, session: ConsoleSession) -> list[NavLink]:
    """The sections this session may open: a page it lacks the scope for is not offered."""
    services = request.app[SERVICES]
    links = [NavLink("keys", "/dashboard/api_keys", "API Keys")]
    if scopes.allows(session.principal.scopes, SIGNING_KEYS_SCOPE):
        links.append(NavLink("signing_keys", "/dashboard/signing_keys", "Signing keys"))
    if services.oauth is not None:
        links.append(NavLink("oauth_clients", "/dashboard/oauth_clients", "OAuth clients"))
    links.append(NavLink("webhooks", "/dashboard/webhook_endpoints", "Webhook endpoints"))
    if request.app.get(AUDIT) is not None:
        links.append(NavLink("audit", "/dashboard/audit", "Audit trail"))
    return links


def page(
    request: web.Request,
    template: str,
    *,
    status: int = 200,
    session: ConsoleSession | None = None,
    active: Section = "keys",
    **context: Any,
) -> web.Response:
    context.setdefault("error", None)
    context.setdefault("notice", None)
    nav = nav_links(request, session) if session is not None else []
    body = request.app[TEMPLATES].get_template(template).render(session=session, active=active, nav=nav, **context)
    return web.Response(text=body, status=status, content_type="text/html", headers=SECURITY_HEADERS)


def refused(request: web.Request, exc: SidecarError, *, active: Section) -> web.Response:
    """A page this session may not open, or a form it may not send, said plainly, with the nav still there."""
    note(request, reason=exc.reason)
    session = request.get(_SESSION)
    return page(request, "refused.html", status=exc.status, session=session, active=active, error=exc.message)


def guarded(section: Section) -> Callable[[Handler], Handler]:
    """Render a page's ``SidecarError`` (missing scope, bad form, expired CSRF token) as HTML, not JSON."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def run(request: web.Request) -> web.Response:
            try:
                return await handler(request)
            except SidecarError as exc:
                return refused(request, exc, active=section)

        return run

    return wrap


def redirect(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location, headers=SECURITY_HEADERS)


async def session_of(request: web.Request) -> ConsoleSession:
    """The signed-in session, or a redirect to the sign-in page."""
    try:
        session = await request.app[SERVICES].console.resume(request.cookies.get(SESSION_COOKIE))
    except SidecarError:
        raise redirect("/dashboard/login") from None
    request[_SESSION] = session
    return session


async def form_session(request: web.Request) -> tuple[ConsoleSession, Form]:
    """The session behind a form post whose CSRF token matches; ``Unauthorized`` otherwise."""
    session = await session_of(request)
    form = await request.post()
    request.app[SERVICES].console.check_csrf(session, text(form.get("csrf_token")))
    return session, form


def signed_in(request: web.Request) -> ConsoleSession:
    """The session ``session_of`` or ``form_session`` already checked for this request."""
    return request[_SESSION]


def require_scope(session: ConsoleSession, scope: str) -> None:
    if not scopes.allows(session.principal.scopes, scope):
        raise Forbidden(
            f"the key you signed in with lacks the {scope} scope this page needs; sign in with one that holds it",
            reason="missing_scope",
        )


def text(value: object) -> str | None:
    return value if isinstance(value, str) else None
