"""The OAuth 2.0 endpoints: ``/oauth/authorize`` (pages), ``/oauth/token``, ``/oauth/revoke``,
``/oauth/introspect`` and ``/.well-known/oauth-authorization-server`` (RFC 8414).

Handlers parse, call the authorization or token endpoint, and render. Errors of the JSON
endpoints are ``OAuthError``s, which the error middleware renders in RFC 6749 §5.2 form.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote_plus, urlencode

from aiohttp import web
from authlib.common.urls import add_params_to_uri

from sidecar.domain import pkce
from sidecar.domain.oauth_authorize import AuthorizationRequest, ConsentSession, single_params
from sidecar.domain.oauth_clients import ClientAuth
from sidecar.domain.oauth_tokens import GRANT_TYPES
from sidecar.errors import AccessDenied, InvalidClient, OAuthError, OAuthInvalidRequest
from sidecar.web import oauth_pages as pages
from sidecar.web.errors import NO_STORE
from sidecar.web.observe import note
from sidecar.web.state import SERVICES, OAuthServices

routes = web.RouteTableDef()
COOKIE = "sidecar_oauth"
FORM_TYPE = "application/x-www-form-urlencoded"


def _oauth(request: web.Request) -> OAuthServices:
    oauth = request.app[SERVICES].oauth
    if oauth is None:  # the routes are mounted only when the OAuth services exist
        raise web.HTTPNotFound()
    return oauth


def issuer(request: web.Request) -> str:
    """Our public base URL (``SIDECAR_PUBLIC_URL``): the issuer of the metadata and of ``iss``."""
    return request.app[SERVICES].public_url


# --- the authorization endpoint (browser pages) -----------------------------------------------


def _error_outcome(request: web.Request, exc: OAuthError, *, status: int = 303) -> web.StreamResponse:
    """Redirect to the client only if the client and redirect URI were validated; else a page.

    Error redirects carry ``iss`` like every other authorization response (RFC 9207 §2): the
    metadata advertises ``authorization_response_iss_parameter_supported``.
    """
    note(request, reason=exc.reason)
    if exc.redirect_uri is None:
        return pages.html_response(pages.error_page(exc.message), status=400)
    params = [("error", exc.code), ("error_description", exc.message)]
    if exc.state is not None:
        params.append(("state", exc.state))
    params.append(("iss", issuer(request)))
    return _redirect(str(add_params_to_uri(exc.redirect_uri, params)), status)


def _redirect(location: str, status: int) -> web.Response:
    """302 for GET; 303 after a POST, so the browser never re-posts the form (RFC 9700 §4.11)."""
    headers = {"Location": location, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return web.Response(status=status, headers=headers)


def _cookie_secure(request: web.Request) -> bool:
    """``auto``: Secure when the request came over TLS, or when the public URL is https (TLS
    ends at a proxy in front of us, so the request itself arrives over plain HTTP)."""
    setting = _oauth(request).cookie_secure
    if setting == "auto":
        return request.secure or issuer(request).lower().startswith("https://")
    return setting == "always"


def _with_cookie(response: web.StreamResponse, request: web.Request, session: ConsentSession) -> None:
    oauth = _oauth(request)
    secure = _cookie_secure(request)
    response.set_cookie(
        COOKIE,
        oauth.authorize.seal(session),
        path="/oauth",
        httponly=True,
        secure=secure,
        samesite="Lax",  # Strict would drop the cookie on the navigation that brings the merchant here
        max_age=int((session.expires_at - request.app[SERVICES].keys.now()).total_seconds()),
    )


def _page_for(request: web.Request, auth: AuthorizationRequest, session: ConsentSession, error: str | None) -> str:
    oauth = _oauth(request)
    if session.merchant is None:
        return pages.sign_in_page(auth, session.csrf, error=error)
    view = oauth.authorize.consent_view(auth, session.merchant)
    return pages.consent_page(view, session.merchant, session.csrf, error=error)


def _render(
    request: web.Request, auth: AuthorizationRequest, session: ConsentSession, *, error: str | None = None
) -> web.Response:
    response = pages.html_response(
        _page_for(request, auth, session, error),
        status=401 if error and session.merchant is None else 200,
        form_target=pages.redirect_origin(auth.redirect_uri),
    )
    _with_cookie(response, request, session)
    return response


@routes.get("/oauth/authorize")
async def authorize_page(request: web.Request) -> web.StreamResponse:
    oauth = _oauth(request)
    try:
        auth = await oauth.authorize.validate(request.query.items())
    except OAuthError as exc:
        return _error_outcome(request, exc, status=302)
    return _render(request, auth, oauth.authorize.open_session(request.cookies.get(COOKIE)))


@routes.post("/oauth/authorize")
async def authorize_decision(request: web.Request) -> web.StreamResponse:
    oauth = _oauth(request)
    try:  # a body that is not a form is the browser's error page too, never JSON
        items = [(k, v) for k, v in (await _form(request)).items() if isinstance(v, str)]
        fields = dict(items)
        auth = await oauth.authorize.validate((k, v) for k, v in items if k in pages.REQUEST_PARAMS)
        session = oauth.authorize.open_session(request.cookies.get(COOKIE))
        oauth.authorize.check_csrf(session, fields.get("csrf"))
    except OAuthError as exc:
        return _error_outcome(request, exc)
    action = fields.get("action")
    if action == "sign_in":
        try:
            session = await oauth.authorize.sign_in(session, fields.get("credential"))
        except AccessDenied as exc:
            note(request, reason=exc.reason)
            return _render(request, auth, session, error=exc.message)
        back = _redirect("/oauth/authorize?" + urlencode(_request_params(auth)), 303)
        _with_cookie(back, request, session)
        return back
    if action == "deny":  # allowed signed out too: the user may simply cancel
        return _redirect(oauth.authorize.deny(auth, issuer=issuer(request)), 303)
    if session.merchant is None:
        return _render(request, auth, session)
    if action != "approve":
        return _render(request, auth, session, error="choose Approve or Deny")
    try:
        location = await oauth.authorize.approve(auth, session.merchant, issuer=issuer(request))
    except AccessDenied as exc:
        return _render(request, auth, session, error=exc.message)
    return _redirect(location, 303)


def _request_params(auth: AuthorizationRequest) -> list[tuple[str, str]]:
    return [
        ("response_type", "code"),
        ("client_id", auth.client.id),
        ("redirect_uri", auth.redirect_uri),
        ("scope", " ".join(auth.scopes)),
        ("state", auth.state),
        ("code_challenge", auth.code_challenge),
        ("code_challenge_method", pkce.METHOD),
    ]


@routes.get(pages.STYLESHEET_PATH)
async def stylesheet(request: web.Request) -> web.Response:
    return web.Response(
        text=pages.STYLESHEET,
        content_type="text/css",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


# --- the token, revocation and introspection endpoints (JSON) --------------------------------


async def _form(request: web.Request) -> Any:
    if request.content_type != FORM_TYPE:
        raise OAuthInvalidRequest(f"the body must be {FORM_TYPE}", reason="bad_content_type")
    try:
        return await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise OAuthInvalidRequest("the request body is too large", reason="body_too_large") from None
    except UnicodeDecodeError:
        raise OAuthInvalidRequest("the form is not valid UTF-8", reason="bad_form_encoding") from None


async def _client_form(request: web.Request) -> tuple[ClientAuth, dict[str, str]]:
    """The form (no parameter twice) and the client credentials: HTTP Basic, POST, or id only."""
    raw = await _form(request)
    form = single_params((k, v) for k, v in raw.items() if isinstance(v, str))
    header = request.headers.get("Authorization")
    if header is None:
        if "client_secret" in form:
            return ClientAuth(form.get("client_id"), form["client_secret"], "client_secret_post"), form
        return ClientAuth(form.get("client_id"), None, "none"), form
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClient("client authentication failed", reason="client_auth_scheme")
    if "client_secret" in form:
        raise OAuthInvalidRequest("use one client authentication method, not two", reason="client_auth_twice")
    try:
        client_id, sep, secret = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient("client authentication failed", reason="client_auth_malformed") from None
    if not sep:
        raise InvalidClient("client authentication failed", reason="client_auth_malformed")
    client_id, secret = unquote_plus(client_id), unquote_plus(secret)  # RFC 6749 §2.3.1
    if form.get("client_id", client_id) != client_id:
        raise OAuthInvalidRequest("client_id differs from the authenticated client", reason="client_id_mismatch")
    return ClientAuth(client_id, secret, "client_secret_basic"), form


@routes.post("/oauth/token")
async def token(request: web.Request) -> web.Response:
    oauth = _oauth(request)
    auth, form = await _client_form(request)
    client = await oauth.clients.authenticate(auth)
    return web.json_response(await oauth.tokens.token(client, form), headers=NO_STORE)


@routes.post("/oauth/revoke")
async def revoke(request: web.Request) -> web.Response:
    oauth = _oauth(request)
    auth, form = await _client_form(request)
    client = await oauth.clients.authenticate(auth)
    await oauth.tokens.revoke(client, form)
    return web.Response(status=200, headers=NO_STORE)


@routes.post("/oauth/introspect")
async def introspect(request: web.Request) -> web.Response:
    oauth = _oauth(request)
    auth, form = await _client_form(request)
    client = await oauth.clients.authenticate(auth)
    return web.json_response(await oauth.tokens.introspect(client, form), headers=NO_STORE)


@routes.get("/.well-known/oauth-authorization-server")
async def metadata(request: web.Request) -> web.Response:
    oauth = _oauth(request)
    return web.json_response(
        authorization_server_metadata(issuer(request), oauth.clients.delegable_scopes(), oauth.tokens.grant_types),
        headers={"Cache-Control": "public, max-age=300"},
    )


def authorization_server_metadata(
    base: str, scopes: tuple[str, ...], grant_types: tuple[str, ...] = GRANT_TYPES
) -> dict[str, Any]:
    """RFC 8414 §2: every endpoint, grant, PKCE method, auth method and scope we support."""
    secret_methods = ["client_secret_basic", "client_secret_post"]
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "introspection_endpoint": f"{base}/oauth/introspect",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(grant_types),
        "code_challenge_methods_supported": list(pkce.SUPPORTED_METHODS),
        "token_endpoint_auth_methods_supported": [*secret_methods, "none"],
        "revocation_endpoint_auth_methods_supported": [*secret_methods, "none"],
        "introspection_endpoint_auth_methods_supported": secret_methods,
        "scopes_supported": list(scopes),
        "authorization_response_iss_parameter_supported": True,
    }
