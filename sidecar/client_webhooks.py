"""Receiving the sidecar's signed webhooks: ``verify_webhook`` (and ``verify_webhook_async``).

Re-exported by ``sidecar.client``. Both formats the sidecar sends are understood, told apart by
their headers: ``Stateset-Signature: t=…,v1=…`` and Standard Webhooks (``webhook-id``,
``webhook-timestamp``, ``webhook-signature``). The check itself is ``sidecar.domain.signatures``
(pure, no I/O): constant-time, any of several secrets during a rotation, the timestamp within
``tolerance_s`` either way.

A replay guard refuses a second delivery of what was already accepted. The key it remembers is
the signed payload (timestamp and body digest), or for Standard Webhooks the message id and
timestamp, so a sender's retry (new timestamp) is accepted and a copy of a delivery is not::

    from sidecar.client import WebhookVerificationError, verify_webhook

    try:
        verify_webhook(request.body, request.headers, [os.environ["WEBHOOK_SECRET"]])
    except WebhookVerificationError as exc:
        return Response(status=exc.status)            # 401, or 503 if the guard is unreachable
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

from sidecar.domain import signatures
from sidecar.domain.signatures import SignatureFormat, Verified
from sidecar.domain.webhook_verifier import replay_ttl_s
from sidecar.errors import InvalidRequest, SidecarError, SignatureInvalid
from sidecar.ports import ReplayGuard

__all__ = ["SyncReplayGuard", "Verified", "WebhookVerificationError", "verify_webhook", "verify_webhook_async"]


class WebhookVerificationError(Exception):
    """The delivery is not to be trusted; ``reason`` says why and ``status`` is what to answer.

    Reasons: ``missing_header``, ``malformed_header``, ``timestamp_outside_tolerance``,
    ``no_matching_signature``, ``replayed`` (all 401), ``replay_guard_unavailable`` (503).
    """

    code = "INVALID_SIGNATURE"

    def __init__(self, message: str, *, reason: str, status: int = 401) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.status = status


class SyncReplayGuard(Protocol):
    """A blocking replay guard, e.g. over redis-py's sync client::

    class RedisGuard:
        def first_use(self, key: str, ttl_s: float) -> bool:
            return bool(r.set("replay:" + key, 1, nx=True, px=max(1, int(ttl_s * 1000))))
    """

    def first_use(self, key: str, ttl_s: float) -> bool:
        """Record ``key`` for ``ttl_s`` seconds; ``False`` if it was already recorded."""
        ...


def _format(headers: Mapping[str, str]) -> SignatureFormat:
    names = {name.lower() for name in headers}
    if signatures.STATESET_HEADER.lower() in names:
        return SignatureFormat.STATESET
    if signatures.STANDARD_SIGNATURE_HEADER in names:
        return SignatureFormat.STANDARD
    raise WebhookVerificationError(
        f"neither a {signatures.STATESET_HEADER} nor a {signatures.STANDARD_SIGNATURE_HEADER} header",
        reason="missing_header",
    )


def _check(
    body: bytes, headers: Mapping[str, str], secrets: str | Sequence[str], tolerance_s: int, now: datetime
) -> Verified:
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    plain = {str(name): str(value) for name, value in headers.items()}
    try:
        return signatures.verify(_format(plain), body, plain, keys, now=now, tolerance_s=tolerance_s)
    except SignatureInvalid as exc:
        raise WebhookVerificationError(exc.message, reason=exc.reason) from None
    except InvalidRequest as exc:  # a malformed secret is the receiver's configuration, not the sender's
        raise ValueError(exc.message) from None


def _replayed() -> WebhookVerificationError:
    return WebhookVerificationError("this webhook delivery was already accepted once", reason="replayed")


def verify_webhook(
    body: bytes,
    headers: Mapping[str, str],
    secrets: str | Sequence[str],
    *,
    tolerance_s: int = signatures.DEFAULT_TOLERANCE_S,
    replay_guard: SyncReplayGuard | None = None,
    now: datetime | None = None,
) -> Verified:
    """Check a delivery's signature (either format) against ``secrets`` (any may match) and, with a
    ``replay_guard``, refuse it if it was accepted before. Raises ``WebhookVerificationError``;
    a malformed secret is a ``ValueError``. ``body`` must be the raw bytes, before any JSON parsing."""
    moment = now or datetime.now(UTC)
    verified = _check(body, headers, secrets, tolerance_s, moment)
    ttl = replay_ttl_s(verified.timestamp, moment, tolerance_s)
    if replay_guard is not None and not replay_guard.first_use(verified.replay_key, ttl):
        raise _replayed()
    return verified


async def verify_webhook_async(
    body: bytes,
    headers: Mapping[str, str],
    secrets: str | Sequence[str],
    *,
    tolerance_s: int = signatures.DEFAULT_TOLERANCE_S,
    replay_guard: ReplayGuard | None = None,
    now: datetime | None = None,
) -> Verified:
    """``verify_webhook`` with an async replay guard: ``sidecar.ports.memory_replay.MemoryReplayGuard``
    for one process, ``sidecar.ports.redis_replay.RedisReplayGuard`` for several (fails closed)."""
    moment = now or datetime.now(UTC)
    verified = _check(body, headers, secrets, tolerance_s, moment)
    if replay_guard is not None:
        ttl = replay_ttl_s(verified.timestamp, moment, tolerance_s)
        try:
            first = await replay_guard.first_use(verified.replay_key, ttl)
        except SidecarError as exc:
            raise WebhookVerificationError(exc.message, reason=exc.reason, status=503) from None
        if not first:
            raise _replayed()
    return verified
