"""The composition root: the only module that picks adapters and wires services to routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from sidecar import __version__
from sidecar.domain import jwk
from sidecar.domain.audit import Actor, AuditLog
from sidecar.domain.authn import Authenticator
from sidecar.domain.console import ConsoleSessions
from sidecar.domain.decision import Anonymous, CredentialAuthenticator, CredentialSources, Decider, PresentedCredential
from sidecar.domain.external_idp import ExternalIdentity, IdpConfig
from sidecar.domain.field_scopes import ScopeGate
from sidecar.domain.health import Check, Readiness
from sidecar.domain.keys import IssuedKey, KeyService
from sidecar.domain.oauth_authorize import AuthorizationEndpoint
from sidecar.domain.oauth_clients import OAuthClientService
from sidecar.domain.oauth_jwt import OAuthAccessTokens
from sidecar.domain.oauth_tokens import AccessTokenIssuer, RevocationCheckingVerifier, TokenEndpoint
from sidecar.domain.operations import OperationPolicy, OperationReader
from sidecar.domain.origins import BrowserOrigins
from sidecar.domain.ratelimits import RateLimitService
from sidecar.domain.rbac import Policy, RoleModel
from sidecar.domain.repeat_decisions import RepeatDecisions
from sidecar.domain.revocations import TokenRevocations
from sidecar.domain.signing_keys import KeyRing, KeyStatus, RingTiming
from sidecar.domain.tables import TableModel
from sidecar.domain.token_exchange import GRANT_TYPE as TOKEN_EXCHANGE
from sidecar.domain.token_exchange import TokenExchangeGrant
from sidecar.domain.tokens import TokenConfig, TokenService
from sidecar.domain.trusted_issuers import TrustedIssuers
from sidecar.domain.verified_tokens import VerifiedTokens
from sidecar.domain.webhook_endpoints import WebhookEndpointService
from sidecar.errors import ConfigError, SidecarError
from sidecar.logs import AccessLog
from sidecar.metered import CountedKeyCache, TimedSharedKeyCache, signing_key_ages, timed_store
from sidecar.metrics import Metrics
from sidecar.ports import (
    AuditStore,
    Clock,
    DeliveryStore,
    KeyCache,
    KeyStore,
    RevocationStore,
    SecretSealer,
    SharedKeyCache,
    SigningKeyStore,
    WebhookEndpointStore,
    postgres,
    postgres_audit,
    postgres_oauth,
    postgres_revocations,
    postgres_signing,
    postgres_webhooks,
    sqlite,
    sqlite_audit,
    sqlite_oauth,
    sqlite_revocations,
    sqlite_signing,
    sqlite_webhooks,
)
from sidecar.ports.clock import SystemClock
from sidecar.ports.http_jwks import HttpJwks
from sidecar.ports.memory_cache import MemoryKeyCache
from sidecar.ports.oauth import OAuthStore
from sidecar.ports.redis_client import RedisClient
from sidecar.ports.redis_client import check_url as check_redis_url
from sidecar.ports.sealer import Sealer, decode_master_key, load_or_create_master_key
from sidecar.redis_wiring import (
    INVALIDATIONS,
    REVOCATION_UPDATES,
    RedisTier,
    build_rate_limits,
    invalidations,
    open_redis,
    revocation_updates,
)
from sidecar.settings import Settings, load_role_model, load_table_model
from sidecar.web import (
    audit,
    auth,
    cors,
    dashboard,
    dashboard_audit,
    dashboard_oauth,
    dashboard_page,
    dashboard_signing,
    dashboard_webhooks,
    hasura,
    hasura_events,
    keys,
    oauth,
    oauth_clients,
    openapi,
    ops,
    ratelimit,
    revoke,
    tokens,
    webhook_endpoints,
)
from sidecar.web.errors import error_middleware
from sidecar.web.fast_lane import FAST_LANE, FastLaneOptions
from sidecar.web.limits import (
    IN_FLIGHT,
    UNBOUNDED_PATHS,
    InFlight,
    body_deadline_middleware,
    concurrency_middleware,
)
from sidecar.web.observe import OBSERVER, RequestLogPolicy, RequestObserver, observe_middleware
from sidecar.web.state import AUDIT, METRICS, METRICS_TOKEN, READINESS, SERVICES, VERSION, OAuthServices, Services
from sidecar.web.tokens import TOKEN_PATH, TOKEN_SIGNING
from sidecar.web.turn_batch import TurnBatch
from sidecar.webhook_wiring import open_delivery

log = logging.getLogger("sidecar")
BootstrapHook = Callable[[IssuedKey], None]


#: Every SQLite-backed component's schema; components add their ``MIGRATIONS`` here.
SQLITE_MIGRATIONS = (
    *sqlite.KEY_STORE_MIGRATIONS,
    *sqlite_signing.MIGRATIONS,
    *sqlite_revocations.MIGRATIONS,
    *sqlite_webhooks.MIGRATIONS,
    *sqlite_audit.MIGRATIONS,
    *sqlite_oauth.MIGRATIONS,
)
#: The same for PostgreSQL-backed components.
POSTGRES_MIGRATIONS = (
    *postgres.KEY_STORE_MIGRATIONS,
    *postgres_signing.MIGRATIONS,
    *postgres_revocations.MIGRATIONS,
    *postgres_webhooks.MIGRATIONS,
    *postgres_audit.MIGRATIONS,
    *postgres_oauth.MIGRATIONS,
)


@dataclass(frozen=True, slots=True)
class Stores:
    """The durable stores of one database; components add theirs as fields."""

    keys: KeyStore
    signing_keys: SigningKeyStore
    revocations: RevocationStore
    webhooks: WebhookEndpointStore
    deliveries: DeliveryStore
    audit: AuditStore
    oauth: OAuthStore


@asynccontextmanager
async def open_stores(
    url: str,
    *,
    sealer: Sealer | None = None,
    pool_size: int = 10,
    timeout_s: float = 5.0,
) -> AsyncIterator[Stores]:
    """The stores for ``sqlite:///path`` or ``postgresql://…``, migrated. Without ``sealer`` the
    webhook stores cannot read or write endpoint secrets (``ConfigError``); the rest works.

    ``pool_size`` and ``timeout_s`` apply to PostgreSQL (``SIDECAR_DATABASE_POOL_SIZE``/``_TIMEOUT_S``).
    """
    if url.startswith("sqlite:///"):
        async with sqlite.SqliteDatabase.open(Path(url.removeprefix("sqlite:///")), SQLITE_MIGRATIONS) as db:
            webhooks = sqlite_webhooks.SqliteWebhookStore(db, sealer)
            yield Stores(
                keys=sqlite.SqliteKeyStore(db),
                signing_keys=sqlite_signing.SqliteSigningKeyStore(db),
                revocations=sqlite_revocations.SqliteRevocationStore(db),
                webhooks=webhooks,
                deliveries=webhooks,
                audit=sqlite_audit.SqliteAuditStore(db),
                oauth=sqlite_oauth.SqliteOAuthStore(db),
            )
        return
    if url.startswith(("postgresql://", "postgres://")):
        async with postgres.PostgresDatabase.open(
            url, POSTGRES_MIGRATIONS, pool_size=pool_size, timeout_s=timeout_s
        ) as pg:
            pg_webhooks = postgres_webhooks.PostgresWebhookStore(pg, sealer)
            yield Stores(
                keys=postgres.PostgresKeyStore(pg),
                signing_keys=postgres_signing.PostgresSigningKeyStore(pg),
                revocations=postgres_revocations.PostgresRevocationStore(pg),
                webhooks=pg_webhooks,
                deliveries=pg_webhooks,
                audit=postgres_audit.PostgresAuditStore(pg),
                oauth=postgres_oauth.PostgresOAuthStore(pg),
            )
        return
    raise ConfigError(f"SIDECAR_DATABASE_URL: unsupported scheme in {url.split(':', 1)[0]!r}")


def store_options(settings: Settings) -> dict[str, Any]:
    """``open_stores`` arguments from the settings: ``open_stores(**store_options(settings))``."""
    return {
        "url": settings.store_url(),
        "sealer": build_sealer(settings),
        "pool_size": settings.database_pool_size,
        "timeout_s": settings.database_timeout_s,
    }


def build_sealer(settings: Settings) -> Sealer:
    if settings.master_key is not None:
        return Sealer(decode_master_key(settings.master_key.get_secret_value()))
    return Sealer(load_or_create_master_key(settings.data_dir / "master.key"))


def build_key_service(
    settings: Settings,
    store: KeyStore,
    clock: Clock,
    policy: Policy,
    shared: SharedKeyCache | None = None,
    revocations: TokenRevocations | None = None,
    *,
    metrics: Metrics | None = None,
) -> KeyService:
    cache: KeyCache = MemoryKeyCache(
        clock,
        max_entries=settings.key_cache.max_entries,
        ttl_s=settings.key_cache.ttl_s,
        negative_ttl_s=settings.key_cache.negative_ttl_s,
    )
    if metrics is not None:
        cache = CountedKeyCache(cache, metrics, tier="memory")
        store = timed_store(store, metrics)
        shared = TimedSharedKeyCache(shared, metrics) if shared is not None else None
    return KeyService(
        store,
        cache,
        clock,
        policy,
        default_org_id=settings.default_org_id,
        shared=shared,
        revocations=revocations,
        max_principals=settings.key_cache.max_entries,
        token_ttl_s=settings.jwt.ttl_s,
    )


def build_revocations(
    settings: Settings, store: RevocationStore, clock: Clock, redis: RedisTier | None
) -> TokenRevocations:
    """Token revocations: recorded in the store, broadcast through Redis when there is one."""
    broadcast = redis.revocations if redis is not None else None
    return TokenRevocations(store, clock, max_token_ttl_s=settings.jwt.ttl_s, broadcast=broadcast)


def build_hasura_webhook(
    settings: Settings,
    authenticator: Authenticator,
    policy: Policy,
    clock: Clock,
    tables: TableModel,
    limits: RateLimitService | None = None,
    *,
    metrics: Metrics | None = None,
    keys: KeyService | None = None,
) -> hasura.HasuraWebhook:
    """The webhook's pipeline: a presented credential (API key, session JWT), then anonymous.

    ``metrics``, when given, counts every decision (``sidecar_webhook_decisions_total``); with
    ``keys``, decisions for API keys are reused while their records are cached (``RepeatDecisions``).
    """
    s = settings.hasura_webhook
    steps: list[CredentialAuthenticator] = [
        PresentedCredential(authenticator, BrowserOrigins(settings.cors.allowed_origins))
    ]
    if s.anonymous:
        role = s.anonymous_role
        scopes = policy.role_scopes(role) if policy.has_role(role) else ()
        steps.append(Anonymous(role, scopes, org_id=s.anonymous_org_id))
    operations = None
    if s.operation_checks:
        subscribers = frozenset(s.subscription_roles) if s.subscription_roles is not None else None
        operations = OperationPolicy(
            OperationReader(max_entries=s.operation_cache_entries),
            subscription_roles=subscribers,
            gate=ScopeGate(policy, tables),
            policy=policy,
        )
    decider = Decider(
        steps,
        clock,
        operations=operations,
        max_cache_age_s=s.max_cache_age_s,
        policy=policy,
        limits=limits,
        over_limit=settings.rate_limit.webhook,
        repeats=RepeatDecisions(keys, max_entries=settings.key_cache.max_entries) if keys is not None else None,
    )
    sources = CredentialSources(header=s.credential_header, cookie=s.credential_cookie)
    return hasura.HasuraWebhook(decider, sources, s.max_body_bytes, metrics)


def build_oauth_clients(settings: Settings, store: OAuthStore, clock: Clock, policy: Policy) -> OAuthClientService:
    return OAuthClientService(store, clock, policy, default_org_id=settings.default_org_id)


def build_external_identity(settings: Settings, clock: Clock, policy: Policy) -> ExternalIdentity | None:
    """The consent page's optional external identity provider (``SIDECAR_OAUTH__IDP_*``)."""
    config = settings.oauth
    if not config.idp_jwks_url or not config.idp_issuer:
        return None
    unknown = sorted({r for r in config.idp_roles.values() if not policy.has_role(r)})
    if unknown:
        raise ConfigError(f"SIDECAR_OAUTH__IDP_ROLES: unknown role(s) {', '.join(unknown)}")
    idp = IdpConfig(
        issuer=config.idp_issuer,
        audience=config.idp_audience,
        org_claim=config.idp_org_claim,
        role_claim=config.idp_role_claim,
        roles=dict(config.idp_roles),
    )
    return ExternalIdentity(HttpJwks(config.idp_jwks_url, clock), clock, policy, idp)


