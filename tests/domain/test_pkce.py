"""PKCE S256 (RFC 7636), checked against the RFC's own example."""

from __future__ import annotations

from sidecar.domain import pkce

# RFC 7636 Appendix B
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_rfc_7636_appendix_b() -> None:
    assert pkce.challenge_for(VERIFIER) == CHALLENGE
    assert pkce.verifier_matches(VERIFIER, CHALLENGE)


def test_mismatch_and_malformed_verifiers_never_match() -> None:
    assert not pkce.verifier_matches(VERIFIER[:-1] + "l", CHALLENGE)
    assert not pkce.verifier_matches("short", pkce.challenge_for("short"))
    assert not pkce.verifier_matches(VERIFIER + " ", CHALLENGE)
    assert not pkce.verifier_matches("é" * 43, CHALLENGE)


def test_only_s256() -> None:
    assert pkce.SUPPORTED_METHODS == ("S256",)
    assert pkce.is_valid_challenge(CHALLENGE)
    assert not pkce.is_valid_challenge("has spaces in it and is long enough to pass length")
