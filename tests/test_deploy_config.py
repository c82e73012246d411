"""The Helm chart, the compose files and the Dockerfile agree with the settings model and with each other."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from sidecar.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "sidecar"
DEPLOY = ROOT / "deploy"
SIDECAR_VAR = re.compile(r"\bSIDECAR_[A-Z0-9_]+\b")
WEBHOOK_PATH = "/v1/hasura/webhook"
JWKS_PATH = "/.well-known/jwks.json"


class ComposeLoader(yaml.SafeLoader):
    """YAML with Compose's ``!reset`` tag (it removes a value set by an earlier file)."""


ComposeLoader.add_constructor("!reset", lambda loader, node: ("!reset", loader.construct_scalar(node)))


def settings_env_names(model: type[BaseModel] = Settings, prefix: str = "SIDECAR_") -> set[str]:
    """Every environment variable the settings model reads, nested models joined with ``__``."""
    names: set[str] = set()
    for name, field in model.model_fields.items():
        if field.validation_alias is not None:
            continue  # read under a foreign name (PROMETHEUS_MULTIPROC_DIR), not SIDECAR_*
        env = prefix + name.upper()
        names.add(env)
        nested = [a for a in (field.annotation, *getattr(field.annotation, "__args__", ())) if _is_model(a)]
        for sub in nested:
            names |= settings_env_names(sub, env + "__")
    return names


