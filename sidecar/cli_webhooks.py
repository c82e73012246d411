"""``sidecar webhooks``: sign and verify webhook bodies from scripts.

The body is read from standard input, byte for byte; secrets come from ``--secret`` (repeatable:
all of them sign, any of them verifies) or ``--secret-file`` (one per line).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from sidecar.app import build_webhook_endpoint_service, open_stores, store_options
from sidecar.cli_common import fail, settings_of
from sidecar.domain import signatures
from sidecar.domain.signatures import SignatureFormat
from sidecar.domain.webhook_endpoints import NewEndpoint, WebhookEndpointService
from sidecar.domain.webhook_verifier import WebhookVerifier
from sidecar.errors import ConfigError, InvalidRequest, SidecarError
from sidecar.ports import Clock
from sidecar.ports.clock import FrozenClock, SystemClock
from sidecar.redis_wiring import open_redis
from sidecar.settings import Settings
from sidecar.web.webhook_endpoints import endpoint_json

T = TypeVar("T")

FORMAT_OPTION = click.option(
    "--format",
    "fmt",
    type=click.Choice([f.value for f in SignatureFormat]),
    default=SignatureFormat.STATESET.value,
    show_default=True,
    help="stateset: Stateset-Signature t=,v1= (Stripe-compatible); standard: Standard Webhooks headers",
)
SECRET_OPTION = click.option(
    "--secret", "secrets", multiple=True, help="a webhook secret (whsec_…); repeatable during a rotation"
)
SECRET_FILE_OPTION = click.option(
    "--secret-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="read secrets from a file, one per line (keeps them out of the process list)",
)
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="print JSON")


def read_secrets(secrets: Sequence[str], secret_file: Path | None) -> list[str]:
    found = list(secrets)
    if secret_file is not None:
        found += [line.strip() for line in secret_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not found:
        fail("give at least one --secret or --secret-file", code=2)
    return found


def read_body() -> bytes:
    return sys.stdin.buffer.read()


@click.group()
def webhooks() -> None:
    """Sign and verify webhook bodies; manage webhook endpoints."""


@webhooks.command("sign")
@SECRET_OPTION
@SECRET_FILE_OPTION
@click.option("--timestamp", type=click.IntRange(0), default=None, help="UNIX seconds (default: now)")
@click.option("--id", "message_id", default=None, help="webhook-id for --format standard (default: generated)")
@FORMAT_OPTION
@JSON_OPTION
def sign_command(
    secrets: tuple[str, ...],
    secret_file: Path | None,
    timestamp: int | None,
    message_id: str | None,
    fmt: str,
    as_json: bool,
) -> None:
    """Sign the body on standard input and print the signature header(s).

    \b
    Example:
      echo -n '{"id":1}' | sidecar webhooks sign --secret whsec_…
      Stateset-Signature: t=1767225600,v1=5257a8…
    """
    keys = read_secrets(secrets, secret_file)
    stamp = int(SystemClock().now().timestamp()) if timestamp is None else timestamp
    try:
        headers = signatures.sign(
            SignatureFormat(fmt),
            read_body(),
            keys,
            timestamp=stamp,
            message_id=message_id or signatures.new_message_id(),
        )
    except InvalidRequest as exc:
        fail(exc.message, code=2)
    if as_json:
        click.echo(json.dumps(headers, indent=2))
    else:
        click.echo("\n".join(f"{name}: {value}" for name, value in headers.items()))


def parse_headers(raw: Sequence[str], fmt: SignatureFormat) -> dict[str, str]:
    """``Name: value`` pairs; for the stateset format a bare value is the Stateset-Signature."""
    headers: dict[str, str] = {}
    for item in raw:
        name, colon, value = item.partition(":")
        if colon and name.strip() and " " not in name.strip() and "=" not in name:
            headers[name.strip()] = value.strip()
        elif fmt is SignatureFormat.STATESET:
            headers[signatures.STATESET_HEADER] = item.strip()
        else:
            fail(f"--header must be 'Name: value', got {item[:40]!r}", code=2)
    return headers


@webhooks.command("verify")
@SECRET_OPTION
@SECRET_FILE_OPTION
@click.option(
    "--header",
    "raw_headers",
    multiple=True,
    help="'Name: value' (repeatable); with --format stateset the bare header value also works",
)
@click.option(
    "--tolerance",
    type=click.IntRange(0),
    default=None,
    help="seconds the timestamp may be off, either way (default: SIDECAR_WEBHOOK__TOLERANCE_S, 300)",
)
@click.option("--now", "now_ts", type=click.IntRange(0), default=None, help="check as of these UNIX seconds")
@click.option(
    "--refuse-replays",
    is_flag=True,
    help="remember what verifies in Redis (SIDECAR_REDIS_URL) and refuse it the next time (reason: replayed)",
)
@FORMAT_OPTION
@JSON_OPTION
@click.pass_context
def verify_command(
    ctx: click.Context,
    secrets: tuple[str, ...],
    secret_file: Path | None,
    raw_headers: tuple[str, ...],
    tolerance: int | None,
    now_ts: int | None,
    refuse_replays: bool,
    fmt: str,
    as_json: bool,
) -> None:
    """Verify the body on standard input; exit 0 if valid, 1 with the reason if not.

    \b
    Example:
      sidecar webhooks verify --secret whsec_… --header "$SIG" < body.json
    """
    keys = read_secrets(secrets, secret_file)
    settings = settings_of(ctx)
    if refuse_replays and not settings.redis_url:
        fail("--refuse-replays needs SIDECAR_REDIS_URL: only a shared store remembers across runs", code=2)
    sig_format = SignatureFormat(fmt)
    headers = parse_headers(raw_headers, sig_format)
    clock: Clock = SystemClock() if now_ts is None else FrozenClock(datetime.fromtimestamp(now_ts, UTC))
    window = settings.webhook.tolerance_s if tolerance is None else tolerance
    result: dict[str, Any]
    try:
        body = read_body()
        if refuse_replays:
            verified = asyncio.run(verify_once(settings, clock, keys, sig_format, window, body, headers))
        else:
            verified = signatures.verify(sig_format, body, headers, keys, now=clock.now(), tolerance_s=window)
    except (InvalidRequest, ConfigError) as exc:
        fail(exc.message, code=2)
    except SidecarError as exc:  # a bad signature, a replay, or Redis unreachable (fails closed)
        result = {"valid": False, "reason": exc.reason, "message": exc.message}
    else:
        result = {"valid": True, "timestamp": verified.timestamp, "webhook_id": verified.message_id}
    if as_json:
        click.echo(json.dumps(result, indent=2))
    elif result["valid"]:
        click.echo(f"valid (signed at {result['timestamp']})")
    else:
        click.echo(f"invalid: {result['reason']}: {result['message']}", err=True)
    sys.exit(0 if result["valid"] else 1)


async def verify_once(
    settings: Settings,
    clock: Clock,
    keys: Sequence[str],
    fmt: SignatureFormat,
    tolerance_s: int,
    body: bytes,
    headers: dict[str, str],
) -> signatures.Verified:
    """Verify, and refuse what Redis remembers as already verified (by any replica or script)."""
    async with open_redis(settings, clock) as redis:
        assert redis is not None  # the caller checked SIDECAR_REDIS_URL
        verifier = WebhookVerifier(keys, clock, redis.replay, fmt=fmt, tolerance_s=tolerance_s)
        return await verifier.verify(body, headers)


# --- endpoints --------------------------------------------------------------------------------


def run_with_endpoints(ctx: click.Context, action: Callable[[WebhookEndpointService], Awaitable[T]]) -> T:
    settings = settings_of(ctx)

    async def go() -> T:
        async with open_stores(**store_options(settings)) as stores:
            service = build_webhook_endpoint_service(settings, stores.webhooks, stores.deliveries, SystemClock())
            return await action(service)

    try:
        return asyncio.run(go())
    except SidecarError as exc:
        fail(exc.message)


def emit(data: dict[str, Any], as_json: bool, human: Callable[[], str]) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else human())


def human_endpoint(data: dict[str, Any]) -> str:
    rows = [
        f"{'id':12} {data['id']}",
        f"{'url':12} {data['url']}",
        f"{'events':12} {', '.join(data['events'])}",
        f"{'format':12} {data['format']}",
        f"{'org':12} {'every organisation' if data['all_orgs'] else data['org_id']}",
        f"{'enabled':12} {'yes' if data['enabled'] else 'no'}",
    ]
    if data.get("description"):
        rows.append(f"{'description':12} {data['description']}")
    if "secret" in data:
        rows.append(f"{'secret':12} {data['secret']}")
    return "\n".join(rows)


@webhooks.group()
def endpoints() -> None:
    """Create, list, roll and delete the endpoints Hasura events are delivered to."""


@endpoints.command("create")
@click.option("--url", required=True, help="where to POST deliveries (http or https)")
@click.option(
    "--event",
    "events",
    multiple=True,
    help="an event trigger name, schema.table or * (repeatable; default: *)",
)
@FORMAT_OPTION
@click.option("--description", default="")
@click.option("--disabled", is_flag=True, help="create it switched off")
@click.option(
    "--org", "org_id", default=None, help="the organisation whose events it receives (default: SIDECAR_DEFAULT_ORG_ID)"
)
@click.option("--all-orgs", is_flag=True, help="receive every organisation's events (and tables without an org column)")
@JSON_OPTION
@click.pass_context
def endpoints_create(
    ctx: click.Context,
    url: str,
    events: tuple[str, ...],
    fmt: str,
    description: str,
    disabled: bool,
    org_id: str | None,
    all_orgs: bool,
    as_json: bool,
) -> None:
    """Create an endpoint. Its secret is printed once and cannot be retrieved again."""
    spec = NewEndpoint(url, events or ("*",), SignatureFormat(fmt), not disabled, description, org_id, all_orgs)

    async def action(service: WebhookEndpointService) -> dict[str, Any]:
        issued = await service.create(spec, grantor=None)
        return {**endpoint_json(issued.endpoint, service.now()), "secret": issued.secret}

    data = run_with_endpoints(ctx, action)
    emit(data, as_json, lambda: human_endpoint(data) + "\n\nStore the secret now: it will not be shown again.")


@endpoints.command("list")
@click.option("--limit", type=click.IntRange(1, 100), default=20)
@click.option("--starting-after", default=None, help="id of the last endpoint of the previous page")
@JSON_OPTION
@click.pass_context
def endpoints_list(ctx: click.Context, limit: int, starting_after: str | None, as_json: bool) -> None:
    """List endpoints, newest first (never their secrets)."""

    async def action(service: WebhookEndpointService) -> dict[str, Any]:
        page = await service.list(viewer=None, limit=limit, starting_after=starting_after)
        now = service.now()
        return {"data": [endpoint_json(e, now) for e in page.data], "has_more": page.has_more}

    data = run_with_endpoints(ctx, action)

    def human() -> str:
        rows = [
            f"{e['id']:28} {'on ' if e['enabled'] else 'off'} {e['format']:9} {e['url']}  [{', '.join(e['events'])}]"
            for e in data["data"]
        ]
        return "\n".join(rows) if rows else "no webhook endpoints"

    emit(data, as_json, human)


@endpoints.command("roll")
@click.argument("endpoint_id")
@click.option(
    "--expires-in",
    type=click.IntRange(0, 7 * 86_400),
    default=None,
    help="seconds the old secret keeps signing (default: SIDECAR_WEBHOOK__ROLL_OVERLAP_S)",
)
@JSON_OPTION
@click.pass_context
def endpoints_roll(ctx: click.Context, endpoint_id: str, expires_in: int | None, as_json: bool) -> None:
    """Give an endpoint a new secret; both sign until the old one expires."""

    async def action(service: WebhookEndpointService) -> dict[str, Any]:
        issued = await service.roll_secret(endpoint_id, viewer=None, overlap_s=expires_in)
        return {**endpoint_json(issued.endpoint, service.now()), "secret": issued.secret}

    data = run_with_endpoints(ctx, action)
    emit(data, as_json, lambda: human_endpoint(data) + "\n\nStore the new secret now: it will not be shown again.")


@endpoints.command("delete")
@click.argument("endpoint_id")
@JSON_OPTION
@click.pass_context
def endpoints_delete(ctx: click.Context, endpoint_id: str, as_json: bool) -> None:
    """Delete an endpoint; nothing more is delivered to it."""

    async def action(service: WebhookEndpointService) -> dict[str, Any]:
        return {**endpoint_json(await service.delete(endpoint_id, viewer=None), service.now()), "deleted": True}

    data = run_with_endpoints(ctx, action)
    emit(data, as_json, lambda: f"deleted {data['id']} ({data['url']})")
