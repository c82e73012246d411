"""``sidecar webhooks endpoints``: manage the endpoints Hasura events are delivered to, as the
local operator (every organisation's endpoints), and read their delivery log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from sidecar.app import build_webhook_endpoint_service, open_stores, store_options
from sidecar.cli_common import fail, settings_of
from sidecar.cli_webhooks import FORMAT_OPTION, JSON_OPTION
from sidecar.domain.signatures import SignatureFormat
from sidecar.domain.webhook_endpoints import EndpointChange, NewEndpoint, WebhookEndpointService
from sidecar.errors import SidecarError
from sidecar.ports.clock import SystemClock
from sidecar.web.webhook_endpoints import delivery_json, endpoint_json

T = TypeVar("T")


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


@click.group()
def endpoints() -> None:
    """Create, list, show, update, roll and delete the endpoints Hasura events are delivered to,
    and read their delivery log. The CLI acts as the local operator: every organisation's endpoints."""


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


@endpoints.command("show")
@click.argument("endpoint_id")
@JSON_OPTION
@click.pass_context
def endpoints_show(ctx: click.Context, endpoint_id: str, as_json: bool) -> None:
    """Show one endpoint and its secrets' validity (never the secrets)."""

    async def action(service: WebhookEndpointService) -> dict[str, Any]:
        return endpoint_json(await service.get(endpoint_id, viewer=None), service.now())

    data = run_with_endpoints(ctx, action)
    emit(data, as_json, lambda: human_endpoint(data))


@endpoints.command("update")
@click.argument("endpoint_id")
@click.option("--url", default=None, help="a new URL to POST deliveries to")
@click.option(
    "--event", "events", multiple=True, help="replace the events (repeatable): trigger name, schema.table or *"
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice([f.value for f in SignatureFormat]),
    default=None,
    help="sign deliveries as stateset or standard from now on",
)
@click.option("--description", default=None)
@click.option("--enable/--disable", "enabled", default=None, help="switch deliveries on or off")
@JSON_OPTION
@click.pass_context
def endpoints_update(
    ctx: click.Context,
    endpoint_id: str,
    url: str | None,
    events: tuple[str, ...],
    fmt: str | None,
    description: str | None,
    enabled: bool | None,
    as_json: bool,
) -> None:
    """Change an endpoint's URL, events, format, description or whether it is on; the rest stays."""
    change = EndpointChange(
        url=url,
        events=events or None,
        format=SignatureFormat(fmt) if fmt else None,
        enabled=enabled,
        description=description,
    )
    if change == EndpointChange():
        fail("nothing to change: give --url, --event, --format, --description, --enable or --disable", code=2)

    async def action(service: WebhookEndpointService) -> dict[str, Any]:
        return endpoint_json(await service.update(endpoint_id, change, viewer=None), service.now())

    data = run_with_endpoints(ctx, action)
    emit(data, as_json, lambda: human_endpoint(data))


@endpoints.command("deliveries")
@click.argument("endpoint_id")
@click.option("--limit", type=click.IntRange(1, 100), default=20)
@click.option("--starting-after", default=None, help="id of the last delivery of the previous page")
@JSON_OPTION
@click.pass_context
def endpoints_deliveries(
    ctx: click.Context, endpoint_id: str, limit: int, starting_after: str | None, as_json: bool
) -> None:
    """An endpoint's deliveries, newest first, each with its attempts (status code or error)."""

    async def action(service: WebhookEndpointService) -> dict[str, Any]:
        page, attempts = await service.deliveries(endpoint_id, viewer=None, limit=limit, starting_after=starting_after)
        return {"data": [delivery_json(d, attempts.get(d.id, [])) for d in page.data], "has_more": page.has_more}

    data = run_with_endpoints(ctx, action)

    def human() -> str:
        rows = [
            f"{d['id']:28} {d['status']:9} {d['attempts']:>2} tries  "
            f"{d['last_status_code'] or d['last_error'] or '-':>22}  {d['table']} {d['op']}  {d['event_id']}"
            for d in data["data"]
        ]
        return "\n".join(rows) if rows else "no deliveries"

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
