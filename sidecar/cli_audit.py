"""``sidecar audit list``: read the audit trail from the server's store."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any

import click

from sidecar.app import open_stores, store_options
from sidecar.cli_common import settings_of
from sidecar.domain.audit import AuditLog
from sidecar.errors import SidecarError
from sidecar.models import AuditQuery
from sidecar.ports.clock import SystemClock
from sidecar.web.audit import event_json

TIME = click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"])


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@click.group()
def audit() -> None:
    """The audit trail: key changes, admin-API denials, signing-key and OAuth-client changes."""


@audit.command("list")
@click.option("--action", default=None, help="e.g. api_key.created, api_key.revoked, admin.permission_denied")
@click.option("--key-id", default=None, help="events by this key or about it")
@click.option("--org", default=None)
@click.option("--since", type=TIME, default=None, help="from this time (UTC unless given), inclusive")
@click.option("--until", type=TIME, default=None, help="before this time, exclusive")
@click.option("--limit", type=click.IntRange(1, 100), default=20)
@click.option("--starting-after", default=None, help="id of the last event of the previous page")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_context
def audit_list(
    ctx: click.Context,
    action: str | None,
    key_id: str | None,
    org: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    starting_after: str | None,
    as_json: bool,
) -> None:
    """List audit events, newest first."""
    settings = settings_of(ctx)
    query = AuditQuery(
        limit=limit,
        starting_after=starting_after,
        action=action,
        key_id=key_id,
        org_id=org,
        since=_utc(since),
        until=_utc(until),
    )

    async def go() -> dict[str, Any]:
        async with open_stores(**store_options(settings)) as stores:
            page = await AuditLog(stores.audit, SystemClock()).list(query, viewer=None)
        return {"data": [event_json(e) for e in page.data], "has_more": page.has_more}

    try:
        data = asyncio.run(go())
    except SidecarError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    rows = [_human(e) for e in data["data"]]
    more = "\n(more: --starting-after " + data["data"][-1]["id"] + ")" if data["has_more"] else ""
    click.echo("\n".join(rows) + more if rows else "no events")


def _human(event: dict[str, Any]) -> str:
    target = event["target"]["id"] if event["target"] else "-"
    origin = event["origin"]["ip"] or "-"
    actor = f"{event['actor']['type']}:{event['actor']['id']}"
    return f"{event['occurred_at']}  {event['action']:24} {actor:36} {target:28} {origin}"
