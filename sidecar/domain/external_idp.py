"""Tokens of an external identity provider (Clerk, Auth0, …): trusted issuers and the consent page.

The provider's token is verified against its JWKS (fetched by a port), with the algorithm
allowlist, issuer and audience from configuration, and times judged by our clock. Its claims
are mapped to a principal: a user claim (``sub``), an org claim, an optional team claim, and a
role claim that a configured table turns into one of our roles (a role the table does not name
is refused). A claim name is looked up as it is first (Auth0's ``https://…/roles`` contain dots),
then as a dotted path into nested objects (Clerk's ``o.rol``); a role claim may be a list, whose
first mapped value wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import jwt

from sidecar.domain.jose_json import has_duplicate_members
from sidecar.domain.rbac import Policy
from sidecar.errors import InvalidToken, TokenExpired
from sidecar.models import CredentialType, Environment, Principal
from sidecar.ports import Clock

ALGORITHMS = ("RS256", "ES256", "EdDSA")
_MAX_CLAIM_LENGTH = 256


class JwksSource(Protocol):
    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The provider's key ``kid`` (refetching the JWKS, rate-limited, when it is unknown)."""
        ...


@dataclass(frozen=True, slots=True)
class IdpConfig:
    issuer: str
    audience: str | None
    org_claim: str
    role_claim: str
    roles: Mapping[str, str] = field(default_factory=dict)
    clock_skew_s: int = 60
    algorithms: tuple[str, ...] = ALGORITHMS
    user_claim: str = "sub"
    team_claim: str | None = None


def claim(claims: Mapping[str, Any], name: str) -> Any:
    """``claims[name]``, else the value at the dotted path ``name`` (``o.rol``), else ``None``."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _expiry(exp: float) -> datetime:
    try:
        return datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidToken("the identity token's exp is out of range", reason="idp_token_invalid") from None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= _MAX_CLAIM_LENGTH else None


class ExternalIdentity:
    def __init__(self, jwks: JwksSource, clock: Clock, policy: Policy, config: IdpConfig) -> None:
        self._jwks = jwks
        self._clock = clock
        self._policy = policy
        self._config = config

    @property
    def issuer(self) -> str:
        return self._config.issuer

    async def verify(self, token: str) -> Principal:
        """The user an identity token names; ``InvalidToken``/``TokenExpired`` otherwise."""
        config = self._config
        claims = await self._decode(token)
        self._check_times(claims)
        user, org = _text(claim(claims, config.user_claim)), _text(claim(claims, config.org_claim))
        if user is None or org is None:
            raise InvalidToken("the identity token names no user or no organisation", reason="idp_claims_missing")
        team = _text(claim(claims, config.team_claim)) if config.team_claim else None
        role = self._role(claim(claims, config.role_claim))
        return Principal(
            credential_type=CredentialType.EXTERNAL_JWT,
            subject=user,
            org_id=org,
            role=role,
            allowed_roles=self._policy.acts_as(role),
            scopes=self._policy.role_scopes(role),
            environment=Environment.LIVE,
            team_id=team,
            user_id=user,
            expires_at=_expiry(claims["exp"]),
            extra={"idp": config.issuer},
        )

    def _role(self, value: Any) -> str:
        candidates = value if isinstance(value, list) else [value]
        for candidate in candidates:
            role = self._config.roles.get(candidate) if isinstance(candidate, str) else None
            if role is not None and self._policy.has_role(role):
                return role
        raise InvalidToken("the identity token's role has no access here", reason="idp_role_unmapped")

    async def _decode(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("the identity token is malformed", reason="idp_token_malformed") from None
        kid, alg = header.get("kid"), header.get("alg")
        if not isinstance(kid, str) or not isinstance(alg, str) or alg not in self._config.algorithms:
            raise InvalidToken("the identity token's key or algorithm is not accepted", reason="idp_alg_refused")
        key = await self._jwks.key(kid)
        if key is None or key.algorithm_name != alg:
            raise InvalidToken("the identity token was not signed by the provider", reason="idp_unknown_kid")
        if has_duplicate_members(token):  # pyjwt would keep the last of them without a word
            raise InvalidToken("the identity token names a member twice", reason="idp_duplicate_claims")
        config = self._config
        try:
            return dict(
                jwt.decode(
                    token,
                    key.key,
                    algorithms=[alg],
                    audience=config.audience,
                    issuer=config.issuer,
                    options={
                        "require": ["exp", "iat", "sub", "iss"],
                        "verify_aud": config.audience is not None,
                        "verify_exp": False,
                        "verify_iat": False,
                        "verify_nbf": False,
                    },
                )
            )
        except jwt.InvalidSignatureError:
            raise InvalidToken("the identity token's signature is not valid", reason="idp_bad_signature") from None
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError):
            raise InvalidToken(
                "the identity token is not meant for this service", reason="idp_wrong_audience"
            ) from None
        except jwt.PyJWTError:
            raise InvalidToken("the identity token is not valid", reason="idp_token_invalid") from None

    def _check_times(self, claims: dict[str, Any]) -> None:
        now = self._clock.now().timestamp()
        skew = self._config.clock_skew_s
        exp, iat, nbf = claims["exp"], claims["iat"], claims.get("nbf", 0)
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (exp, iat, nbf)):
            raise InvalidToken("the identity token's times are not numbers", reason="idp_token_invalid")
        if now >= exp + skew:
            raise TokenExpired("the identity token has expired", reason="idp_token_expired")
        if iat > now + skew or nbf > now + skew:
            raise InvalidToken("the identity token is not valid yet", reason="idp_token_not_yet_valid")
