"""The authorization endpoint's pages: validation order, errors, CSRF, cookies and headers."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sidecar.app import create_app
from sidecar.ports.clock import FrozenClock
from sidecar.settings import Settings
from tests.conftest import Bootstrap, ClientFactory
from tests.oauth_support import REDIRECT_URI, Flow, create_key, hidden_fields, query, register_client

Client = TestClient[Any, Any]


@pytest.fixture
async def http(aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock, bootstrap: Bootstrap) -> Client:
    app = create_app(settings, clock=clock, on_bootstrap=bootstrap)
    return await aiohttp_client(app)


@pytest.fixture
async def partner(http: Client, bootstrap: Bootstrap) -> dict[str, Any]:
    return await register_client(http, bootstrap.key)


@pytest.fixture
async def merchant(http: Client, bootstrap: Bootstrap) -> str:
    return await create_key(http, bootstrap.key, type="secret", role="operator")


@pytest.mark.parametrize(
    "override",
    [
        {"redirect_uri": "https://evil.example/callback"},
        {"redirect_uri": REDIRECT_URI + "/"},
        {"redirect_uri": "https://partner.example/callback?x=1"},
        {"redirect_uri": None},
        {"client_id": "oc_unknown"},
        {"client_id": None},
    ],
)
async def test_untrusted_client_or_redirect_gets_a_page_never_a_redirect(
    http: Client, partner: dict[str, Any], override: dict[str, str | None]
) -> None:
    flow = Flow(http, partner["id"])
    resp = await http.get("/oauth/authorize", params=flow.params(**override), allow_redirects=False)
    assert resp.status == 400
    assert "Location" not in resp.headers
    assert resp.content_type == "text/html"
    text = await resp.text()
    assert "evil.example" not in text
    assert "not valid" in text


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": "too-short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "orders:read inventory:write"}, "invalid_scope"),
        ({"scope": "admin"}, "invalid_scope"),
        ({"scope": None}, "invalid_scope"),
    ],
)
async def test_bad_request_from_a_trusted_client_is_redirected_with_state(
    http: Client, settings: Settings, partner: dict[str, Any], override: dict[str, str | None], error: str
) -> None:
    flow = Flow(http, partner["id"])
    resp = await http.get("/oauth/authorize", params=flow.params(**override), allow_redirects=False)
    assert resp.status == 302
    location = resp.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    answer = query(location)
    assert answer["error"] == error
    assert answer["state"] == flow.state
    assert answer["iss"] == settings.base_url()  # RFC 9207: error responses too
    assert "code" not in answer


async def test_missing_state_is_refused(http: Client, partner: dict[str, Any]) -> None:
    flow = Flow(http, partner["id"])
    resp = await http.get("/oauth/authorize", params=flow.params(state=None), allow_redirects=False)
    assert resp.status == 302
    assert query(resp.headers["Location"])["error"] == "invalid_request"


async def test_repeated_parameter_is_refused(http: Client, partner: dict[str, Any]) -> None:
    flow = Flow(http, partner["id"])
    items = [*flow.params().items(), ("scope", "orders:write")]
    resp = await http.get("/oauth/authorize", params=items, allow_redirects=False)
    assert resp.status == 400  # which scope is meant is unknowable: nothing is redirected


async def test_pages_are_locked_down(http: Client, partner: dict[str, Any]) -> None:
    flow = Flow(http, partner["id"])
    resp = await http.get("/oauth/authorize", params=flow.params())
    assert resp.status == 200
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "form-action 'self' https://partner.example" in csp
    assert "script" not in csp
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Cache-Control"] == "no-store"
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/oauth" in cookie
    assert "Secure" not in cookie  # plain HTTP and cookie_secure=auto
    html = await resp.text()
    assert "<script" not in html
    assert "http://" not in html.replace(REDIRECT_URI, "")  # no third-party assets
    css = await http.get("/oauth/assets/consent.css")
    assert css.status == 200
    assert css.content_type == "text/css"


async def test_cookie_secure_always(
    aiohttp_client: ClientFactory, make_settings: Any, clock: FrozenClock, bootstrap: Bootstrap
) -> None:
    settings = make_settings(oauth={"cookie_secure": "always"})
    http = await aiohttp_client(create_app(settings, clock=clock, on_bootstrap=bootstrap))
    partner = await register_client(http, bootstrap.key)
    resp = await http.get("/oauth/authorize", params=Flow(http, partner["id"]).params())
    assert "Secure" in resp.headers["Set-Cookie"]


async def test_cookie_secure_auto_behind_a_tls_proxy(
    aiohttp_client: ClientFactory, make_settings: Any, clock: FrozenClock, bootstrap: Bootstrap
) -> None:
    # TLS ends at the proxy: the request reaches us over plain HTTP, the public URL is https
    settings = make_settings(public_url="https://auth.example.test")
    http = await aiohttp_client(create_app(settings, clock=clock, on_bootstrap=bootstrap))
    partner = await register_client(http, bootstrap.key)
    resp = await http.get("/oauth/authorize", params=Flow(http, partner["id"]).params())
    assert resp.status == 200
    assert "Secure" in resp.headers["Set-Cookie"]


async def test_cookie_secure_never(
    aiohttp_client: ClientFactory, make_settings: Any, clock: FrozenClock, bootstrap: Bootstrap
) -> None:
    settings = make_settings(public_url="https://auth.example.test", oauth={"cookie_secure": "never"})
    http = await aiohttp_client(create_app(settings, clock=clock, on_bootstrap=bootstrap))
    partner = await register_client(http, bootstrap.key)
    resp = await http.get("/oauth/authorize", params=Flow(http, partner["id"]).params())
    assert "Secure" not in resp.headers["Set-Cookie"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"action": "approve"}', "application/json"),
        (b"action=approve", "text/plain"),
        (b"action=approve", None),
        (b"action=approve&csrf=\xff\xfe", "application/x-www-form-urlencoded"),
    ],
)
async def test_a_consent_post_that_is_not_a_form_gets_the_error_page(
    http: Client, body: bytes, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    skip = () if content_type else ("Content-Type",)
    resp = await http.post("/oauth/authorize", data=body, headers=headers, skip_auto_headers=skip)
    assert resp.status == 400
    assert resp.content_type == "text/html"
    assert "Location" not in resp.headers
    assert "form" in await resp.text()


async def test_a_token_request_that_is_not_utf8_is_an_rfc_error(http: Client) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    resp = await http.post("/oauth/token", data=b"grant_type=client_credentials&client_id=\xff", headers=form)
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_request"


async def test_consent_page_names_the_client_and_the_scopes_in_words(
    http: Client, partner: dict[str, Any], merchant: str
) -> None:
    flow = Flow(http, partner["id"], scope="orders:read customers:read")
    html = await flow.sign_in(merchant)
    assert "Partner App" in html
    assert "Read order data" in html
    assert "Read customer data" in html
    assert merchant not in html
    assert 'value="approve"' in html


async def test_deny_redirects_access_denied_with_state(http: Client, partner: dict[str, Any], merchant: str) -> None:
    flow = Flow(http, partner["id"])
    answer = await flow.decide(await flow.sign_in(merchant), "deny")
    assert answer["error"] == "access_denied"
    assert answer["state"] == flow.state
    assert "code" not in answer


async def test_csrf_token_must_match_the_session(http: Client, partner: dict[str, Any], merchant: str) -> None:
    flow = Flow(http, partner["id"])
    html = await flow.sign_in(merchant)
    form = {**hidden_fields(html), "action": "approve", "csrf": "forged"}
    resp = await http.post("/oauth/authorize", data=form, allow_redirects=False)
    assert resp.status == 400
    assert "Location" not in resp.headers
    # and a form posted without the session cookie (another site's form) fails the same way
    http.session.cookie_jar.clear()
    resp = await http.post("/oauth/authorize", data={**hidden_fields(html), "action": "approve"}, allow_redirects=False)
    assert resp.status == 400


async def test_wrong_key_and_publishable_key_cannot_sign_in(
    http: Client, partner: dict[str, Any], bootstrap: Bootstrap
) -> None:
    flow = Flow(http, partner["id"])
    publishable = await create_key(http, bootstrap.key, type="publishable")
    for credential in ("sk_live_nonsense", publishable):
        page = await http.get("/oauth/authorize", params=flow.params())
        form = {**hidden_fields(await page.text()), "credential": credential, "action": "sign_in"}
        resp = await http.post("/oauth/authorize", data=form, allow_redirects=False)
        assert resp.status == 401
        text = await resp.text()
        assert credential not in text
        assert 'name="credential"' in text


async def test_merchant_cannot_grant_scopes_it_lacks(
    http: Client, partner: dict[str, Any], bootstrap: Bootstrap
) -> None:
    viewer = await create_key(http, bootstrap.key, type="secret", role="viewer")
    flow = Flow(http, partner["id"], scope="orders:write")
    html = await flow.sign_in(viewer)
    assert "cannot grant" in html
    assert 'value="approve"' not in html
    resp = await http.post("/oauth/authorize", data={**hidden_fields(html), "action": "approve"}, allow_redirects=False)
    assert resp.status == 200
    assert "Location" not in resp.headers


async def test_discovery_lists_endpoints_grants_pkce_and_scopes(http: Client) -> None:
    resp = await http.get("/.well-known/oauth-authorization-server")
    doc = await resp.json()
    base = doc["issuer"]
    assert doc["authorization_endpoint"] == f"{base}/oauth/authorize"
    assert doc["token_endpoint"] == f"{base}/oauth/token"
    assert doc["revocation_endpoint"] == f"{base}/oauth/revoke"
    assert doc["introspection_endpoint"] == f"{base}/oauth/introspect"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert set(doc["grant_types_supported"]) == {"authorization_code", "refresh_token", "client_credentials"}
    assert "orders:read" in doc["scopes_supported"]
    assert "admin" not in doc["scopes_supported"]


async def test_cancel_on_the_sign_in_page_denies(http: Client, partner: dict[str, Any]) -> None:
    flow = Flow(http, partner["id"])
    page = await http.get("/oauth/authorize", params=flow.params())
    form = {**hidden_fields(await page.text()), "action": "deny"}
    resp = await http.post("/oauth/authorize", data=form, allow_redirects=False)
    assert resp.status == 303
    assert query(resp.headers["Location"]) == {
        "error": "access_denied",
        "state": flow.state,
        "iss": query(resp.headers["Location"])["iss"],
    }


async def test_an_applications_access_token_cannot_sign_in_to_consent(
    http: Client, partner: dict[str, Any], merchant: str
) -> None:
    flow = Flow(http, partner["id"])
    tokens = await (await flow.exchange(await flow.code(merchant), partner["client_secret"])).json()
    http.session.cookie_jar.clear()
    page = await http.get("/oauth/authorize", params=flow.params())
    form = {**hidden_fields(await page.text()), "credential": tokens["access_token"], "action": "sign_in"}
    resp = await http.post("/oauth/authorize", data=form, allow_redirects=False)
    assert resp.status == 401
    assert "not an application" in await resp.text()
