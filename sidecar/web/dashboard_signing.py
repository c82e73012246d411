"""``/dashboard/signing_keys``: the JWT signing key ring (list, rotate); needs ``system:signing_keys``."""

from __future__ import annotations

from aiohttp import web

from sidecar.domain.signing_keys import KeyStatus
from sidecar.errors import SidecarError
from sidecar.web.audit import RequestAudit
from sidecar.web.dashboard_page import (
    SIGNING_KEYS_SCOPE,
    form_session,
    guarded,
    page,
    redirect,
    require_scope,
    session_of,
    text,
)
from sidecar.web.state import SERVICES
from sidecar.web.tokens import signing_key_json

routes = web.RouteTableDef()


async def _render(request: web.Request, *, error: str | None = None, status: int = 200) -> web.Response:
    session = await session_of(request)
    require_scope(session, SIGNING_KEYS_SCOPE)
    ring = request.app[SERVICES].signing_keys
    await ring.reload()
    keys = [signing_key_json(s) for s in reversed(ring.statuses())]
    rotated = request.query.get("rotated")
    notice = None
    if rotated and not error:
        fresh = next((k for k in keys if k["kid"] == rotated), None)
        if fresh is not None:
            notice = f"New signing key {fresh['kid']} added; it signs from {fresh['activates_at']}."
    return page(
        request,
        "signing_keys.html",
        status=status,
        session=session,
        active="signing_keys",
        keys=keys,
        error=error,
        notice=notice,
        delay_s=ring.timing.activation_delay.total_seconds(),
    )


@routes.get("/dashboard/signing_keys")
@guarded("signing_keys")
async def signing_keys_page(request: web.Request) -> web.Response:
    return await _render(request)


@routes.post("/dashboard/signing_keys/rotate")
@guarded("signing_keys")
async def rotate(request: web.Request) -> web.Response:
    session, form = await form_session(request)
    require_scope(session, SIGNING_KEYS_SCOPE)
    immediate = text(form.get("immediate")) == "yes"
    try:
        status: KeyStatus = await request.app[SERVICES].signing_keys.rotate(immediate=immediate)
    except SidecarError as exc:  # managed in settings, or a rotation already in progress
        return await _render(request, error=exc.message, status=exc.status)
    await RequestAudit(request, session.principal).signing_key_rotated(status, immediate=immediate)
    raise redirect(f"/dashboard/signing_keys?rotated={status.key.material.kid}")
