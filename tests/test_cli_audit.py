"""``sidecar keys …`` changes are audited with the actor ``cli``; ``sidecar audit list`` reads them."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from sidecar.cli import main


def run(tmp_path: Path, *args: str) -> str:
    result = CliRunner().invoke(main, list(args), env={"SIDECAR_DATA_DIR": str(tmp_path / "data")})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_cli_key_changes_show_in_audit_list(tmp_path: Path) -> None:
    created = json.loads(run(tmp_path, "keys", "create", "--role", "viewer", "--name", "ci", "--json"))
    rolled = json.loads(run(tmp_path, "keys", "roll", created["id"], "--json"))
    run(tmp_path, "keys", "revoke", rolled["id"])

    listed = json.loads(run(tmp_path, "audit", "list", "--json"))
    assert [e["action"] for e in listed["data"]] == ["api_key.revoked", "api_key.rolled", "api_key.created"]
    assert all(e["actor"] == {"id": "cli", "type": "cli"} for e in listed["data"])
    assert listed["data"][2]["target"]["id"] == created["id"]
    assert created["key"] not in json.dumps(listed)

    only = json.loads(run(tmp_path, "audit", "list", "--action", "api_key.created", "--json"))
    assert len(only["data"]) == 1
    by_key = json.loads(run(tmp_path, "audit", "list", "--key-id", created["id"], "--json"))
    assert [e["action"] for e in by_key["data"]] == ["api_key.rolled", "api_key.created"]
    page = json.loads(run(tmp_path, "audit", "list", "--limit", "1", "--json"))
    assert page["has_more"] is True

    human = run(tmp_path, "audit", "list")
    assert "api_key.rolled" in human
    assert "cli:cli" in human
    assert "no events" in run(tmp_path, "audit", "list", "--since", "2099-01-01")
