"""The signing key ring: ``next`` → ``current`` → ``previous`` → ``retired``.

``current`` signs; every published key verifies. A rotation adds a ``next`` key that the JWKS
publishes at once but that signs only after every cached copy of the JWKS (Hasura honours
``max-age``) can have seen it. The key it replaces stays published as ``previous`` until every
token it signed has expired. States are never written: each is computed from the stored
activation times and the injected clock, so replicas agree without talking to each other.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sidecar.domain import jwk
from sidecar.domain.jwk import KeyMaterial
from sidecar.errors import ConfigError, Conflict, Unavailable
from sidecar.models import SigningKeyRecord
from sidecar.ports import Clock, SecretSealer, SigningKeyStore

log = logging.getLogger("sidecar.signing_keys")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TICK = timedelta(milliseconds=1)


class KeyState(enum.StrEnum):
    NEXT = "next"
    CURRENT = "current"
    PREVIOUS = "previous"
    RETIRED = "retired"


class KeySource(enum.StrEnum):
    GENERATED = "generated"
    FILE = "file"
    SETTINGS = "settings"


@dataclass(frozen=True, slots=True)
class RingKey:
    material: KeyMaterial
    source: KeySource
    created_at: datetime
    activates_at: datetime


@dataclass(frozen=True, slots=True)
class KeyStatus:
    key: RingKey
    state: KeyState
    #: when a later key took over signing (``None`` while it is current or next)
    superseded_at: datetime | None
    #: when it leaves the JWKS (``None``: not scheduled)
    retires_at: datetime | None


@dataclass(frozen=True, slots=True)
class RingView:
    """The ring at one moment: the signer, the verifiers, the JWKS bytes; valid until ``changes_at``."""

    signer: KeyMaterial
    verifiers: Mapping[str, KeyMaterial]
    statuses: tuple[KeyStatus, ...]
    jwks_body: bytes
    changes_at: datetime | None


def compute_view(keys: Sequence[RingKey], now: datetime, retention: timedelta | None) -> RingView:
    """Each key's state at ``now``; ``retention`` is how long a superseded key stays published."""
    ordered = sorted(keys, key=lambda k: (k.activates_at, k.material.kid))
    active = [k for k in ordered if k.activates_at <= now] or ordered[:1]
    current = active[-1]
    statuses: list[KeyStatus] = []
    changes: list[datetime] = []
    for i, key in enumerate(ordered):
        if key is current:
            statuses.append(KeyStatus(key, KeyState.CURRENT, None, None))
        elif key.activates_at > now:
            statuses.append(KeyStatus(key, KeyState.NEXT, None, None))
            changes.append(key.activates_at)
        else:
            superseded = ordered[i + 1].activates_at
            retires = None if retention is None else superseded + retention
            state = KeyState.PREVIOUS if retires is None or now < retires else KeyState.RETIRED
            statuses.append(KeyStatus(key, state, superseded, retires))
            if retires is not None and now < retires:
                changes.append(retires)
    published = [s for s in statuses if s.state is not KeyState.RETIRED]
    jwks = [s.key.material.public_jwk for s in published if s.key.material.public_jwk is not None]
    return RingView(
        signer=current.material,
        verifiers={s.key.material.kid: s.key.material for s in published},
        statuses=tuple(statuses),
        jwks_body=json.dumps({"keys": jwks}, separators=(",", ":")).encode(),
        changes_at=min(changes, default=None),
    )


@dataclass(frozen=True, slots=True)
class RingTiming:
    max_token_ttl_s: int
    clock_skew_s: int
    jwks_max_age_s: int
    reload_s: float

    @property
    def retention(self) -> timedelta:
        """A superseded key signed its last token at most this long before that token expires."""
        return timedelta(seconds=self.max_token_ttl_s + self.clock_skew_s)

    @property
    def activation_delay(self) -> timedelta:
        """Long enough for every replica to load a new key and every verifier to refetch the JWKS."""
        return timedelta(seconds=self.jwks_max_age_s + self.reload_s + self.clock_skew_s)


