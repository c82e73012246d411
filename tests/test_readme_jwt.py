"""The README's "Session JWTs" section documents every JWT setting, endpoint and command."""

from __future__ import annotations

import re
from pathlib import Path

from tests.test_env_example import VARIABLES

README = Path(__file__).resolve().parents[1] / "README.md"


def section() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Session JWTs\n(.*?)^## ", text, re.DOTALL | re.MULTILINE)
    assert match, "README.md has no '## Session JWTs' section"
    return match.group(1)


def test_every_jwt_setting_is_in_the_section() -> None:
    jwt_variables = {v for v in VARIABLES if v.startswith("SIDECAR_JWT__")}
    assert "SIDECAR_JWT__ACCEPTED_ALGORITHMS" in jwt_variables
    missing = sorted(v for v in jwt_variables if f"`{v}`" not in section())
    assert not missing, f"document in README.md, Session JWTs: {', '.join(missing)}"


def test_the_section_covers_the_endpoints_and_commands() -> None:
    text = section()
    for name in (
        "POST /v1/auth/token",
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
        "sidecar signing-keys rotate",
        "sidecar hasura config",
        "system:signing_keys",
        "SIDECAR_MASTER_KEY",
        "https://hasura.io/jwt/claims",
        "claims.jwt.hasura.io",
        "stringified_json",
    ):
        assert name in text, name
