"""Webhook signatures, checked against independent implementations: Stripe's SDK for the
``t=,v1=`` form and the ``standardwebhooks`` package for Standard Webhooks, in both directions."""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks
import stripe
from hypothesis import given
from hypothesis import strategies as st

from sidecar.domain import signatures as sig
from sidecar.domain.signatures import SignatureFormat
from sidecar.errors import InvalidRequest, SignatureInvalid

BODY = b'{"event":{"op":"INSERT","data":{"new":{"id":1,"name":"caf\xc3\xa9"}}}}'
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
T = int(NOW.timestamp())
OLD, NEW = sig.new_secret(), sig.new_secret()


def reason(exc: pytest.ExceptionInfo[SignatureInvalid]) -> str:
    return exc.value.reason


# --- against Stripe's SDK ------------------------------------------------------------------


def test_stripe_verifies_our_header_with_either_rotation_secret() -> None:
    now = int(time.time())
    header = sig.stateset_header(BODY, [NEW, OLD], timestamp=now)
    assert header.count("v1=") == 2
    for secret in (NEW, OLD):
        assert stripe.WebhookSignature.verify_header(BODY, header, secret, tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(BODY, header, sig.new_secret(), tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(BODY + b" ", header, NEW, tolerance=300)


def test_we_verify_stripes_header() -> None:
    header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), OLD, timestamp=T)
    verified = sig.verify_stateset(BODY, header, [NEW, OLD], now=NOW)
    assert verified.timestamp == T
    assert verified.replay_key == sig.stateset_replay_key(T, BODY)
    with pytest.raises(SignatureInvalid) as exc:
        sig.verify_stateset(BODY, header, [NEW], now=NOW)
    assert reason(exc) == "no_matching_signature"


# --- against the standardwebhooks package ---------------------------------------------------


def test_standardwebhooks_verifies_our_headers_with_either_secret() -> None:
    headers = sig.standard_headers(BODY, [NEW, OLD], message_id="msg_2Kq", timestamp=int(time.time()))
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (NEW, OLD):
        assert standardwebhooks.Webhook(secret).verify(BODY, headers)["event"]["op"] == "INSERT"
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(sig.new_secret()).verify(BODY, headers)


def test_we_verify_standardwebhooks_signature() -> None:
    signature = standardwebhooks.Webhook(OLD).sign("msg_1", NOW, BODY)
    headers = {"Webhook-Id": "msg_1", "Webhook-Timestamp": str(T), "Webhook-Signature": f"v1a,xyz {signature}"}
    verified = sig.verify_standard(BODY, headers, [NEW, OLD], now=NOW)
    assert verified.message_id == "msg_1"
    assert verified.replay_key == sig.standard_replay_key("msg_1", T)
    with pytest.raises(SignatureInvalid) as exc:
        sig.verify_standard(BODY, {**headers, "Webhook-Id": "msg_2"}, [OLD], now=NOW)
    assert reason(exc) == "no_matching_signature"


# --- the stateset header's shapes ----------------------------------------------------------


@pytest.mark.parametrize("joiner", [",", ", ", " ", " , ", "\t"])
def test_comma_space_or_both_separate_items(joiner: str) -> None:
    header = sig.stateset_header(BODY, [NEW, OLD], timestamp=T)
    assert sig.verify_stateset(BODY, joiner.join(header.split(",")), [OLD], now=NOW).timestamp == T


def test_unknown_schemes_are_ignored() -> None:
    header = sig.stateset_header(BODY, [NEW], timestamp=T)
    assert sig.verify_stateset(BODY, header + ",v0=deadbeef,x=1", [NEW], now=NOW)


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_timestamps_within_tolerance_either_way_verify(offset: int) -> None:
    header = sig.stateset_header(BODY, [NEW], timestamp=T + offset)
    assert sig.verify_stateset(BODY, header, [NEW], now=NOW).timestamp == T + offset


