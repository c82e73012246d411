"""Start-up refuses a broken roles file, naming the file and the entry, before it listens."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sidecar.app import create_app
from sidecar.cli import main
from sidecar.errors import ConfigError
from sidecar.settings import JwtSettings, Settings, default_roles_text


@pytest.fixture
def broken_roles(tmp_path: Path) -> Path:
    data = yaml.safe_load(default_roles_text())
    data["roles"]["operator"]["scopes"].append("orders:teleport")
    path = tmp_path / "roles.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_serve_with_a_broken_roles_file_exits_with_the_message(tmp_path: Path, broken_roles: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["serve", "--port", "1"],
        env={"SIDECAR_ROLES_FILE": str(broken_roles), "SIDECAR_DATA_DIR": str(tmp_path / "data")},
    )
    assert result.exit_code == 2
    assert f"error: {broken_roles}: role 'operator' has unknown scope 'orders:teleport'" in result.output


def test_create_app_refuses_a_broken_roles_file(tmp_path: Path, broken_roles: Path) -> None:
    with pytest.raises(ConfigError, match="role 'operator' has unknown scope 'orders:teleport'"):
        create_app(Settings(data_dir=tmp_path / "data", roles_file=broken_roles))


def test_serve_with_a_broken_tables_file_exits_with_the_message(tmp_path: Path) -> None:
    path = tmp_path / "tables.yaml"
    path.write_text("tables:\n  - {name: orders, resource: invoices, columns: {org: org_id}}\n", encoding="utf-8")
    result = CliRunner().invoke(
        main,
        ["serve", "--port", "1"],
        env={"SIDECAR_TABLES_FILE": str(path), "SIDECAR_DATA_DIR": str(tmp_path / "data")},
    )
    assert result.exit_code == 2
    assert f"error: {path}: table public.orders maps to unknown resource 'invoices'" in result.output


def test_serve_refuses_a_jwt_issuer_that_is_not_the_public_url(tmp_path: Path) -> None:
    env = {
        "SIDECAR_DATA_DIR": str(tmp_path / "data"),
        "SIDECAR_PUBLIC_URL": "https://auth.example.test",
        "SIDECAR_JWT__ISSUER": "https://tokens.example.test",
    }
    result = CliRunner().invoke(main, ["serve", "--port", "1"], env=env)
    assert result.exit_code == 2
    assert (
        "SIDECAR_JWT__ISSUER (https://tokens.example.test) differs from the public URL (https://auth.example.test)"
        in result.output
    )


def test_a_jwt_issuer_equal_to_the_public_url_is_accepted(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", public_url="https://auth.example.test/", jwt={"issuer": "https://auth.example.test"}
    )
    assert settings.jwt_issuer() == settings.base_url() == "https://auth.example.test"


@pytest.mark.parametrize(
    ("accepted", "message"),
    [
        ('["ES256"]', "SIDECAR_JWT__ACCEPTED_ALGORITHMS: Value error, must include the signing algorithm, RS256"),
        ('["RS256","HS256"]', "SIDECAR_JWT__ACCEPTED_ALGORITHMS: Value error, HS256 cannot be accepted beside"),
        ('["RS512"]', "SIDECAR_JWT__ACCEPTED_ALGORITHMS__0: Input should be 'RS256', 'ES256', 'EdDSA' or 'HS256'"),
    ],
)
def test_serve_refuses_an_accepted_algorithms_list_that_cannot_work(
    tmp_path: Path, accepted: str, message: str
) -> None:
    result = CliRunner().invoke(
        main,
        ["serve", "--port", "1"],
        env={"SIDECAR_JWT__ACCEPTED_ALGORITHMS": accepted, "SIDECAR_DATA_DIR": str(tmp_path / "data")},
    )
    assert result.exit_code == 2
    assert message in result.output


def test_accepted_algorithms_default_to_the_signing_algorithm() -> None:
    assert JwtSettings().accepted() == {"RS256"}
    assert JwtSettings(algorithm="EdDSA").accepted() == {"EdDSA"}
    both = JwtSettings(algorithm="EdDSA", accepted_algorithms=("RS256", "EdDSA", "RS256"))
    assert both.accepted_algorithms == ("RS256", "EdDSA")
