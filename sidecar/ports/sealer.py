"""Encryption at rest for secrets the service must be able to read back (signing keys, webhook
secrets): AES-256-GCM under a master key from settings, or generated into the data directory."""

from __future__ import annotations

import base64
import logging
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sidecar.errors import ConfigError

log = logging.getLogger("sidecar.sealer")
_VERSION = "v1"
MASTER_KEY_BYTES = 32


class Sealer:
    """Seals bytes so that only a holder of the master key can read them, bound to a purpose."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != MASTER_KEY_BYTES:
            raise ConfigError(f"the master key must be {MASTER_KEY_BYTES} bytes")
        self._aead = AESGCM(master_key)

    def seal(self, plaintext: bytes, *, purpose: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, plaintext, purpose.encode())
        return f"{_VERSION}:" + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def unseal(self, token: str, *, purpose: str) -> bytes:
        version, _, body = token.partition(":")
        if version != _VERSION:
            raise ConfigError("sealed value has an unknown format")
        raw = base64.urlsafe_b64decode(body)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], purpose.encode())
        except InvalidTag:
            raise ConfigError(
                "cannot decrypt a stored secret: the master key (SIDECAR_MASTER_KEY) is not the one it was sealed with"
            ) from None


def decode_master_key(text: str) -> bytes:
    """A master key given as base64 (url-safe or standard) of 32 bytes."""
    try:
        raw = base64.urlsafe_b64decode(text.strip().replace("+", "-").replace("/", "_") + "==")
    except ValueError:
        raise ConfigError("SIDECAR_MASTER_KEY must be base64 of 32 random bytes") from None
    if len(raw) != MASTER_KEY_BYTES:
        raise ConfigError("SIDECAR_MASTER_KEY must be base64 of exactly 32 random bytes")
    return raw


def load_or_create_master_key(path: Path) -> bytes:
    """The embedded default: a master key file in the data directory, created once with mode 0600."""
    if path.exists():
        return decode_master_key(path.read_text(encoding="ascii"))
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(MASTER_KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(base64.urlsafe_b64encode(key).decode("ascii") + "\n")
    log.warning(
        "generated a master key in %s (mode 0600); in production set SIDECAR_MASTER_KEY from a secret store",
        path,
    )
    return key
