"""The authorization endpoint (RFC 6749 §4.1.1-4.1.2, RFC 7636, RFC 9700): request validation,
the merchant's sign-in session, consent, and single-use authorization codes.

Built by hand on Authlib's pieces (``authlib.oauth2.rfc7636`` for PKCE, ``add_params_to_uri``)
rather than on Authlib's ``AuthorizationServer``: its grants are synchronous and reach storage
through subclass hooks (``query_authorization_code`` …), while our stores are async; it treats
the request as a mutable bag; it accepts ``plain`` PKCE and compares with ``==``; and it reads
``AUTHLIB_INSECURE_TRANSPORT`` from the environment. Each of those is a rule of ours it breaks.

Validation order is the security property here: the client and its exact redirect URI are
checked first, and until they pass no error is ever redirected (RFC 6749 §4.1.2.1); after that,
errors go back to the client with ``state``.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from authlib.common.urls import add_params_to_uri

from sidecar.domain import pkce
from sidecar.domain import scopes as scope_rules
from sidecar.domain.authn import Authenticator, TokenVerifier
from sidecar.domain.oauth_clients import OAuthClientService, secret_digest
from sidecar.errors import (
    AccessDenied,
    ConfigError,
    InvalidClient,
    InvalidScope,
    OAuthError,
    OAuthInvalidRequest,
    SidecarError,
    UnsupportedResponseType,
)
from sidecar.models import AuthorizationCode, Environment, KeyType, OAuthClient, OAuthSubject, Principal
from sidecar.ports import Clock
from sidecar.ports.oauth import OAuthStore

SESSION_PURPOSE = "oauth-consent-session"
MAX_STATE_LENGTH = 512
MAX_SCOPE_LENGTH = 1000


class SessionSealer(Protocol):
    """Authenticated encryption for the sign-in cookie (``sidecar.ports.sealer.Sealer``)."""

    def seal(self, plaintext: bytes, *, purpose: str) -> str: ...

    def unseal(self, token: str, *, purpose: str) -> bytes: ...


def single_params(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """RFC 6749 §3.1: parameters sent without a value are omitted; none may appear twice."""
    params: dict[str, str] = {}
    for name, value in items:
        if name in params:
            raise OAuthInvalidRequest(f"the parameter {name} appears more than once", reason="repeated_parameter")
        if value != "":
            params[name] = value
    return params


def parse_scope(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    if len(raw) > MAX_SCOPE_LENGTH:
        raise InvalidScope("scope is too long", reason="scope_too_long")
    return tuple(dict.fromkeys(raw.split()))


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A validated authorization request: everything the code will be bound to."""

    client: OAuthClient
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str
    code_challenge: str


@dataclass(frozen=True, slots=True)
class Merchant:
    """The signed-in resource owner, as the sign-in session remembers them."""

    subject: OAuthSubject
    scopes: tuple[str, ...]
    role: str
    label: str


@dataclass(frozen=True, slots=True)
class ConsentSession:
    """What the HttpOnly cookie carries, sealed: a CSRF token and, once signed in, the merchant."""

    csrf: str
    expires_at: datetime
    merchant: Merchant | None = None


@dataclass(frozen=True, slots=True)
class ConsentView:
    """What the consent page shows: who asks, for what in words, and what the merchant lacks."""

    request: AuthorizationRequest
    scope_descriptions: tuple[tuple[str, str], ...]
    not_grantable: tuple[str, ...]


