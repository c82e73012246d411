"""The consent pages: server-rendered HTML, no script, one same-origin stylesheet.

Every value is HTML-escaped. Every page is sent with a Content-Security-Policy that allows
nothing but our stylesheet and forms posting back to us (plus, on the consent page, the
client's redirect origin: browsers apply ``form-action`` to the redirect that follows a form
post, so without it the 303 back to the partner would be blocked).
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from urllib.parse import urlsplit

from aiohttp import web

from sidecar.domain.oauth_authorize import AuthorizationRequest, ConsentView, Merchant

STYLESHEET_PATH = "/oauth/assets/consent.css"
STYLESHEET = """
body { font: 16px/1.5 system-ui, sans-serif; background: #f6f7f9; color: #1a1f36; margin: 0; }
main { max-width: 28rem; margin: 4rem auto; background: #fff; padding: 2rem; border-radius: 8px;
       box-shadow: 0 1px 3px rgba(0,0,0,.12); }
h1 { font-size: 1.25rem; margin-top: 0; }
ul { padding-left: 1.25rem; }
li code { font-size: .85em; color: #697386; }
label { display: block; margin: 1rem 0 .25rem; font-weight: 600; }
input[type=password] { width: 100%; box-sizing: border-box; padding: .5rem; font: inherit; }
.actions { display: flex; gap: .75rem; margin-top: 1.5rem; }
button { font: inherit; padding: .5rem 1.25rem; border-radius: 6px; border: 1px solid #c1c9d2;
         background: #fff; cursor: pointer; }
button.primary { background: #635bff; border-color: #635bff; color: #fff; }
.error { background: #fdecea; color: #a4232b; padding: .75rem; border-radius: 6px; }
.muted { color: #697386; font-size: .9rem; }
"""
#: the authorization request's own parameters, carried through the forms as hidden fields
REQUEST_PARAMS = (
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
)


def _csp(extra_form_action: str | None) -> str:
    form_action = "'self'" + (f" {extra_form_action}" if extra_form_action else "")
    return (
        "default-src 'none'; style-src 'self'; img-src 'self'; "
        f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )


def redirect_origin(uri: str) -> str | None:
    """The CSP source that lets a form's redirect reach ``uri``: its origin, or a private scheme."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    if parts.scheme:
        return f"{parts.scheme}:"
    return None


def html_response(body: str, *, status: int = 200, form_target: str | None = None) -> web.Response:
    return web.Response(
        text=body,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": _csp(form_target),
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )


def _page(title: str, content: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{escape(title)}</title><link rel="stylesheet" href="{STYLESHEET_PATH}"></head>'
        f"<body><main>{content}</main></body></html>\n"
    )


def _hidden(request: AuthorizationRequest, csrf: str) -> str:
    values = {
        "client_id": request.client.id,
        "redirect_uri": request.redirect_uri,
        "response_type": "code",
        "scope": " ".join(request.scopes),
        "state": request.state,
        "code_challenge": request.code_challenge,
        "code_challenge_method": "S256",
        "csrf": csrf,
    }
    return "".join(f'<input type="hidden" name="{k}" value="{escape(v)}">' for k, v in values.items())


def _error_box(message: str | None) -> str:
    return f'<p class="error" role="alert">{escape(message)}</p>' if message else ""


def error_page(message: str) -> str:
    """An authorization request we cannot trust enough to redirect: tell the user, not the client."""
    return _page(
        "Authorization error",
        "<h1>This authorization request is not valid</h1>"
        f"{_error_box(message)}"
        '<p class="muted">The application that sent you here is misconfigured. '
        "Nothing was shared with it. You can close this page.</p>",
    )


def sign_in_page(request: AuthorizationRequest, csrf: str, *, error: str | None = None) -> str:
    return _page(
        "Sign in",
        f"<h1>Sign in to continue to {escape(request.client.name)}</h1>"
        f"{_error_box(error)}"
        '<form method="post" action="/oauth/authorize">'
        f"{_hidden(request, csrf)}"
        '<label for="credential">Your secret API key or session token</label>'
        '<input type="password" id="credential" name="credential" autocomplete="off" required>'
        '<div class="actions"><button class="primary" type="submit" name="action" value="sign_in">'
        'Sign in</button><button type="submit" name="action" value="deny" formnovalidate>Cancel</button>'
        "</div></form>"
        '<p class="muted">Your key is used only to sign you in here; it is never shared with '
        f"{escape(request.client.name)}.</p>",
    )


def _scope_items(descriptions: Iterable[tuple[str, str]]) -> str:
    return "".join(f"<li>{escape(text)} <code>{escape(scope)}</code></li>" for scope, text in descriptions)


def consent_page(view: ConsentView, merchant: Merchant, csrf: str, *, error: str | None = None) -> str:
    request = view.request
    name = escape(request.client.name)
    lacking = (
        _error_box(
            "Your credential cannot grant: " + ", ".join(view.not_grantable) + ". Sign in with a key that holds it."
        )
        if view.not_grantable
        else ""
    )
    approve = (
        ""
        if view.not_grantable
        else '<button class="primary" type="submit" name="action" value="approve">Approve</button>'
    )
    return _page(
        f"Authorize {request.client.name}",
        f"<h1>{name} wants to access your account</h1>"
        f"{_error_box(error)}{lacking}"
        f"<p>Signed in as <strong>{escape(merchant.label)}</strong> in organisation "
        f"<strong>{escape(merchant.subject.org_id)}</strong>.</p>"
        f"<p>{name} will be able to:</p><ul>{_scope_items(view.scope_descriptions)}</ul>"
        '<form method="post" action="/oauth/authorize">'
        f"{_hidden(request, csrf)}"
        f'<div class="actions">{approve}<button type="submit" name="action" value="deny">Deny</button></div>'
        "</form>"
        f'<p class="muted">You will be sent back to {escape(redirect_origin(request.redirect_uri) or "")}.</p>',
    )
