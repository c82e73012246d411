"""The key-scope table in PostgreSQL: one row per API key and listed scope, for Hasura to read.

The same table as ``sqlite_key_scopes`` (its shape is ``tables.yaml``'s ``key_scopes``). When
the sidecar shares Hasura's PostgreSQL, the generated metadata checks a restricted key's scope
with an ``_exists`` on it, keyed by ``X-Hasura-Key-Id``; ``PostgresKeyStore.set_key_scopes``
keeps it in step with ``api_keys`` on create, roll and revoke.
"""

from __future__ import annotations

from sidecar.ports.migrations import Migration

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "api_key_scopes",
        1,
        """
        CREATE TABLE api_key_scopes (
            key_id TEXT COLLATE "C" NOT NULL,
            scope TEXT NOT NULL,
            PRIMARY KEY (key_id, scope)
        )
        """,
    ),
)
