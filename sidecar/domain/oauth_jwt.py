"""OAuth access tokens as session JWTs: the same Hasura-ready tokens as ``/v1/auth/token``."""

from __future__ import annotations

from sidecar.domain.oauth_tokens import MintedToken
from sidecar.domain.tokens import TokenService
from sidecar.models import Principal


class OAuthAccessTokens:
    """The token endpoint's minter and verifier, backed by the session-JWT ``TokenService``."""

    def __init__(self, tokens: TokenService) -> None:
        self._tokens = tokens

    async def mint(self, principal: Principal, *, ttl_s: int) -> MintedToken:
        client_id = principal.extra.get("client_id", "")
        issued = self._tokens.issue_delegated(principal, ttl_s=ttl_s, client_id=client_id)
        return MintedToken(issued.token, issued.token_id, issued.expires_at)

    async def verify(self, token: str) -> Principal:
        return await self._tokens.verify(token)
