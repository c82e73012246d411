"""Webhook signatures: sign and verify, in two wire formats. Pure: no I/O, the time is an argument.

``stateset`` (CONTRACT.md, Stripe's scheme)::

    Stateset-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">[,v1=…]

The HMAC key is the secret string's UTF-8 bytes (``whsec_…`` included), as Stripe does, so
``stripe.WebhookSignature.verify_header`` verifies our header. Items may be separated by ``,``,
whitespace or both; unknown schemes (``v0=``) are ignored.

``standard`` (Standard Webhooks, https://www.standardwebhooks.com)::

    webhook-id: <message id>
    webhook-timestamp: <unix seconds>
    webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<raw body>">[ v1,…]

with the key the base64 after ``whsec_``, so the ``standardwebhooks`` package verifies it.

In both formats, during a secret rotation every current secret signs (several signatures in one
header) and a verifier accepts a match with any of its secrets. The timestamp must lie within the
tolerance on either side of now. Every failure is a ``SignatureInvalid`` with a reason; no input
makes these functions raise anything else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets as random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sidecar.errors import InvalidRequest, SignatureInvalid
from sidecar.webhook_models import SignatureFormat as SignatureFormat

STATESET_HEADER = "Stateset-Signature"
STANDARD_ID_HEADER = "webhook-id"
STANDARD_TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"
DEFAULT_TOLERANCE_S = 300
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
SECRET_BYTES = 32
SCHEME = "v1"

#: Bounds on what a verifier reads, so a hostile header costs little.
MAX_HEADER_CHARS = 8192
MAX_SIGNATURES = 32
MAX_MESSAGE_ID_CHARS = 256

_SEPARATORS = re.compile(r"[,\s]+")
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_MESSAGE_ID = re.compile(r"[\x21-\x7e]{1,256}")  # printable ASCII, no spaces


@dataclass(frozen=True, slots=True)
class Verified:
    """A signature that matched: what was signed when, and the key a replay guard remembers."""

    format: SignatureFormat
    timestamp: int
    replay_key: str
    message_id: str | None = None


def new_secret() -> str:
    """A fresh endpoint secret, ``whsec_`` + base64 of 32 random bytes; good for both formats."""
    return SECRET_PREFIX + base64.b64encode(random.token_bytes(SECRET_BYTES)).decode("ascii")


def new_message_id() -> str:
    """A fresh Standard Webhooks message id (``webhook-id``)."""
    return "msg_" + random.token_urlsafe(18)


def _mac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _require_secrets(secrets: Sequence[str]) -> None:
    if not secrets or any(not s for s in secrets):
        raise InvalidRequest("at least one non-empty webhook secret is required", reason="invalid_secret")


def _utf8(secret: str) -> bytes:
    try:
        return secret.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest("a webhook secret must be valid text", reason="invalid_secret") from None


def standard_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: the base64 after ``whsec_``."""
    text = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("a standard webhook secret must be whsec_<base64>", reason="invalid_secret") from None
    if not key:
        raise InvalidRequest("a standard webhook secret may not be empty", reason="invalid_secret")
    return key


def _check_time(timestamp: int, now: datetime, tolerance_s: int) -> None:
    if abs(int(now.timestamp()) - timestamp) > tolerance_s:
        raise SignatureInvalid(
            f"the signature timestamp is more than {tolerance_s} seconds from now",
            reason="timestamp_outside_tolerance",
        )


def _parse_timestamp(text: str, where: str) -> int:
    if not _TIMESTAMP.fullmatch(text):
        raise SignatureInvalid(f"{where} is not a UNIX timestamp in seconds", reason="malformed_header")
    return int(text)


