"""The ``sidecar`` command: serve, and manage keys on the same store the server uses."""

from __future__ import annotations

import asyncio
import json
import shlex
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from sidecar.app import (
    build_key_ring,
    build_key_service,
    build_oauth_clients,
    build_revocations,
    build_sealer,
    create_app,
    open_stores,
    server_options,
    store_options,
)
from sidecar.cli_audit import audit
from sidecar.cli_common import fail, settings_of
from sidecar.cli_webhook_endpoints import endpoints as webhook_endpoints
from sidecar.cli_webhooks import webhooks
from sidecar.domain import hasura_metadata as hasura_metadata_gen
from sidecar.domain import keyformat
from sidecar.domain.audit import Action, Actor, AuditLog
from sidecar.domain.hasura_setup import JwtPublication, hasura_config
from sidecar.domain.keys import IssuedKey, KeyService, NewKey
from sidecar.domain.oauth_clients import NewClient, OAuthClientService, audit_client_event
from sidecar.domain.rbac import Policy
from sidecar.domain.signing_keys import KeyRing
from sidecar.errors import ConfigError, SidecarError, Unavailable
from sidecar.logs import configure_logging
from sidecar.models import ClientType, Environment, KeyType
from sidecar.ports.clock import SystemClock
from sidecar.redis_wiring import open_redis
from sidecar.settings import Settings, load_role_model, load_table_model
from sidecar.web.oauth_clients import client_json
from sidecar.web.render import key_json
from sidecar.web.server import serve as serve_app
from sidecar.web.tokens import signing_key_json

T = TypeVar("T")
#: The roles a secret key's prefix can name (CONTRACT.md's table).
SECRET_ROLES = ("viewer", "operator", "manager", "admin", "super_admin")


_settings = settings_of
_fail = fail


def _run_with_keys(settings: Settings, action: Callable[[KeyService], Awaitable[T]]) -> T:
    return _run_with_keys_and_audit(settings, lambda service, _audit: action(service))


def _run_with_keys_and_audit(settings: Settings, action: Callable[[KeyService, AuditLog], Awaitable[T]]) -> T:
    """Run ``action`` on the server's stores; changes are audited with the actor ``cli``."""

    async def go() -> T:
        clock = SystemClock()
        async with open_stores(**store_options(settings)) as stores, open_redis(settings, clock) as redis:
            policy = Policy(load_role_model(settings.roles_file))
            revocations = build_revocations(settings, stores.revocations, clock, redis)
            service = build_key_service(
                settings, stores.keys, clock, policy, redis.keys if redis else None, revocations
            )
            return await action(service, AuditLog(stores.audit, clock))

    try:
        return asyncio.run(go())
    except SidecarError as exc:
        _fail(exc.message)
        raise  # unreachable: _fail exits


