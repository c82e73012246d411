"""The table model from ``config/tables.yaml``: which Hasura tables (and root fields) are which resource.

Pure, like the role model: ``sidecar.settings`` reads the YAML and validates it here. Each table
names its resource of the permission matrix and its ownership columns (owner = user, team, org);
its GraphQL root fields are Hasura's default names unless overridden, and each root field needs
one action on the table's resource.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sidecar.domain.rbac import Action

RootFieldKind = Literal[
    "select",
    "select_by_pk",
    "select_aggregate",
    "select_stream",
    "insert",
    "insert_one",
    "update",
    "update_by_pk",
    "update_many",
    "delete",
    "delete_by_pk",
]

#: Hasura's default root-field names (``custom_root_fields`` keys) and the action each performs.
ROOT_FIELD_KINDS: dict[RootFieldKind, tuple[str, Action]] = {
    "select": ("{}", "read"),
    "select_by_pk": ("{}_by_pk", "read"),
    "select_aggregate": ("{}_aggregate", "read"),
    "select_stream": ("{}_stream", "read"),
    "insert": ("insert_{}", "create"),
    "insert_one": ("insert_{}_one", "create"),
    "update": ("update_{}", "update"),
    "update_by_pk": ("update_{}_by_pk", "update"),
    "update_many": ("update_{}_many", "update"),
    "delete": ("delete_{}", "delete"),
    "delete_by_pk": ("delete_{}_by_pk", "delete"),
}

_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_SESSION_VARIABLE = r"^[Xx]-[Hh]asura-[A-Za-z0-9-]+$"


class OwnershipColumns(BaseModel):
    """The columns that say whose a row is. ``org`` is required: every grant is inside an org."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    org: str = Field(pattern=_NAME)
    team: str | None = Field(None, pattern=_NAME)
    owner: str | None = Field(None, pattern=_NAME, description="the user who owns the row")


class TableDef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_: str = Field("public", alias="schema", pattern=_NAME)
    name: str = Field(pattern=_NAME)
    resource: str = Field(min_length=1)
    columns: OwnershipColumns
    #: the table's GraphQL name when Hasura's ``custom_name`` is set
    custom_name: str | None = Field(None, pattern=_NAME)
    #: per-field renames (Hasura's ``custom_root_fields``)
    root_fields: dict[RootFieldKind, str] = Field(default_factory=dict)

    @property
    def qualified(self) -> str:
        return f"{self.schema_}.{self.name}"

    @property
    def graphql_name(self) -> str:
        """Hasura's default: the table name, prefixed by its schema outside ``public``."""
        if self.custom_name:
            return self.custom_name
        return self.name if self.schema_ == "public" else f"{self.schema_}_{self.name}"

    def root_field_names(self) -> dict[str, tuple[RootFieldKind, Action]]:
        """Every root field of the table: name -> (kind, action)."""
        fields: dict[str, tuple[RootFieldKind, Action]] = {}
        for kind, (template, action) in ROOT_FIELD_KINDS.items():
            fields[self.root_fields.get(kind) or template.format(self.graphql_name)] = (kind, action)
        return fields


class KeyScopeTable(BaseModel):
    """The sidecar's table of each API key's scopes, for Hasura to check restricted keys in SQL."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_: str = Field("public", alias="schema", pattern=_NAME)
    name: str = Field("api_key_scopes", pattern=_NAME)
    key_column: str = Field("key_id", pattern=_NAME)
    scope_column: str = Field("scope", pattern=_NAME)
    session_variable: str = Field("X-Hasura-Key-Id", pattern=_SESSION_VARIABLE)


class SessionVariables(BaseModel):
    """The session variables the row filters compare against."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    user: str = Field("X-Hasura-User-Id", pattern=_SESSION_VARIABLE)
    team: str = Field("X-Hasura-Team-Id", pattern=_SESSION_VARIABLE)
    org: str = Field("X-Hasura-Org-Id", pattern=_SESSION_VARIABLE)


class TableModel(BaseModel):
    """The whole of ``tables.yaml``, validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    #: the Hasura source (database) the tables live in
    source: str = Field("default", min_length=1)
    #: what the webhook does with a root field no table declares, for keys held to their scopes
    unknown_root_fields: Literal["refuse", "allow"] = "refuse"
    session_variables: SessionVariables = SessionVariables()
    key_scopes: KeyScopeTable = KeyScopeTable()
    tables: tuple[TableDef, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> TableModel:
        seen: set[str] = set()
        fields: dict[str, str] = {}
        for table in self.tables:
            if table.qualified in seen:
                raise ValueError(f"table {table.qualified} is listed twice")
            seen.add(table.qualified)
            for field in table.root_field_names():
                if field in fields:
                    raise ValueError(
                        f"root field {field!r} belongs to both {fields[field]} and {table.qualified}; "
                        "rename one with root_fields"
                    )
                fields[field] = table.qualified
        return self

    def check_resources(self, resources: Iterable[str]) -> None:
        """Every table's resource must be a resource of the role model."""
        known = tuple(resources)
        for table in self.tables:
            if table.resource not in known:
                raise ValueError(
                    f"table {table.qualified} maps to unknown resource {table.resource!r} "
                    f"(the roles file has: {', '.join(known)})"
                )

    def root_field_index(self) -> dict[str, tuple[TableDef, Action]]:
        """Root field name -> (its table, the action it performs)."""
        return {
            field: (table, action) for table in self.tables for field, (_, action) in table.root_field_names().items()
        }
