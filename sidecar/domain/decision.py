"""The Hasura webhook decision: credentials → principal → role → operation check → session.

Authenticators run in order; each either decides (a principal, or a 401-class error) or says it
is not responsible. A credential that was presented but is bad is a 401 and never falls through
to anonymous access (hasura-contract.md §4.2).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal, Protocol

from sidecar.domain import hasura_session
from sidecar.domain.authn import Authenticator, shape_of
from sidecar.domain.operations import OperationPolicy
from sidecar.domain.origins import BrowserOrigins, request_origin
from sidecar.domain.ratelimits import RateLimitService
from sidecar.domain.rbac import Policy
from sidecar.errors import RateLimited, SidecarError, Unauthorized
from sidecar.models import CredentialType, Environment, Principal
from sidecar.ports import Clock

if TYPE_CHECKING:
    from sidecar.domain.repeat_decisions import RepeatDecisions

log = logging.getLogger("sidecar.webhook")

#: ``request`` absent from the body (GET mode, send-body off, Hasura v3): nothing to check.
NOT_SENT: object = object()


@dataclass(frozen=True, slots=True)
class CredentialSources:
    """Where a browser client may put its credential besides ``Authorization: Bearer``."""

    header: str | None = None
    cookie: str | None = None


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the client presented, parsed from its headers (names in any case)."""

    credential: str | None = None
    #: Something was presented that is not a usable credential (e.g. ``Authorization: Basic …``).
    malformed: bool = False
    requested_role: str | None = None
    #: the browser origin the client's request came from (POST mode forwards ``Origin``; GET drops it)
    origin: str | None = None

    @property
    def presented(self) -> bool:
        return self.credential is not None or self.malformed

    @property
    def kind(self) -> str:
        """What was presented, by its shape alone (a refused credential names no principal):
        ``anonymous`` (nothing), ``api_key``, ``session_jwt``, ``malformed`` or ``unknown``."""
        if self.credential is None:
            return "malformed" if self.malformed else CredentialType.ANONYMOUS.value
        shape = shape_of(self.credential)
        return "unknown" if shape is None else shape.value

    @classmethod
    def from_headers(cls, headers: HeaderLookup, sources: CredentialSources) -> Credentials:
        """Parse the client's headers (looked up case-insensitively).

        Precedence: ``Authorization``, then the custom header, then the cookie; the first one
        present decides. A header sent twice with different values is ambiguous: malformed.
        """
        raw_role, role_ambiguous = _single(headers, "x-hasura-role")
        role = raw_role.strip() or None
        raw_origin, origin_ambiguous = _single(headers, "origin")
        origin = request_origin(raw_origin)
        if role_ambiguous or origin_ambiguous:
            return cls(malformed=True, requested_role=role, origin=origin)
        for name in ("authorization", sources.header):
            if name is None:
                continue
            raw, ambiguous = _single(headers, name)
            raw = raw.strip()
            if not raw:
                continue
            credential = None if ambiguous else _bearer(raw) if name == "authorization" else _bare(raw)
            return cls(credential=credential, malformed=credential is None, requested_role=role, origin=origin)
        if sources.cookie:
            cookies = headers.getall("cookie", _NONE)  # HTTP/2 may split cookies over several headers
            value = _cookie("; ".join(cookies), sources.cookie) if cookies else None
            if value is not None:
                return cls(credential=value or None, malformed=not value, requested_role=role, origin=origin)
        return cls(requested_role=role, origin=origin)


class HeaderLookup(Protocol):
    """Case-insensitive access to every value of a header (aiohttp's headers, ``FoldedHeaders``)."""

    def getall(self, key: str, default: list[str], /) -> list[str]: ...


class FoldedHeaders:
    """A POST body's ``headers`` object as a ``HeaderLookup``: names in any case, string values only.

    Names differing only in case (``Authorization`` and ``authorization``) count as one header
    sent twice.
    """

    def __init__(self, headers: Mapping[str, object]) -> None:
        values: dict[str, list[str]] = {}
        for name, value in headers.items():
            if isinstance(value, str):
                key = name.lower()
                same = values.get(key)
                if same is None:
                    values[key] = [value]
                else:
                    same.append(value)
        self._values = values

    def getall(self, key: str, default: list[str], /) -> list[str]:
        return self._values.get(key.lower(), default)