@pytest.mark.parametrize("offset", [-301, 301, -86_400, 10**9])
def test_timestamps_outside_tolerance_either_way_are_refused(offset: int) -> None:
    header = sig.stateset_header(BODY, [NEW], timestamp=T + offset)
    with pytest.raises(SignatureInvalid) as exc:
        sig.verify_stateset(BODY, header, [NEW], now=NOW)
    assert reason(exc) == "timestamp_outside_tolerance"
    assert exc.value.code == "INVALID_SIGNATURE"
    assert exc.value.status == 401


def test_tolerance_is_configurable() -> None:
    header = sig.stateset_header(BODY, [NEW], timestamp=T - 600)
    assert sig.verify_stateset(BODY, header, [NEW], now=NOW, tolerance_s=600)


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (None, "missing_header"),
        ("", "missing_header"),
        ("  ", "missing_header"),
        ("v1=" + "0" * 64, "malformed_header"),  # no t= (the seed's verifier crashes here)
        (f"t={T}", "malformed_header"),  # no v1=
        (f"t={T},t={T},v1=" + "0" * 64, "malformed_header"),
        ("t=soon,v1=" + "0" * 64, "malformed_header"),
        ("t=-5,v1=" + "0" * 64, "malformed_header"),
        ("t=\uff11\uff12,v1=" + "0" * 64, "malformed_header"),  # non-ASCII digits
        (f"t={T},garbage", "malformed_header"),
        (f"t={T},=x", "malformed_header"),
        (f"t={T}," + ",".join(["v1=00"] * 33), "malformed_header"),
        (f"t={T},v1=" + "x" * 10_000, "malformed_header"),
        (f"t={T},v1=abc", "no_matching_signature"),  # length mismatch never throws
        (f"t={T},v1=zz", "no_matching_signature"),  # not hex
        (f"t={T},v1=é" * 2, "no_matching_signature"),  # not ASCII
        (f"t={T},v1=\ud800", "no_matching_signature"),  # a lone surrogate
        (f"t={T},v1=" + "0" * 64, "no_matching_signature"),
    ],
)
def test_bad_headers_give_a_reason(header: str | None, why: str) -> None:
    with pytest.raises(SignatureInvalid) as exc:
        sig.verify_stateset(BODY, header, [NEW], now=NOW)
    assert reason(exc) == why
    assert NEW not in exc.value.message


def test_verify_through_a_header_mapping_in_any_case() -> None:
    headers = sig.sign(SignatureFormat.STATESET, BODY, [NEW], timestamp=T, message_id="unused")
    lowered = {k.lower(): v for k, v in headers.items()}
    assert sig.verify(SignatureFormat.STATESET, BODY, lowered, [NEW], now=NOW).timestamp == T
    with pytest.raises(SignatureInvalid) as exc:
        sig.verify(SignatureFormat.STATESET, BODY, {}, [NEW], now=NOW)
    assert reason(exc) == "missing_header"


# --- the standard headers' shapes ----------------------------------------------------------


def std(**change: str) -> dict[str, str]:
    headers = sig.standard_headers(BODY, [NEW], message_id="msg_1", timestamp=T)
    headers.update(change)
    return {k: v for k, v in headers.items() if v != "DROP"}


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        (std(**{"webhook-id": "DROP"}), "missing_header"),
        (std(**{"webhook-timestamp": "DROP"}), "missing_header"),
        (std(**{"webhook-signature": ""}), "missing_header"),
        (std(**{"webhook-timestamp": "1.5"}), "malformed_header"),
        (std(**{"webhook-id": "has space"}), "malformed_header"),
        (std(**{"webhook-signature": "v2,abc"}), "malformed_header"),
        (std(**{"webhook-timestamp": str(T - 301)}), "timestamp_outside_tolerance"),
        (std(**{"webhook-timestamp": str(T + 301)}), "timestamp_outside_tolerance"),
        (std(**{"webhook-signature": "v1,bm90IGl0"}), "no_matching_signature"),
        (std(**{"webhook-signature": "v1,***"}), "no_matching_signature"),
        (std(**{"webhook-timestamp": str(T + 1)}), "no_matching_signature"),
    ],
)
def test_bad_standard_headers_give_a_reason(headers: dict[str, str], why: str) -> None:
    with pytest.raises(SignatureInvalid) as exc:
        sig.verify_standard(BODY, headers, [NEW], now=NOW)
    assert reason(exc) == why


