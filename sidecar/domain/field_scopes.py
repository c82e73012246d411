"""The scopes a GraphQL operation needs, read from its root fields through ``tables.yaml``.

``orders``, ``orders_by_pk``, ``orders_aggregate``, ``orders_stream`` need ``orders:read``;
``insert_orders…``, ``update_orders…``, ``delete_orders…`` need ``orders:write``. A root field no
table declares needs nothing we can name: ``tables.yaml``'s ``unknown_root_fields`` says whether
a key held to its scopes may send it (default: refuse). Introspection (``__typename``,
``__schema``, ``__type``) needs no scope.

Pure: takes a parsed graphql-core document (or root field names) and the table model. Only the
root fields count: what a relationship reaches inside them is Hasura's permissions' business
(the ``restricted`` role's ``_exists`` check on the key-scope table).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

from sidecar.domain import scopes as scope_rules
from sidecar.domain.rbac import action_scope
from sidecar.domain.tables import TableModel
from sidecar.errors import Unauthorized

INTROSPECTION = frozenset({"__typename", "__schema", "__type"})


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    """One root field and the scope it needs; ``scope`` is ``None`` when no table declares the field."""

    field: str
    scope: str | None


def root_field_names(document: DocumentNode, operation_name: str | None) -> tuple[str, ...]:
    """The names (not aliases) of the root fields the operation selects, fragments expanded.

    With no name, or a name no operation has, every operation of the document counts: a request
    Hasura would refuse as ambiguous is never read more leniently than one it would run.
    """
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [op for op in operations if operation_name is not None and op.name and op.name.value == operation_name]
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    names: dict[str, None] = {}
    for operation in chosen or operations:
        names.update(dict.fromkeys(_fields(operation.selection_set, fragments, set())))
    return tuple(names)


def _fields(
    selections: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode], seen: set[str]
) -> Iterable[str]:
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            yield selection.name.value
        elif isinstance(selection, InlineFragmentNode):
            yield from _fields(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
            seen.add(selection.name.value)
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                yield from _fields(fragment.selection_set, fragments, seen)


class FieldScopes:
    """Maps root fields to the scopes they need, by the table model."""

    def __init__(self, tables: TableModel) -> None:
        self._index = {
            field: action_scope(t.resource, action) for field, (t, action) in tables.root_field_index().items()
        }
        self._refuse_unknown = tables.unknown_root_fields == "refuse"

    def requirements(self, fields: Iterable[str]) -> tuple[FieldRequirement, ...]:
        return tuple(FieldRequirement(f, self._index.get(f)) for f in fields if f not in INTROSPECTION)

    def for_operation(self, document: DocumentNode, operation_name: str | None) -> tuple[FieldRequirement, ...]:
        return self.requirements(root_field_names(document, operation_name))

    def refused(self, fields: Iterable[str], held: Sequence[str]) -> list[FieldRequirement]:
        """The root fields ``held`` scopes do not reach (unknown fields too, when configured so)."""
        return [
            need
            for need in self.requirements(fields)
            if (need.scope is None and self._refuse_unknown)
            or (need.scope is not None and not scope_rules.allows(held, need.scope))
        ]

    def check(self, fields: Iterable[str], held: Sequence[str]) -> None:
        """Raise ``Unauthorized`` (the webhook's 401) naming the first field out of reach, and why."""
        refused = self.refused(fields, held)
        if not refused:
            return
        first = refused[0]
        if first.scope is None:
            raise Unauthorized(
                f"this credential is held to its scopes, and no table declares the root field {first.field}",
                reason="root_field_unknown",
            )
        raise Unauthorized(
            f"this credential lacks the scope {first.scope} that the root field {first.field} needs",
            reason="root_field_scope_missing",
        )