def _iso_datetime(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """An ISO 8601 date or date-time; one without an offset is taken as UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 date or date-time (e.g. 2027-01-31 or 2027-01-31T12:00:00Z)"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _emit(data: dict[str, Any] | list[dict[str, Any]], as_json: bool, human: Callable[[], str]) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else human())


@click.group()
def main() -> None:
    """Auth sidecar for Hasura: API keys, session JWTs, the auth webhook.

    Settings come from SIDECAR_* environment variables (see config/sidecar.env.example); the key
    commands work on the same store as the server.
    """


def print_bootstrap_key(issued: IssuedKey) -> None:
    click.echo(
        "\n  Bootstrap admin key (role super_admin, org "
        f"{issued.record.org_id}):\n\n    {issued.key}\n\n"
        "  Store it now: it is shown once and will not be shown again.\n",
        err=True,
    )


@main.command()
@click.option("--host", default=None, help="address to listen on (default: SIDECAR_HOST, 127.0.0.1)")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="port (default: SIDECAR_PORT, 8080)")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the sidecar's HTTP server."""
    settings = _settings(ctx)
    # --host/--port are the settings the app sees, so the default public URL (the issuer, the
    # discovery document's URLs) names where it listens; a configured SIDECAR_PUBLIC_URL still wins
    settings = settings.model_copy(update={"host": host or settings.host, "port": port or settings.port})
    host, port = settings.host, settings.port
    access_log = configure_logging(settings.log_level, settings.log_format)
    try:
        app = create_app(settings, on_bootstrap=print_bootstrap_key, access_log=access_log)
    except ConfigError as exc:
        _fail(exc.message, code=2)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass

    def listening(_: str) -> None:
        click.echo(f"sidecar listening on http://{host}:{port}", err=True)

    try:
        serve_app(  # web.run_app, but what aiohttp refuses before routing is JSON too (sidecar/web/server.py)
            app,
            host=host,
            port=port,
            on_listening=listening,
            shutdown_timeout=settings.shutdown_timeout_s,  # stop listening, let requests in flight finish
            **server_options(settings),  # header bounds and the slow-header timeout (SIDECAR_LIMITS__*)
        )
    except SidecarError as exc:  # raised while starting: the store, the bootstrap key
        _fail(exc.message, code=1 if isinstance(exc, Unavailable) else 2)
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


@main.group()
def keys() -> None:
    """Create, list, show, revoke and roll API keys."""


def _human_key(data: dict[str, Any]) -> str:
    lines = [f"{k:16} {v}" for k, v in data.items() if k not in ("object",) and v not in (None, [], "")]
    return "\n".join(lines)


@keys.command("create")
@click.option("--type", "key_type", type=click.Choice([t.value for t in KeyType]), default="secret")
@click.option("--role", default=None, help="role (secret keys: viewer, operator, manager, admin, super_admin)")
@click.option("--org", default=None, help="org id (default: SIDECAR_DEFAULT_ORG_ID)")
@click.option("--team", default=None)
@click.option("--user", default=None)
@click.option("--permission", "permissions", multiple=True, help="a scope such as orders:read; repeatable")
@click.option("--environment", type=click.Choice([e.value for e in Environment]), default="live")
@click.option(
    "--expires-at",
    callback=_iso_datetime,
    help="ISO 8601 date or date-time, e.g. 2027-01-31 or 2027-01-31T12:00:00Z (no offset means UTC)",
)
@click.option("--name", default="", help="a label for people (at most 200 characters)")
@click.option(
    "--allowed-origin", "allowed_origins", multiple=True, help="publishable keys: a browser origin; repeatable"
)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_context
def keys_create(
    ctx: click.Context,
    key_type: str,
    role: str | None,
    org: str | None,
    team: str | None,
    user: str | None,
    permissions: tuple[str, ...],
    environment: str,
    expires_at: datetime | None,
    name: str,
    allowed_origins: tuple[str, ...],
    as_json: bool,
) -> None:
    """Create a key. The key is printed once and cannot be retrieved again."""
    spec = NewKey(
        type=KeyType(key_type),
        role=role,
        environment=Environment(environment),
        name=name,
        org_id=org,
        team_id=team,
        user_id=user,
        permissions=permissions,
        expires_at=expires_at,
        allowed_origins=allowed_origins,
    )
    settings = _settings(ctx)

    async def action(service: KeyService, audit: AuditLog) -> dict[str, Any]:
        issued = await service.create(spec, grantor=None)
        await audit.key_created(Actor.cli(), issued.record)
        return {**key_json(issued.record, service.now()), "key": issued.key}

    data = _run_with_keys_and_audit(settings, action)
    _emit(data, as_json, lambda: _human_key(data) + "\n\nStore the key now: it will not be shown again.")


@keys.command("list")
@click.option("--org", default=None)
@click.option("--type", "key_type", type=click.Choice([t.value for t in KeyType]), default=None)
@click.option("--limit", type=click.IntRange(1, 100), default=20)
@click.option("--starting-after", default=None, help="id of the last key of the previous page")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def keys_list(
    ctx: click.Context,
    org: str | None,
    key_type: str | None,
    limit: int,
    starting_after: str | None,
    as_json: bool,
) -> None:
    """List keys, newest first (never their secrets)."""

    async def action(service: KeyService) -> dict[str, Any]:
        page = await service.list(
            viewer=None,
            org_id=org,
            key_type=KeyType(key_type) if key_type else None,
            limit=limit,
            starting_after=starting_after,
        )
        now = service.now()
        return {"data": [key_json(r, now) for r in page.data], "has_more": page.has_more}

    data = _run_with_keys(_settings(ctx), action)

    def human() -> str:
        rows = [
            f"{k['id']:28} {k['display']:16} {k['type']:11} {k['role']:11} {k['org_id']:14} {k['status']:8} {k['name']}"
            for k in data["data"]
        ]
        more = "\n(more: --starting-after " + data["data"][-1]["id"] + ")" if data["has_more"] else ""
        return "\n".join(rows) + more if rows else "no keys"

    _emit(data, as_json, human)


@keys.command("show")
@click.argument("key_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def keys_show(ctx: click.Context, key_id: str, as_json: bool) -> None:
    """Show one key."""

    async def action(service: KeyService) -> dict[str, Any]:
        return key_json(await service.get(key_id, viewer=None), service.now())

    data = _run_with_keys(_settings(ctx), action)
    _emit(data, as_json, lambda: _human_key(data))


@keys.command("revoke")
@click.argument("key_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str, as_json: bool) -> None:
    """Revoke a key at once."""

    async def action(service: KeyService, audit: AuditLog) -> dict[str, Any]:
        record = await service.revoke(key_id, viewer=None)
        await audit.key_revoked(Actor.cli(), record)
        return key_json(record, service.now())

    data = _run_with_keys_and_audit(_settings(ctx), action)
    _emit(data, as_json, lambda: f"revoked {data['id']} ({data['display']})")


@keys.command("roll")
@click.argument("key_id")
@click.option("--expires-in", type=click.IntRange(0, 30 * 86400), default=0, help="seconds the old key keeps working")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def keys_roll(ctx: click.Context, key_id: str, expires_in: int, as_json: bool) -> None:
    """Replace a key with a new one; the old one works for --expires-in more seconds."""

    async def action(service: KeyService, audit: AuditLog) -> dict[str, Any]:
        issued, old = await service.roll(key_id, expires_in_s=expires_in, viewer=None)
        await audit.key_rolled(Actor.cli(), old, issued.record)
        now = service.now()
        return {**key_json(issued.record, now), "key": issued.key, "previous": key_json(old, now)}

    data = _run_with_keys_and_audit(_settings(ctx), action)
    _emit(
        data,
        as_json,
        lambda: (
            _human_key({k: v for k, v in data.items() if k != "previous"})
            + f"\n\nprevious key {data['previous']['id']} expires at {data['previous']['expires_at']}"
            + "\nStore the new key now: it will not be shown again."
        ),
    )


@keys.command("generate")
@click.option("--type", "key_type", type=click.Choice([t.value for t in KeyType]), default="secret")
@click.option(
    "--role",
    type=click.Choice(SECRET_ROLES),
    default="super_admin",
    help="secret keys: the role the prefix stands for",
)
@click.option("--environment", type=click.Choice([e.value for e in Environment]), default="live")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def keys_generate(key_type: str, role: str, environment: str, as_json: bool) -> None:
    """Print a well-formed key without storing it (e.g. for SIDECAR_BOOTSTRAP_ADMIN_KEY)."""
    key = keyformat.mint(keyformat.prefix_for(KeyType(key_type), role, Environment(environment)))
    _emit({"key": key}, as_json, lambda: key)


@main.group()
def hasura() -> None:
    """Hasura integration: permissions metadata (roles.yaml, tables.yaml) and the JWT/webhook settings."""


@hasura.command("metadata")
@click.option(
    "--tables",
    "tables_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="tables file (default: SIDECAR_TABLES_FILE, else the packaged config/tables.yaml)",
)
@click.option(
    "--roles",
    "roles_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="roles file (default: SIDECAR_ROLES_FILE, else the packaged config/roles.yaml)",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="a Hasura metadata directory to write the table files into (default: print the tables list)",
)
@click.option(
    "--key-scopes/--no-key-scopes",
    default=True,
    help="restricted role: also check the key's scope in the sidecar's key-scope table "
    "(needs the sidecar to share Hasura's PostgreSQL)",
)
@click.pass_context
def hasura_metadata(
    ctx: click.Context, tables_file: Path | None, roles_file: Path | None, output: Path | None, key_scopes: bool
) -> None:
    """Hasura permissions (select/insert/update/delete per table and role) from the permission matrix."""
    settings = _settings(ctx)
    try:
        roles = load_role_model(roles_file or settings.roles_file)
        tables = load_table_model(tables_file or settings.tables_file, roles)
        if output is None:
            entries = hasura_metadata_gen.table_entries(roles, tables, key_scope_check=key_scopes)
            click.echo(hasura_metadata_gen.HEADER + hasura_metadata_gen.dump(entries), nl=False)
            return
        files = hasura_metadata_gen.metadata_files(roles, tables, key_scope_check=key_scopes)
    except ConfigError as exc:
        _fail(exc.message, code=2)
        return
    written = _write_metadata(output, files, hasura_metadata_gen.scaffold_files(tables.source))
    click.echo(f"wrote {len(written)} files under {output}: " + ", ".join(written), err=True)
    click.echo("apply them with: hasura metadata apply", err=True)


def _write_metadata(root: Path, files: dict[str, str], scaffold: Mapping[str, str]) -> list[str]:
    """Write the generated files (replacing older ones) and the scaffold files that are missing."""
    written = []
    for relative, text in [*files.items(), *((r, t) for r, t in scaffold.items() if not (root / r).exists())]:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(relative)
    return written


webhooks.add_command(webhook_endpoints)
main.add_command(webhooks)
main.add_command(audit)


def _run_with_ring(settings: Settings, action: Callable[[KeyRing, AuditLog], Awaitable[T]]) -> T:
    """Run ``action`` on the server's signing keys; rotations are audited with the actor ``cli``."""

    async def go() -> T:
        async with open_stores(**store_options(settings)) as stores:
            clock = SystemClock()
            ring = build_key_ring(settings, stores.signing_keys, clock, build_sealer(settings))
            await ring.reload()
            return await action(ring, AuditLog(stores.audit, clock))

    try:
        return asyncio.run(go())
    except SidecarError as exc:
        _fail(exc.message)
        raise  # unreachable: _fail exits


def _human_signing_keys(keys: list[dict[str, Any]]) -> str:
    rows = [
        f"{k['kid']:44} {k['alg']:6} {k['state']:8} {k['source']:9} "
        f"activates {k['activates_at'] or '-':25} retires {k['retires_at'] or '-'}"
        for k in keys
    ]
    return "\n".join(rows) if rows else "no signing keys yet (the server creates the first one when it starts)"


@main.group("signing-keys")
def signing_keys() -> None:
    """List and rotate the keys that sign session JWTs."""


@signing_keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_context
def signing_keys_list(ctx: click.Context, as_json: bool) -> None:
    """Every signing key with its state: next, current, previous or retired."""

    async def action(ring: KeyRing, _audit: AuditLog) -> list[dict[str, Any]]:
        return [signing_key_json(s) for s in reversed(ring.statuses())]

    data = _run_with_ring(_settings(ctx), action)
    _emit(data, as_json, lambda: _human_signing_keys(data))


@signing_keys.command("rotate")
@click.option(
    "--immediately",
    is_flag=True,
    help="sign with the new key at once (for a compromised key; verifiers with a cached JWKS reject "
    "new tokens until they refetch it)",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_context
def signing_keys_rotate(ctx: click.Context, immediately: bool, as_json: bool) -> None:
    """Add a next key: published now, signing once every JWKS cache has seen it."""

    async def action(ring: KeyRing, audit: AuditLog) -> dict[str, Any]:
        status = await ring.rotate(immediate=immediately)
        key = status.key
        await audit.signing_key_rotated(
            Actor.cli(),
            kid=key.material.kid,
            algorithm=key.material.algorithm,
            activates_at=key.activates_at,
            immediate=immediately,
        )
        return signing_key_json(status)

    data = _run_with_ring(_settings(ctx), action)
    _emit(
        data,
        as_json,
        lambda: f"new signing key {data['kid']} ({data['alg']}), {data['state']}; signs from {data['activates_at']}",
    )


def jwt_publication(settings: Settings) -> JwtPublication:
    conf = settings.jwt
    return JwtPublication(
        base_url=settings.base_url(),
        issuer=settings.jwt_issuer(),
        audience=conf.audience,
        claims_namespace=conf.claims_namespace,
        claims_format=conf.claims_format,
        algorithm=conf.algorithm,
        hs256_secret=conf.hs256_secret.get_secret_value() if conf.hs256_secret else None,
    )


@hasura.command("config")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_context
def hasura_config_command(ctx: click.Context, as_json: bool) -> None:
    """HASURA_GRAPHQL_JWT_SECRET (v2), the AuthConfig (v3) and the webhook-mode settings.

    URLs use SIDECAR_PUBLIC_URL: the address Hasura reaches the sidecar at.
    """
    data = hasura_config(jwt_publication(_settings(ctx)))

    def human() -> str:
        import yaml

        jwt_v2 = data["jwt_mode"]["v2"]["HASURA_GRAPHQL_JWT_SECRET"]
        hook = data["webhook_mode"]["v2"]
        return "\n".join(
            [
                "# JWT mode, Hasura v2 (also set HASURA_GRAPHQL_ADMIN_SECRET):",
                f"HASURA_GRAPHQL_JWT_SECRET={shlex.quote(jwt_v2)}",
                "",
                "# JWT mode, Hasura v3: globals/metadata/auth-config.hml",
                yaml.safe_dump(data["jwt_mode"]["v3"], sort_keys=False).rstrip(),
                "",
                "# Or webhook mode, Hasura v2 (instead of JWT mode; without HASURA_GRAPHQL_UNAUTHORIZED_ROLE):",
                *(f"{name}={shlex.quote(value)}" for name, value in hook.items()),
            ]
        )

    _emit(data, as_json, human)


# --- sidecar oauth clients ------------------------------------------------------------------------


def _run_with_oauth_clients(settings: Settings, action: Callable[[OAuthClientService, AuditLog], Awaitable[T]]) -> T:
    """Run ``action`` on the server's stores; changes are audited with the actor ``cli``."""

    async def go() -> T:
        async with open_stores(**store_options(settings)) as stores:
            clock = SystemClock()
            policy = Policy(load_role_model(settings.roles_file))
            service = build_oauth_clients(settings, stores.oauth, clock, policy)
            return await action(service, AuditLog(stores.audit, clock))

    try:
        return asyncio.run(go())
    except SidecarError as exc:
        _fail(exc.message)
        raise  # unreachable: _fail exits


@main.group()
def oauth() -> None:
    """The OAuth 2.0 authorization server for partners."""


@oauth.group("clients")
def oauth_clients() -> None:
    """Register, list and delete OAuth clients (partner applications)."""


@oauth_clients.command("create")
@click.option("--name", required=True, help="shown to merchants on the consent page")
@click.option("--type", "client_type", type=click.Choice([t.value for t in ClientType]), default="confidential")
@click.option("--redirect-uri", "redirect_uris", multiple=True, required=True, help="exact redirect URI; repeatable")
@click.option("--scope", "scopes", multiple=True, required=True, help="a scope the client may ask for; repeatable")
@click.option("--org", default=None, help="the client's own org (client_credentials); default SIDECAR_DEFAULT_ORG_ID")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_context
def oauth_clients_create(
    ctx: click.Context,
    name: str,
    client_type: str,
    redirect_uris: tuple[str, ...],
    scopes: tuple[str, ...],
    org: str | None,
    as_json: bool,
) -> None:
    """Register a client. A confidential client's secret is printed once."""
    spec = NewClient(name=name, type=ClientType(client_type), redirect_uris=redirect_uris, scopes=scopes, org_id=org)

    async def action(service: OAuthClientService, audit: AuditLog) -> dict[str, Any]:
        issued = await service.create(spec, grantor=None)
        await audit_client_event(audit, Action.OAUTH_CLIENT_CREATED, Actor.cli(), issued.client)
        return {**client_json(issued.client), "client_secret": issued.secret}

    data = _run_with_oauth_clients(_settings(ctx), action)
    note = "\n\nStore the client secret now: it will not be shown again." if data["client_secret"] else ""
    _emit(data, as_json, lambda: _human_key(data) + note)


@oauth_clients.command("list")
@click.option("--limit", type=click.IntRange(1, 100), default=20)
@click.option("--starting-after", default=None, help="id of the last client of the previous page")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def oauth_clients_list(ctx: click.Context, limit: int, starting_after: str | None, as_json: bool) -> None:
    """List clients, newest first (never their secrets)."""

    async def action(service: OAuthClientService, _audit: AuditLog) -> dict[str, Any]:
        page = await service.list(viewer=None, limit=limit, starting_after=starting_after)
        return {"data": [client_json(c) for c in page.data], "has_more": page.has_more}

    data = _run_with_oauth_clients(_settings(ctx), action)

    def human() -> str:
        rows = [
            f"{c['id']:28} {c['type']:12} {c['org_id']:14} {c['name']}  [{' '.join(c['scopes'])}]" for c in data["data"]
        ]
        return "\n".join(rows) if rows else "no OAuth clients"

    _emit(data, as_json, human)


@oauth_clients.command("delete")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def oauth_clients_delete(ctx: click.Context, client_id: str, as_json: bool) -> None:
    """Delete a client and revoke every grant and token it holds."""

    async def action(service: OAuthClientService, audit: AuditLog) -> dict[str, Any]:
        client = await service.delete(client_id, viewer=None)
        await audit_client_event(audit, Action.OAUTH_CLIENT_DELETED, Actor.cli(), client)
        return {**client_json(client), "deleted": True}

    data = _run_with_oauth_clients(_settings(ctx), action)
    _emit(data, as_json, lambda: f"deleted {data['id']} ({data['name']})")


if __name__ == "__main__":  # pragma: no cover
    main()
