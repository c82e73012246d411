"""The chart passes Helm's own linter for every values variant, and the linter does catch mistakes."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "sidecar"


def helm_lint_script() -> ModuleType:
    pytest.importorskip("helm_sdkpy", reason="make install adds helm-sdkpy (--ignore-requires-python)")
    spec = importlib.util.spec_from_file_location("helm_lint", ROOT / "scripts" / "helm_lint.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_every_variant_lints_clean() -> None:
    script = helm_lint_script()
    for overlays in script.VARIANTS.values():
        assert script.problems(await script.lint(CHART, script.values_for(CHART, overlays))) == []


HASURA_SECRETS = {"databaseUrl": {"name": "h"}, "adminSecret": {"name": "h"}}


@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        ({"replicaCount": 3}, "more than one sidecar pod needs a shared database"),
        ({"autoscaling": {"enabled": True}}, "more than one sidecar pod needs a shared database"),
        ({"hasura": {"enabled": True}}, "hasura.enabled needs hasura.databaseUrl.name"),
        ({"hasura": {"enabled": True, "authMode": "both", **HASURA_SECRETS}}, "authMode must be webhook or jwt"),
        ({"hasura": {"enabled": True, "webhookMode": "post", **HASURA_SECRETS}}, "webhookMode must be POST or GET"),
    ],
)
async def test_misconfigurations_fail_the_lint(overlay: dict[str, object], message: str) -> None:
    script = helm_lint_script()
    found = script.problems(await script.lint(CHART, script.values_for(CHART, [overlay])))
    assert any(message in str(m.get("Err")) for m in found), found


async def test_a_template_error_fails_the_lint(tmp_path: Path) -> None:
    script = helm_lint_script()
    broken = tmp_path / "sidecar"
    shutil.copytree(CHART, broken)
    with (broken / "templates" / "service.yaml").open("a") as f:
        f.write("{{ .Values.no.such.value }}\n")
    found = script.problems(await script.lint(broken))
    assert [m["Path"] for m in found] == ["templates/"]
