"""The chart passes Helm's own linter for every values variant, the linter does catch mistakes, and
the manifests Helm renders select what they should."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

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
        (
            {"replicaCount": 3, "secrets": {"databaseUrl": {"name": "db"}}},
            "more than one sidecar pod, or a database URL, needs secrets.masterKey",
        ),
        ({"secrets": {"databaseUrl": {"name": "db"}}}, "more than one sidecar pod, or a database URL, needs secrets"),
        ({"config": {"SIDECAR_PUBLIC_URL": "https://a.example"}}, "set publicUrl, not config.SIDECAR_PUBLIC_URL"),
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


# --- what the rendered manifests select ------------------------------------------------------


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Does a ``matchLabels``-style selector match these labels?"""
    return all(labels.get(key) == value for key, value in selector.items())


async def rendered(overlays: list[str | dict[str, Any]]) -> dict[str, dict[tuple[str, str], dict[str, Any]]]:
    """The chart as Helm renders it for ``overlays``: file -> (kind, name) -> manifest."""
    script = helm_lint_script()
    manifests = await script.render(CHART, script.values_for(CHART, overlays))
    return {file: {(d["kind"], d["metadata"]["name"]): d for d in docs} for file, docs in manifests.items()}


async def test_the_sidecars_selectors_never_match_hasuras_pods() -> None:
    chart = await rendered(["values-hasura.yaml", {"podAntiAffinity": "hard"}])
    sidecar = chart["deployment.yaml"][("Deployment", "test-release-sidecar")]
    hasura = chart["hasura.yaml"][("Deployment", "test-release-sidecar-hasura")]
    sidecar_pods = sidecar["spec"]["template"]["metadata"]["labels"]
    hasura_pods = hasura["spec"]["template"]["metadata"]["labels"]
    hasura_service = chart["hasura.yaml"][("Service", "test-release-sidecar-hasura")]
    sidecar_service = chart["service.yaml"][("Service", "test-release-sidecar")]
    affinity = sidecar["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    pod_selectors = {
        "Service": sidecar_service["spec"]["selector"],
        "Deployment": sidecar["spec"]["selector"]["matchLabels"],
        "PodDisruptionBudget": chart["pdb.yaml"][("PodDisruptionBudget", "test-release-sidecar")]["spec"]["selector"][
            "matchLabels"
        ],
        "anti-affinity": affinity["requiredDuringSchedulingIgnoredDuringExecution"][0]["labelSelector"]["matchLabels"],
    }
    for what, selector in pod_selectors.items():
        assert selects(selector, sidecar_pods), what
        assert not selects(selector, hasura_pods), f"the sidecar's {what} selects Hasura's pods"
    # the ServiceMonitor selects Services: the sidecar's, never Hasura's
    monitor = chart["servicemonitor.yaml"][("ServiceMonitor", "test-release-sidecar")]["spec"]["selector"]
    assert selects(monitor["matchLabels"], sidecar_service["metadata"]["labels"])
    assert not selects(monitor["matchLabels"], hasura_service["metadata"]["labels"])
    # and Hasura's own selectors stay on Hasura
    assert selects(hasura_service["spec"]["selector"], hasura_pods)
    assert not selects(hasura_service["spec"]["selector"], sidecar_pods)
    assert not selects(hasura["spec"]["selector"]["matchLabels"], sidecar_pods)


def container_env(chart: dict[str, dict[tuple[str, str], dict[str, Any]]]) -> dict[str, Any]:
    deployment = chart["deployment.yaml"][("Deployment", "test-release-sidecar")]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


@pytest.mark.parametrize(
    ("overlays", "public_url"),
    [
        ([], "http://test-release-sidecar..svc:8080"),  # the in-cluster URL; lint renders no namespace
        (["values-hasura.yaml"], "https://auth.example.com"),
        ([{"publicUrl": "https://auth.example.org/"}], "https://auth.example.org"),
    ],
)
async def test_the_public_url_is_never_the_bind_address(overlays: list[str | dict[str, Any]], public_url: str) -> None:
    env = container_env(await rendered(overlays))
    assert env["SIDECAR_HOST"] == "0.0.0.0"  # the bind address inside the pod
    assert env["SIDECAR_PUBLIC_URL"] == public_url


async def test_render_raises_a_templates_own_failure() -> None:
    script = helm_lint_script()
    with pytest.raises(ValueError, match="needs a shared database"):
        await script.render(CHART, script.values_for(CHART, [{"replicaCount": 2}]))
