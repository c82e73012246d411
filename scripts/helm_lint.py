"""Lint the Helm chart with Helm's own linter (the helm-sdkpy wheel), once per values variant.

Helm lint renders every template with the chart's values.yaml, so each variant (the defaults,
the examples, every optional resource switched on) is linted from a copy of the chart whose
values.yaml is the defaults merged with the variant's overlays. Exit status 1 on any error or
warning; the linter's messages carry no text here, so the paths it names are printed.

    python scripts/helm_lint.py [helm/sidecar]

``render`` returns the manifests Helm's template engine renders for a values variant (the
wheel has no ``helm template``; see its docstring), for tests that check what the chart makes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ERROR, WARNING = 3, 2
_FAIL_LINE = re.compile(r'funcMap fail message="((?:[^"\\]|\\.)*)"')
_RENDERED = re.compile(r"^fail: rendered (\S+) ([A-Za-z0-9+/=]*)$")
#: A probe template: it hands each template's output to ``fail``, which lint mode logs, base64
#: encoded so the log's quoting cannot alter it.
_PROBE = "zz-render-probe.yaml"
#: Overlays applied in order over values.yaml; file names are relative to the chart's examples/.
VARIANTS: dict[str, list[str | dict[str, Any]]] = {
    "defaults": [],
    "everything on": [
        {
            "replicaCount": 3,
            "secrets": {
                name: {"name": "sidecar-secrets"}
                for name in ("masterKey", "databaseUrl", "redisUrl", "bootstrapAdminKey", "metricsToken")
            },
            "autoscaling": {"enabled": True},
            "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
            "extraEnv": [{"name": "TZ", "value": "UTC"}],
            "podAntiAffinity": "hard",
        }
    ],
    "no anti-affinity": [{"podAntiAffinity": "none"}],
    "examples/values-hasura.yaml": ["values-hasura.yaml"],
    "examples/values-hasura-jwt.yaml": ["values-hasura.yaml", "values-hasura-jwt.yaml"],
}


def merge(base: Any, overlay: Any) -> Any:
    if isinstance(base, dict) and isinstance(overlay, dict):
        return {**base, **{k: merge(base.get(k), v) for k, v in overlay.items()}}
    return overlay


def values_for(chart: Path, overlays: list[str | dict[str, Any]]) -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((chart / "values.yaml").read_text())
    for overlay in overlays:
        layer = yaml.safe_load((chart / "examples" / overlay).read_text()) if isinstance(overlay, str) else overlay
        values = merge(values, layer)
    return values


async def lint(chart: Path, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The linter's messages for ``chart`` rendered with ``values`` (default: its own).

    In lint mode Helm only logs a template's ``fail`` call (to the process's stderr, from Go);
    those lines are captured and returned as errors too, with their message.
    """
    import helm_sdkpy  # installed with --ignore-requires-python; see the Makefile

    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile() as log:
        copy = Path(tmp) / chart.name
        shutil.copytree(chart, copy)
        if values is not None:
            (copy / "values.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            result = await helm_sdkpy.Lint(helm_sdkpy.Configuration()).run(str(copy))
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        logged = log.read().decode(errors="replace")
    failed = [{"Severity": ERROR, "Path": "templates/", "Err": f"fail: {m}"} for m in _FAIL_LINE.findall(logged)]
    return list(result.get("Messages") or []) + failed


async def render(chart: Path, values: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Each template's rendered manifests (file name -> YAML documents), rendered by Helm itself.

    helm-sdkpy offers no ``helm template`` and its install has no dry run, so a probe template
    is added to a copy of the chart: it includes every other template (as ``checksum/config``
    does) and passes the output to ``fail``, which lint mode logs instead of aborting. A
    template's own ``fail`` (a misconfiguration) is raised as ``ValueError``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / chart.name
        shutil.copytree(chart, copy)
        names = sorted(p.name for p in (copy / "templates").glob("*.yaml"))
        (copy / "templates" / _PROBE).write_text(
            "".join(
                f'{{{{ fail (printf "rendered %s %s" "{name}" '
                f'(include (print $.Template.BasePath "/{name}") . | b64enc)) }}}}\n'
                for name in names
            )
        )
        messages = await lint(copy, values)
    rendered: dict[str, list[dict[str, Any]]] = {}
    for message in messages:
        text = str(message.get("Err") or "")
        match = _RENDERED.match(text)
        if match is None:
            if text.startswith("fail: "):
                raise ValueError(text)
            continue
        try:
            manifest = base64.b64decode(match.group(2), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the rendered {match.group(1)}: {exc}") from None
        rendered[match.group(1)] = [doc for doc in yaml.safe_load_all(manifest) if doc]
    missing = sorted(set(names) - set(rendered))
    if missing:
        raise ValueError(f"Helm rendered no output for {', '.join(missing)}")
    return rendered


def problems(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m.get("Severity", 0) >= WARNING]


async def main(chart: Path) -> int:
    failed = False
    for name, overlays in VARIANTS.items():
        found = problems(await lint(chart, values_for(chart, overlays)))
        status = "ok" if not found else "FAILED"
        print(f"helm lint {chart} [{name}]: {status}")
        for message in found:
            level = "error" if message["Severity"] >= ERROR else "warning"
            text = message.get("Err") or ""
            print(f"  {level}: {chart}/{message.get('Path', '?')} {text if isinstance(text, str) else ''}".rstrip())
        failed = failed or bool(found)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else "helm/sidecar"))))