class AuthorizationEndpoint:
    def __init__(
        self,
        store: OAuthStore,
        clients: OAuthClientService,
        authenticator: Authenticator,
        sealer: SessionSealer,
        clock: Clock,
        *,
        code_ttl_s: int,
        session_ttl_s: int,
        external: TokenVerifier | None = None,
    ) -> None:
        self._store = store
        self._clients = clients
        self._authenticator = authenticator
        self._sealer = sealer
        self._clock = clock
        self._code_ttl = timedelta(seconds=code_ttl_s)
        self._session_ttl = timedelta(seconds=session_ttl_s)
        self._external = external

    # --- the request ---------------------------------------------------------------------------

    async def validate(self, items: Iterable[tuple[str, str]]) -> AuthorizationRequest:
        """Validate an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3).

        Errors without ``redirect_uri`` must be shown to the user; errors with it go to the client.
        """
        params = single_params(items)
        client, redirect_uri = await self._client_and_redirect(params)
        state = params.get("state")

        def back(error: type[OAuthError], message: str, reason: str) -> OAuthError:
            return error(message, reason=reason, redirect_uri=redirect_uri, state=state)

        if params.get("response_type") != "code":
            raise back(UnsupportedResponseType, "response_type must be code", "bad_response_type")
        if state is None:
            raise back(OAuthInvalidRequest, "state is required", "state_missing")
        if len(state) > MAX_STATE_LENGTH:
            raise back(OAuthInvalidRequest, "state is too long", "state_too_long")
        challenge = params.get("code_challenge")
        if challenge is None:
            raise back(OAuthInvalidRequest, "code_challenge is required (PKCE, RFC 7636)", "pkce_missing")
        if params.get("code_challenge_method") != pkce.METHOD:
            raise back(OAuthInvalidRequest, "code_challenge_method must be S256", "pkce_method_unsupported")
        if not pkce.is_valid_challenge(challenge):
            raise back(OAuthInvalidRequest, "code_challenge is malformed", "pkce_challenge_malformed")
        try:
            scopes = parse_scope(params.get("scope"))
        except OAuthError as exc:
            raise back(InvalidScope, exc.message, exc.reason) from None
        if not scopes:
            raise back(InvalidScope, "scope is required", "scope_missing")
        if scope_rules.within(client.scopes, scopes):
            raise back(InvalidScope, "the requested scope is wider than this client may ask for", "scope_too_wide")
        return AuthorizationRequest(client, redirect_uri, scopes, state, challenge)

    async def _client_and_redirect(self, params: dict[str, str]) -> tuple[OAuthClient, str]:
        client_id = params.get("client_id")
        if client_id is None:
            raise OAuthInvalidRequest("client_id is required", reason="client_id_missing")
        client = await self._store.get_client(client_id)
        if client is None:
            raise InvalidClient("unknown client_id", reason="client_unknown")
        redirect_uri = params.get("redirect_uri")
        if redirect_uri is None:
            raise OAuthInvalidRequest("redirect_uri is required", reason="redirect_uri_missing")
        # RFC 9700 §2.1: exact string matching, no prefixes or patterns
        if not any(hmac.compare_digest(redirect_uri.encode(), r.encode()) for r in client.redirect_uris):
            raise OAuthInvalidRequest("redirect_uri is not registered for this client", reason="redirect_uri_mismatch")
        return client, redirect_uri

    def consent_view(self, request: AuthorizationRequest, merchant: Merchant) -> ConsentView:
        return ConsentView(
            request=request,
            scope_descriptions=tuple((s, self._clients.describe_scope(s)) for s in request.scopes),
            not_grantable=tuple(scope_rules.within(merchant.scopes, request.scopes)),
        )

    # --- the sign-in session -------------------------------------------------------------------

    def open_session(self, cookie: str | None) -> ConsentSession:
        """The session a cookie carries, or a fresh signed-out one (bad, old or forged: fresh)."""
        if cookie:
            try:
                data = json.loads(self._sealer.unseal(cookie, purpose=SESSION_PURPOSE))
                session = _session_from_json(data)
            except (ConfigError, ValueError, KeyError, TypeError):
                session = None
            if session is not None and session.expires_at > self._clock.now():
                return session
        return ConsentSession(csrf=secrets.token_urlsafe(32), expires_at=self._clock.now() + self._session_ttl)

    def seal(self, session: ConsentSession) -> str:
        return self._sealer.seal(json.dumps(_session_json(session)).encode(), purpose=SESSION_PURPOSE)

    def check_csrf(self, session: ConsentSession, presented: str | None) -> None:
        if presented is None or not hmac.compare_digest(session.csrf.encode(), presented.encode()):
            raise OAuthInvalidRequest("the form has expired; go back and try again", reason="csrf_mismatch")

    async def sign_in(self, session: ConsentSession, credential: str | None) -> ConsentSession:
        """Authenticate the merchant with an API key or a session JWT; a new CSRF token follows."""
        credential = credential.strip() if credential else None
        try:
            principal = await self._authenticator.authenticate(credential)
        except SidecarError:
            principal = await self._external_sign_in(credential)
        if principal.key_type is KeyType.PUBLISHABLE or principal.org_id is None or principal.role == "anonymous":
            raise AccessDenied("sign in with a secret key or a session token", reason="sign_in_publishable")
        # a token we issued to an application must never consent on the merchant's behalf
        if principal.token_id is not None and await self._store.get_access_token(principal.token_id) is not None:
            raise AccessDenied("sign in with your own key, not an application's token", reason="sign_in_oauth_token")
        label = principal.user_id or principal.key_id or principal.subject
        merchant = Merchant(
            subject=OAuthSubject(
                subject=principal.subject,
                org_id=principal.org_id,
                environment=principal.environment,
                team_id=principal.team_id,
                user_id=principal.user_id,
            ),
            scopes=principal.scopes,
            role=principal.role,
            label=label,
        )
        return replace(
            session,
            csrf=secrets.token_urlsafe(32),
            expires_at=self._clock.now() + self._session_ttl,
            merchant=merchant,
        )

    async def _external_sign_in(self, credential: str | None) -> Principal:
        """A token from the configured external identity provider, if there is one."""
        if self._external is None or credential is None or credential.count(".") != 2:
            raise AccessDenied("that key or token was not accepted", reason="sign_in_failed")
        try:
            return await self._external.verify(credential)
        except SidecarError:
            raise AccessDenied("that key or token was not accepted", reason="sign_in_failed") from None

    # --- the decision --------------------------------------------------------------------------

    def deny(self, request: AuthorizationRequest, *, issuer: str) -> str:
        """RFC 6749 §4.1.2.1: ``access_denied`` back to the client, with its ``state``."""
        params = [("error", "access_denied"), ("state", request.state), ("iss", issuer)]
        return str(add_params_to_uri(request.redirect_uri, params))

    async def approve(self, request: AuthorizationRequest, merchant: Merchant, *, issuer: str) -> str:
        """Issue a single-use code bound to client, redirect URI, PKCE challenge and the merchant."""
        if scope_rules.within(merchant.scopes, request.scopes):
            raise AccessDenied("you cannot grant scopes your own credential lacks", reason="merchant_lacks_scope")
        code = secrets.token_urlsafe(32)
        await self._store.insert_code(
            AuthorizationCode(
                digest=secret_digest(code),
                client_id=request.client.id,
                redirect_uri=request.redirect_uri,
                code_challenge=request.code_challenge,
                scopes=request.scopes,
                subject=merchant.subject,
                grant_id="og_" + secrets.token_urlsafe(18),
                expires_at=self._clock.now() + self._code_ttl,
            )
        )
        # RFC 9207: the iss parameter lets a client that talks to several servers detect mix-up
        return str(add_params_to_uri(request.redirect_uri, [("code", code), ("state", request.state), ("iss", issuer)]))