def test_secrets_are_checked() -> None:
    with pytest.raises(InvalidRequest):
        sig.stateset_header(BODY, [], timestamp=T)
    with pytest.raises(InvalidRequest):
        sig.verify_stateset(BODY, "t=1,v1=00", [""], now=NOW)
    with pytest.raises(InvalidRequest):
        sig.standard_headers(BODY, ["whsec_!!not base64"], message_id="m", timestamp=T)
    assert sig.new_secret().startswith("whsec_")
    assert len(sig.standard_key(sig.new_secret())) == 32


# --- properties -----------------------------------------------------------------------------


REASONS = {"missing_header", "malformed_header", "timestamp_outside_tolerance", "no_matching_signature"}


def outcome(check: Callable[[], object]) -> str:
    """``ok`` or the reason of our error; anything else raised fails the test."""
    try:
        check()
    except SignatureInvalid as exc:
        return exc.reason
    return "ok"


@given(header=st.one_of(st.none(), st.text(max_size=300)), body=st.binary(max_size=64))
def test_any_stateset_header_gives_a_result_or_our_error(header: str | None, body: bytes) -> None:
    assert outcome(lambda: sig.verify_stateset(body, header, [NEW], now=NOW)) in REASONS


_items = st.lists(
    st.one_of(
        st.just(f"t={T}"),
        st.builds(lambda v: f"v1={v}", st.text(max_size=70)),
        st.builds(lambda k, v: f"{k}={v}", st.text(max_size=4), st.text(max_size=8)),
        st.text(max_size=10),
    ),
    max_size=6,
)


@given(items=_items, seps=st.lists(st.sampled_from([",", " ", ", ", "", ",,", "\n"]), min_size=6, max_size=6))
def test_structured_header_fuzz_never_raises_anything_else(items: list[str], seps: list[str]) -> None:
    header = "".join(item + sep for item, sep in zip(items, seps, strict=False))
    assert outcome(lambda: sig.verify_stateset(BODY, header, [NEW, OLD], now=NOW)) in REASONS


@given(
    headers=st.dictionaries(
        st.sampled_from(["webhook-id", "Webhook-Timestamp", "webhook-signature", "x"]), st.text(max_size=80)
    )
)
def test_any_standard_headers_give_a_result_or_our_error(headers: dict[str, str]) -> None:
    assert outcome(lambda: sig.verify_standard(BODY, headers, [NEW], now=NOW)) in REASONS


@given(body=st.binary(max_size=200), other=st.binary(max_size=200))
def test_any_change_to_the_body_is_refused(body: bytes, other: bytes) -> None:
    header = sig.stateset_header(body, [NEW], timestamp=T)
    assert sig.verify_stateset(body, header, [NEW], now=NOW)
    if other != body:
        with pytest.raises(SignatureInvalid):
            sig.verify_stateset(other, header, [NEW], now=NOW)
        headers = sig.standard_headers(body, [NEW], message_id="m", timestamp=T)
        with pytest.raises(SignatureInvalid):
            sig.verify_standard(other, headers, [NEW], now=NOW)


@given(delta=st.integers(min_value=-400, max_value=400).filter(bool))
def test_any_change_to_the_timestamp_is_refused(delta: int) -> None:
    header = sig.stateset_header(BODY, [NEW], timestamp=T)
    forged = header.replace(f"t={T}", f"t={T + delta}")
    with pytest.raises(SignatureInvalid):
        sig.verify_stateset(BODY, forged, [NEW], now=NOW + timedelta(seconds=delta))


