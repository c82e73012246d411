"""The JSON of a JWS segment, with no member named twice.

RFC 7515 §4 and RFC 7519 §4 let a verifier either reject a header or claims set that names a
member twice or keep the lexically last one; parsers differ on which they keep, which is how one
token can mean one thing to its verifier and another to whoever reads it next (Hasura, a log).
pyjwt keeps the last one without a word, so our verifiers read the segments themselves first and
refuse such a token (``token_duplicate_claims``): nobody we trust mints one.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


class DuplicateMember(ValueError):
    """An object in the segment names a member twice."""


def _members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members: dict[str, Any] = {}
    for name, value in pairs:
        if name in members:
            raise DuplicateMember(name)
        members[name] = value
    return members


def decode_segment(segment: str) -> Any:
    """The JSON value a base64url segment encodes; ``DuplicateMember`` if any object in it names
    a member twice, another ``ValueError`` (or ``RecursionError``) if it is not base64url JSON."""
    if _BASE64URL.fullmatch(segment) is None:
        raise ValueError("not base64url")
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)), object_pairs_hook=_members)


def has_duplicate_members(token: str) -> bool:
    """Does the header or the payload of compact JWS ``token`` name a member twice?

    A segment that is not base64url JSON at all is left to the verifier, which refuses it anyway.
    """
    header, _, rest = token.partition(".")
    for segment in (header, rest.partition(".")[0]):
        try:
            decode_segment(segment)
        except DuplicateMember:
            return True
        except (ValueError, RecursionError):
            continue
    return False