#: Told each new view of the ring: at start, after a reload or rotation that changed the keys,
#: and when a key changes state (next becomes current, previous retires).
ViewHook = Callable[[RingView], None]


class KeyRing:
    """Signing keys, parsed once and held in memory; reloaded from the store by ``reload``."""

    def __init__(
        self,
        clock: Clock,
        timing: RingTiming,
        *,
        algorithm: str,
        store: SigningKeyStore | None = None,
        sealer: SecretSealer | None = None,
        fixed: Sequence[KeyMaterial] = (),
        fixed_created_at: Sequence[datetime] = (),
        accepted: Collection[str] | None = None,
        on_view: ViewHook | None = None,
    ) -> None:
        """Either ``store`` and ``sealer`` (generated keys), or ``fixed`` keys oldest to newest
        (``fixed_created_at``: when each was made, if known, e.g. a key file's modification time).

        ``accepted``: the algorithms verifiers accept (default: ``algorithm``); ``start`` refuses
        a ring whose published keys use another, since tokens they signed would be refused.
        """
        self._clock = clock
        self._timing = timing
        self._algorithm = algorithm
        self._accepted = frozenset(accepted) if accepted else frozenset({algorithm})
        self._store = store
        self._sealer = sealer
        self._keys: dict[str, RingKey] = {}
        self._view: RingView | None = None
        self._on_view = on_view
        self.fixed = bool(fixed)
        for i, material in enumerate(fixed):
            at = EPOCH + timedelta(seconds=i)  # orders the keys: the newest signs
            created = fixed_created_at[i] if i < len(fixed_created_at) else at
            source = KeySource.SETTINGS if material.algorithm == "HS256" else KeySource.FILE
            self._keys[material.kid] = RingKey(material, source, created, at)

    @property
    def timing(self) -> RingTiming:
        return self._timing

    # --- the hot path: no I/O, no parsing -----------------------------------------------------

    def view(self) -> RingView:
        now = self._clock.now()
        view = self._view
        if view is None or (view.changes_at is not None and now >= view.changes_at):
            view = self._rebuild(now)
        return view

    def statuses(self) -> tuple[KeyStatus, ...]:
        """Every key with its state now (empty before the first key exists)."""
        return self.view().statuses if self._keys else ()

    async def ready(self) -> None:
        """The readiness check: raises ``Unavailable`` unless a current key signs."""
        if not self._keys:
            raise Unavailable("no signing key is loaded", reason="no_signing_key")
        if not any(s.state is KeyState.CURRENT for s in self.view().statuses):
            raise Unavailable("no signing key is current", reason="no_signing_key")

    def _rebuild(self, now: datetime) -> RingView:
        if not self._keys:
            raise Unavailable("no signing key is loaded yet", reason="no_signing_key")
        retention = None if self.fixed else self._timing.retention
        view = self._view = compute_view(list(self._keys.values()), now, retention)
        if self._on_view is not None:
            self._on_view(view)
        return view

    # --- loading and rotation -----------------------------------------------------------------

    async def start(self) -> KeyStatus | None:
        """Load the ring; on first start create a key; after an algorithm change schedule one.

        Returns the key that an algorithm change scheduled (a rotation), else ``None``.
        """
        if self.fixed:
            self._rebuild(self._clock.now())
            self._check_accepted()
            return None
        await self.reload()
        if not self._keys:
            await self._insert(self._clock.now(), unless_activating_after=EPOCH)
            return None
        self._check_accepted()
        newest = max(self._keys.values(), key=lambda k: (k.activates_at, k.material.kid))
        if newest.material.algorithm == self._algorithm:
            return None
        log.warning(
            "the configured JWT algorithm is %s but the newest signing key is %s: rotating",
            self._algorithm,
            newest.material.algorithm,
        )
        return await self.rotate()

    def _check_accepted(self) -> None:
        """Every published key's algorithm is accepted: else tokens it signed (or will) would fail."""
        if self._algorithm not in self._accepted:
            raise ConfigError(f"the signing algorithm {self._algorithm} is not an accepted algorithm")
        for status in self.view().statuses:
            algorithm = status.key.material.algorithm
            if status.state is KeyState.RETIRED or algorithm in self._accepted:
                continue
            until = f" until {status.retires_at.isoformat()}" if status.retires_at else ""
            raise ConfigError(
                f"signing key {status.key.material.kid} ({algorithm}, {status.state.value}) is published{until}, "
                f"but the accepted algorithms are {', '.join(sorted(self._accepted))}: accept {algorithm} too "
                "(SIDECAR_JWT__ACCEPTED_ALGORITHMS) until that key retires"
            )

    async def reload(self) -> bool:
        """Re-read the store (a rotation by another replica or the CLI); parse only new keys."""
        if self._store is None:
            if self._view is None and self._keys:
                self._rebuild(self._clock.now())
            return False
        records = await self._store.list_signing_keys()
        fresh = {r.kid: self._keys.get(r.kid) or self._open(r) for r in records}
        changed = fresh.keys() != self._keys.keys()
        self._keys = fresh
        if fresh and (changed or self._view is None):
            self._rebuild(self._clock.now())
        elif fresh:
            self.view()  # a key due to change state (next to current, previous to retired) does so now
        return changed

    async def rotate(self, *, immediate: bool = False) -> KeyStatus:
        """Add a ``next`` key; it signs after the activation delay (at once with ``immediate``).

        ``immediate`` is for a compromised key: verifiers holding a cached JWKS reject the new
        key's tokens until they refetch it.
        """
        if self._store is None:
            raise Conflict(
                "signing keys come from settings (key files or the HS256 secret); rotate them there",
                reason="keys_not_managed",
            )
        await self.reload()
        now = self._clock.now()
        if immediate or not self._keys:
            # strictly after every active key, so the new one is current even at the same instant
            latest = max((k.activates_at for k in self._keys.values() if k.activates_at <= now), default=now)
            kid = await self._insert(max(now, latest + _TICK), unless_activating_after=None)
        else:
            kid = await self._insert(now + self._timing.activation_delay, unless_activating_after=now)
            if kid is None:
                pending = [k for k in self._keys.values() if k.activates_at > now]
                when = min(k.activates_at for k in pending).isoformat() if pending else "soon"
                raise Conflict(f"a rotation is already in progress; the next key signs from {when}", reason="pending")
        return next(s for s in self.view().statuses if s.key.material.kid == kid)

    async def _insert(self, activates_at: datetime, *, unless_activating_after: datetime | None) -> str | None:
        assert self._store is not None
        assert self._sealer is not None
        private = jwk.generate(self._algorithm)
        material = jwk.asymmetric(private)
        record = SigningKeyRecord(
            kid=material.kid,
            algorithm=material.algorithm,
            private_sealed=self._sealer.seal(jwk.to_pem(private), purpose=_purpose(material.kid)),
            created_at=self._clock.now(),
            activates_at=activates_at,
        )
        inserted = await self._store.insert_signing_key(record, unless_activating_after=unless_activating_after)
        await self.reload()
        return material.kid if inserted else None

    def _open(self, record: SigningKeyRecord) -> RingKey:
        assert self._sealer is not None
        pem = self._sealer.unseal(record.private_sealed, purpose=_purpose(record.kid))
        material = jwk.asymmetric(jwk.from_pem(pem, where=f"signing key {record.kid}"))
        return RingKey(material, KeySource.GENERATED, record.created_at, record.activates_at)


def _purpose(kid: str) -> str:
    # binds each sealed key to its kid, so rows cannot be swapped in the store
    return f"signing_key/{kid}"