_NONE: list[str] = []


def _single(headers: HeaderLookup, name: str) -> tuple[str, bool]:
    """The header's value ("" when absent), and whether it was sent twice with different values."""
    values = headers.getall(name, _NONE)
    if len(values) < 2:  # the usual case: no generator for it
        return (values[0] if values else ""), False
    first = values[0]
    return first, any(v != first for v in values)


def _bearer(value: str) -> str | None:
    scheme, _, credential = value.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or " " in credential:
        return None
    return credential


def _bare(value: str) -> str | None:
    return None if any(c.isspace() for c in value) else value


def _cookie(header: str, name: str) -> str | None:
    """The first cookie called ``name`` in a ``Cookie`` header (RFC 6265 §5.4 puts the most specific first)."""
    for part in header.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value if " " not in value else ""
    return None


class NotResponsible(Exception):
    """This authenticator does not handle these credentials; try the next one."""


class CredentialAuthenticator(Protocol):
    name: str

    async def authenticate(self, creds: Credentials) -> Principal:
        """A principal, or ``Unauthorized`` (decided), or ``NotResponsible`` (next one)."""
        ...


class PresentedCredential:
    """API keys and session JWTs, routed by their shape by ``sidecar.domain.authn.Authenticator``;
    with ``origins``, a key refused in a browser (``BrowserOrigins.check``) is refused here too."""

    name = "credential"

    def __init__(self, authenticator: Authenticator, origins: BrowserOrigins | None = None) -> None:
        self._authenticator = authenticator
        self._origins = origins

    async def authenticate(self, creds: Credentials) -> Principal:
        if not creds.presented:
            raise NotResponsible
        if creds.credential is None:
            raise Unauthorized("the credential is not in a form this service accepts", reason="credential_malformed")
        principal = await self._authenticator.authenticate(creds.credential)
        if self._origins is not None:
            self._origins.check(principal, creds.origin)
        return principal


class Anonymous:
    """No credentials at all: the configured anonymous role (hasura-contract.md §4.2), in the
    configured org if there is one (Hasura's org filter refuses a session without it)."""

    name = "anonymous"

    def __init__(self, role: str, scopes: tuple[str, ...], *, org_id: str | None = None) -> None:
        self._principal = Principal(
            credential_type=CredentialType.ANONYMOUS,
            subject="anonymous",
            org_id=org_id,
            role=role,
            allowed_roles=(role,),
            scopes=scopes,
            environment=Environment.LIVE,
        )

    async def authenticate(self, creds: Credentials) -> Principal:
        if creds.presented:
            raise NotResponsible
        return self._principal


#: ``Decision.reason`` of a call let through over its rate limit (``SIDECAR_RATE_LIMIT__WEBHOOK=allow``).
OVER_LIMIT = "over_limit"


@dataclass(frozen=True, slots=True)
class Decision:
    """An allowed request: who, as which role, and the exact body to send Hasura."""

    principal: Principal
    role: str
    body: bytes
    #: why it was allowed, for counting: the credential type, or ``OVER_LIMIT``
    reason: str
    #: the principal's credential type, as counted (``principal.credential_type.value``)
    credential_type: str


def choose_role(principal: Principal, requested: str | None) -> str:
    """The client's ``X-Hasura-Role`` if the principal holds it, else 401; absent: the default role.

    Hasura never checks this header in webhook mode (§1.11), so this is the only check.
    """
    if requested is None:
        return principal.role
    if requested in principal.allowed_roles:
        return requested
    raise Unauthorized("this credential cannot act as the requested role", reason="role_not_allowed")


