"""Authentication of a presented bearer credential: an API key, or a session JWT."""

from __future__ import annotations

from typing import Protocol

from sidecar.domain import keyformat
from sidecar.domain.keys import KeyService
from sidecar.domain.revocations import TokenRevocations
from sidecar.domain.trusted_issuers import TrustedIssuers
from sidecar.errors import InvalidToken, Unauthorized
from sidecar.models import CredentialType, Principal


class TokenVerifier(Protocol):
    async def verify(self, token: str) -> Principal:
        """The principal a valid session JWT carries; raises ``InvalidToken``/``TokenExpired``."""
        ...


def bearer_credential(authorization: str | None) -> str | None:
    """The credential of an ``Authorization: Bearer <credential>`` header, else ``None``."""
    if not authorization:
        return None
    scheme, _, credential = authorization.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or " " in credential:
        return None
    return credential


def shape_of(credential: str) -> CredentialType | None:
    """The credential type a credential's shape routes it to, before anything is verified."""
    if keyformat.looks_like_api_key(credential):
        return CredentialType.API_KEY
    if credential.count(".") == 2:
        return CredentialType.SESSION_JWT
    return None


class Authenticator:
    """Routes a credential to the API-key or the JWT path by its shape, and a JWT to our verifier
    or a trusted provider's by its issuer; never falls through."""

    def __init__(
        self,
        keys: KeyService,
        tokens: TokenVerifier | None = None,
        revocations: TokenRevocations | None = None,
        external: TrustedIssuers | None = None,
    ) -> None:
        self._revocations = revocations
        self._keys = keys
        self._tokens = tokens
        self._external = external

    async def authenticate(self, credential: str | None) -> Principal:
        if credential is None:
            raise Unauthorized(
                "no credentials: send an API key or token as 'Authorization: Bearer <key>'",
                reason="no_credentials",
            )
        shape = shape_of(credential)
        if shape is CredentialType.API_KEY:
            return await self._keys.authenticate(credential)
        if shape is CredentialType.SESSION_JWT and self._external is not None:
            provider = self._external.provider_for(credential)
            if provider is not None:
                return await provider.verify(credential)
        if self._tokens is not None and shape is CredentialType.SESSION_JWT:
            principal = await self._tokens.verify(credential)
            if self._revocations is not None:
                self._revocations.check(principal)
            return principal
        raise InvalidToken(
            "the credential is neither a valid API key nor a valid token", reason="credential_unrecognised"
        )
