"""``/dashboard/oauth_clients``: partners' OAuth clients (list, register showing the secret once, delete)."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from sidecar.domain.audit import Action
from sidecar.domain.oauth_clients import MAX_REDIRECT_URIS, NewClient, OAuthClientService
from sidecar.errors import InvalidRequest, NotFound, SidecarError
from sidecar.models import ClientType
from sidecar.web.dashboard_page import Form, form_session, guarded, page, redirect, session_of, text
from sidecar.web.oauth_clients import _audit as audit_client
from sidecar.web.oauth_clients import client_json
from sidecar.web.state import SERVICES

routes = web.RouteTableDef()
PAGE_SIZE = 50
BASE = "/dashboard/oauth_clients"


def _clients(request: web.Request) -> OAuthClientService:
    oauth = request.app[SERVICES].oauth
    if oauth is None:
        raise NotFound("the OAuth authorization server is not enabled on this sidecar", reason="oauth_disabled")
    return oauth.clients


async def _render(request: web.Request, *, error: str | None = None, status: int = 200) -> web.Response:
    session = await session_of(request)
    service = _clients(request)
    cursor = request.query.get("starting_after") or None
    listing = await service.list(viewer=session.principal, limit=PAGE_SIZE, starting_after=cursor)
    clients = [client_json(c) for c in listing.data]
    next_query = urlencode({"starting_after": clients[-1]["id"]}) if listing.has_more and clients else ""
    return page(
        request,
        "oauth_clients.html",
        status=status,
        session=session,
        active="oauth_clients",
        clients=clients,
        next_query=next_query,
        scopes=[(s, service.describe_scope(s)) for s in service.delegable_scopes()],
        client_types=[t.value for t in ClientType],
        max_redirect_uris=MAX_REDIRECT_URIS,
        error=error,
        notice="OAuth client deleted." if request.query.get("deleted") and not error else None,
    )


@routes.get(BASE)
@guarded("oauth_clients")
async def clients_page(request: web.Request) -> web.Response:
    return await _render(request)


def _spec_from_form(form: Form) -> NewClient:
    try:
        client_type = ClientType(text(form.get("type")) or ClientType.CONFIDENTIAL.value)
    except ValueError:
        raise InvalidRequest("choose a client type from the list", reason="bad_form") from None
    uris = [line.strip() for line in (text(form.get("redirect_uris")) or "").splitlines() if line.strip()]
    return NewClient(
        name=(text(form.get("name")) or "").strip(),
        type=client_type,
        redirect_uris=tuple(uris),
        scopes=tuple(s for s in form.getall("scopes", []) if isinstance(s, str)),
    )


@routes.post(BASE)
@guarded("oauth_clients")
async def create_client(request: web.Request) -> web.Response:
    session, form = await form_session(request)
    try:
        issued = await _clients(request).create(_spec_from_form(form), grantor=session.principal)
    except SidecarError as exc:
        return await _render(request, error=exc.message, status=exc.status)
    await audit_client(request, Action.OAUTH_CLIENT_CREATED, session.principal, issued.client)
    client = client_json(issued.client)
    details = [f"Client id: {client['id']}", f"Scopes: {', '.join(client['scopes'])}"]
    if issued.secret is None:
        details.append("Public clients have no secret: they prove themselves with PKCE.")
    return page(
        request,
        "secret_created.html",
        status=201,
        session=session,
        active="oauth_clients",
        heading=f"OAuth client {client['name']} registered",
        label=f"Client secret of {client['id']}",
        secret=issued.secret,
        details=details,
        back=BASE,
        back_label="Back to OAuth clients",
    )


@routes.get(BASE + "/{client_id}/delete")
@guarded("oauth_clients")
async def confirm_delete(request: web.Request) -> web.Response:
    session = await session_of(request)
    client = await _clients(request).get(request.match_info["client_id"], viewer=session.principal)
    return page(
        request,
        "confirm_action.html",
        session=session,
        active="oauth_clients",
        title="Delete OAuth client",
        question="Deleting the client revokes every grant and token it holds, at once. This cannot be undone.",
        subject=f"{client.name} · {client.id}",
        action=f"{BASE}/{client.id}/delete",
        button="Delete client",
        danger=True,
        cancel=BASE,
        overlap_choices=[],
        overlap_default=0,
    )


@routes.post(BASE + "/{client_id}/delete")
@guarded("oauth_clients")
async def delete_client(request: web.Request) -> web.Response:
    session, _ = await form_session(request)
    client = await _clients(request).delete(request.match_info["client_id"], viewer=session.principal)
    await audit_client(request, Action.OAUTH_CLIENT_DELETED, session.principal, client)
    raise redirect(BASE + "?deleted=1")
