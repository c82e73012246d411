"""``/dashboard/audit``: the audit trail, newest first, paginated and filtered (action, key, org, dates)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from aiohttp import web

from sidecar.domain.audit import Action
from sidecar.errors import InvalidRequest, NotFound, SidecarError
from sidecar.models import AuditQuery
from sidecar.web.audit import event_json
from sidecar.web.dashboard_page import guarded, page, session_of
from sidecar.web.state import AUDIT

routes = web.RouteTableDef()
PAGE_SIZE = 50
FILTERS = ("action", "key_id", "org_id", "since", "until")
MAX_FILTER_CHARS = 128


def _day(raw: str, name: str, *, end: bool) -> datetime:
    try:
        day = datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidRequest(f"{name} must be a date (YYYY-MM-DD)", reason="bad_query") from None
    return day + timedelta(days=1) if end else day  # "until" includes the day it names


def _query(params: dict[str, str]) -> AuditQuery:
    for name, value in params.items():
        if len(value) > MAX_FILTER_CHARS:
            raise InvalidRequest(f"{name} is at most {MAX_FILTER_CHARS} characters", reason="bad_query")
    return AuditQuery(
        limit=PAGE_SIZE,
        starting_after=params.get("starting_after") or None,
        action=params.get("action") or None,
        key_id=params.get("key_id") or None,
        org_id=params.get("org_id") or None,
        since=_day(params["since"], "since", end=False) if params.get("since") else None,
        until=_day(params["until"], "until", end=True) if params.get("until") else None,
    )


@routes.get("/dashboard/audit")
@guarded("audit")
async def audit_page(request: web.Request) -> web.Response:
    session = await session_of(request)
    audit = request.app.get(AUDIT)
    if audit is None:
        raise NotFound("the audit trail is not available on this sidecar", reason="audit_disabled")
    filters = {k: request.query.get(k, "").strip() for k in FILTERS}
    error, status = None, 200
    try:
        listing = await audit.list(
            _query({**filters, "starting_after": request.query.get("starting_after", "")}), viewer=session.principal
        )
    except SidecarError as exc:  # a bad filter, or another org's events: say so above an empty table
        error, status, listing = exc.message, exc.status, None
    events = [event_json(e) for e in listing.data] if listing else []
    next_query = ""
    if listing and listing.has_more and events:
        next_query = urlencode({**{k: v for k, v in filters.items() if v}, "starting_after": events[-1]["id"]})
    return page(
        request,
        "audit.html",
        status=status,
        session=session,
        active="audit",
        events=events,
        filters=filters,
        actions=[a.value for a in Action],
        next_query=next_query,
        error=error,
    )
