"""Receiving signed webhooks: verified once, refused when replayed, accepted again never."""

from __future__ import annotations

import pytest

from sidecar.domain import signatures as sig
from sidecar.domain.signatures import SignatureFormat
from sidecar.domain.webhook_verifier import WebhookVerifier
from sidecar.errors import SignatureInvalid
from sidecar.ports.clock import FrozenClock
from sidecar.ports.memory_replay import MemoryReplayGuard

SECRET = sig.new_secret()
BODY = b'{"id":"evt_1"}'


def now_ts(clock: FrozenClock) -> int:
    return int(clock.now().timestamp())


@pytest.mark.parametrize("fmt", list(SignatureFormat))
async def test_a_second_delivery_is_refused_as_replayed(clock: FrozenClock, fmt: SignatureFormat) -> None:
    verifier = WebhookVerifier([SECRET], clock, MemoryReplayGuard(clock), fmt=fmt)
    headers = sig.sign(fmt, BODY, [SECRET], timestamp=now_ts(clock), message_id="msg_1")
    assert (await verifier.verify(BODY, headers)).timestamp == now_ts(clock)
    clock.advance(30)
    with pytest.raises(SignatureInvalid) as exc:
        await verifier.verify(BODY, headers)
    assert exc.value.reason == "replayed"


async def test_the_replay_stays_refused_until_the_timestamp_is_stale(clock: FrozenClock) -> None:
    verifier = WebhookVerifier([SECRET], clock, MemoryReplayGuard(clock))
    # signed 200 s in the future (a fast sender clock): remembered for 200 + 300 s
    headers = sig.sign(SignatureFormat.STATESET, BODY, [SECRET], timestamp=now_ts(clock) + 200, message_id="m")
    await verifier.verify(BODY, headers)
    for step in (100, 200, 199):
        clock.advance(step)
        with pytest.raises(SignatureInvalid) as exc:
            await verifier.verify(BODY, headers)
        assert exc.value.reason == "replayed"
    clock.advance(7)
    with pytest.raises(SignatureInvalid) as exc:
        await verifier.verify(BODY, headers)
    assert exc.value.reason == "timestamp_outside_tolerance"


async def test_forged_deliveries_are_not_remembered(clock: FrozenClock) -> None:
    verifier = WebhookVerifier([SECRET], clock, MemoryReplayGuard(clock))
    good = sig.sign(SignatureFormat.STATESET, BODY, [SECRET], timestamp=now_ts(clock), message_id="m")
    forged = sig.sign(SignatureFormat.STATESET, BODY, [sig.new_secret()], timestamp=now_ts(clock), message_id="m")
    with pytest.raises(SignatureInvalid) as exc:
        await verifier.verify(BODY, forged)
    assert exc.value.reason == "no_matching_signature"
    assert await verifier.verify(BODY, good)


async def test_a_standard_retry_with_a_new_timestamp_is_accepted(clock: FrozenClock) -> None:
    """A sender's retry keeps the webhook-id and signs a new timestamp: a receiver that failed the
    first attempt (and answered 500) must be able to take the retry."""
    verifier = WebhookVerifier([SECRET], clock, MemoryReplayGuard(clock), fmt=SignatureFormat.STANDARD)
    first = sig.standard_headers(BODY, [SECRET], message_id="msg_9", timestamp=now_ts(clock))
    await verifier.verify(BODY, first)
    clock.advance(60)
    retry = sig.standard_headers(BODY, [SECRET], message_id="msg_9", timestamp=now_ts(clock))
    assert (await verifier.verify(BODY, retry)).message_id == "msg_9"
    for replayed in (first, retry):
        with pytest.raises(SignatureInvalid) as exc:
            await verifier.verify(BODY, replayed)
        assert exc.value.reason == "replayed"


async def test_an_exact_standard_replay_is_refused(clock: FrozenClock) -> None:
    verifier = WebhookVerifier([SECRET], clock, MemoryReplayGuard(clock), fmt=SignatureFormat.STANDARD)
    headers = sig.standard_headers(BODY, [SECRET], message_id="msg_7", timestamp=now_ts(clock))
    await verifier.verify(BODY, headers)
    clock.advance(1)
    with pytest.raises(SignatureInvalid) as exc:
        await verifier.verify(BODY, dict(headers))
    assert exc.value.reason == "replayed"


OTHER = sig.new_secret()


@pytest.mark.parametrize("keep", ["both", "swapped", "first", "second"])
async def test_a_rotation_replay_with_reordered_or_dropped_signatures_is_refused(clock: FrozenClock, keep: str) -> None:
    """While two secrets are current a delivery carries two valid v1= signatures; resending the same
    body and timestamp with them reordered, or with one dropped, is the same delivery."""
    verifier = WebhookVerifier([SECRET, OTHER], clock, MemoryReplayGuard(clock))
    t = now_ts(clock)
    header = sig.stateset_header(BODY, [SECRET, OTHER], timestamp=t)
    _, sig_a, sig_b = header.split(",")
    await verifier.verify(BODY, {sig.STATESET_HEADER: header})
    replay = {
        "both": f"t={t},{sig_a},{sig_b}",
        "swapped": f"t={t},{sig_b},{sig_a}",
        "first": f"t={t},{sig_a}",
        "second": f"t={t},{sig_b}",
    }[keep]
    with pytest.raises(SignatureInvalid) as exc:
        await verifier.verify(BODY, {sig.STATESET_HEADER: replay})
    assert exc.value.reason == "replayed"


async def test_a_rotation_replay_refused_in_the_standard_format_too(clock: FrozenClock) -> None:
    verifier = WebhookVerifier([SECRET, OTHER], clock, MemoryReplayGuard(clock), fmt=SignatureFormat.STANDARD)
    headers = sig.standard_headers(BODY, [SECRET, OTHER], message_id="msg_r", timestamp=now_ts(clock))
    await verifier.verify(BODY, headers)
    first, second = headers["webhook-signature"].split(" ")
    for signature in (f"{second} {first}", first, second):
        with pytest.raises(SignatureInvalid) as exc:
            await verifier.verify(BODY, {**headers, "webhook-signature": signature})
        assert exc.value.reason == "replayed"


async def test_another_body_at_the_same_second_is_not_a_replay(clock: FrozenClock) -> None:
    verifier = WebhookVerifier([SECRET], clock, MemoryReplayGuard(clock))
    t = now_ts(clock)
    for body in (BODY, b'{"id":"evt_2"}'):
        assert await verifier.verify(body, {sig.STATESET_HEADER: sig.stateset_header(body, [SECRET], timestamp=t)})
