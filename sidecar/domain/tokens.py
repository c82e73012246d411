"""Session JWTs: exchange an API key for a short-lived token Hasura verifies itself; verify ours.

Claims follow CONTRACT.md "Session JWT" and shared/hasura-contract.md §3 and §5. Every time check
uses the injected clock (pyjwt's own, which reads the wall clock, is switched off). A token is
decoded and its signature checked once per process; later verifies of the same token reuse what
that proved and check only its times again (``sidecar.domain.verified_tokens`` says why and how).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import jwt

from sidecar.domain import scopes as scope_rules
from sidecar.domain.claims_template import ClaimsTemplate
from sidecar.domain.hasura_claims import SessionClaims
from sidecar.domain.jose_json import DuplicateMember, decode_segment, has_duplicate_members
from sidecar.domain.jwk import COMPACT_JSON, KeyMaterial, b64url, compact_jws
from sidecar.domain.rbac import Policy
from sidecar.domain.signing_keys import KeyRing, RingView
from sidecar.domain.verified_tokens import VerifiedToken, VerifiedTokens
from sidecar.errors import Forbidden, InvalidToken, TokenExpired
from sidecar.models import CredentialType, Environment, KeyType, Principal
from sidecar.ports import Clock

ClaimsFormat = Literal["json", "stringified_json"]
_REQUIRED = ["exp", "iat", "sub", "iss", "jti"]
#: claims templates kept (one per API key and narrowing in use); all are dropped when full
TEMPLATE_ENTRIES = 1024
#: far longer than any header we sign ({"alg", "typ", "kid"}); a longer one is not ours
_MAX_HEADER_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class TokenConfig:
    issuer: str
    audience: str | None
    ttl_s: int
    claims_namespace: str
    claims_format: ClaimsFormat
    iat_backdate_s: int
    clock_skew_s: int
    #: the verification allowlist, checked before the kid is looked up
    accepted_algorithms: frozenset[str]


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """What the caller asks for; every field may only narrow what the API key holds."""

    role: str | None = None
    permissions: tuple[str, ...] | None = None
    ttl_s: int | None = None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    token_id: str
    expires_in: int
    #: the token's ``exp``: seconds since the epoch
    exp: int

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.exp, UTC)


#: Told the algorithm of each token signed (session tokens and OAuth access tokens alike).
IssuedHook = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class UnsignedToken:
    """A session token but its signature, so that a batch can sign many back to back
    (``sidecar.web.turn_batch``): ``signed()`` is ``with_signature(signature())``."""

    signing_input: bytes
    token_id: str
    expires_in: int
    exp: int
    signer: KeyMaterial
    on_issued: IssuedHook | None

    def signature(self) -> bytes:
        return self.signer.jws.signature(self.signing_input)

    def with_signature(self, signature: bytes) -> IssuedToken:
        if self.on_issued is not None:
            self.on_issued(self.signer.algorithm)
        token = compact_jws(self.signing_input, signature)
        return IssuedToken(token, self.token_id, self.expires_in, self.exp)

    def signed(self) -> IssuedToken:
        return self.with_signature(self.signature())


class TokenService:
    def __init__(
        self,
        ring: KeyRing,
        clock: Clock,
        policy: Policy,
        config: TokenConfig,
        *,
        on_issued: IssuedHook | None = None,
        verified: VerifiedTokens | None = None,
    ) -> None:
        """``verified``: where verified tokens are remembered (``None``: nowhere, every verify is fresh)."""
        self._ring = ring
        self._clock = clock
        self._policy = policy
        self._config = config
        self._on_issued = on_issued
        self._verified = verified if verified is not None else VerifiedTokens(0)
        self._templates: dict[tuple[object, ...], ClaimsTemplate] = {}

    @property
    def config(self) -> TokenConfig:
        return self._config

    # --- issue --------------------------------------------------------------------------------

    def exchange(self, principal: Principal, request: TokenRequest) -> IssuedToken:
        """A session token for an API key or a trusted provider's token, narrowed as ``request`` asks.

        It never outlives the credential it was exchanged for (a provider token's ``exp`` included).
        """
        return self.prepare_exchange(principal, request).signed()

    def prepare_exchange(self, principal: Principal, request: TokenRequest) -> UnsignedToken:
        """``exchange``'s token but its signature: every check made, the claims encoded."""
        if principal.credential_type not in (CredentialType.API_KEY, CredentialType.EXTERNAL_JWT):
            raise Forbidden(
                "a session token cannot be exchanged for another token; present an API key or a token of a "
                "trusted identity provider",
                reason="token_exchange_requires_api_key",
            )
        role, allowed, granted = self._narrow(principal, request)
        now = int(self._clock.now().timestamp())
        ttl = self._ttl(request)
        exp = now + ttl
        if principal.expires_at is not None:
            exp = min(exp, int(principal.expires_at.timestamp()))
        if exp <= now:  # a provider token inside its clock-skew grace: nothing left to hand out
            raise TokenExpired("the credential has expired", reason="credential_expired")
        token_id = new_token_id()
        claims = self._template(principal, role, allowed, granted)
        signer = self._ring.view().signer
        payload = claims.encoded(iat=now - self._config.iat_backdate_s, exp=exp, jti=token_id)
        return UnsignedToken(signer.jws.signing_input_of(payload), token_id, exp - now, exp, signer, self._on_issued)

    def _template(
        self, principal: Principal, role: str, allowed: tuple[str, ...], granted: tuple[str, ...]
    ) -> ClaimsTemplate:
        """The claims of every token for this principal and narrowing but their times and id,
        encoded once. The key holds everything ``_payload`` reads."""
        p = principal
        key = (p.subject, p.org_id, p.team_id, p.user_id, p.key_id, p.key_type, p.environment, role, allowed, granted)
        template = self._templates.get(key)
        if template is None:
            if len(self._templates) >= TEMPLATE_ENTRIES:
                self._templates.clear()
            template = ClaimsTemplate(self._payload(principal, role, allowed, granted, "", iat=0, exp=0))
            self._templates[key] = template
        return template

    def issue_delegated(self, principal: Principal, *, ttl_s: int, client_id: str) -> IssuedToken:
        """A token for a grant decided elsewhere (an OAuth access token): ``principal``'s role,
        allowed roles and scopes exactly as given, plus ``client_id`` (RFC 9068 §2.2). The
        lifetime never exceeds the session-token lifetime the signing-key rotation is timed for."""
        now = int(self._clock.now().timestamp())
        exp = now + min(ttl_s, self._config.ttl_s)
        token_id = new_token_id()
        payload = self._payload(
            principal, principal.role, principal.allowed_roles, principal.scopes, token_id, iat=now, exp=exp
        )
        payload["client_id"] = client_id
        signer = self._ring.view().signer
        signing_input = signer.jws.signing_input(COMPACT_JSON.encode(payload))
        return UnsignedToken(signing_input, token_id, exp - now, exp, signer, self._on_issued).signed()

    def _narrow(self, principal: Principal, request: TokenRequest) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        role, allowed, granted = principal.role, principal.allowed_roles, principal.scopes
        if principal.key_type is KeyType.PUBLISHABLE:
            role, allowed = "anonymous", ("anonymous",)
        if request.role is not None and request.role != role:
            if request.role not in allowed or not self._policy.has_role(request.role):
                raise Forbidden(f"this credential cannot act as role {request.role}", reason="role_escalation")
            role = request.role
            allowed = tuple(r for r in self._policy.acts_as(role) if r in allowed)
            granted = tuple(s for s in self._policy.role_scopes(role) if scope_rules.allows(granted, s))
        if request.permissions is not None:
            self._policy.check_scopes_known(request.permissions)
            missing = scope_rules.within(granted, request.permissions)
            if missing:
                raise Forbidden(
                    f"this credential lacks the requested scope(s): {', '.join(missing)}", reason="scope_escalation"
                )
            granted = tuple(dict.fromkeys(request.permissions))
        return role, tuple(dict.fromkeys((role, *allowed))), granted

    def _ttl(self, request: TokenRequest) -> int:
        if request.ttl_s is None:
            return self._config.ttl_s
        if request.ttl_s > self._config.ttl_s:
            raise Forbidden(
                f"ttl {request.ttl_s} is longer than the longest token lifetime, {self._config.ttl_s} seconds",
                reason="ttl_too_long",
            )
        return request.ttl_s

    def _payload(
        self,
        principal: Principal,
        role: str,
        allowed: tuple[str, ...],
        granted: tuple[str, ...],
        token_id: str,
        *,
        iat: int,
        exp: int,
    ) -> dict[str, Any]:
        config = self._config
        hasura = self._policy.hasura_role  # e.g. our admin is Hasura's org_admin, never Hasura's own admin
        session = SessionClaims(
            default_role=hasura(role),
            allowed_roles=tuple(hasura(r) for r in allowed),
            user_id=principal.user_id or principal.subject,
            org_id=principal.org_id or "",
            key_id=principal.key_id or "",
            environment=principal.environment.value,
            permissions=granted,
            team_id=principal.team_id,
        ).to_claims()
        payload: dict[str, Any] = {
            "sub": principal.subject,
            "org_id": principal.org_id,
            "role": role,
            "permissions": list(granted),
            "iat": iat - config.iat_backdate_s,
            "exp": exp,
            "iss": config.issuer,
            "jti": token_id,
            "key_id": principal.key_id,
            "key_type": principal.key_type.value if principal.key_type else None,
            "environment": principal.environment.value,
            config.claims_namespace: json.dumps(session) if config.claims_format == "stringified_json" else session,
        }
        if config.audience is not None:
            payload["aud"] = config.audience
        if principal.team_id is not None:
            payload["team_id"] = principal.team_id
        if principal.user_id is not None:
            payload["user_id"] = principal.user_id
        return payload

    # --- verify (the TokenVerifier protocol) --------------------------------------------------

    async def verify(self, token: str) -> Principal:
        return self.verify_now(token)

    def verify_now(self, token: str) -> Principal:
        """The principal of a valid session token; a token seen before under the same key ring is
        not decoded again, but its times are checked again (``sidecar.domain.verified_tokens``)."""
        ring = self._ring.view()
        now = self._clock.now().timestamp()
        seen = self._verified.get(token, ring)
        if seen is not None:
            try:
                self._check_times(seen.exp, seen.iat, seen.nbf, now)
            except (InvalidToken, TokenExpired):
                self._verified.evict(token)
                raise
            return seen.principal
        payload = self._decode(token, ring)
        exp, iat, nbf = _times(payload)
        self._check_times(exp, iat, nbf, now)
        try:
            principal = self._principal(payload)
        except (KeyError, TypeError, ValueError):
            raise InvalidToken("the token's claims are malformed", reason="token_claims_invalid") from None
        self._verified.put(token, ring, VerifiedToken(principal, exp, iat, nbf))
        return principal

    def _decode(self, token: str, ring: RingView) -> dict[str, Any]:
        header = _unverified_header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._config.accepted_algorithms:
            raise InvalidToken("the token's algorithm is not accepted", reason="token_alg_not_allowed")
        kid = header.get("kid")
        key = ring.verifiers.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("the token was not signed by a published key", reason="token_unknown_kid")
        if alg != key.algorithm:
            raise InvalidToken("the token's algorithm does not match its key", reason="token_alg_mismatch")
        if has_duplicate_members(token):  # pyjwt would keep the last of them without a word
            raise _duplicate_claims()
        config = self._config
        try:
            return dict(
                jwt.decode(
                    token,
                    key.verify_key,
                    algorithms=[key.algorithm],
                    audience=config.audience,
                    issuer=config.issuer,
                    options={
                        "require": [*_REQUIRED, "aud"] if config.audience else _REQUIRED,
                        "verify_exp": False,
                        "verify_iat": False,
                        "verify_nbf": False,
                    },
                )
            )
        except jwt.InvalidSignatureError:
            raise InvalidToken("the token's signature is not valid", reason="token_bad_signature") from None
        except jwt.DecodeError:
            raise InvalidToken("the token is malformed", reason="token_malformed") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("the token is not meant for this audience", reason="token_wrong_audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("the token was issued by someone else", reason="token_wrong_issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"the token lacks the {exc.claim} claim", reason="token_missing_claim") from None
        except jwt.PyJWTError:
            raise InvalidToken("the token is not valid", reason="token_invalid") from None

    def _check_times(self, exp: float, iat: float, nbf: float, now: float) -> None:
        skew = self._config.clock_skew_s
        if now >= exp:
            raise TokenExpired("the token has expired", reason="token_expired")
        if iat > now + skew or nbf > now + skew:
            raise InvalidToken("the token is not valid yet", reason="token_not_yet_valid")

    def _principal(self, payload: dict[str, Any]) -> Principal:
        session = payload[self._config.claims_namespace]
        if isinstance(session, str):
            session = json.loads(session)
        ours = {self._policy.hasura_role(r): r for r in self._policy.model.roles}
        allowed = [ours.get(r, r) if isinstance(r, str) else r for r in session["x-hasura-allowed-roles"]]
        permissions = payload["permissions"]
        sub, role = payload["sub"], payload["role"]
        if not (_strings(allowed) and _strings(permissions) and isinstance(sub, str) and isinstance(role, str)):
            raise ValueError("claim types")
        key_type = payload.get("key_type")
        return Principal(
            credential_type=CredentialType.SESSION_JWT,
            subject=sub,
            org_id=_opt_str(payload.get("org_id")),
            role=role,
            allowed_roles=tuple(allowed),
            scopes=tuple(permissions),
            environment=Environment(payload.get("environment", "live")),
            team_id=_opt_str(payload.get("team_id")),
            user_id=_opt_str(payload.get("user_id")),
            key_id=_opt_str(payload.get("key_id")),
            key_type=KeyType(key_type) if key_type is not None else None,
            expires_at=datetime.fromtimestamp(payload["exp"], UTC),
            token_id=str(payload["jti"]),
        )


def new_token_id() -> str:
    """``tok_`` and 144 bits from the OS CSPRNG, base64url: ``secrets.token_urlsafe(18)``, less its wrappers."""
    return "tok_" + b64url(os.urandom(18))


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, from the first segment alone: it only picks the key; ``jwt.decode`` then
    decodes and checks the whole token, this header included, itself."""
    segment, dot, _ = token.partition(".")
    if not dot or len(segment) > _MAX_HEADER_LENGTH:
        raise InvalidToken("the token is malformed", reason="token_malformed")
    try:
        header = decode_segment(segment)
    except DuplicateMember:
        raise _duplicate_claims() from None
    except (ValueError, RecursionError):
        raise InvalidToken("the token is malformed", reason="token_malformed") from None
    if not isinstance(header, dict):
        raise InvalidToken("the token is malformed", reason="token_malformed")
    return header


def _duplicate_claims() -> InvalidToken:
    return InvalidToken("the token names a header member or claim twice", reason="token_duplicate_claims")


def _times(payload: dict[str, Any]) -> tuple[float, float, float]:
    exp, iat, nbf = payload["exp"], payload["iat"], payload.get("nbf", 0)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (exp, iat, nbf)):
        raise InvalidToken("the token's times are not numbers", reason="token_claims_invalid")
    return exp, iat, nbf


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _opt_str(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError("expected a string")