class Decider:
    """Runs the pipeline and counts every outcome by ``(result, reason)``."""

    def __init__(
        self,
        authenticators: Sequence[CredentialAuthenticator],
        clock: Clock,
        *,
        operations: OperationPolicy | None,
        max_cache_age_s: int,
        policy: Policy | None = None,
        limits: RateLimitService | None = None,
        over_limit: Literal["deny", "allow"] = "deny",
        repeats: RepeatDecisions | None = None,
    ) -> None:
        self._authenticators = tuple(authenticators)
        self._repeats = repeats
        self._limits = limits
        self._over_limit = over_limit
        self._clock = clock
        self._operations = operations
        self._policy = policy
        # a client may name a role by our name or by its Hasura name (our admin is Hasura's org_admin)
        self._our_names = {policy.hasura_role(r): r for r in policy.model.roles} if policy else {}
        self._max_age = max_cache_age_s
        self._bodies = hasura_session.SessionBodies()
        self.outcomes: Counter[tuple[str, str]] = Counter()

    async def decide(self, creds: Credentials, request: object = NOT_SENT) -> Decision:
        """The decision, or ``Unauthorized`` (answer 401) or ``Unavailable`` (cannot decide)."""
        try:
            decision = await self._decide(creds, request)
        except SidecarError as exc:
            self.outcomes["deny" if exc.status == 401 else "error", exc.reason] += 1
            raise
        self.outcomes["allow", decision.credential_type] += 1
        return decision

    async def _decide(self, creds: Credentials, request: object) -> Decision:
        repeats = self._repeats
        if repeats is not None:
            repeat = repeats.get(creds)
            if repeat is not None:  # everything but the rate limit and the operation is decided
                over_limit = self._limits is not None and await self._count(self._limits, repeat.principal)
                self._check_operation(repeat.principal, repeat.role, request)
                return replace(repeat, reason=OVER_LIMIT) if over_limit else repeat
        principal = await self._authenticate(creds)
        over_limit = False
        if self._limits is not None and principal.credential_type is not CredentialType.ANONYMOUS:
            over_limit = await self._count(self._limits, principal)
        requested = creds.requested_role
        role = choose_role(principal, self._our_names.get(requested, requested) if requested else requested)
        self._check_operation(principal, role, request)
        expires_at = principal.expires_at
        max_age = (
            self._max_age
            if expires_at is None  # the usual key: no clock needed
            else hasura_session.cache_max_age(self._clock.now(), expires_at, self._max_age)
        )
        hasura_role = self._policy.hasura_role(role) if self._policy else role
        credential_type = principal.credential_type.value
        body = self._bodies.body(self._acting(principal, role), hasura_role, max_age)
        decision = Decision(principal, role, body, OVER_LIMIT if over_limit else credential_type, credential_type)
        if repeats is not None:
            repeats.remember(creds, decision)
        return decision

    def _check_operation(self, principal: Principal, role: str, request: object) -> None:
        if self._operations is None:
            return
        if request is NOT_SENT:
            self._operations.check_unseen(principal, role)
        else:
            self._operations.check(principal, role, request)

    def _acting(self, principal: Principal, role: str) -> Principal:
        """The principal as the session describes it: acting as another role, only that role's scopes."""
        if self._policy is None or role == principal.role:
            return principal
        return replace(principal, scopes=self._policy.scopes_acting_as(principal, role))

    async def _count(self, limits: RateLimitService, principal: Principal) -> bool:
        """Hasura understands only 200 and 401: over the limit is a 401, or (``allow``) a logged pass.

        Returns whether the call was let through over its limit.
        """
        try:
            await limits.check_principal(principal)
        except RateLimited:
            if self._over_limit == "deny":
                raise Unauthorized("this credential is over its rate limit", reason="rate_limited") from None
            self.outcomes["over_limit", "rate_limited"] += 1
            log.warning("webhook call over its rate limit let through (key %s)", principal.key_id or "-")
            return True
        return False

    async def _authenticate(self, creds: Credentials) -> Principal:
        for authenticator in self._authenticators:
            try:
                return await authenticator.authenticate(creds)
            except NotResponsible:
                continue
        raise Unauthorized("no credentials: send an API key or token", reason="no_credentials")