def _session_json(session: ConsentSession) -> dict[str, object]:
    merchant = session.merchant
    return {
        "csrf": session.csrf,
        "exp": session.expires_at.timestamp(),
        "m": None
        if merchant is None
        else {
            "sub": merchant.subject.subject,
            "org": merchant.subject.org_id,
            "env": merchant.subject.environment.value,
            "team": merchant.subject.team_id,
            "user": merchant.subject.user_id,
            "scopes": list(merchant.scopes),
            "role": merchant.role,
            "label": merchant.label,
        },
    }


def _session_from_json(data: dict[str, object]) -> ConsentSession:
    raw = data["m"]
    merchant = None
    if isinstance(raw, dict):
        merchant = Merchant(
            subject=OAuthSubject(
                subject=str(raw["sub"]),
                org_id=str(raw["org"]),
                environment=Environment(raw["env"]),
                team_id=raw["team"],
                user_id=raw["user"],
            ),
            scopes=tuple(str(s) for s in raw["scopes"]),
            role=str(raw["role"]),
            label=str(raw["label"]),
        )
    exp = data["exp"]
    if not isinstance(exp, int | float):
        raise ValueError("bad session expiry")
    return ConsentSession(csrf=str(data["csrf"]), expires_at=datetime.fromtimestamp(exp, UTC), merchant=merchant)
