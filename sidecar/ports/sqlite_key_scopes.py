"""The key-scope table: one row per API key and listed scope, for Hasura to read.

When the sidecar shares Hasura's PostgreSQL, the generated metadata (``sidecar hasura
metadata``) checks a restricted key's scope with an ``_exists`` on this table, keyed by the
``X-Hasura-Key-Id`` session variable. The key stores keep it in step with ``api_keys``
(``KeyStore.set_key_scopes``, on create and roll). Its shape is ``tables.yaml``'s ``key_scopes``.
"""

from __future__ import annotations

from sidecar.ports.migrations import Migration

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "api_key_scopes",
        1,
        """
        CREATE TABLE api_key_scopes (
            key_id TEXT NOT NULL,
            scope TEXT NOT NULL,
            PRIMARY KEY (key_id, scope)
        )
        """,
    ),
)
