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


async def test_standard_retries_share_an_id_so_a_redelivery_is_refused(clock: FrozenClock) -> None:
    verifier = WebhookVerifier([SECRET], clock, MemoryReplayGuard(clock), fmt=SignatureFormat.STANDARD)
    first = sig.standard_headers(BODY, [SECRET], message_id="msg_9", timestamp=now_ts(clock))
    await verifier.verify(BODY, first)
    clock.advance(60)
    retry = sig.standard_headers(BODY, [SECRET], message_id="msg_9", timestamp=now_ts(clock))
    with pytest.raises(SignatureInvalid) as exc:
        await verifier.verify(BODY, retry)
    assert exc.value.reason == "replayed"
