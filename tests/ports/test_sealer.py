from __future__ import annotations

import stat
from pathlib import Path

import pytest

from sidecar.errors import ConfigError
from sidecar.ports.sealer import Sealer, load_or_create_master_key


def test_sealed_value_opens_only_with_same_key_and_purpose(tmp_path: Path) -> None:
    key = load_or_create_master_key(tmp_path / "master.key")
    sealer = Sealer(key)
    token = sealer.seal(b"private key bytes", purpose="signing_key")
    assert b"private key bytes" not in token.encode()
    assert sealer.unseal(token, purpose="signing_key") == b"private key bytes"
    with pytest.raises(ConfigError):
        sealer.unseal(token, purpose="webhook_secret")
    with pytest.raises(ConfigError, match="master key"):
        Sealer(b"\x01" * 32).unseal(token, purpose="signing_key")


def test_generated_master_key_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "data" / "master.key"
    first = load_or_create_master_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_master_key(path) == first
