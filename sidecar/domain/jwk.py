"""Signing key material: generate, load from PEM, export as a public JWK, name by thumbprint.

Keys are parsed here once into ``cryptography`` objects; signing and verifying reuse them.
"""

from __future__ import annotations

import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt import get_algorithm_by_name
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from sidecar.errors import ConfigError

ASYMMETRIC_ALGORITHMS = ("RS256", "ES256", "EdDSA")
RSA_BITS = 2048
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
#: RFC 7638 §3.2: the required members of each key type, in lexicographic order
_PUBLIC_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
#: compact JSON, as JWTs are written; stateless (``json.dumps`` with separators builds one per call)
COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


class JwsSigner:
    """Compact JWS signing with pyjwt's algorithm objects, minus its per-call overhead.

    The key is prepared and the protected header encoded once; a token then costs one base64 of
    its claims (none with ``signing_input_of``), the signature itself and one base64 of it
    (``compact_jws``).
    """

    def __init__(self, algorithm: str, key: Any, kid: str) -> None:
        self._algorithm = get_algorithm_by_name(algorithm)
        self._key = self._algorithm.prepare_key(key)
        header = COMPACT_JSON.encode({"alg": algorithm, "typ": "JWT", "kid": kid})
        self._head = b64url_bytes(header.encode()) + b"."

    def signing_input(self, payload: str) -> bytes:
        """``base64url(header) . base64url(payload)``: what the signature covers."""
        return self._head + b64url_bytes(payload.encode())

    def signing_input_of(self, encoded_payload: bytes) -> bytes:
        """``signing_input`` for a payload already in base64url (``ClaimsTemplate.encoded``)."""
        return self._head + encoded_payload

    def signature(self, signing_input: bytes) -> bytes:
        """The signature of a signing input (``compact_jws`` makes the token of the two)."""
        return self._algorithm.sign(signing_input, self._key)


def compact_jws(signing_input: bytes, signature: bytes) -> str:
    """The compact serialization (RFC 7515 §7.1) of a signing input and its signature."""
    return (signing_input + b"." + b64url_bytes(signature)).decode("ascii")


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    """One parsed key: what pyjwt signs and verifies with, and what the JWKS publishes."""

    kid: str
    algorithm: str
    sign_key: PrivateKey | bytes
    verify_key: PublicKey | bytes
    #: the public JWK (kid, alg, use: sig); ``None`` for HS256, which is never published
    public_jwk: dict[str, Any] | None
    jws: JwsSigner


def b64url(raw: bytes) -> str:
    return b64url_bytes(raw).decode("ascii")


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64url_bytes(raw: bytes) -> bytes:
    """Unpadded base64url (RFC 7515 §2): ``base64.urlsafe_b64encode`` is these calls, one level deeper."""
    return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).rstrip(b"=")


def generate(algorithm: str) -> PrivateKey:
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ConfigError(f"cannot generate a key for algorithm {algorithm!r}")


def algorithm_of(key: PrivateKey) -> str:
    """The JWS algorithm a private key signs with; refuses keys we do not publish."""
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < RSA_BITS:
            raise ConfigError(f"RSA signing keys must have at least {RSA_BITS} bits")
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ConfigError("EC signing keys must be on P-256 (ES256)")
        return "ES256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    raise ConfigError("unsupported signing key type (use RSA-2048+, EC P-256 or Ed25519)")


def to_pem(key: PrivateKey) -> bytes:
    encoding, fmt = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(encoding, fmt, serialization.NoEncryption())


def from_pem(pem: bytes, *, where: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: not an unencrypted PEM private key ({exc.__class__.__name__})") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise ConfigError(f"{where}: unsupported key type (use RSA-2048+, EC P-256 or Ed25519)")
    return key


def public_jwk(public: PublicKey) -> dict[str, Any]:
    """The key's public members only (``use: sig`` is added by the caller; no ``key_ops`` beside it)."""
    if isinstance(public, rsa.RSAPublicKey):
        full = dict(RSAAlgorithm.to_jwk(public, as_dict=True))
    elif isinstance(public, ec.EllipticCurvePublicKey):
        full = dict(ECAlgorithm.to_jwk(public, as_dict=True))
    else:
        full = dict(OKPAlgorithm.to_jwk(public, as_dict=True))
    return {k: full[k] for k in _PUBLIC_MEMBERS[full["kty"]]}


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256): a kid that names the key itself."""
    required = _PUBLIC_MEMBERS[jwk["kty"]]
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def asymmetric(key: PrivateKey) -> KeyMaterial:
    algorithm = algorithm_of(key)
    public = key.public_key()
    jwk = public_jwk(public)
    kid = thumbprint(jwk)
    return KeyMaterial(
        kid=kid,
        algorithm=algorithm,
        sign_key=key,
        verify_key=public,
        public_jwk={**jwk, "kid": kid, "alg": algorithm, "use": "sig"},
        jws=JwsSigner(algorithm, key, kid),
    )


def hmac_secret(secret: bytes) -> KeyMaterial:
    """The HS256 key: the raw bytes Hasura also uses (no base64); its kid reveals nothing useful."""
    kid = "hs256-" + b64url(hashlib.sha256(b"sidecar-kid\x00" + secret).digest())[:16]
    return KeyMaterial(
        kid=kid,
        algorithm="HS256",
        sign_key=secret,
        verify_key=secret,
        public_jwk=None,
        jws=JwsSigner("HS256", secret, kid),
    )
