"""``sidecar webhooks``: sign and verify webhook bodies from scripts.

The body is read from standard input, byte for byte; secrets come from ``--secret`` (repeatable:
all of them sign, any of them verifies) or ``--secret-file`` (one per line).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from sidecar.cli_common import fail, settings_of
from sidecar.domain import signatures
from sidecar.domain.signatures import SignatureFormat
from sidecar.domain.webhook_verifier import WebhookVerifier
from sidecar.errors import ConfigError, InvalidRequest, SidecarError
from sidecar.ports import Clock
from sidecar.ports.clock import FrozenClock, SystemClock
from sidecar.redis_wiring import open_redis
from sidecar.settings import Settings

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
