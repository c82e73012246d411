"""``/dashboard``: the operator's pages (Settings → API Keys), server-rendered, usable without JS."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from sidecar.domain.console import ConsoleSession
from sidecar.domain.keys import NewKey
from sidecar.errors import InvalidRequest, NotFound, SidecarError
from sidecar.models import Environment, KeyType
from sidecar.web.audit import RequestAudit
from sidecar.web.render import key_json
from sidecar.web.state import SERVICES

routes = web.RouteTableDef()
SESSION_COOKIE = "sidecar_session"
LOGIN_CSRF_COOKIE = "sidecar_login_csrf"
HERE = Path(__file__).parent
TEMPLATES = web.AppKey("dashboard_templates", jinja2.Environment)
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


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["short"] = lambda value: value[:16].replace("T", " ") if value else "—"
    return env


def _page(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    context.setdefault("error", None)
    context.setdefault("session", None)
    context.setdefault("active", "keys")
    body = request.app[TEMPLATES].get_template(template).render(**context)
    return web.Response(text=body, status=status, content_type="text/html", headers=SECURITY_HEADERS)


def _redirect(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location, headers=SECURITY_HEADERS)


async def _session(request: web.Request) -> ConsoleSession:
    """The signed-in session, or a redirect to the sign-in page."""
    try:
        return await request.app[SERVICES].console.resume(request.cookies.get(SESSION_COOKIE))
    except SidecarError:
        raise _redirect("/dashboard/login") from None


async def _form_session(request: web.Request) -> tuple[ConsoleSession, Any]:
    session = await _session(request)
    form = await request.post()
    request.app[SERVICES].console.check_csrf(session, _text(form.get("csrf_token")))
    return session, form


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


@routes.get("/dashboard")
async def home(request: web.Request) -> web.Response:
    raise _redirect("/dashboard/api_keys")


@routes.get("/dashboard/login")
async def login_page(request: web.Request) -> web.Response:
    return _login(request)


def _login(request: web.Request, *, error: str | None = None, status: int = 200) -> web.Response:
    token = secrets.token_urlsafe(24)
    response = _page(request, "login.html", csrf_token=token, error=error, status=status)
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", secure=request.secure, path="/dashboard"
    )
    return response


@routes.post("/dashboard/login")
async def login(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    form = await request.post()
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    presented = _text(form.get("csrf_token")) or ""
    if not expected or not secrets.compare_digest(expected.encode(), presented.encode()):
        return _login(request, error="The form has expired; try again.", status=400)
    try:
        principal = await services.authenticator.authenticate((_text(form.get("api_key")) or "").strip() or None)
        cookie = services.console.start(principal)
    except SidecarError as exc:
        return _login(request, error=exc.message, status=exc.status)
    response = _redirect("/dashboard/api_keys")
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/dashboard",
        max_age=services.console.ttl_s,
    )
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/dashboard")
    raise response


@routes.post("/dashboard/logout")
async def logout(request: web.Request) -> web.Response:
    # Signing out needs no valid session or form: it only clears this browser's cookie.
    response = _redirect("/dashboard/login")
    response.del_cookie(SESSION_COOKIE, path="/dashboard")
    raise response


async def _keys_page(
    request: web.Request, session: ConsoleSession, *, error: str | None = None, status: int = 200
) -> web.Response:
    services = request.app[SERVICES]
    raw_type = request.query.get("type") or None
    org = request.query.get("org_id") or None
    try:
        key_type = KeyType(raw_type) if raw_type else None
        page = await services.keys.list(
            viewer=session.principal,
            org_id=org,
            key_type=key_type,
            limit=50,
            starting_after=request.query.get("starting_after") or None,
        )
    except (ValueError, SidecarError) as exc:
        error = getattr(exc, "message", "invalid filter")
        page = await services.keys.list(
            viewer=session.principal, org_id=None, key_type=None, limit=50, starting_after=None
        )
    now = services.keys.now()
    keys = [key_json(r, now) for r in page.data]
    next_query = ""
    if page.has_more and keys:
        params = {k: v for k, v in request.query.items() if k != "starting_after"}
        next_query = urlencode({**params, "starting_after": keys[-1]["id"]})
    grantable = [
        r
        for r in session.principal.allowed_roles
        if r not in ("anonymous", "restricted") and services.policy.has_role(r)
    ]
    return _page(
        request,
        "keys.html",
        status=status,
        session=session,
        active="keys",
        keys=keys,
        key_types=[t.value for t in KeyType],
        filter_type=raw_type,
        filter_org=org,
        next_cursor=bool(next_query),
        next_query=next_query,
        grantable_roles=grantable,
        scopes=list(services.policy.model.scopes.items()),
        error=error,
    )


@routes.get("/dashboard/api_keys")
async def keys_page(request: web.Request) -> web.Response:
    return await _keys_page(request, await _session(request))


def _spec_from_form(form: Any) -> NewKey:
    try:
        key_type = KeyType(_text(form.get("type")) or "secret")
        environment = Environment(_text(form.get("environment")) or "live")
    except ValueError:
        raise InvalidRequest("choose a key type and environment from the lists", reason="bad_form") from None
    expires_at = None
    raw_expiry = _text(form.get("expires_at"))
    if raw_expiry:
        try:
            expires_at = datetime.combine(datetime.strptime(raw_expiry, "%Y-%m-%d").date(), time.max, tzinfo=UTC)
        except ValueError:
            raise InvalidRequest("expiry must be a date (YYYY-MM-DD)", reason="bad_form") from None
    return NewKey(
        type=key_type,
        role=(_text(form.get("role")) or None) if key_type is KeyType.SECRET else None,
        environment=environment,
        name=(_text(form.get("name")) or "").strip()[:200],
        permissions=tuple(p for p in form.getall("permissions", []) if isinstance(p, str)),
        expires_at=expires_at,
    )


@routes.post("/dashboard/api_keys")
async def create_key(request: web.Request) -> web.Response:
    session, form = await _form_session(request)
    services = request.app[SERVICES]
    try:
        issued = await services.keys.create(_spec_from_form(form), grantor=session.principal)
    except SidecarError as exc:
        return await _keys_page(request, session, error=exc.message, status=exc.status)
    await RequestAudit(request, session.principal).key_created(issued.record)
    return _page(
        request,
        "key_created.html",
        status=201,
        session=session,
        heading="Your new key",
        key=key_json(issued.record, services.keys.now()),
        secret=issued.key,
        previous=None,
    )


async def _confirm(request: web.Request, *, roll: bool) -> web.Response:
    session = await _session(request)
    services = request.app[SERVICES]
    key_id = request.match_info["key_id"]
    try:
        record = await services.keys.get(key_id, viewer=session.principal)
    except SidecarError as exc:
        return await _keys_page(request, session, error=exc.message, status=exc.status)
    return _page(
        request,
        "confirm.html",
        session=session,
        key=key_json(record, services.keys.now()),
        roll=roll,
        title="Roll key" if roll else "Revoke key",
        question=(
            "A new key replaces this one. Choose how long the old key keeps working."
            if roll
            else "Revoking stops this key at once, everywhere. This cannot be undone."
        ),
        button="Roll key" if roll else "Revoke key",
        action=f"/dashboard/api_keys/{key_id}/{'roll' if roll else 'revoke'}",
    )


@routes.get("/dashboard/api_keys/{key_id}/revoke")
async def confirm_revoke(request: web.Request) -> web.Response:
    return await _confirm(request, roll=False)


@routes.get("/dashboard/api_keys/{key_id}/roll")
async def confirm_roll(request: web.Request) -> web.Response:
    return await _confirm(request, roll=True)


@routes.post("/dashboard/api_keys/{key_id}/revoke")
async def revoke_key(request: web.Request) -> web.Response:
    session, _ = await _form_session(request)
    try:
        record = await request.app[SERVICES].keys.revoke(request.match_info["key_id"], viewer=session.principal)
    except SidecarError as exc:
        return await _keys_page(request, session, error=exc.message, status=exc.status)
    await RequestAudit(request, session.principal).key_revoked(record)
    raise _redirect("/dashboard/api_keys")


@routes.post("/dashboard/api_keys/{key_id}/roll")
async def roll_key(request: web.Request) -> web.Response:
    session, form = await _form_session(request)
    services = request.app[SERVICES]
    try:
        expires_in = int(_text(form.get("expires_in")) or "0")
        if not 0 <= expires_in <= 30 * 86_400:
            raise ValueError
        issued, old = await services.keys.roll(
            request.match_info["key_id"], expires_in_s=expires_in, viewer=session.principal
        )
    except ValueError:
        return await _keys_page(request, session, error="choose how long the old key keeps working", status=400)
    except SidecarError as exc:
        return await _keys_page(request, session, error=exc.message, status=exc.status)
    await RequestAudit(request, session.principal).key_rolled(old, issued.record)
    now = services.keys.now()
    return _page(
        request,
        "key_created.html",
        status=201,
        session=session,
        heading="Your rolled key",
        key=key_json(issued.record, now),
        secret=issued.key,
        previous=key_json(old, now),
    )


#: The dashboard's assets by name: only these files are served, and a missing one is a JSON 404.
STATIC_FILES = {path.name: path for path in (HERE / "static").iterdir() if path.is_file()}


@routes.get("/dashboard/static/{filename}")
async def static_file(request: web.Request) -> web.StreamResponse:
    path = STATIC_FILES.get(request.match_info["filename"])
    if path is None:
        raise NotFound("no such file in /dashboard/static", reason="no_file")
    headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return web.FileResponse(path, headers=headers)
