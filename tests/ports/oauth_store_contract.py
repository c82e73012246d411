"""The OAuth store contract: written once, run against every adapter (SQLite, PostgreSQL).

Not collected by itself (no ``Test`` prefix); adapters' test modules subclass it and provide
the ``store`` fixture, already holding the client ``oc_1``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sidecar.models import (
    AccessTokenRecord,
    AuthorizationCode,
    ClientType,
    Environment,
    OAuthClient,
    OAuthGrant,
    OAuthSubject,
    RefreshTokenRecord,
)
from sidecar.ports.oauth import OAuthStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SUBJECT = OAuthSubject(subject="user_1", org_id="org_1", environment=Environment.LIVE, user_id="user_1")
CLIENT = OAuthClient(
    "oc_1", "P", ClientType.CONFIDENTIAL, "d" * 64, ("https://p.example/cb",), ("orders:read",), "org_1", NOW, "abcd"
)


class OAuthStoreContract:
    @staticmethod
    def code(digest: str = "c1") -> AuthorizationCode:
        return AuthorizationCode(
            digest,
            "oc_1",
            "https://p.example/cb",
            "x" * 43,
            ("orders:read",),
            SUBJECT,
            "og_1",
            NOW + timedelta(seconds=60),
        )

    async def test_client_round_trip(self, store: OAuthStore) -> None:
        client = await store.get_client("oc_1")
        assert client is not None
        assert (client.type, client.redirect_uris, client.secret_last4) == (
            ClientType.CONFIDENTIAL,
            ("https://p.example/cb",),
            "abcd",
        )
        page = await store.list_clients(org_id="org_1", limit=10, starting_after=None)
        assert [c.id for c in page.data] == ["oc_1"]
        assert (await store.list_clients(org_id="org_2", limit=10, starting_after=None)).data == []

    async def test_a_code_is_marked_used_exactly_once_under_concurrency(self, store: OAuthStore) -> None:
        await store.insert_code(self.code())
        results = await asyncio.gather(*(store.mark_code_used("c1", NOW) for _ in range(10)))
        assert results.count(True) == 1
        stored = await store.get_code("c1")
        assert stored is not None
        assert stored.used_at == NOW
        assert stored.subject == SUBJECT

    async def test_refresh_rotation_wins_once(self, store: OAuthStore) -> None:
        old = RefreshTokenRecord("r1", "og_1", "oc_1", NOW, NOW + timedelta(days=1))
        await store.insert_refresh_token(old)
        news = [RefreshTokenRecord(f"r2-{i}", "og_1", "oc_1", NOW, NOW + timedelta(days=1)) for i in range(5)]
        results = await asyncio.gather(*(store.rotate_refresh_token("r1", NOW, n) for n in news))
        assert results.count(True) == 1
        inserted = [await store.get_refresh_token(n.digest) for n in news]
        assert sum(r is not None for r in inserted) == 1

    async def test_revoking_a_grant_revokes_its_tokens(self, store: OAuthStore) -> None:
        await store.insert_grant(OAuthGrant("og_1", "oc_1", ("orders:read",), SUBJECT, NOW))
        await store.insert_grant(OAuthGrant("og_2", "oc_1", ("orders:read",), SUBJECT, NOW))
        await store.insert_refresh_token(RefreshTokenRecord("r1", "og_1", "oc_1", NOW, NOW + timedelta(days=1)))
        await store.insert_access_token(AccessTokenRecord("j1", "og_1", "oc_1", NOW, NOW + timedelta(hours=1)))
        await store.insert_access_token(AccessTokenRecord("j2", "og_2", "oc_1", NOW, NOW + timedelta(hours=1)))
        await store.revoke_grant("og_1", NOW)
        grant = await store.get_grant("og_1")
        access = await store.get_access_token("j1")
        refresh = await store.get_refresh_token("r1")
        other = await store.get_access_token("j2")
        assert grant is not None
        assert grant.revoked_at == NOW
        assert access is not None
        assert access.revoked_at == NOW
        assert refresh is not None
        assert refresh.used_at == NOW
        assert other is not None
        assert other.revoked_at is None

    async def test_deleting_a_client_removes_codes_and_revokes_everything(self, store: OAuthStore) -> None:
        await store.insert_code(self.code())
        await store.insert_grant(OAuthGrant("og_1", "oc_1", ("orders:read",), SUBJECT, NOW))
        await store.insert_access_token(AccessTokenRecord("j1", "og_1", "oc_1", NOW, NOW + timedelta(hours=1)))
        assert await store.delete_client("oc_1", NOW) is True
        assert await store.get_client("oc_1") is None
        assert await store.get_code("c1") is None
        access = await store.get_access_token("j1")
        assert access is not None
        assert access.revoked_at == NOW
        assert await store.delete_client("oc_1", NOW) is False

    async def test_clients_page_newest_first(self, store: OAuthStore) -> None:
        for i in range(3):
            later = OAuthClient(
                f"oc_n{i}", "P", ClientType.PUBLIC, None, ("https://p.example/cb",), ("orders:read",), "org_1",
                NOW + timedelta(seconds=i + 1),
            )  # fmt: skip
            await store.insert_client(later)
        first = await store.list_clients(org_id=None, limit=2, starting_after=None)
        assert [c.id for c in first.data] == ["oc_n2", "oc_n1"]
        assert first.has_more
        rest = await store.list_clients(org_id=None, limit=2, starting_after="oc_n1")
        assert [c.id for c in rest.data] == ["oc_n0", "oc_1"]
        assert not rest.has_more
        public = await store.get_client("oc_n0")
        assert public is not None
        assert public.secret_digest is None

    async def test_inserting_a_grant_twice_keeps_the_first(self, store: OAuthStore) -> None:
        await store.insert_grant(OAuthGrant("og_1", "oc_1", ("orders:read",), SUBJECT, NOW))
        await store.revoke_grant("og_1", NOW)
        await store.insert_grant(OAuthGrant("og_1", "oc_1", ("orders:read",), SUBJECT, NOW))
        grant = await store.get_grant("og_1")
        assert grant is not None
        assert grant.revoked_at == NOW