def _is_model(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def compose(*files: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for name in files:
        merged = _merge(merged, yaml.load((DEPLOY / name).read_text(), Loader=ComposeLoader))  # noqa: S506
    return merged


def _merge(base: Any, overlay: Any) -> Any:
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = dict(base)
        for key, value in overlay.items():
            if isinstance(value, tuple) and value and value[0] == "!reset":
                out.pop(key, None)
            else:
                out[key] = _merge(base.get(key), value)
        return out
    return overlay


def chart_config_envs() -> list[dict[str, str]]:
    """The ``config`` maps of values.yaml and of every example, as the ConfigMap would carry them."""
    files = [CHART / "values.yaml", *sorted((CHART / "examples").glob("*.yaml"))]
    return [{k: str(v) for k, v in (yaml.safe_load(f.read_text()) or {}).get("config", {}).items()} for f in files]


def interpolated(value: str) -> str:
    """A compose value with ``${VAR:-default}`` / ``${VAR:?message}`` replaced by a sample."""
    return re.sub(
        r"\$\{[A-Z0-9_]+(:-([^}]*)|:\?[^}]*)?\}",
        lambda m: m.group(2) or "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0zMi1iISE=",
        value,
    )


def test_the_settings_walk_finds_nested_variables() -> None:
    names = settings_env_names()
    assert {"SIDECAR_PORT", "SIDECAR_METRICS__BEARER_TOKEN", "SIDECAR_REQUEST_LOG__SAMPLE_RATE"} <= names
    assert "SIDECAR_KEY_CACHE__TTL_S" in names


def test_every_sidecar_variable_in_chart_compose_and_dockerfile_exists() -> None:
    known = settings_env_names()
    sources = [
        *(CHART / "templates").glob("*"),
        CHART / "values.yaml",
        *(CHART / "examples").glob("*.yaml"),
        *DEPLOY.glob("*.yml"),
        DEPLOY / "README.md",
        ROOT / "Dockerfile",
    ]
    used = {(src.relative_to(ROOT).as_posix(), var) for src in sources for var in SIDECAR_VAR.findall(src.read_text())}
    assert {var for _, var in used} >= {"SIDECAR_DATABASE_URL", "SIDECAR_MASTER_KEY", "SIDECAR_REDIS_URL"}
    unknown = sorted(f"{where}: {var}" for where, var in used if var not in known)
    assert unknown == []


@pytest.mark.parametrize("env", chart_config_envs(), ids=lambda e: ",".join(sorted(e))[:40])
def test_chart_config_values_are_valid_settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        Settings()
    except ValidationError as exc:  # pragma: no cover - the assertion message is the point
        pytest.fail(f"the chart sets invalid values: {exc}")


def test_compose_sidecar_environment_is_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    env = compose("docker-compose.yml")["services"]["sidecar"]["environment"]
    for name, value in env.items():
        monkeypatch.setenv(name, interpolated(str(value)))
    settings = Settings()
    assert settings.database_url is not None
    assert settings.database_url.startswith("postgresql://")
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.base_url() == "http://127.0.0.1:8081"  # the published port, not the bind address


def test_compose_webhook_mode_is_wired_to_the_sidecar() -> None:
    stack = compose("docker-compose.yml")
    services = stack["services"]
    assert set(services) == {"postgres", "redis", "sidecar", "hasura", "prometheus"}
    assert (DEPLOY / services["sidecar"]["build"]["context"] / services["sidecar"]["build"]["dockerfile"]).is_file()
    assert services["hasura"]["image"].startswith("hasura/graphql-engine:v2.")
    hasura = services["hasura"]["environment"]
    assert hasura["HASURA_GRAPHQL_AUTH_HOOK"] == f"http://sidecar:8080{WEBHOOK_PATH}"
    assert hasura["HASURA_GRAPHQL_AUTH_HOOK_MODE"] == "POST"  # GET never shows the sidecar the operation
    assert "HASURA_GRAPHQL_ADMIN_SECRET" in hasura  # webhook mode refuses to start without one
    assert "HASURA_GRAPHQL_JWT_SECRET" not in hasura
    for service in services.values():  # published only on the loopback interface
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:")


def test_compose_jwt_override_swaps_the_webhook_for_the_jwks() -> None:
    hasura = compose("docker-compose.yml", "docker-compose.jwt.yml")["services"]["hasura"]["environment"]
    assert "HASURA_GRAPHQL_AUTH_HOOK" not in hasura
    assert "HASURA_GRAPHQL_AUTH_HOOK_MODE" not in hasura
    jwt = json.loads(hasura["HASURA_GRAPHQL_JWT_SECRET"])
    assert jwt["jwk_url"] == f"http://sidecar:8080{JWKS_PATH}"
    assert jwt["claims_namespace"] == "https://hasura.io/jwt/claims"


def test_prometheus_scrapes_the_compose_sidecar() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "sidecar")
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["sidecar:8080"]
    promtool = shutil.which("promtool")
    if promtool:  # Debian's `prometheus` package; optional
        check = subprocess.run(
            [promtool, "check", "config", str(DEPLOY / "prometheus.yml")], capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, check.stdout + check.stderr


def test_chart_wires_probes_secrets_and_hasura() -> None:
    deployment = (CHART / "templates" / "deployment.yaml").read_text()
    assert "path: /healthz" in deployment
    assert "path: /readyz" in deployment
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["securityContext"]["readOnlyRootFilesystem"] is True
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    assert set(values["secrets"]) == {"masterKey", "databaseUrl", "redisUrl", "bootstrapAdminKey", "metricsToken"}
    assert values["hasura"]["webhookMode"] == "POST"  # GET never shows the sidecar the operation
    example = yaml.safe_load((CHART / "examples" / "values-hasura.yaml").read_text())
    assert (example["hasura"]["authMode"], example["hasura"]["webhookMode"]) == ("webhook", "POST")
    hasura = (CHART / "templates" / "hasura.yaml").read_text()
    assert "/v1/hasura/webhook" in hasura
    assert JWKS_PATH in hasura
    assert "HASURA_GRAPHQL_AUTH_HOOK" in hasura
    assert "HASURA_GRAPHQL_JWT_SECRET" in hasura


def test_dockerfile_runs_unprivileged_with_a_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER \$\{UID\}:\$\{UID\}$", dockerfile, re.M)
    assert "HEALTHCHECK" in dockerfile
    assert "EXPOSE 8080" in dockerfile
    assert dockerfile.count("FROM ") == 2
    assert 'ENTRYPOINT ["sidecar"]' in dockerfile  # exec form: sidecar is PID 1 and gets SIGTERM