@given(position=st.integers(min_value=0, max_value=63), digit=st.sampled_from("0123456789abcdef"))
def test_any_change_to_the_signature_is_refused(position: int, digit: str) -> None:
    header = sig.stateset_header(BODY, [NEW], timestamp=T)
    head, mac = header.split("v1=")
    if mac[position] == digit:
        return
    forged = head + "v1=" + mac[:position] + digit + mac[position + 1 :]
    with pytest.raises(SignatureInvalid) as exc:
        sig.verify_stateset(BODY, forged, [NEW], now=NOW)
    assert exc.value.reason == "no_matching_signature"


# --- properties of the Standard Webhooks form -------------------------------------------------


@given(delta=st.integers(min_value=-400, max_value=400).filter(bool))
def test_any_change_to_the_standard_timestamp_is_refused(delta: int) -> None:
    headers = sig.standard_headers(BODY, [NEW, OLD], message_id="msg_1", timestamp=T)
    forged = {**headers, "webhook-timestamp": str(T + delta)}
    with pytest.raises(SignatureInvalid) as exc:
        sig.verify_standard(BODY, forged, [NEW, OLD], now=NOW + timedelta(seconds=delta))
    assert exc.value.reason == "no_matching_signature"


@given(position=st.integers(min_value=0, max_value=31), bit=st.integers(min_value=0, max_value=7))
def test_any_change_to_the_standard_signature_is_refused(position: int, bit: int) -> None:
    headers = sig.standard_headers(BODY, [NEW], message_id="msg_1", timestamp=T)
    version, _, encoded = headers["webhook-signature"].partition(",")
    mac = bytearray(base64.b64decode(encoded))
    mac[position] ^= 1 << bit
    forged = {**headers, "webhook-signature": f"{version},{base64.b64encode(bytes(mac)).decode()}"}
    with pytest.raises(SignatureInvalid) as exc:
        sig.verify_standard(BODY, forged, [NEW], now=NOW)
    assert exc.value.reason == "no_matching_signature"


@given(
    keep=st.integers(min_value=0, max_value=43),
    junk=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", max_size=8),
)
def test_a_truncated_or_extended_standard_signature_is_refused(keep: int, junk: str) -> None:
    headers = sig.standard_headers(BODY, [NEW], message_id="msg_1", timestamp=T)
    encoded = headers["webhook-signature"].removeprefix("v1,")
    changed = encoded[:keep] + junk
    try:  # base64 ignores the padding bits of its last character: such a spelling is the same MAC
        if base64.b64decode(changed, validate=True) == base64.b64decode(encoded):
            return
    except binascii.Error:
        pass
    forged = {**headers, "webhook-signature": "v1," + changed}
    assert outcome(lambda: sig.verify_standard(BODY, forged, [NEW], now=NOW)) in REASONS


@given(message_id=st.from_regex(r"[\x21-\x7e]{1,40}", fullmatch=True))
def test_any_change_to_the_standard_message_id_is_refused(message_id: str) -> None:
    headers = sig.standard_headers(BODY, [NEW], message_id="msg_1", timestamp=T)
    if message_id == "msg_1":
        return
    with pytest.raises(SignatureInvalid) as exc:
        sig.verify_standard(BODY, {**headers, "webhook-id": message_id}, [NEW], now=NOW)
    assert exc.value.reason == "no_matching_signature"


@given(delta=st.integers(min_value=-400, max_value=400), resign=st.booleans())
def test_a_standard_signature_verifies_only_for_its_own_timestamp(delta: int, resign: bool) -> None:
    """Re-signed at the new timestamp it verifies (inside the tolerance); moved there, it never does."""
    stamp = T + delta
    source = stamp if resign else T
    headers = {
        **sig.standard_headers(BODY, [NEW], message_id="msg_1", timestamp=source),
        "webhook-timestamp": str(stamp),
    }
    result = outcome(lambda: sig.verify_standard(BODY, headers, [NEW], now=NOW))
    if abs(delta) > sig.DEFAULT_TOLERANCE_S:
        assert result == "timestamp_outside_tolerance"
    elif resign or delta == 0:
        assert result == "ok"
    else:
        assert result == "no_matching_signature"
