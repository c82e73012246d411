"""``/dashboard``: sign-in and out, and Settings → API Keys; server-rendered, usable without JS."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, time
from urllib.parse import urlencode

from aiohttp import web

from sidecar.domain.console import ConsoleSession
from sidecar.domain.keys import NewKey
from sidecar.errors import InvalidRequest, NotFound, SidecarError
from sidecar.models import ApiKeyRecord, Environment, KeyType, Page
from sidecar.web.audit import RequestAudit
from sidecar.web.dashboard_page import (
    HERE,
    SESSION_COOKIE,
    Form,
    cookie_secure,
    form_session,
    guarded,
    page,
    redirect,
    session_of,
    text,
)
from sidecar.web.render import key_json
from sidecar.web.state import SERVICES

routes = web.RouteTableDef()
LOGIN_CSRF_COOKIE = "sidecar_login_csrf"


@routes.get("/dashboard")
async def home(request: web.Request) -> web.Response:
    raise redirect("/dashboard/api_keys")


@routes.get("/dashboard/login")
async def login_page(request: web.Request) -> web.Response:
    return _login(request)


def _login(request: web.Request, *, error: str | None = None, status: int = 200) -> web.Response:
    token = secrets.token_urlsafe(24)
    response = page(request, "login.html", csrf_token=token, error=error, status=status)
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", secure=cookie_secure(request), path="/dashboard"
    )
    return response


@routes.post("/dashboard/login")
async def login(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    form = await request.post()
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    presented = text(form.get("csrf_token")) or ""
    if not expected or not secrets.compare_digest(expected.encode(), presented.encode()):
        return _login(request, error="The form has expired; try again.", status=400)
    try:
        principal = await services.authenticator.authenticate((text(form.get("api_key")) or "").strip() or None)
        cookie = services.console.start(principal)
    except SidecarError as exc:
        return _login(request, error=exc.message, status=exc.status)
    response = redirect("/dashboard/api_keys")
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        httponly=True,
        samesite="Strict",
        secure=cookie_secure(request),
        path="/dashboard",
        max_age=services.console.ttl_s,
    )
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/dashboard")
    raise response


@routes.post("/dashboard/logout")
@guarded("keys")
async def logout(request: web.Request) -> web.Response:
    # A live session signs out only with its CSRF token (no cross-site sign-out); a stale or
    # forged cookie is simply cleared.
    services = request.app[SERVICES]
    try:
        session = await services.console.resume(request.cookies.get(SESSION_COOKIE))
    except SidecarError:
        session = None
    if session is not None:
        form = await request.post()
        services.console.check_csrf(session, text(form.get("csrf_token")))
    response = redirect("/dashboard/login")
    response.del_cookie(SESSION_COOKIE, path="/dashboard")
    raise response


async def _all_keys(request: web.Request, session: ConsoleSession) -> Page[ApiKeyRecord]:
    return await request.app[SERVICES].keys.list(
        viewer=session.principal, org_id=None, key_type=None, limit=50, starting_after=None
    )


async def _keys_page(
    request: web.Request, session: ConsoleSession, *, error: str | None = None, status: int = 200
) -> web.Response:
    services = request.app[SERVICES]
    raw_type = request.query.get("type") or None
    org = request.query.get("org_id") or None
    try:
        key_type = KeyType(raw_type) if raw_type else None
        listing = await services.keys.list(
            viewer=session.principal,
            org_id=org,
            key_type=key_type,
            limit=50,
            starting_after=request.query.get("starting_after") or None,
        )
    except ValueError:
        error = f"no key type {(raw_type or '')[:32]!r}; choose one from the list"
        listing = await _all_keys(request, session)
    except SidecarError as exc:
        error, listing = exc.message, await _all_keys(request, session)
    now = services.keys.now()
    keys = [key_json(r, now) for r in listing.data]
    next_query = ""
    if listing.has_more and keys:
        params = {k: v for k, v in request.query.items() if k != "starting_after"}
        next_query = urlencode({**params, "starting_after": keys[-1]["id"]})
    grantable = [
        r
        for r in session.principal.allowed_roles
        if r not in ("anonymous", "restricted") and services.policy.has_role(r)
    ]
    return page(
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
    return await _keys_page(request, await session_of(request))


def _spec_from_form(form: Form) -> NewKey:
    try:
        key_type = KeyType(text(form.get("type")) or "secret")
        environment = Environment(text(form.get("environment")) or "live")
    except ValueError:
        raise InvalidRequest("choose a key type and environment from the lists", reason="bad_form") from None
    expires_at = None
    raw_expiry = text(form.get("expires_at"))
    if raw_expiry:
        try:
            expires_at = datetime.combine(datetime.strptime(raw_expiry, "%Y-%m-%d").date(), time.max, tzinfo=UTC)
        except ValueError:
            raise InvalidRequest("expiry must be a date (YYYY-MM-DD)", reason="bad_form") from None
    return NewKey(
        type=key_type,
        role=(text(form.get("role")) or None) if key_type is KeyType.SECRET else None,
        environment=environment,
        name=(text(form.get("name")) or "").strip()[:200],
        permissions=tuple(p for p in form.getall("permissions", []) if isinstance(p, str)),
        expires_at=expires_at,
    )


@routes.post("/dashboard/api_keys")
@guarded("keys")
async def create_key(request: web.Request) -> web.Response:
    session, form = await form_session(request)
    services = request.app[SERVICES]
    try:
        issued = await services.keys.create(_spec_from_form(form), grantor=session.principal)
    except SidecarError as exc:
        return await _keys_page(request, session, error=exc.message, status=exc.status)
    await RequestAudit(request, session.principal).key_created(issued.record)
    return page(
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
    session = await session_of(request)
    services = request.app[SERVICES]
    key_id = request.match_info["key_id"]
    try:
        record = await services.keys.get(key_id, viewer=session.principal)
    except SidecarError as exc:
        return await _keys_page(request, session, error=exc.message, status=exc.status)
    return page(
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
@guarded("keys")
async def revoke_key(request: web.Request) -> web.Response:
    session, _ = await form_session(request)
    try:
        record = await request.app[SERVICES].keys.revoke(request.match_info["key_id"], viewer=session.principal)
    except SidecarError as exc:
        return await _keys_page(request, session, error=exc.message, status=exc.status)
    await RequestAudit(request, session.principal).key_revoked(record)
    raise redirect("/dashboard/api_keys")


@routes.post("/dashboard/api_keys/{key_id}/roll")
@guarded("keys")
async def roll_key(request: web.Request) -> web.Response:
    session, form = await form_session(request)
    services = request.app[SERVICES]
    try:
        expires_in = int(text(form.get("expires_in")) or "0")
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
    return page(
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
