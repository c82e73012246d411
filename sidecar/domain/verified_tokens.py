"""Session tokens already verified: Hasura sends the same token on every request of a session.

Verifying one of our tokens from scratch costs far more than its signature (about 30 µs for
RS256): pyjwt 2.x checks each byte of every base64url segment against its alphabet in a Python
generator, thousands of iterations per token. So each token is verified once per process, and what
it proved is remembered under the exact token string:

- only a token that passed every check gets an entry, and only we can mint valid tokens, so
  random or forged tokens cannot grow the cache; ``max_entries`` bounds it anyway (LRU);
- an entry holds the principal and the token's ``exp``, ``iat`` and ``nbf``; the verifier re-runs
  the time checks against its clock on every hit, so an entry is never used past ``exp``;
- entries belong to one view of the signing-key ring: any new view (a key added, promoted, retired
  or removed) empties the cache, so a token stops verifying once its key leaves the ring;
- revocation is never cached: callers check it after every verify, hit or not.

The first verify stays with pyjwt. Verifying the signature with pyjwt's algorithm object
ourselves would skip the slow decoding, but pyjwt's claim validation (required claims, ``iss``,
``aud``) is reachable only through ``jwt.decode``, which decodes the whole token again, or through
its private ``_validate_claims``; re-implementing those checks beside pyjwt is not worth it for a
cost paid once per token and process. What the verifier does skip is a second full decoding: it
reads ``alg`` and ``kid`` from the short header segment itself instead of calling
``jwt.get_unverified_header`` (``jwt.decode`` checks the same header again).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from sidecar.domain.signing_keys import RingView
from sidecar.models import Principal


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """What a fresh verify proved; the times are re-checked on every use."""

    principal: Principal
    exp: float
    iat: float
    nbf: float


class VerifiedTokens:
    """An LRU of verified tokens, bounded to ``max_entries`` (0: off), for one ring view at a time."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._entries: OrderedDict[str, VerifiedToken] = OrderedDict()
        self._ring: RingView | None = None

    def get(self, token: str, ring: RingView) -> VerifiedToken | None:
        """The entry for ``token`` if ``ring`` (the key ring's view now) is the one it was verified under."""
        if ring is not self._ring:
            self._entries.clear()
            self._ring = ring
            return None
        entry = self._entries.get(token)
        if entry is not None:
            self._entries.move_to_end(token)
        return entry

    def put(self, token: str, ring: RingView, entry: VerifiedToken) -> None:
        """Remember a token that ``ring`` just verified in full."""
        if self._max <= 0:
            return
        if ring is not self._ring:
            self._entries.clear()
            self._ring = ring
        self._entries[token] = entry
        self._entries.move_to_end(token)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def evict(self, token: str) -> None:
        self._entries.pop(token, None)

    def __len__(self) -> int:
        return len(self._entries)