def build_trusted_issuers(settings: Settings, clock: Clock, policy: Policy) -> TrustedIssuers | None:
    """The external identity providers of ``SIDECAR_TRUSTED_ISSUERS``, each with its own cached JWKS."""
    if not settings.trusted_issuers:
        return None
    identities = []
    for n, conf in enumerate(settings.trusted_issuers):
        unknown = sorted({r for r in conf.roles.values() if not policy.has_role(r)})
        if unknown:
            raise ConfigError(f"SIDECAR_TRUSTED_ISSUERS[{n}].roles: unknown role(s) {', '.join(unknown)}")
        user, org, team, role = conf.claim_names()
        idp = IdpConfig(
            issuer=conf.issuer,
            audience=conf.audience,
            org_claim=org,
            role_claim=role,
            roles=dict(conf.roles),
            clock_skew_s=settings.jwt.clock_skew_s,
            algorithms=conf.algorithms,
            user_claim=user,
            team_claim=team,
        )
        jwks = HttpJwks(conf.jwks_url, clock, max_age_s=conf.jwks_max_age_s)
        identities.append(ExternalIdentity(jwks, clock, policy, idp))
    return TrustedIssuers(identities, own_issuer=settings.jwt_issuer())


def build_oauth(
    settings: Settings,
    store: OAuthStore,
    clock: Clock,
    policy: Policy,
    authenticator: Authenticator,
    sealer: Sealer,
    tokens: AccessTokenIssuer,
    exchange: TokenExchangeGrant | None = None,
) -> OAuthServices:
    """The authorization server: clients, the consent pages' endpoint, and the token endpoint."""
    config = settings.oauth
    clients = build_oauth_clients(settings, store, clock, policy)
    authorize = AuthorizationEndpoint(
        store,
        clients,
        authenticator,
        sealer,
        clock,
        code_ttl_s=config.code_ttl_s,
        session_ttl_s=config.session_ttl_s,
        external=build_external_identity(settings, clock, policy),
    )
    token_endpoint = TokenEndpoint(
        store,
        tokens,
        RevocationCheckingVerifier(tokens, store),
        clock,
        access_ttl_s=config.access_ttl_s,
        refresh_ttl_s=config.refresh_ttl_s,
        extra_grants={TOKEN_EXCHANGE: exchange} if exchange is not None else None,
    )
    return OAuthServices(
        clients=clients,
        authorize=authorize,
        tokens=token_endpoint,
        cookie_secure=config.cookie_secure,
    )


