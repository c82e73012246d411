"""Operation-aware webhook decisions: what the GraphQL request Hasura forwards would do.

In POST mode Hasura v2 sends the client's request as ``request`` (hasura-contract.md §2.3): it
may be missing (send-body off, Hasura v3), ``null``, one object, or a batch array. The operation
type is read with graphql-core, never by pattern matching, and parsed documents are kept in a
bounded LRU keyed by the query text: clients resend the same queries over and over.

``null`` is what Hasura sends when the client's body was not valid JSON, and at a websocket's
``connection_init`` (§1.2): a websocket is authenticated once, there, and the queries, mutations
and subscriptions later sent over it never reach the webhook. So ``null`` is not "nothing to
run": for the checks it counts as an operation the webhook was not shown (``OperationPolicy``).
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from graphql import GraphQLError, parse
from graphql.language import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

from sidecar.domain import scopes as scope_rules
from sidecar.domain.field_scopes import ScopeGate
from sidecar.domain.memo import remember
from sidecar.domain.rbac import Policy
from sidecar.errors import Unauthorized
from sidecar.models import Principal

#: A guard against pathological documents; Hasura would refuse such a request anyway.
MAX_TOKENS = 20_000
WRITE_ACTIONS = frozenset({"write", "*", "create", "update", "delete"})


class OperationType(enum.StrEnum):
    QUERY = "query"
    MUTATION = "mutation"
    SUBSCRIPTION = "subscription"


@dataclass(frozen=True, slots=True)
class Operation:
    type: OperationType
    name: str | None
    #: The names (not aliases) of the fields at the root of the selection, fragments expanded.
    root_fields: tuple[str, ...]


class Unreadable(Exception):
    """The request cannot be read as GraphQL; ``reason`` says why (a stable snake_case code)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Document:
    operations: tuple[Operation, ...]
    error: str | None = None

    def select(self, name: object) -> Operation:
        """The operation to run, chosen as the GraphQL spec says (§6.1 GetOperation)."""
        if self.error is not None:
            raise Unreadable(self.error)
        if name is None:
            if len(self.operations) != 1:
                raise Unreadable("operation_ambiguous")
            return self.operations[0]
        if not isinstance(name, str):
            raise Unreadable("operation_name_invalid")
        for operation in self.operations:
            if operation.name == name:
                return operation
        raise Unreadable("operation_not_found")


class OperationReader:
    """Reads the operations a forwarded ``request`` value would run."""

    def __init__(self, *, max_entries: int = 1024) -> None:
        self._max = max_entries
        self._documents: OrderedDict[str, _Document] = OrderedDict()

    def read(self, request: object) -> tuple[Operation, ...]:
        """The operations of one request object or a batch; raises ``Unreadable``.

        ``None`` is unreadable (``request_null``): it hides what will run rather than running
        nothing, and ``OperationPolicy`` decides what it means before asking this reader.
        """
        if request is None:
            raise Unreadable("request_null")
        if isinstance(request, list):
            if not request:
                raise Unreadable("batch_empty")
            return tuple(self._one(item) for item in request)
        return (self._one(request),)

    def _one(self, request: object) -> Operation:
        if not isinstance(request, dict):
            raise Unreadable("request_not_object")
        query = request.get("query")
        if not isinstance(query, str):
            raise Unreadable("query_missing")
        return self.document(query).select(request.get("operationName"))

    def document(self, query: str) -> _Document:
        cached = self._documents.get(query)
        if cached is not None:
            self._documents.move_to_end(query)
            return cached
        document = _summarise(query)
        if self._max > 0:
            self._documents[query] = document
            if len(self._documents) > self._max:
                self._documents.popitem(last=False)
        return document

    def __len__(self) -> int:
        return len(self._documents)


def _summarise(query: str) -> _Document:
    try:
        node = parse(query, no_location=True, max_tokens=MAX_TOKENS)
    except (GraphQLError, RecursionError):
        return _Document((), error="query_syntax_error")
    fragments = {d.name.value: d for d in node.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = tuple(_operation(d, fragments) for d in node.definitions if isinstance(d, OperationDefinitionNode))
    if not operations:
        return _Document((), error="query_has_no_operation")
    return _Document(operations)


def _operation(node: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]) -> Operation:
    fields = tuple(dict.fromkeys(_root_fields(node.selection_set, fragments, set())))
    return Operation(OperationType(node.operation.value), node.name.value if node.name else None, fields)


