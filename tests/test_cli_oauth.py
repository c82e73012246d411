"""``sidecar oauth clients create|list|delete`` against a real store in a temp directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sidecar.cli import main


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("SIDECAR_DATA_DIR", str(tmp_path / "data"))
    return CliRunner()


def test_create_list_delete(runner: CliRunner) -> None:
    created = runner.invoke(
        main,
        [
            "oauth", "clients", "create", "--name", "Partner", "--redirect-uri", "https://p.example/cb",
            "--scope", "orders:read", "--scope", "customers:read", "--json",
        ],
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    data = json.loads(created.output)
    assert data["client_secret"].startswith("ocs_")
    assert data["scopes"] == ["orders:read", "customers:read"]

    listed = json.loads(runner.invoke(main, ["oauth", "clients", "list", "--json"]).output)
    assert [c["id"] for c in listed["data"]] == [data["id"]]
    assert data["client_secret"] not in json.dumps(listed)

    human = runner.invoke(main, ["oauth", "clients", "list"])
    assert data["id"] in human.output

    deleted = runner.invoke(main, ["oauth", "clients", "delete", data["id"], "--json"])
    assert deleted.exit_code == 0
    assert json.loads(deleted.output)["deleted"] is True
    events = json.loads(runner.invoke(main, ["audit", "list", "--json"]).output)
    actions = sorted(e["action"] for e in events["data"] if e["action"].startswith("oauth_client."))
    assert actions == ["oauth_client.created", "oauth_client.deleted"]
    again = runner.invoke(main, ["oauth", "clients", "delete", data["id"]])
    assert again.exit_code == 1
    assert "no OAuth client" in again.output


def test_bad_scope_is_a_clean_error(runner: CliRunner) -> None:
    args = ["oauth", "clients", "create", "--name", "P", "--redirect-uri", "https://p.example/cb", "--scope", "admin"]
    result = runner.invoke(main, args)
    assert result.exit_code == 1
    assert "resource scopes only" in result.output
