"""The audit trail: who did what, to what, when and from where.

Key management records through the ``key_*`` helpers; other components (signing-key rotation,
OAuth clients) call ``record`` with their own action (see ``Action``) and an ``Actor``.
Recording never sees a key, a token or a secret: only ids, names and reasons.
"""

from __future__ import annotations

import enum
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from sidecar.domain import keyformat, scopes
from sidecar.errors import Forbidden, InvalidRequest
from sidecar.models import ApiKeyRecord, AuditEvent, AuditQuery, Page, Principal
from sidecar.ports import AuditStore, Clock

SYSTEM_ORGS_SCOPE = "system:orgs"
MAX_USER_AGENT = 256
MAX_DETAIL_VALUE = 200
_ACTION = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")


class Action(enum.StrEnum):
    KEY_CREATED = "api_key.created"
    KEY_ROLLED = "api_key.rolled"
    KEY_REVOKED = "api_key.revoked"
    PERMISSION_DENIED = "admin.permission_denied"
    SIGNING_KEY_ROTATED = "signing_key.rotated"
    OAUTH_CLIENT_CREATED = "oauth_client.created"
    OAUTH_CLIENT_DELETED = "oauth_client.deleted"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted, and from where (for HTTP callers)."""

    id: str
    type: str
    org_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None

    @classmethod
    def cli(cls) -> Actor:
        """The local operator, through the ``sidecar`` command."""
        return cls(id="cli", type="cli")

    @classmethod
    def system(cls) -> Actor:
        """The service itself (scheduled rotation, bootstrap)."""
        return cls(id="system", type="system")

    @classmethod
    def of(
        cls,
        principal: Principal | None,
        *,
        ip: str | None = None,
        user_agent: str | None = None,
        request_id: str | None = None,
    ) -> Actor:
        """An HTTP caller: its key id (or token subject); ``anonymous`` before authentication."""
        if principal is None:
            who, kind, org = "anonymous", "anonymous", None
        else:
            who, kind, org = principal.key_id or principal.subject, principal.credential_type.value, principal.org_id
        return cls(
            id=who,
            type=kind,
            org_id=org,
            ip=ip,
            user_agent=user_agent[:MAX_USER_AGENT] if user_agent else None,
            request_id=request_id,
        )


def new_event_id() -> str:
    return "evt_" + "".join(secrets.choice(keyformat.BASE62) for _ in range(24))


class AuditLog:
    def __init__(self, store: AuditStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def record(
        self,
        action: str,
        actor: Actor,
        *,
        org_id: str | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        detail: Mapping[str, str] | None = None,
    ) -> AuditEvent:
        """Append one event; ``action`` is ``noun.verb`` (lower case), ``detail`` short strings."""
        if not _ACTION.fullmatch(action):
            raise ValueError(f"audit action must look like 'noun.verb', not {action!r}")
        event = AuditEvent(
            id=new_event_id(),
            occurred_at=self._clock.now(),
            action=action,
            actor_id=actor.id,
            actor_type=actor.type,
            org_id=org_id if org_id is not None else actor.org_id,
            target_type=target_type,
            target_id=target_id,
            ip=actor.ip,
            user_agent=actor.user_agent,
            request_id=actor.request_id,
            detail={k: str(v)[:MAX_DETAIL_VALUE] for k, v in (detail or {}).items()},
        )
        await self._store.insert_event(event)
        return event

    async def key_created(self, actor: Actor, record: ApiKeyRecord) -> AuditEvent:
        return await self.record(
            Action.KEY_CREATED,
            actor,
            org_id=record.org_id,
            target_type="api_key",
            target_id=record.id,
            detail=_key_detail(record),
        )

    async def key_rolled(self, actor: Actor, old: ApiKeyRecord, new: ApiKeyRecord) -> AuditEvent:
        detail = {**_key_detail(old), "new_key_id": new.id}
        if old.expires_at is not None:
            detail["old_key_expires_at"] = old.expires_at.isoformat()
        return await self.record(
            Action.KEY_ROLLED, actor, org_id=old.org_id, target_type="api_key", target_id=old.id, detail=detail
        )

    async def key_revoked(self, actor: Actor, record: ApiKeyRecord) -> AuditEvent:
        return await self.record(
            Action.KEY_REVOKED,
            actor,
            org_id=record.org_id,
            target_type="api_key",
            target_id=record.id,
            detail=_key_detail(record),
        )

    async def signing_key_rotated(
        self, actor: Actor, *, kid: str, algorithm: str, activates_at: datetime, immediate: bool
    ) -> AuditEvent:
        """A new signing key (``kid``) added by a rotation; it signs from ``activates_at``."""
        return await self.record(
            Action.SIGNING_KEY_ROTATED,
            actor,
            target_type="signing_key",
            target_id=kid,
            detail={
                "alg": algorithm,
                "activates_at": activates_at.isoformat(),
                "immediate": "true" if immediate else "false",
            },
        )

    async def permission_denied(self, actor: Actor, *, method: str, route: str, reason: str) -> AuditEvent:
        """A 403 on the admin API: ``route`` is the path template, never the raw path."""
        return await self.record(
            Action.PERMISSION_DENIED, actor, detail={"method": method, "route": route, "reason": reason}
        )

    async def list(self, query: AuditQuery, *, viewer: Principal | None) -> Page[AuditEvent]:
        """A page of events; a viewer without ``system:orgs`` sees only its own organisation's."""
        if query.since is not None and query.until is not None and query.since >= query.until:
            raise InvalidRequest("since must be before until", reason="bad_query")
        if viewer is not None and not scopes.allows(viewer.scopes, SYSTEM_ORGS_SCOPE):
            if query.org_id is not None and query.org_id != viewer.org_id:
                raise Forbidden(
                    f"this credential cannot read another organisation's events: missing scope {SYSTEM_ORGS_SCOPE}",
                    reason="cross_org",
                )
            query = replace(query, org_id=viewer.org_id)
        return await self._store.list_events(query)


def _key_detail(record: ApiKeyRecord) -> dict[str, str]:
    return {"display": record.display, "type": record.type.value, "role": record.role, "name": record.name}