def stateset_replay_key(timestamp: int, body: bytes) -> str:
    """What a replay guard remembers of a verified ``Stateset-Signature``: the signed payload.

    Keyed on ``sha256("<t>." + body)``, never on the signature that matched: while two secrets
    are current one delivery carries two valid signatures, and reordering or dropping them must
    not make the same payload look new.
    """
    digest = hashlib.sha256(f"{timestamp}.".encode() + body).hexdigest()
    return f"stateset:{timestamp}:{digest}"


def standard_replay_key(message_id: str, timestamp: int) -> str:
    """What a replay guard remembers of a verified Standard Webhooks delivery: id and timestamp.

    A sender's retry keeps the ``webhook-id`` but signs a new timestamp, so it is accepted again
    (a receiver that failed the first attempt needs the retry); the same headers twice are not.
    """
    return f"standard:{message_id}:{timestamp}"


def _first_match(expected: Sequence[bytes], presented: Sequence[bytes]) -> bytes | None:
    """The presented signature equal to one of ``expected``; every pair is compared, in constant time."""
    found: bytes | None = None
    for candidate in presented:
        for want in expected:
            if hmac.compare_digest(candidate, want) and found is None:
                found = candidate
    return found


# --- stateset: t=…,v1=… ------------------------------------------------------------------------


def stateset_header(body: bytes, secrets: Sequence[str], *, timestamp: int) -> str:
    """The ``Stateset-Signature`` value: one ``v1=`` per secret, in the order given (newest first)."""
    _require_secrets(secrets)
    message = f"{timestamp}.".encode() + body
    return ",".join([f"t={timestamp}", *(f"{SCHEME}={_mac(_utf8(s), message).hex()}" for s in secrets)])


@dataclass(frozen=True, slots=True)
class StatesetHeader:
    timestamp: int
    signatures: tuple[bytes, ...]


def parse_stateset_header(header: str | None) -> StatesetHeader:
    """Split a ``Stateset-Signature`` value; ``SignatureInvalid`` names what is wrong with it."""
    if header is None or not header.strip():
        raise SignatureInvalid(f"the {STATESET_HEADER} header is missing", reason="missing_header")
    if len(header) > MAX_HEADER_CHARS:
        raise SignatureInvalid(f"the {STATESET_HEADER} header is too long", reason="malformed_header")
    timestamps: list[str] = []
    signatures: list[bytes] = []
    for item in filter(None, _SEPARATORS.split(header)):
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise SignatureInvalid(
                f"the {STATESET_HEADER} header has an item that is not key=value", reason="malformed_header"
            )
        if name == "t":
            timestamps.append(value)
        elif name == SCHEME:
            signatures.append(_hex_or_empty(value))
    if len(timestamps) != 1:
        raise SignatureInvalid(f"the {STATESET_HEADER} header needs exactly one t=", reason="malformed_header")
    if not signatures:
        raise SignatureInvalid(f"the {STATESET_HEADER} header has no {SCHEME}= signature", reason="malformed_header")
    if len(signatures) > MAX_SIGNATURES:
        raise SignatureInvalid(f"the {STATESET_HEADER} header has too many signatures", reason="malformed_header")
    return StatesetHeader(_parse_timestamp(timestamps[0], "t="), tuple(signatures))


def _hex_or_empty(value: str) -> bytes:
    """The bytes of a hex signature; a value that is not hex can never match, so it becomes ``b""``."""
    try:
        return bytes.fromhex(value) if value.isascii() else b""
    except ValueError:
        return b""


