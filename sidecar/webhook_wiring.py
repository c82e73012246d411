"""Wiring webhook delivery into a process from settings: the HTTP sender, the service, its worker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sidecar.domain.addresses import is_public
from sidecar.domain.tables import TableModel
from sidecar.domain.webhook_delivery import DeliveryOptions, DeliveryService, RetryPolicy, org_columns
from sidecar.ports import Clock, DeliveryStore, WebhookEndpointStore
from sidecar.ports.http_sender import AiohttpSender
from sidecar.settings import Settings


def delivery_options(settings: Settings) -> DeliveryOptions:
    w = settings.webhook
    return DeliveryOptions(
        retry=RetryPolicy(
            max_attempts=w.delivery_max_attempts, base_s=w.delivery_backoff_base_s, max_s=w.delivery_backoff_max_s
        ),
        timeout_s=w.delivery_timeout_s,
        batch_size=w.delivery_batch_size,
    )


@asynccontextmanager
async def open_delivery(
    settings: Settings, endpoints: WebhookEndpointStore, outbox: DeliveryStore, clock: Clock, tables: TableModel
) -> AsyncIterator[DeliveryService]:
    """The delivery service; with ``SIDECAR_WEBHOOK__DELIVER`` on, its worker runs while the block does."""
    secret = settings.webhook.hasura_events_secret
    allowed = None if settings.webhook.allow_private_urls else is_public
    async with AiohttpSender.open(address_allowed=allowed) as sender:
        service = DeliveryService(
            endpoints,
            outbox,
            sender,
            clock,
            events_secret=secret.get_secret_value() if secret else None,
            org_columns=org_columns(tables),
            options=delivery_options(settings),
        )
        if not settings.webhook.deliver:
            yield service
            return
        worker = asyncio.create_task(
            service.run_forever(settings.webhook.delivery_poll_interval_s), name="sidecar-webhook-delivery"
        )
        try:
            yield service
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
