"""A session token's payload as compact JSON, from a template filled in per token.

Of a token's claims only ``iat``, ``exp`` and ``jti`` differ between two tokens exchanged for one
API key with one request; everything else (the subject, roles, scopes, Hasura claims) is encoded
once into the template's fixed pieces. ``render`` joins the pieces and the three values: the same
members, in the same order, encoded by the same encoder, so the bytes are exactly
``json.dumps(payload, separators=(",", ":"))`` (what ``JwsSigner.sign`` signs).
"""

from __future__ import annotations

from typing import Any

from sidecar.domain.jwk import COMPACT_JSON as ENCODER

#: the members that vary from token to token, in the order the payload holds them
VARIABLE = ("iat", "exp", "jti")


class ClaimsTemplate:
    __slots__ = ("_after_exp", "_after_iat", "_head", "_tail")

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

    def render(self, *, iat: int, exp: int, jti: str) -> str:
        """The payload's JSON with these values (``int.__repr__``: how ``json`` writes an integer)."""
        return (
            self._head
            + int.__repr__(iat)
            + self._after_iat
            + int.__repr__(exp)
            + self._after_exp
            + ENCODER.encode(jti)
            + self._tail
        )