def _root_fields(
    selection_set: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode], seen: set[str]
) -> Iterable[str]:
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection.name.value
        elif isinstance(selection, InlineFragmentNode):
            yield from _root_fields(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:
                seen.add(name)
                yield from _root_fields(fragment.selection_set, fragments, seen)


def may_write(granted: Iterable[str]) -> bool:
    """Does any scope allow a write to data (``admin``, ``x:write``, ``x:*``, ``*:*``)?

    The sidecar's own ``system:…`` scopes are not writes to data.
    """
    for scope in granted:
        if scope == scope_rules.ADMIN:
            return True
        parts = scope_rules.split(scope)
        if parts is not None and parts[0] != scope_rules.SYSTEM_RESOURCE and parts[1] in WRITE_ACTIONS:
            return True
    return False


class OperationPolicy:
    """Refuses, before Hasura runs anything, operations a credential may never run.

    A credential without any write scope may not send a mutation; a role outside
    ``subscription_roles`` (when set) may not send a subscription; a credential held to its
    scopes (a restricted key, a narrowed key: ``gate``) may send only root fields its scopes
    reach, by ``tables.yaml`` (sidecar.domain.field_scopes). A credential that may run
    every operation type is not parsed at all. For one that may not, a request we cannot read
    is refused too: an operation graphql-core cannot read might still be one Hasura can run.

    ``request: null`` (a websocket's ``connection_init``, or a client body Hasura could not
    parse) shows no operation, while whatever the websocket later carries is never shown: a
    caller held to its scopes is refused as when no operation is sent (``check_unseen``), and so
    is a role that may not subscribe. The mutation rule alone does not refuse it, or no
    read-only client could open a websocket; as in GET mode, Hasura's permissions then decide
    what a read-only role may write.
    """

    def __init__(
        self,
        reader: OperationReader,
        *,
        subscription_roles: frozenset[str] | None = None,
        gate: ScopeGate | None = None,
        policy: Policy | None = None,
    ) -> None:
        self._reader = reader
        self._subscription_roles = subscription_roles
        self._gate = gate
        self._policy = policy
        #: forbidden types by (scopes acted with, role): few distinct pairs, asked on every call
        self._forbidden: dict[tuple[tuple[str, ...], str], frozenset[OperationType]] = {}

    def check(self, principal: Principal, role: str, request: object) -> None:
        forbidden = self.forbidden_types(principal, role)
        gated = self._gate is not None and self._gate.applies(principal, role)
        if not forbidden and not gated:
            return
        if request is None:
            self._check_null(principal, role, forbidden)
            return
        try:
            operations = self._reader.read(request)
        except Unreadable as exc:
            raise Unauthorized(
                "the GraphQL request cannot be read, and this credential may not run every operation type",
                reason=f"operation_{exc.reason}" if not exc.reason.startswith("operation_") else exc.reason,
            ) from None
        for operation in operations:
            if operation.type in forbidden:
                raise Unauthorized(
                    f"this credential may not run a {operation.type.value}",
                    reason=f"{operation.type.value}_not_allowed",
                )
            if gated and self._gate is not None:
                self._gate.check(principal, role, operation.root_fields)

    def _check_null(self, principal: Principal, role: str, forbidden: frozenset[OperationType]) -> None:
        self.check_unseen(principal, role)
        if OperationType.SUBSCRIPTION in forbidden:
            raise Unauthorized(
                "this role may not run subscriptions, and the webhook was not sent the operation "
                "(Hasura sends request: null at a websocket's connection_init; what the websocket "
                "carries later never reaches the webhook)",
                reason="subscription_not_allowed",
            )

    def check_unseen(self, principal: Principal, role: str) -> None:
        """Hasura sent no operation (GET mode, send-body off, v3): refuse a caller held to its scopes
        unless ``tables.yaml`` says Hasura checks scopes itself (``unseen_operations: allow``)."""
        if self._gate is not None:
            self._gate.check_unseen(principal, role)

    def forbidden_types(self, principal: Principal, role: str) -> frozenset[OperationType]:
        # acting as another role, a credential writes only as far as that role's scopes allow
        scopes = self._policy.scopes_acting_as(principal, role) if self._policy is not None else principal.scopes
        known = self._forbidden.get((scopes, role))
        if known is not None:
            return known
        forbidden = set()
        if not may_write(scopes):
            forbidden.add(OperationType.MUTATION)
        if self._subscription_roles is not None and role not in self._subscription_roles:
            forbidden.add(OperationType.SUBSCRIPTION)
        return remember(self._forbidden, (scopes, role), frozenset(forbidden), bound=Policy.MEMO_ENTRIES)