def build_key_ring(
    settings: Settings,
    store: SigningKeyStore,
    clock: Clock,
    sealer: SecretSealer,
    *,
    metrics: Metrics | None = None,
) -> KeyRing:
    """The signing keys: the HS256 secret, PEM files (newest signs), or generated into the store.

    With ``metrics``, each slot's key age is recorded whenever the ring starts, reloads or rotates.
    """
    conf = settings.jwt
    timing = RingTiming(
        max_token_ttl_s=conf.ttl_s,
        clock_skew_s=conf.clock_skew_s,
        jwks_max_age_s=conf.jwks_max_age_s,
        reload_s=conf.ring_reload_s,
    )
    on_view = signing_key_ages(metrics) if metrics is not None else None
    accepted = conf.accepted()
    if conf.algorithm == "HS256":
        assert conf.hs256_secret is not None  # JwtSettings checks it
        secret = jwk.hmac_secret(conf.hs256_secret.get_secret_value().encode())
        return KeyRing(clock, timing, algorithm="HS256", fixed=[secret], accepted=accepted, on_view=on_view)
    if conf.key_files:
        files = [_read_pem(path, accepted) for path in conf.key_files]
        return KeyRing(
            clock,
            timing,
            algorithm=conf.algorithm,
            fixed=[material for material, _ in files],
            fixed_created_at=[modified for _, modified in files],
            accepted=accepted,
            on_view=on_view,
        )
    return KeyRing(
        clock, timing, algorithm=conf.algorithm, store=store, sealer=sealer, accepted=accepted, on_view=on_view
    )


