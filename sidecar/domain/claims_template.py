"""A session token's payload, base64url-encoded compact JSON, from a template filled in per token.

Of a token's claims only ``iat``, ``exp`` and ``jti`` differ between two tokens exchanged for one
API key with one request; everything else (the subject, roles, scopes, Hasura claims) is encoded
once into the template's fixed pieces. ``encoded`` joins the pieces and the three values: the same
members, in the same order, encoded by the same encoder, so the JSON is exactly
``json.dumps(payload, separators=(",", ":"))``. It is base64url-encoded, the form a token carries,
around the three values only: base64 turns every 3 bytes into 4 characters on their own, so the
fixed text before and after, cut at multiples of 3 bytes, is encoded once per layout (the lengths
of the three values: ten-digit times and ``tok_`` ids keep one for centuries).
"""

from __future__ import annotations

from typing import Any

from sidecar.domain.jwk import COMPACT_JSON as ENCODER
from sidecar.domain.jwk import b64url_bytes

#: the members that vary from token to token, in the order the payload holds them
VARIABLE = ("iat", "exp", "jti")


class _Layout:
    """Where the varying text begins and ends within 3-byte groups, for one length of each value."""

    __slots__ = ("after", "before", "lengths", "prefix", "suffix")

    def __init__(self, head: str, tail: str, lengths: tuple[int, int, int], fixed_between: int) -> None:
        self.lengths = lengths
        cut = len(head) - len(head) % 3
        self.prefix = b64url_bytes(head[:cut].encode("ascii"))
        self.before = head[cut:]  # 0-2 characters encoded with the values
        varying = len(self.before) + sum(lengths) + fixed_between
        take = -varying % 3
        self.after = tail[:take]  # 0-2 characters that complete the last group
        self.suffix = b64url_bytes(tail[take:].encode("ascii"))


class ClaimsTemplate:
    __slots__ = ("_after_exp", "_after_iat", "_head", "_layout", "_tail")

    def __init__(self, payload: dict[str, Any]) -> None:
        """``payload``: a token's claims; the values of ``iat``, ``exp`` and ``jti`` are ignored."""
        pieces: list[str] = []
        text = "{"
        for n, (name, value) in enumerate(payload.items()):
            text += ("," if n else "") + ENCODER.encode(name) + ":"
            if name in VARIABLE:
                pieces.append(text)
                text = ""
            else:
                text += ENCODER.encode(value)
        order = tuple(name for name in payload if name in VARIABLE)
        if order != VARIABLE:
            raise ValueError(f"the payload must hold {', '.join(VARIABLE)} in that order, not {order}")
        self._head, self._after_iat, self._after_exp = pieces
        self._tail = text + "}"
        self._layout: _Layout | None = None

    def encoded(self, *, iat: int, exp: int, jti: str) -> bytes:
        """The payload's JSON with these values, in unpadded base64url (a token's payload segment).

        Integers as ``json`` writes them (``int.__repr__``)."""
        iat_text, exp_text, jti_text = int.__repr__(iat), int.__repr__(exp), ENCODER.encode(jti)
        lengths = (len(iat_text), len(exp_text), len(jti_text))
        layout = self._layout
        if layout is None or layout.lengths != lengths:
            # the JSON encoder writes ASCII only (``ensure_ascii``), so characters are bytes
            between = len(self._after_iat) + len(self._after_exp)
            layout = self._layout = _Layout(self._head, self._tail, lengths, between)
        varying = layout.before + iat_text + self._after_iat + exp_text + self._after_exp + jti_text + layout.after
        return layout.prefix + b64url_bytes(varying.encode("ascii")) + layout.suffix
