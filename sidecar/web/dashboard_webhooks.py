"""``/dashboard/webhook_endpoints``: where events are delivered (list, create and roll showing the
secret once, delete)."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from sidecar.domain.webhook_endpoints import MAX_EVENTS, MAX_ROLL_OVERLAP_S, IssuedSecret, NewEndpoint
from sidecar.errors import InvalidRequest, SidecarError
from sidecar.web.dashboard_page import Form, form_session, guarded, page, redirect, session_of, signed_in, text
from sidecar.web.state import SERVICES
from sidecar.web.webhook_endpoints import endpoint_json
from sidecar.webhook_models import SignatureFormat

routes = web.RouteTableDef()
PAGE_SIZE = 50
BASE = "/dashboard/webhook_endpoints"
MAX_DESCRIPTION = 500
OVERLAPS = [(0, "no time: stop it now"), (3600, "1 hour"), (86_400, "24 hours"), (MAX_ROLL_OVERLAP_S, "7 days")]


async def _render(request: web.Request, *, error: str | None = None, status: int = 200) -> web.Response:
    session = await session_of(request)
    service = request.app[SERVICES].webhook_endpoints
    cursor = request.query.get("starting_after") or None
    listing = await service.list(viewer=session.principal, limit=PAGE_SIZE, starting_after=cursor)
    endpoints = [endpoint_json(e, service.now()) for e in listing.data]
    next_query = urlencode({"starting_after": endpoints[-1]["id"]}) if listing.has_more and endpoints else ""
    return page(
        request,
        "webhook_endpoints.html",
        status=status,
        session=session,
        active="webhooks",
        endpoints=endpoints,
        next_query=next_query,
        error=error,
        notice="Webhook endpoint deleted." if request.query.get("deleted") and not error else None,
    )


@routes.get(BASE)
@guarded("webhooks")
async def endpoints_page(request: web.Request) -> web.Response:
    return await _render(request)


def _spec_from_form(form: Form) -> NewEndpoint:
    try:
        signature_format = SignatureFormat(text(form.get("format")) or SignatureFormat.STATESET.value)
    except ValueError:
        raise InvalidRequest("choose a signature format from the list", reason="bad_form") from None
    events = tuple(e.strip() for e in (text(form.get("events")) or "*").split(",") if e.strip())
    if len(events) > MAX_EVENTS:
        raise InvalidRequest(f"list at most {MAX_EVENTS} events", reason="invalid_events")
    description = (text(form.get("description")) or "").strip()
    if len(description) > MAX_DESCRIPTION:
        raise InvalidRequest(f"the description is at most {MAX_DESCRIPTION} characters", reason="bad_form")
    return NewEndpoint(
        url=(text(form.get("url")) or "").strip(),
        events=events or ("*",),
        format=signature_format,
        enabled=text(form.get("enabled")) == "yes",
        description=description,
    )


def _secret_page(request: web.Request, issued: IssuedSecret, *, heading: str, details: list[str]) -> web.Response:
    return page(
        request,
        "secret_created.html",
        status=201,
        session=signed_in(request),
        active="webhooks",
        heading=heading,
        label=f"Signing secret of {issued.endpoint.url}",
        secret=issued.secret,
        details=[f"Endpoint id: {issued.endpoint.id}", *details],
        back=BASE,
        back_label="Back to webhook endpoints",
    )


@routes.post(BASE)
@guarded("webhooks")
async def create_endpoint(request: web.Request) -> web.Response:
    session, form = await form_session(request)
    try:
        issued = await request.app[SERVICES].webhook_endpoints.create(_spec_from_form(form), grantor=session.principal)
    except SidecarError as exc:
        return await _render(request, error=exc.message, status=exc.status)
    return _secret_page(request, issued, heading="Webhook endpoint created", details=[])


def _confirm(request: web.Request, *, roll: bool, subject: str) -> web.Response:
    endpoint_id = request.match_info["endpoint_id"]
    return page(
        request,
        "confirm_action.html",
        session=signed_in(request),
        active="webhooks",
        title="Roll signing secret" if roll else "Delete webhook endpoint",
        question=(
            "A new secret signs every delivery from now on. Choose how long the old one keeps signing too."
            if roll
            else "Deleting the endpoint stops its deliveries at once. This cannot be undone."
        ),
        subject=subject,
        action=f"{BASE}/{endpoint_id}/{'roll' if roll else 'delete'}",
        button="Roll secret" if roll else "Delete endpoint",
        danger=not roll,
        cancel=BASE,
        overlap_choices=OVERLAPS if roll else [],
        overlap_default=86_400,
    )


async def _subject(request: web.Request) -> str:
    """The endpoint a confirmation page is about, if the signed-in key may manage it."""
    session = await session_of(request)
    endpoint = await request.app[SERVICES].webhook_endpoints.get(
        request.match_info["endpoint_id"], viewer=session.principal
    )
    return f"{endpoint.url} · {endpoint.id}"


@routes.get(BASE + "/{endpoint_id}/roll")
@guarded("webhooks")
async def confirm_roll(request: web.Request) -> web.Response:
    return _confirm(request, roll=True, subject=await _subject(request))


@routes.get(BASE + "/{endpoint_id}/delete")
@guarded("webhooks")
async def confirm_delete(request: web.Request) -> web.Response:
    return _confirm(request, roll=False, subject=await _subject(request))


@routes.post(BASE + "/{endpoint_id}/roll")
@guarded("webhooks")
async def roll_secret(request: web.Request) -> web.Response:
    session, form = await form_session(request)
    raw = text(form.get("expires_in")) or ""
    if not raw.isdigit():
        raise InvalidRequest("choose how long the old secret keeps signing", reason="bad_form")
    service = request.app[SERVICES].webhook_endpoints
    issued = await service.roll_secret(request.match_info["endpoint_id"], viewer=session.principal, overlap_s=int(raw))
    now = service.now()
    details = [
        f"The previous secret keeps signing until {s.expires_at:%Y-%m-%d %H:%M} UTC."
        for s in issued.endpoint.secrets[1:]
        if s.expires_at is not None and s.expires_at > now
    ]
    return _secret_page(request, issued, heading="Signing secret rolled", details=details)


@routes.post(BASE + "/{endpoint_id}/delete")
@guarded("webhooks")
async def delete_endpoint(request: web.Request) -> web.Response:
    session, _ = await form_session(request)
    await request.app[SERVICES].webhook_endpoints.delete(request.match_info["endpoint_id"], viewer=session.principal)
    raise redirect(BASE + "?deleted=1")
