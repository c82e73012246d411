"""Trusted external issuers: a token is routed to its provider by its (unverified) ``iss``.

Reading ``iss`` before verifying only chooses whose keys, algorithms and audience will judge the
token (Hasura matches JWT configs the same way, hasura-contract.md §3.1); the chosen provider
then verifies everything. A token naming an issuer that is neither ours nor trusted is refused
with ``issuer_untrusted``, before any key is fetched.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable

from sidecar.domain.external_idp import ExternalIdentity
from sidecar.errors import ConfigError, InvalidToken
from sidecar.models import Principal

MAX_TOKEN_LENGTH = 16 * 1024


def unverified_issuer(token: str) -> str | None:
    """The ``iss`` of a compact JWS's payload, read without verifying; ``None`` if there is none."""
    if len(token) > MAX_TOKEN_LENGTH:
        return None
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        return None
    issuer = payload.get("iss") if isinstance(payload, dict) else None
    return issuer if isinstance(issuer, str) else None


class TrustedIssuers:
    """The configured providers by issuer, and our own issuer (whose tokens are not theirs)."""

    def __init__(self, identities: Iterable[ExternalIdentity], *, own_issuer: str) -> None:
        self._by_issuer: dict[str, ExternalIdentity] = {}
        for identity in identities:
            if identity.issuer == own_issuer or identity.issuer in self._by_issuer:
                raise ConfigError(f"trusted issuer {identity.issuer!r} is configured twice or is our own issuer")
            self._by_issuer[identity.issuer] = identity
        self._own = own_issuer

    @property
    def issuers(self) -> tuple[str, ...]:
        return tuple(self._by_issuer)

    def provider_for(self, token: str) -> ExternalIdentity | None:
        """The provider that judges ``token``; ``None`` for ours (or no ``iss``, which ours refuses)."""
        issuer = unverified_issuer(token)
        if issuer is None or issuer == self._own:
            return None
        identity = self._by_issuer.get(issuer)
        if identity is None:
            raise InvalidToken("the token's issuer is not trusted here", reason="issuer_untrusted")
        return identity

    async def verify(self, token: str) -> Principal:
        """A trusted provider's token as a principal (RFC 8693 subject tokens); ours are refused."""
        identity = self.provider_for(token)
        if identity is None:
            raise InvalidToken("the token was not issued by a trusted identity provider", reason="issuer_untrusted")
        return await identity.verify(token)