def _read_pem(path: Path, accepted: frozenset[str]) -> tuple[jwk.KeyMaterial, datetime]:
    """A key file's key, and its modification time (the nearest thing to when the key was made).

    Every file's key is published and verifies, so its algorithm must be an accepted one.
    """
    try:
        pem = path.read_bytes()
        modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError as exc:
        raise ConfigError(f"SIDECAR_JWT__KEY_FILES: cannot read {path}: {exc.strerror}") from None
    material = jwk.asymmetric(jwk.from_pem(pem, where=str(path)))
    if material.algorithm not in accepted:
        raise ConfigError(
            f"SIDECAR_JWT__KEY_FILES: {path} holds an {material.algorithm} key, but the accepted algorithms are "
            f"{', '.join(sorted(accepted))} (SIDECAR_JWT__ACCEPTED_ALGORITHMS)"
        )
    return material, modified


def build_token_service(
    settings: Settings, ring: KeyRing, clock: Clock, policy: Policy, *, metrics: Metrics | None = None
) -> TokenService:
    conf = settings.jwt
    config = TokenConfig(
        issuer=settings.jwt_issuer(),
        audience=conf.audience,
        ttl_s=conf.ttl_s,
        claims_namespace=conf.claims_namespace,
        claims_format=conf.claims_format,
        iat_backdate_s=conf.iat_backdate_s,
        clock_skew_s=conf.clock_skew_s,
        accepted_algorithms=conf.accepted(),
    )
    return TokenService(
        ring,
        clock,
        policy,
        config,
        on_issued=metrics.token_issued if metrics is not None else None,
        verified=VerifiedTokens(conf.verified_cache_entries),
    )


