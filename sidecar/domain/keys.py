"""API keys: mint, store a digest, authenticate (the hot path), list, revoke, roll."""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sidecar.domain import keyformat, origins, scopes
from sidecar.domain.keyformat import KeyPrefix
from sidecar.domain.memo import remember
from sidecar.domain.rbac import Policy
from sidecar.domain.revocations import TokenRevocations
from sidecar.errors import (
    Conflict,
    ExpiredApiKey,
    Forbidden,
    InvalidApiKey,
    InvalidRequest,
    NotFound,
    RevokedApiKey,
)
from sidecar.models import ApiKeyRecord, CredentialType, Environment, KeyType, Page, Principal
from sidecar.ports import Clock, KeyCache, KeyStore, SharedKeyCache

SYSTEM_ORGS_SCOPE = "system:orgs"
MAX_NAME_LENGTH = 200
#: Keys whose token-exchange mark this process remembers (``note_token_exchange``); one more
#: than this costs one store write, never a missed revocation.
MAX_REMEMBERED_MARKS = 100_000


@dataclass(frozen=True, slots=True)
class NewKey:
    """What a caller asks for when creating a key; unset fields take defaults from the type."""

    type: KeyType = KeyType.SECRET
    role: str | None = None
    environment: Environment = Environment.LIVE
    name: str = ""
    org_id: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    permissions: tuple[str, ...] = ()
    expires_at: datetime | None = None
    allowed_origins: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A newly minted key: the only moment the key itself exists outside the caller's hands."""

    record: ApiKeyRecord
    key: str


def _key_origins(spec: NewKey) -> tuple[str, ...]:
    """A publishable key's browser origins, normalized; other keys must not be used in browsers at all."""
    if not spec.allowed_origins:
        return ()
    if spec.type is not KeyType.PUBLISHABLE:
        raise InvalidRequest(
            "allowed_origins are for publishable keys; secret and restricted keys are refused in browsers",
            reason="origins_not_publishable",
        )
    try:
        return origins.normalize_origins(spec.allowed_origins)
    except ValueError as exc:
        raise InvalidRequest(f"allowed_origins: {exc}", reason="bad_origin") from None


def new_key_id() -> str:
    return "key_" + "".join(secrets.choice(keyformat.BASE62) for _ in range(24))


