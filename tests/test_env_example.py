"""``config/sidecar.env.example`` documents exactly the variables ``Settings`` reads, with their defaults.

Whoever adds a setting (or a settings group) adds its line to the file; this test says which.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo

from sidecar.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "sidecar.env.example"
ASSIGNMENT = re.compile(r"^# (SIDECAR_[A-Z0-9_]+)=(.*)$")
MENTION = re.compile(r"\bSIDECAR_[A-Z0-9_]*[A-Z0-9]\b")


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The settings group behind a field (``KeyCacheSettings``, or one inside ``X | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [m for m in map(_nested_model, typing.get_args(annotation)) if m is not None]
        return models[0] if len(models) == 1 else None
    return None


def settings_variables(
    model: type[BaseModel] = Settings, prefix: str = "SIDECAR_", defaults: BaseModel | None = None
) -> Iterator[tuple[str, tuple[FieldInfo, Any]]]:
    """Every leaf variable of the settings with its default, walking groups as pydantic-settings
    does (``__``). A group's default instance (``RateLimitRule(requests=100)``) supplies its leaves'."""
    for name, field in model.model_fields.items():
        variable = prefix + name.upper()
        default = getattr(defaults, name) if defaults is not None else field.get_default(call_default_factory=True)
        nested = _nested_model(field.annotation)
        if nested is not None:
            yield from settings_variables(nested, variable + "__", default if isinstance(default, BaseModel) else None)
        else:
            yield variable, (field, default)


def documented() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = ASSIGNMENT.match(line)
        if match:
            assert match.group(1) not in found, f"{match.group(1)} is listed twice"
            found[match.group(1)] = match.group(2)
    return found


VARIABLES = dict(settings_variables())


def test_the_walk_sees_nested_groups() -> None:
    assert "SIDECAR_PORT" in VARIABLES
    assert "SIDECAR_KEY_CACHE__TTL_S" in VARIABLES
    assert "SIDECAR_KEY_CACHE" not in VARIABLES


def test_every_setting_is_documented() -> None:
    missing = sorted(set(VARIABLES) - set(documented()))
    assert not missing, f"add to {EXAMPLE.name}: {', '.join(missing)}"


def test_the_file_names_no_variable_that_does_not_exist() -> None:
    mentioned = set(MENTION.findall(EXAMPLE.read_text(encoding="utf-8")))
    unknown = sorted(mentioned - set(VARIABLES))
    assert not unknown, f"{EXAMPLE.name} names variables Settings does not read: {', '.join(unknown)}"


@pytest.mark.parametrize("variable", sorted(VARIABLES))
def test_the_documented_value_is_the_default(variable: str) -> None:
    field, default = VARIABLES[variable]
    text = documented().get(variable)
    if text is None:
        pytest.skip("reported by test_every_setting_is_documented")
    if default is None:
        assert text == "", f"{variable} has no default: show it as '# {variable}='"
        return
    value: Any = json.loads(text) if text[:1] in "[{" else text
    assert TypeAdapter(field.annotation).validate_python(value) == default, f"{variable}: default is {default!r}"


def test_every_line_is_a_comment_so_the_file_changes_nothing_as_it_is() -> None:
    lines = [line for line in EXAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert all(line.startswith("#") for line in lines)
    meaning_before = [
        lines[i]
        for i, line in enumerate(lines)
        if ASSIGNMENT.match(line) and (ASSIGNMENT.match(lines[i - 1]) or not lines[i - 1].startswith("# "))
    ]
    assert not meaning_before, "every variable needs a line saying what it means above it"