async def _audit_rotation(audit_log: AuditLog, status: KeyStatus) -> None:
    """``signing_key.rotated`` by the ``system`` actor; best effort, like every audit write."""
    key = status.key
    try:
        await audit_log.signing_key_rotated(
            Actor.system(),
            kid=key.material.kid,
            algorithm=key.material.algorithm,
            activates_at=key.activates_at,
            immediate=False,
        )
    except Exception:
        log.exception("could not record an audit event")


async def _reload_ring_forever(ring: KeyRing, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await ring.reload()
        except Exception:
            log.exception("could not reload the signing keys; will retry")


def build_webhook_endpoint_service(
    settings: Settings, store: WebhookEndpointStore, outbox: DeliveryStore, clock: Clock
) -> WebhookEndpointService:
    return WebhookEndpointService(
        store,
        outbox,
        clock,
        default_roll_overlap_s=settings.webhook.roll_overlap_s,
        default_org_id=settings.default_org_id,
        allow_private_urls=settings.webhook.allow_private_urls,
    )


def build_metrics(settings: Settings, clock: Clock | None = None) -> Metrics:
    """The app's metrics; ages (signing keys) are computed at scrape time on ``clock``."""
    wall_clock = (lambda: clock.now().timestamp()) if clock is not None else time.time
    return Metrics(version=__version__, multiprocess_dir=settings.prometheus_multiproc_dir, wall_clock=wall_clock)


def request_log_policy(settings: Settings) -> RequestLogPolicy:
    s = settings.request_log
    return RequestLogPolicy(mode=s.mode, quiet_routes=frozenset(s.quiet_routes), sample_rate=s.sample_rate)


def server_options(settings: Settings) -> dict[str, Any]:
    """aiohttp server arguments (``web.run_app``, ``TestServer``): header bounds, and the keep-alive
    timer, which also bounds the time a client has to send its request line and headers."""
    limits = settings.limits
    return {
        "max_line_size": limits.max_line_bytes,
        "max_field_size": limits.max_field_bytes,
        "max_headers": limits.max_headers,
        "keepalive_timeout": limits.keepalive_timeout_s,
    }


def requests_in_flight(settings: Settings, metrics: Metrics | None) -> InFlight:
    limits = settings.limits
    return InFlight(limits.max_concurrent_requests, limits.retry_after_s, metrics)


def redis_ping(client: RedisClient) -> Check:
    async def ping() -> None:
        await client.ping()

    return ping


async def _flush_last_used_forever(keys: KeyService, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await keys.flush_last_used()
        except Exception:
            log.exception("could not record last_used_at; will retry")


async def _response_headers(request: web.Request, response: web.StreamResponse) -> None:
    """The one ``on_response_prepare`` receiver (each receiver is a coroutine per response)."""
    ratelimit.add_headers(request, response)
    cors.add_headers(request, response)


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    roles: RoleModel | None = None,
    tables: TableModel | None = None,
    on_bootstrap: BootstrapHook | None = None,
    access_log: AccessLog | None = None,
) -> web.Application:
    """Build the application; resources open when it starts and close when it stops.

    ``access_log`` takes the one line per request (``configure_logging`` gives ``sidecar serve``
    its fast JSON one); by default the lines are ``logging`` records of ``sidecar.access``.
    """
    clock = clock or SystemClock()
    policy = Policy(roles or load_role_model(settings.roles_file))
    tables = tables or load_table_model(settings.tables_file, policy.model)
    metrics = build_metrics(settings, clock)
    readiness = Readiness()
    sealer = build_sealer(settings)
    if settings.redis_url:
        check_redis_url(settings.redis_url)

    @asynccontextmanager
    async def resources(app: web.Application) -> AsyncIterator[None]:
        async with (
            open_stores(**store_options(settings)) as stores,
            open_redis(settings, clock) as redis,
            open_delivery(settings, stores.webhooks, stores.deliveries, clock, tables) as deliveries,
        ):
            revocations = build_revocations(settings, stores.revocations, clock, redis)
            await revocations.reload()
            key_service = build_key_service(
                settings, stores.keys, clock, policy, redis.keys if redis else None, revocations, metrics=metrics
            )
            readiness.add("store", stores.keys.ping)
            audit_log = app[AUDIT] = AuditLog(timed_store(stores.audit, metrics), clock)
            if redis is not None:
                readiness.add("cache", redis_ping(redis.client), required=False)  # the service works without it
            ring = build_key_ring(settings, stores.signing_keys, clock, sealer, metrics=metrics)
            scheduled = await ring.start()
            if scheduled is not None:  # the configured algorithm changed: the service rotated itself
                await _audit_rotation(audit_log, scheduled)
            readiness.add("signing_key", ring.ready)
            token_service = build_token_service(settings, ring, clock, policy, metrics=metrics)
            trusted = build_trusted_issuers(settings, clock, policy)
            authenticator = Authenticator(
                key_service, RevocationCheckingVerifier(token_service, stores.oauth), revocations, trusted
            )
            exchange = TokenExchangeGrant(trusted, token_service, audience=settings.jwt.audience) if trusted else None
            oauth_services = build_oauth(
                settings, stores.oauth, clock, policy, authenticator, sealer, OAuthAccessTokens(token_service), exchange
            )
            app[SERVICES] = Services(
                keys=key_service,
                policy=policy,
                authenticator=authenticator,
                webhook_endpoints=build_webhook_endpoint_service(settings, stores.webhooks, stores.deliveries, clock),
                deliveries=deliveries,
                console=ConsoleSessions(key_service, policy, sealer, clock, ttl_s=settings.dashboard_session_ttl_s),
                tables=tables,
                tokens=token_service,
                signing_keys=ring,
                public_url=settings.base_url(),
                ratelimits=build_rate_limits(settings, redis, clock),
                oauth=oauth_services,
                revocations=revocations,
            )
            app[hasura.HASURA_WEBHOOK] = build_hasura_webhook(
                settings,
                authenticator,
                policy,
                clock,
                tables,
                app[SERVICES].ratelimits,
                metrics=metrics if settings.metrics.enabled else None,
                keys=key_service,
            )
            supplied = settings.bootstrap_admin_key
            issued = await key_service.bootstrap(supplied.get_secret_value() if supplied else None)
            if issued is not None and on_bootstrap is not None:
                on_bootstrap(issued)
            flusher = asyncio.create_task(_flush_last_used_forever(key_service, settings.last_used_flush_s))
            reloader = asyncio.create_task(_reload_ring_forever(ring, settings.jwt.ring_reload_s))
            try:
                async with (
                    invalidations(redis, key_service) as listener,
                    revocation_updates(redis, revocations, reload_s=max(1.0, settings.key_cache.ttl_s)) as updates,
                ):
                    if listener is not None and updates is not None:
                        app[INVALIDATIONS] = listener
                        app[REVOCATION_UPDATES] = updates
                    yield
            finally:
                for task in (flusher, reloader):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                try:
                    await key_service.flush_last_used()
                except SidecarError as exc:  # shutting down while the store is away: lose only timestamps
                    log.warning("could not record last_used_at at shutdown: %s", exc.reason)

    exposed = metrics if settings.metrics.enabled else None
    # the exchanges sign in long slices unless requests of other routes (bar health checks and
    # scrapes, which can wait a few milliseconds) are being answered too
    signing = TurnBatch(own_routes=frozenset({TOKEN_PATH, *UNBOUNDED_PATHS}))
    observer = RequestObserver(exposed, request_log_policy(settings), access_log, on_answer=signing.answered)
    in_flight = requests_in_flight(settings, exposed)
    middlewares = [
        observe_middleware(observer, on_forbidden=audit.record_denial),
        concurrency_middleware(in_flight),  # outside the error middleware: a 503 costs nothing more
        error_middleware,
        body_deadline_middleware(settings.limits.body_timeout_s),
    ]
    app = web.Application(middlewares=middlewares, client_max_size=settings.max_body_bytes)
    app[OBSERVER] = observer
    app[IN_FLIGHT] = in_flight
    app[TOKEN_SIGNING] = signing
    app[FAST_LANE] = FastLaneOptions(settings.fast_lane, settings.limits.body_timeout_s)
    app[METRICS] = metrics
    token = settings.metrics.bearer_token
    app[METRICS_TOKEN] = token.get_secret_value().encode() if token else b""
    app[READINESS] = readiness
    app[VERSION] = __version__
    app.cleanup_ctx.append(resources)
    app.on_response_prepare.append(_response_headers)
    app[cors.CORS] = cors.CorsPolicy(BrowserOrigins(settings.cors.allowed_origins), settings.cors.max_age_s)
    app[dashboard_page.TEMPLATES] = dashboard_page.make_templates()
    app[dashboard_page.COOKIE_SECURE] = settings.dashboard_cookie_secure
    app[hasura_events.EVENTS_HEADER] = settings.webhook.hasura_events_header
    pages = (dashboard, dashboard_signing, dashboard_oauth, dashboard_webhooks, dashboard_audit)
    api = (auth, keys, hasura, tokens, webhook_endpoints, hasura_events, ops, audit, oauth, oauth_clients)
    app[openapi.DOCUMENT] = openapi.document_bytes(
        version=__version__, server_url=settings.base_url(), events_header=settings.webhook.hasura_events_header
    )
    for module in (cors, *api, *pages, revoke, openapi):
        app.router.add_routes(module.routes)
    if settings.metrics.enabled:
        app.router.add_get("/metrics", ops.metrics)
    return app
