"""OAuth 2.0 Token Exchange (RFC 8693) at the token endpoint: a trusted provider's token for ours.

A registered client (public ones by ``client_id``) presents a user's token from a trusted
identity provider as ``subject_token``; the answer is the same session JWT ``POST /v1/auth/token``
issues for that token, with its permissions bounded by the client's registered scopes as well
as by the user's role. Impersonation only: ``actor_token`` (delegation) is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from sidecar.domain import scopes as scope_rules
from sidecar.domain.oauth_authorize import parse_scope
from sidecar.domain.tokens import IssuedToken, TokenRequest
from sidecar.errors import Forbidden, InvalidRequest, InvalidScope, InvalidTarget, OAuthInvalidRequest, Unauthorized
from sidecar.models import OAuthClient, Principal

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a URN
SUBJECT_TOKEN_TYPES = (JWT_TYPE, ACCESS_TOKEN_TYPE)


class SubjectTokenVerifier(Protocol):
    async def verify(self, token: str) -> Principal:
        """The user a trusted provider's token names; a 401-class error otherwise."""
        ...


class SessionTokenIssuer(Protocol):
    def exchange(self, principal: Principal, request: TokenRequest) -> IssuedToken:
        """A session JWT for ``principal``, narrowed as ``request`` asks."""
        ...


class TokenExchangeGrant:
    """``grant_type=urn:ietf:params:oauth:grant-type:token-exchange`` (RFC 8693 §2.1)."""

    def __init__(self, subjects: SubjectTokenVerifier, tokens: SessionTokenIssuer, *, audience: str | None) -> None:
        self._subjects = subjects
        self._tokens = tokens
        self._audience = audience

    async def __call__(self, client: OAuthClient, form: Mapping[str, str]) -> dict[str, Any]:
        """RFC 8693 §2.2.1: the issued token, or an RFC 6749 §5.2 / RFC 8693 §2.2.2 error."""
        subject_token, issued_type = self._validate(form)
        try:
            principal = await self._subjects.verify(subject_token)
        except Unauthorized as exc:
            raise OAuthInvalidRequest(f"subject_token: {exc.message}", reason=exc.reason) from None
        permissions = _permissions(client, principal, parse_scope(form.get("scope")))
        try:
            issued = self._tokens.exchange(principal, TokenRequest(permissions=permissions))
        except (Forbidden, InvalidRequest) as exc:
            raise InvalidScope(exc.message, reason=exc.reason) from None
        except Unauthorized as exc:
            raise OAuthInvalidRequest(f"subject_token: {exc.message}", reason=exc.reason) from None
        return {
            "access_token": issued.token,
            "issued_token_type": issued_type,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "scope": " ".join(permissions),
        }

    def _validate(self, form: Mapping[str, str]) -> tuple[str, str]:
        subject_token = form.get("subject_token")
        if not subject_token:
            raise OAuthInvalidRequest("subject_token is required", reason="subject_token_missing")
        if form.get("subject_token_type") not in SUBJECT_TOKEN_TYPES:
            raise OAuthInvalidRequest(
                f"subject_token_type must be {JWT_TYPE} or {ACCESS_TOKEN_TYPE}", reason="subject_token_type"
            )
        if "actor_token" in form or "actor_token_type" in form:
            raise OAuthInvalidRequest("delegation (actor_token) is not supported", reason="actor_token")
        requested = form.get("requested_token_type", ACCESS_TOKEN_TYPE)
        if requested not in SUBJECT_TOKEN_TYPES:
            raise OAuthInvalidRequest(
                f"requested_token_type must be {ACCESS_TOKEN_TYPE} or {JWT_TYPE}", reason="requested_token_type"
            )
        if "resource" in form or ("audience" in form and form["audience"] != self._audience):
            raise InvalidTarget("tokens here are issued only for this service's audience", reason="target_unknown")
        return subject_token, requested


def _permissions(client: OAuthClient, principal: Principal, asked: tuple[str, ...]) -> tuple[str, ...]:
    """The scope asked for, within the client's and the user's; by default, all that both allow."""
    if asked:
        if scope_rules.within(client.scopes, asked):
            raise InvalidScope("the requested scope is wider than this client may ask for", reason="scope_too_wide")
        return asked
    granted = tuple(s for s in client.scopes if scope_rules.allows(principal.scopes, s))
    if not granted:
        raise InvalidScope("this user holds none of the scopes this client may ask for", reason="scope_none")
    return granted