class KeyService:
    def __init__(
        self,
        store: KeyStore,
        cache: KeyCache,
        clock: Clock,
        policy: Policy,
        *,
        default_org_id: str,
        shared: SharedKeyCache | None = None,
        revocations: TokenRevocations | None = None,
        max_principals: int = 10_000,
        token_ttl_s: int = 3600,
    ) -> None:
        self._revocations = revocations
        self._token_ttl = timedelta(seconds=token_ttl_s)
        #: key id -> the end this process recorded for its tokens, oldest first (``note_token_exchange``)
        self._marks: OrderedDict[str, datetime] = OrderedDict()
        self._store = store
        self._cache = cache
        self._shared = shared
        #: Bumped on every eviction: a lookup that raced one must not cache what it read.
        self._generation = 0
        self._clock = clock
        self._policy = policy
        self._default_org = default_org_id
        self._last_used: dict[str, datetime] = {}
        #: The principal last built for each cached record, reused while the cache holds that very
        #: record object (a reload, a roll or a revoke puts a new one there); bounded like the cache.
        self._principals: dict[str, tuple[ApiKeyRecord, Principal]] = {}
        self._max_principals = max(1, max_principals)

    def now(self) -> datetime:
        return self._clock.now()

    # --- the hot path -------------------------------------------------------------------------

    async def authenticate(self, key: str) -> Principal:
        """The principal for a presented key; raises a 401-class error for any bad key.

        A key whose checksum fails never reaches the shared cache or the store.
        """
        record = await self.verify(key)
        memo = self._principals.get(record.digest)
        if memo is not None and memo[0] is record:
            return memo[1]
        principal = self.principal_for(record)
        remember(self._principals, record.digest, (record, principal), bound=self._max_principals)
        return principal

    def still_current(self, digest: str, principal: Principal) -> bool:
        """Whether ``authenticate`` would give ``principal`` now for the key with ``digest``, known
        without I/O: the cache still holds the very record ``principal`` was built from, and that
        record is neither revoked nor expired. Counts as a use of the key, as ``authenticate`` does."""
        hit, record = self._cache.get(digest)
        if not hit or record is None:
            return False
        memo = self._principals.get(digest)
        if memo is None or memo[0] is not record or memo[1] is not principal:
            return False
        now = self._clock.now()
        if record.revoked_at is not None or record.is_expired(now):
            return False
        self._last_used[record.id] = now
        return True

    async def verify(self, key: str) -> ApiKeyRecord:
        if len(key) > keyformat.MAX_KEY_LENGTH or not key.isascii():
            raise InvalidApiKey("the API key is not valid", reason="api_key_malformed")
        # The checksum first: a mistyped or forged key costs no cache or store lookup (about 1 µs).
        if keyformat.parse(key) is None:
            raise InvalidApiKey("the API key is not valid", reason="api_key_malformed")
        digest = keyformat.digest(key)
        hit, record = self._cache.get(digest)
        if not hit:
            record = await self._load(digest)
        if record is None or not hmac.compare_digest(record.digest, digest):
            raise InvalidApiKey("the API key is not valid", reason="api_key_unknown")
        now = self._clock.now()
        if record.revoked_at is not None:
            raise RevokedApiKey("the API key has been revoked", reason="api_key_revoked")
        if record.is_expired(now):
            raise ExpiredApiKey("the API key has expired", reason="api_key_expired")
        self._last_used[record.id] = now
        return record

    async def _load(self, digest: str) -> ApiKeyRecord | None:
        """An in-process miss: the shared tier (if any), then the store."""
        generation = self._generation
        shared = self._shared
        if shared is not None:
            hit, record = await shared.get(digest)
            if hit:
                if generation == self._generation:
                    self._cache.put(digest, record)
                return record
        record = await self._store.get_key_by_digest(digest)
        if generation == self._generation:
            self._cache.put(digest, record)
            if shared is not None:
                await shared.put(digest, record)
        return record

    def forget(self, digest: str) -> None:
        """Drop one key from this process's cache (another replica changed it)."""
        self._generation += 1
        self._cache.evict(digest)
        self._principals.pop(digest, None)

    def forget_all(self) -> None:
        """Drop this process's whole cache (invalidations may have been missed)."""
        self._generation += 1
        self._cache.clear()
        self._principals.clear()

    async def _invalidate(self, digest: str) -> None:
        self.forget(digest)
        if self._shared is not None:
            await self._shared.invalidate(digest)

    async def active_principal(self, key_id: str) -> Principal:
        """The principal of an active key looked up by id (for sessions that name a key)."""
        record = await self._store.get_key(key_id)
        if record is None:
            raise InvalidApiKey("the API key no longer exists", reason="api_key_unknown")
        if record.revoked_at is not None:
            raise RevokedApiKey("the API key has been revoked", reason="api_key_revoked")
        if record.is_expired(self._clock.now()):
            raise ExpiredApiKey("the API key has expired", reason="api_key_expired")
        return self.principal_for(record)

    def principal_for(self, record: ApiKeyRecord) -> Principal:
        policy = self._policy
        if not policy.has_role(record.role):  # removed from roles.yaml since the key was made
            raise InvalidApiKey("the API key's role no longer exists", reason="api_key_role_unknown")
        if not record.permissions:
            scopes = policy.role_scopes(record.role)
        elif record.type is KeyType.RESTRICTED:
            scopes = record.permissions  # exactly its listed scopes: they are its row
        else:
            # stored when the key was made: a role narrowed in roles.yaml since then narrows the key too
            scopes = policy.within_role(record.permissions, record.role)
        return Principal(
            credential_type=CredentialType.API_KEY,
            subject=record.user_id or record.id,
            org_id=record.org_id,
            team_id=record.team_id,
            user_id=record.user_id,
            role=record.role,
            allowed_roles=policy.acts_as(record.role),
            scopes=scopes,
            environment=record.environment,
            key_id=record.id,
            key_type=record.type,
            expires_at=record.expires_at,
            allowed_origins=record.allowed_origins,
        )

    # --- last_used_at, batched off the hot path ----------------------------------------------

    async def flush_last_used(self) -> int:
        """Write the batched ``last_used_at`` times; returns how many keys were touched."""
        if not self._last_used:
            return 0
        batch, self._last_used = self._last_used, {}
        await self._store.touch_keys(batch)
        return len(batch)

    # --- session tokens of a key -------------------------------------------------------------

    async def note_token_exchange(self, principal: Principal) -> None:
        """Before a session token is handed out for an API key: record in the store that the key's
        tokens may live a while (two token lifetimes from now), so that revoking the key revokes
        them, and that revoking a key which never exchanged one needs no revocation entry at all.

        One store write per key per token lifetime in each process. ``RevokedApiKey`` when the key
        was revoked meanwhile (a cached copy still said it was active); ``Unavailable`` when the
        store cannot answer: no token without the record (fail closed).
        """
        if principal.credential_type is not CredentialType.API_KEY or principal.key_id is None:
            return
        key_id, now = principal.key_id, self._clock.now()
        marked = self._marks.get(key_id)
        if marked is not None and marked >= now + self._token_ttl:  # covers a token issued now
            return
        until = now + 2 * self._token_ttl
        if not await self._store.mark_key_tokens(key_id, until):
            raise RevokedApiKey("the API key has been revoked", reason="api_key_revoked")
        marks = self._marks
        marks[key_id] = until
        marks.move_to_end(key_id)
        # oldest first: a mark that no longer covers a new token, or one over the bound, goes
        while marks:
            first = next(iter(marks.values()))
            if first >= now + self._token_ttl and len(marks) <= MAX_REMEMBERED_MARKS:
                break
            marks.popitem(last=False)

    # --- management ---------------------------------------------------------------------------

    async def create(self, spec: NewKey, *, grantor: Principal | None) -> IssuedKey:
        """Mint a key. ``grantor`` is the calling credential; ``None`` is the local operator (CLI)."""
        prefix, role, permissions = self._resolve_type(spec)
        org_id = spec.org_id or (grantor.org_id if grantor and grantor.org_id else self._default_org)
        self._check_spec(spec, org_id)
        if grantor is not None:
            self._check_grantor(grantor, role, permissions or self._policy.role_scopes(role), org_id)
        key = keyformat.mint(prefix)
        record = ApiKeyRecord(
            id=new_key_id(),
            digest=keyformat.digest(key),
            prefix=prefix.prefix,
            last4=key[-4:],
            name=spec.name,
            type=spec.type,
            role=role,
            environment=spec.environment,
            org_id=org_id,
            team_id=spec.team_id,
            user_id=spec.user_id,
            permissions=permissions,
            created_at=self._clock.now(),
            expires_at=spec.expires_at.astimezone(UTC) if spec.expires_at else None,
            allowed_origins=_key_origins(spec),
        )
        await self._store.insert_key(record)
        await self._store.set_key_scopes(record.id, record.permissions)
        self.forget(record.digest)  # a cached 'no such key' must not outlive the key's birth
        return IssuedKey(record=record, key=key)

    def _resolve_type(self, spec: NewKey) -> tuple[KeyPrefix, str, tuple[str, ...]]:
        policy = self._policy
        permissions = tuple(dict.fromkeys(spec.permissions))
        policy.check_scopes_known(permissions)
        if spec.type is KeyType.PUBLISHABLE:
            role = spec.role or "anonymous"
            if role != "anonymous":
                raise InvalidRequest("publishable keys always have the role anonymous", reason="bad_role")
        elif spec.type is KeyType.RESTRICTED:
            role = spec.role or "restricted"
            if role != "restricted":
                raise InvalidRequest("restricted keys always have the role restricted", reason="bad_role")
            if not permissions:
                raise InvalidRequest("a restricted key needs at least one permission", reason="no_permissions")
        else:
            role = spec.role or keyformat.prefix_for(KeyType.SECRET, "operator", spec.environment).default_role
            if not policy.has_role(role) or role in ("anonymous", "restricted"):
                raise InvalidRequest(f"secret keys cannot have the role {role!r}", reason="bad_role")
        if spec.type is not KeyType.RESTRICTED and permissions:
            beyond = scopes.within(policy.role_scopes(role), permissions)
            if beyond:
                raise InvalidRequest(
                    f"permission(s) beyond what the role {role} allows: {', '.join(beyond)}",
                    reason="permissions_beyond_role",
                )
        return keyformat.prefix_for(spec.type, role, spec.environment), role, permissions

    def _check_spec(self, spec: NewKey, org_id: str) -> None:
        if len(spec.name) > MAX_NAME_LENGTH:
            raise InvalidRequest(f"name is longer than {MAX_NAME_LENGTH} characters", reason="bad_name")
        if spec.expires_at is not None and spec.expires_at <= self._clock.now():
            raise InvalidRequest("expires_at must be in the future", reason="expiry_in_past")
        if not org_id:
            raise InvalidRequest("org_id must not be empty", reason="bad_org")

    def _check_grantor(self, grantor: Principal, role: str, scopes: tuple[str, ...], org_id: str) -> None:
        self._policy.check_can_grant(grantor, role, scopes)
        if org_id != grantor.org_id and not _holds(grantor, SYSTEM_ORGS_SCOPE):
            raise Forbidden(
                f"this credential cannot act in another organisation: missing scope {SYSTEM_ORGS_SCOPE}",
                reason="cross_org",
            )

    async def get(self, key_id: str, *, viewer: Principal | None) -> ApiKeyRecord:
        record = await self._store.get_key(key_id)
        if record is None or not _may_see(viewer, record):
            raise NotFound(f"no API key with id {key_id}", reason="key_not_found")
        return record

    async def list(
        self,
        *,
        viewer: Principal | None,
        org_id: str | None,
        key_type: KeyType | None,
        limit: int,
        starting_after: str | None,
    ) -> Page[ApiKeyRecord]:
        if viewer is not None and not _holds(viewer, SYSTEM_ORGS_SCOPE):
            if org_id is not None and org_id != viewer.org_id:
                raise Forbidden(
                    f"this credential cannot list another organisation's keys: missing scope {SYSTEM_ORGS_SCOPE}",
                    reason="cross_org",
                )
            org_id = viewer.org_id
        return await self._store.list_keys(org_id=org_id, key_type=key_type, limit=limit, starting_after=starting_after)

    async def revoke(self, key_id: str, *, viewer: Principal | None) -> ApiKeyRecord:
        record = await self.get(key_id, viewer=viewer)
        if viewer is not None:  # no revoking a key more powerful than the caller's own (an admin's super_admin)
            self._check_grantor(
                viewer, record.role, record.permissions or self._policy.role_scopes(record.role), record.org_id
            )
        revoked = await self._store.revoke_key(record.id, self._clock.now())
        if revoked is None:
            raise NotFound(f"no API key with id {key_id}", reason="key_not_found")
        await self._invalidate(record.digest)
        # Hasura's key-scope check then refuses the key's still-unexpired session JWTs too
        await self._store.set_key_scopes(record.id, ())
        self._marks.pop(record.id, None)
        if self._revocations is not None:  # and the webhook refuses them, if it ever exchanged any
            tokens_until = await self._store.key_tokens_until(record.id)  # no mark lands after revoke_key
            if tokens_until is not None:
                await self._revocations.revoke_key_tokens(record.id, tokens_until)
        return revoked

    async def roll(self, key_id: str, *, expires_in_s: int, viewer: Principal | None) -> tuple[IssuedKey, ApiKeyRecord]:
        """Issue a successor with the same attributes; the old key lives ``expires_in_s`` more seconds."""
        old = await self.get(key_id, viewer=viewer)
        if viewer is not None:  # the successor is a new secret in the caller's hands
            self._check_grantor(viewer, old.role, old.permissions or self._policy.role_scopes(old.role), old.org_id)
        now = self._clock.now()
        if old.revoked_at is not None or old.is_expired(now):
            raise Conflict("only an active key can be rolled", reason="key_not_active")
        if old.rolled_to is not None:
            raise Conflict(f"this key was already rolled to {old.rolled_to}", reason="key_already_rolled")
        old_expiry = now + timedelta(seconds=expires_in_s)
        if old.expires_at is not None and old.expires_at < old_expiry:
            old_expiry = old.expires_at
        key = keyformat.mint(keyformat.prefix_for(old.type, old.role, old.environment))
        new = replace(
            old,
            id=new_key_id(),
            digest=keyformat.digest(key),
            last4=key[-4:],
            created_at=now,
            last_used_at=None,
            rolled_to=None,
        )
        await self._store.roll_key(old.id, old_expiry, new)
        await self._store.set_key_scopes(new.id, new.permissions)
        await self._invalidate(old.digest)
        updated = replace(old, expires_at=old_expiry, rolled_to=new.id)
        return IssuedKey(record=new, key=key), updated

    # --- bootstrap ----------------------------------------------------------------------------

    async def bootstrap(self, supplied_key: str | None) -> IssuedKey | None:
        """On an empty store, create the first super-admin key (or import the operator's).

        Returns the new key when one was minted here (to be shown once), else ``None``.
        """
        if await self._store.count_keys() > 0:
            return None
        if supplied_key is not None:
            prefix = keyformat.parse(supplied_key)
            if prefix is None or prefix.prefix not in ("sk_super_", "sk_admin_"):
                raise InvalidRequest(
                    "SIDECAR_BOOTSTRAP_ADMIN_KEY must be a well-formed sk_super_ or sk_admin_ key "
                    "(generate one with `sidecar keys generate --role super_admin`)",
                    reason="bad_bootstrap_key",
                )
            record = self._bootstrap_record(supplied_key, prefix)
            await self._store.insert_key(record)
            return None
        prefix = keyformat.prefix_for(KeyType.SECRET, "super_admin", Environment.LIVE)
        key = keyformat.mint(prefix)
        record = self._bootstrap_record(key, prefix)
        await self._store.insert_key(record)
        return IssuedKey(record=record, key=key)

    def _bootstrap_record(self, key: str, prefix: KeyPrefix) -> ApiKeyRecord:
        return ApiKeyRecord(
            id=new_key_id(),
            digest=keyformat.digest(key),
            prefix=prefix.prefix,
            last4=key[-4:],
            name="bootstrap admin key",
            type=KeyType.SECRET,
            role=prefix.default_role,
            environment=Environment.LIVE,
            org_id=self._default_org,
            team_id=None,
            user_id=None,
            permissions=(),
            created_at=self._clock.now(),
        )


def _holds(principal: Principal, scope: str) -> bool:
    return scopes.allows(principal.scopes, scope)


def _may_see(viewer: Principal | None, record: ApiKeyRecord) -> bool:
    return viewer is None or record.org_id == viewer.org_id or _holds(viewer, SYSTEM_ORGS_SCOPE)
