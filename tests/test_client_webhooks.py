"""``sidecar.client.verify_webhook``: what a receiver runs, in both formats, with replay guards.

Signatures come from the sidecar's own signer (as deliveries are made), from Stripe's SDK and from
the ``standardwebhooks`` package; replay guards are an in-process one, the memory guard and Redis.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks
import stripe
from multidict import CIMultiDict

from sidecar.client import WebhookVerificationError, verify_webhook, verify_webhook_async
from sidecar.domain import signatures as sig
from sidecar.domain.signatures import SignatureFormat
from sidecar.ports.circuit import CircuitBreaker
from sidecar.ports.clock import FrozenClock
from sidecar.ports.memory_replay import MemoryReplayGuard
from sidecar.ports.redis_client import RedisClient, RedisGuard, RedisOptions, connect
from sidecar.ports.redis_replay import RedisReplayGuard
from tests.redis_fixtures import RedisProcess

BODY = b'{"event":{"op":"INSERT","data":{"new":{"id":1}}},"id":"evt_1"}'
SECRET, OLD = sig.new_secret(), sig.new_secret()


def now() -> int:
    return int(time.time())


class SeenKeys:
    """A plain in-process guard with the blocking ``first_use`` a synchronous receiver supplies."""

    def __init__(self) -> None:
        self.keys: dict[str, float] = {}

    def first_use(self, key: str, ttl_s: float) -> bool:
        assert 0 < ttl_s <= 300 + 5 + 1
        if key in self.keys:
            return False
        self.keys[key] = ttl_s
        return True


@pytest.mark.parametrize("fmt", list(SignatureFormat))
def test_the_sidecars_deliveries_verify_in_either_format(fmt: SignatureFormat) -> None:
    headers = sig.sign(fmt, BODY, [SECRET, OLD], timestamp=now(), message_id="del_1")
    for secrets in (SECRET, [OLD], [sig.new_secret(), SECRET]):
        assert verify_webhook(BODY, headers, secrets).format is fmt
    lowered = CIMultiDict({k.lower(): v for k, v in headers.items()})  # as aiohttp hands them over
    assert verify_webhook(BODY, lowered, SECRET).format is fmt


def test_stripes_and_standardwebhooks_signatures_verify() -> None:
    stripe_header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), SECRET)
    assert verify_webhook(BODY, {"Stateset-Signature": stripe_header}, SECRET).format is SignatureFormat.STATESET
    moment = datetime.now(UTC)
    signature = standardwebhooks.Webhook(SECRET).sign("msg_1", moment, BODY)
    headers = {"Webhook-Id": "msg_1", "Webhook-Timestamp": str(int(moment.timestamp())), "Webhook-Signature": signature}
    verified = verify_webhook(BODY, headers, SECRET)
    assert (verified.format, verified.message_id) == (SignatureFormat.STANDARD, "msg_1")


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({}, BODY, "missing_header"),
        ({"Content-Type": "application/json"}, BODY, "missing_header"),
        ({"Stateset-Signature": "v1=00"}, BODY, "malformed_header"),
        ({"Stateset-Signature": "t=100,v1=" + "0" * 64}, BODY, "timestamp_outside_tolerance"),
        ("signed-with-another-secret", BODY, "no_matching_signature"),
        ("signed", BODY + b" ", "no_matching_signature"),
        ({"webhook-id": "m", "webhook-timestamp": "x", "webhook-signature": "v1,AA=="}, BODY, "malformed_header"),
    ],
)
def test_refusals_carry_a_reason_and_a_401(headers: object, body: bytes, reason: str) -> None:
    if headers == "signed":
        headers = sig.sign(SignatureFormat.STATESET, BODY, [SECRET], timestamp=now(), message_id="m")
    elif headers == "signed-with-another-secret":
        headers = sig.sign(SignatureFormat.STANDARD, BODY, [OLD], timestamp=now(), message_id="m")
    assert isinstance(headers, dict)
    with pytest.raises(WebhookVerificationError) as exc:
        verify_webhook(body, headers, SECRET)
    assert (exc.value.reason, exc.value.status, exc.value.code) == (reason, 401, "INVALID_SIGNATURE")
    assert SECRET not in str(exc.value)


def test_the_tolerance_and_the_time_are_the_callers() -> None:
    headers = sig.sign(SignatureFormat.STATESET, BODY, [SECRET], timestamp=1000, message_id="m")
    at = datetime.fromtimestamp(1000, UTC)
    assert verify_webhook(BODY, headers, SECRET, now=at + timedelta(seconds=300))
    with pytest.raises(WebhookVerificationError):
        verify_webhook(BODY, headers, SECRET, now=at + timedelta(seconds=301))
    assert verify_webhook(BODY, headers, SECRET, now=at + timedelta(seconds=301), tolerance_s=600)


def test_a_malformed_secret_is_a_value_error() -> None:
    headers = sig.sign(SignatureFormat.STANDARD, BODY, [SECRET], timestamp=now(), message_id="m")
    with pytest.raises(ValueError, match="whsec_"):
        verify_webhook(BODY, headers, "whsec_!!!")


def test_a_sync_guard_refuses_copies_and_reordered_rotation_signatures() -> None:
    guard = SeenKeys()
    t = now()
    header = sig.stateset_header(BODY, [SECRET, OLD], timestamp=t)
    verify_webhook(BODY, {"Stateset-Signature": header}, [SECRET, OLD], replay_guard=guard)
    _, first, second = header.split(",")
    for copy in (header, f"t={t},{second},{first}", f"t={t},{second}"):
        with pytest.raises(WebhookVerificationError) as exc:
            verify_webhook(BODY, {"Stateset-Signature": copy}, [SECRET, OLD], replay_guard=guard)
        assert exc.value.reason == "replayed"


def test_a_sync_guard_takes_a_standard_retry_but_not_a_copy() -> None:
    guard = SeenKeys()
    t = now()
    first = sig.standard_headers(BODY, [SECRET], message_id="del_1", timestamp=t - 30)
    retry = sig.standard_headers(BODY, [SECRET], message_id="del_1", timestamp=t)
    verify_webhook(BODY, first, SECRET, replay_guard=guard)
    verify_webhook(BODY, retry, SECRET, replay_guard=guard)
    with pytest.raises(WebhookVerificationError) as exc:
        verify_webhook(BODY, retry, SECRET, replay_guard=guard)
    assert exc.value.reason == "replayed"


def test_a_refused_signature_is_not_remembered() -> None:
    guard = SeenKeys()
    headers = sig.sign(SignatureFormat.STATESET, BODY, [SECRET], timestamp=now(), message_id="m")
    with pytest.raises(WebhookVerificationError):
        verify_webhook(BODY, headers, OLD, replay_guard=guard)
    assert guard.keys == {}


async def test_async_with_the_memory_guard() -> None:
    guard = MemoryReplayGuard(FrozenClock(), max_entries=10)
    headers = sig.sign(SignatureFormat.STANDARD, BODY, [SECRET], timestamp=now(), message_id="del_2")
    assert (await verify_webhook_async(BODY, headers, SECRET, replay_guard=guard)).message_id == "del_2"
    with pytest.raises(WebhookVerificationError) as exc:
        await verify_webhook_async(BODY, headers, SECRET, replay_guard=guard)
    assert exc.value.reason == "replayed"


def redis_guard(url: str) -> tuple[RedisReplayGuard, RedisClient]:
    client = connect(url, RedisOptions(pool_size=2, timeout_s=1.0, connect_timeout_s=1.0))
    breaker = CircuitBreaker(FrozenClock(), name="redis", failures=3, reset_s=5)
    return RedisReplayGuard(client, RedisGuard(breaker, timeout_s=1.0), prefix="receiver:"), client


async def test_async_with_redis_shared_by_two_receivers(redis_url: str) -> None:
    (one, one_client), (two, two_client) = redis_guard(redis_url), redis_guard(redis_url)
    headers = sig.sign(SignatureFormat.STATESET, BODY, [SECRET], timestamp=now(), message_id="m")
    await verify_webhook_async(BODY, headers, SECRET, replay_guard=one)
    with pytest.raises(WebhookVerificationError) as exc:
        await verify_webhook_async(BODY, headers, SECRET, replay_guard=two)
    assert exc.value.reason == "replayed"
    for client in (one_client, two_client):
        await client.aclose()


async def test_async_fails_closed_with_a_503_when_redis_is_gone(own_redis: RedisProcess) -> None:
    guard, client = redis_guard(own_redis.url)
    own_redis.kill()
    headers = sig.sign(SignatureFormat.STATESET, BODY, [SECRET], timestamp=now(), message_id="m")
    with pytest.raises(WebhookVerificationError) as exc:
        await verify_webhook_async(BODY, headers, SECRET, replay_guard=guard)
    assert (exc.value.reason, exc.value.status) == ("replay_guard_unavailable", 503)
    await client.aclose()
