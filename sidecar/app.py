"""The composition root: the only module that picks adapters and wires services to routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from sidecar.domain.authn import Authenticator
from sidecar.domain.console import ConsoleSessions
from sidecar.domain.keys import IssuedKey, KeyService
from sidecar.domain.rbac import Policy, RoleModel
from sidecar.domain.tables import TableModel
from sidecar.errors import ConfigError, SidecarError
from sidecar.ports import Clock, KeyStore, SharedKeyCache, postgres, postgres_key_scopes, sqlite, sqlite_key_scopes
from sidecar.ports.clock import SystemClock
from sidecar.ports.memory_cache import MemoryKeyCache
from sidecar.ports.redis_client import check_url as check_redis_url
from sidecar.ports.sealer import Sealer, decode_master_key, load_or_create_master_key
from sidecar.redis_wiring import INVALIDATIONS, invalidations, open_redis
from sidecar.settings import Settings, load_role_model, load_table_model
from sidecar.web import auth, dashboard, keys
from sidecar.web.errors import error_middleware
from sidecar.web.state import SERVICES, Services

log = logging.getLogger("sidecar")
BootstrapHook = Callable[[IssuedKey], None]


#: Every SQLite-backed component's schema; components add their ``MIGRATIONS`` here.
SQLITE_MIGRATIONS = (*sqlite.MIGRATIONS, *sqlite_key_scopes.MIGRATIONS)
#: The same for PostgreSQL-backed components.
POSTGRES_MIGRATIONS = (*postgres.MIGRATIONS, *postgres_key_scopes.MIGRATIONS)


@dataclass(frozen=True, slots=True)
class Stores:
    """The durable stores of one database; components add theirs as fields."""

    keys: KeyStore


@asynccontextmanager
async def open_stores(url: str, *, pool_size: int = 10, timeout_s: float = 5.0) -> AsyncIterator[Stores]:
    """The stores for ``sqlite:///path`` or ``postgresql://…``, migrated.

    ``pool_size`` and ``timeout_s`` apply to PostgreSQL (``SIDECAR_DATABASE_POOL_SIZE``/``_TIMEOUT_S``).
    """
    if url.startswith("sqlite:///"):
        async with sqlite.SqliteDatabase.open(Path(url.removeprefix("sqlite:///")), SQLITE_MIGRATIONS) as db:
            yield Stores(keys=sqlite.SqliteKeyStore(db))
        return
    if url.startswith(("postgresql://", "postgres://")):
        async with postgres.PostgresDatabase.open(
            url, POSTGRES_MIGRATIONS, pool_size=pool_size, timeout_s=timeout_s
        ) as pg:
            yield Stores(keys=postgres.PostgresKeyStore(pg))
        return
    raise ConfigError(f"SIDECAR_DATABASE_URL: unsupported scheme in {url.split(':', 1)[0]!r}")


def store_options(settings: Settings) -> dict[str, Any]:
    """``open_stores`` arguments from the settings: ``open_stores(**store_options(settings))``."""
    return {
        "url": settings.store_url(),
        "pool_size": settings.database_pool_size,
        "timeout_s": settings.database_timeout_s,
    }


def build_sealer(settings: Settings) -> Sealer:
    if settings.master_key is not None:
        return Sealer(decode_master_key(settings.master_key.get_secret_value()))
    return Sealer(load_or_create_master_key(settings.data_dir / "master.key"))


def build_key_service(
    settings: Settings, store: KeyStore, clock: Clock, policy: Policy, shared: SharedKeyCache | None = None
) -> KeyService:
    cache = MemoryKeyCache(
        clock,
        max_entries=settings.key_cache.max_entries,
        ttl_s=settings.key_cache.ttl_s,
        negative_ttl_s=settings.key_cache.negative_ttl_s,
    )
    return KeyService(store, cache, clock, policy, default_org_id=settings.default_org_id, shared=shared)


async def _flush_last_used_forever(keys: KeyService, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await keys.flush_last_used()
        except Exception:
            log.exception("could not record last_used_at; will retry")


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    roles: RoleModel | None = None,
    tables: TableModel | None = None,
    on_bootstrap: BootstrapHook | None = None,
) -> web.Application:
    """Build the application; resources open when it starts and close when it stops."""
    clock = clock or SystemClock()
    policy = Policy(roles or load_role_model(settings.roles_file))
    tables = tables or load_table_model(settings.tables_file, policy.model)
    sealer = build_sealer(settings)
    if settings.redis_url:
        check_redis_url(settings.redis_url)

    @asynccontextmanager
    async def resources(app: web.Application) -> AsyncIterator[None]:
        async with open_stores(**store_options(settings)) as stores, open_redis(settings, clock) as redis:
            key_service = build_key_service(settings, stores.keys, clock, policy, redis.keys if redis else None)
            app[SERVICES] = Services(
                keys=key_service,
                policy=policy,
                authenticator=Authenticator(key_service),
                console=ConsoleSessions(key_service, policy, sealer, clock, ttl_s=settings.dashboard_session_ttl_s),
                tables=tables,
            )
            supplied = settings.bootstrap_admin_key
            issued = await key_service.bootstrap(supplied.get_secret_value() if supplied else None)
            if issued is not None and on_bootstrap is not None:
                on_bootstrap(issued)
            flusher = asyncio.create_task(_flush_last_used_forever(key_service, settings.last_used_flush_s))
            try:
                async with invalidations(redis, key_service) as listener:
                    if listener is not None:
                        app[INVALIDATIONS] = listener
                    yield
            finally:
                flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flusher
                try:
                    await key_service.flush_last_used()
                except SidecarError as exc:  # shutting down while the store is away: lose only timestamps
                    log.warning("could not record last_used_at at shutdown: %s", exc.reason)

    app = web.Application(middlewares=[error_middleware], client_max_size=settings.max_body_bytes)
    app.cleanup_ctx.append(resources)
    app[dashboard.TEMPLATES] = dashboard.make_templates()
    for module in (auth, keys, dashboard):
        app.router.add_routes(module.routes)
    return app