def verify_stateset(
    body: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    now: datetime,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> Verified:
    """Check a ``Stateset-Signature`` against every secret; the result carries the payload's replay key."""
    _require_secrets(secrets)
    parsed = parse_stateset_header(header)
    _check_time(parsed.timestamp, now, tolerance_s)
    message = f"{parsed.timestamp}.".encode() + body
    match = _first_match([_mac(_utf8(s), message) for s in secrets], parsed.signatures)
    if match is None:
        raise SignatureInvalid("no signature matches the body and a current secret", reason="no_matching_signature")
    return Verified(SignatureFormat.STATESET, parsed.timestamp, stateset_replay_key(parsed.timestamp, body))


# --- Standard Webhooks ------------------------------------------------------------------------


def standard_headers(body: bytes, secrets: Sequence[str], *, message_id: str, timestamp: int) -> dict[str, str]:
    """The three Standard Webhooks headers: one ``v1,<base64>`` per secret, space-separated."""
    _require_secrets(secrets)
    if not _MESSAGE_ID.fullmatch(message_id):
        raise InvalidRequest("a webhook id must be 1-256 printable ASCII characters", reason="invalid_message_id")
    message = f"{message_id}.{timestamp}.".encode() + body
    signature = " ".join(f"{SCHEME},{base64.b64encode(_mac(standard_key(s), message)).decode()}" for s in secrets)
    return {
        STANDARD_ID_HEADER: message_id,
        STANDARD_TIMESTAMP_HEADER: str(timestamp),
        STANDARD_SIGNATURE_HEADER: signature,
    }


def _b64_or_empty(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True) if value.isascii() else b""
    except (binascii.Error, ValueError):
        return b""


def verify_standard(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    *,
    now: datetime,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> Verified:
    """Check Standard Webhooks headers (any letter case) against every secret."""
    _require_secrets(secrets)
    keys = [standard_key(s) for s in secrets]
    lower = {name.lower(): value for name, value in headers.items()}
    message_id = lower.get(STANDARD_ID_HEADER)
    stamp = lower.get(STANDARD_TIMESTAMP_HEADER)
    signature = lower.get(STANDARD_SIGNATURE_HEADER)
    if not message_id or not stamp or not signature:
        raise SignatureInvalid(
            "the webhook-id, webhook-timestamp and webhook-signature headers are required", reason="missing_header"
        )
    if len(signature) > MAX_HEADER_CHARS or not _MESSAGE_ID.fullmatch(message_id):
        raise SignatureInvalid("the webhook headers are malformed", reason="malformed_header")
    timestamp = _parse_timestamp(stamp.strip(), STANDARD_TIMESTAMP_HEADER)
    presented = [
        _b64_or_empty(value)
        for version, _, value in (item.partition(",") for item in signature.split())
        if version == SCHEME
    ]
    if not presented or len(presented) > MAX_SIGNATURES:
        raise SignatureInvalid(
            f"webhook-signature needs 1-{MAX_SIGNATURES} {SCHEME}, signatures", reason="malformed_header"
        )
    _check_time(timestamp, now, tolerance_s)
    message = f"{message_id}.{timestamp}.".encode() + body
    if _first_match([_mac(key, message) for key in keys], presented) is None:
        raise SignatureInvalid("no signature matches the body and a current secret", reason="no_matching_signature")
    return Verified(SignatureFormat.STANDARD, timestamp, standard_replay_key(message_id, timestamp), message_id)


# --- either format --------------------------------------------------------------------------


def sign(
    fmt: SignatureFormat, body: bytes, secrets: Sequence[str], *, timestamp: int, message_id: str
) -> dict[str, str]:
    """The headers that sign ``body`` in ``fmt`` (``message_id`` is used by the standard format only)."""
    if fmt is SignatureFormat.STANDARD:
        return standard_headers(body, secrets, message_id=message_id, timestamp=timestamp)
    return {STATESET_HEADER: stateset_header(body, secrets, timestamp=timestamp)}


def verify(
    fmt: SignatureFormat,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    *,
    now: datetime,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> Verified:
    """Verify the request headers in ``fmt``; header names in any letter case."""
    if fmt is SignatureFormat.STANDARD:
        return verify_standard(body, headers, secrets, now=now, tolerance_s=tolerance_s)
    wanted = STATESET_HEADER.lower()
    header = next((value for name, value in headers.items() if name.lower() == wanted), None)
    return verify_stateset(body, header, secrets, now=now, tolerance_s=tolerance_s)
