"""PKCE (RFC 7636), ``S256`` only, as RFC 9700 §2.1.1 recommends: ``plain`` is refused.

Authlib's ``rfc7636`` module supplies the transform and the grammar; the comparison is ours,
because Authlib compares with ``==`` and a challenge check must not leak timing.
"""

from __future__ import annotations

import hmac

from authlib.oauth2.rfc7636.challenge import (
    CODE_CHALLENGE_PATTERN,
    CODE_VERIFIER_PATTERN,
    create_s256_code_challenge,
)

METHOD = "S256"
SUPPORTED_METHODS = (METHOD,)


def is_valid_challenge(challenge: str) -> bool:
    """RFC 7636 §4.2: 43-128 characters of ``[A-Za-z0-9-._~]`` (an S256 challenge is exactly 43)."""
    return bool(CODE_CHALLENGE_PATTERN.match(challenge))


def is_valid_verifier(verifier: str) -> bool:
    """RFC 7636 §4.1: 43-128 unreserved characters."""
    return bool(CODE_VERIFIER_PATTERN.match(verifier))


def challenge_for(verifier: str) -> str:
    """``BASE64URL(SHA256(ASCII(verifier)))`` (RFC 7636 §4.2)."""
    return str(create_s256_code_challenge(verifier))


def verifier_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 §4.6, in constant time; a malformed verifier never matches."""
    if not is_valid_verifier(verifier):
        return False
    return hmac.compare_digest(challenge_for(verifier).encode("ascii"), challenge.encode("ascii"))
