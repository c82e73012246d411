"""Scope matching, checked as properties against a set-based reference model of what a scope means."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.domain import scopes

RESOURCES = ("orders", "customers", "returns", "system")
ACTIONS = ("read", "write", "signing_keys")
names = st.sampled_from(RESOURCES)
verbs = st.sampled_from(ACTIONS)
concrete = st.builds(lambda r, a: f"{r}:{a}", names, verbs)
patterns = st.one_of(
    concrete,
    st.builds(lambda r: f"{r}:*", names),
    st.builds(lambda a: f"*:{a}", verbs),
    st.just("*:*"),
    st.just("admin"),
)
junk = st.sampled_from(["", "orders", ":read", "orders:", "a:b:c", "ADMIN", "*"])

# A "fresh" resource and action that no pattern names: a pattern that covers them must be a wildcard.
FRESH_R, FRESH_A = "zz_resource", "zz_action"
UNIVERSE = [f"{r}:{a}" for r in (*RESOURCES, FRESH_R) for a in (*ACTIONS, FRESH_A)]


def meaning(scope: str) -> set[str]:
    """The concrete scopes a scope stands for, over UNIVERSE: the reference model."""
    if scope == "admin":
        return {s for s in UNIVERSE if not s.startswith("system:")}
    resource, action = scope.split(":")
    return {
        s
        for s in UNIVERSE
        if (resource == s.split(":")[0] or (resource == "*" and not s.startswith("system:")))
        and action in ("*", s.split(":")[1])
    }


@given(st.one_of(patterns, junk))
def test_every_scope_covers_itself(scope: str) -> None:
    assert scopes.covers(scope, scope)


@given(concrete)
def test_admin_covers_every_resource_scope_but_system(scope: str) -> None:
    assert scopes.covers("admin", scope) == (not scope.startswith("system:"))


@given(names, verbs)
def test_resource_wildcard_covers_each_action(resource: str, action: str) -> None:
    assert scopes.covers(f"{resource}:*", f"{resource}:{action}")


@given(names, verbs)
def test_action_wildcard_covers_each_resource_except_system(resource: str, action: str) -> None:
    assert scopes.covers(f"*:{action}", f"{resource}:{action}") == (resource != "system")


@given(patterns, patterns)
def test_a_grant_covers_a_requirement_exactly_when_it_means_at_least_as_much(granted: str, required: str) -> None:
    """Sound and complete: a wildcard requirement is covered only by an equal-or-wider grant."""
    if required == "admin":
        assert scopes.covers(granted, required) == (granted == "admin")
    else:
        assert scopes.covers(granted, required) == (meaning(required) <= meaning(granted))


@given(patterns, junk)
def test_malformed_requirements_are_covered_only_by_themselves(granted: str, required: str) -> None:
    assert scopes.covers(granted, required) == (granted == required)


@given(st.lists(patterns, max_size=4), st.lists(st.one_of(patterns, junk), max_size=4))
def test_within_lists_exactly_what_allows_refuses(granted: list[str], requested: list[str]) -> None:
    missing = scopes.within(granted, requested)
    assert missing == [r for r in requested if not scopes.allows(granted, r)]
    assert all(scopes.allows(granted, r) for r in requested if r not in missing)


@given(st.lists(patterns, max_size=4), patterns)
def test_allows_is_any_covers(granted: list[str], required: str) -> None:
    assert scopes.allows(granted, required) == any(scopes.covers(g, required) for g in granted)


@given(concrete)
def test_covering_lists_every_scope_that_covers_a_concrete_scope(required: str) -> None:
    found = set(scopes.covering(required))
    candidates = {*UNIVERSE, "admin", "*:*", *(f"{r}:*" for r in RESOURCES), *(f"*:{a}" for a in ACTIONS)}
    assert found == {c for c in candidates if scopes.covers(c, required)}


def test_no_wildcard_reaches_system_configuration() -> None:
    """An admin may hand out `*:*` (it covers nothing admin lacks), so `*:*` must not reach system."""
    assert scopes.covers("admin", "*:*")
    assert not scopes.covers("*:*", "system:orgs")
    assert not scopes.covers("*:*", "system:*")
    assert scopes.covers("system:*", "system:orgs")
    assert not scopes.covers("admin", "system:signing_keys")
    assert not scopes.covers("orders:*", "admin")


def test_covering_refuses_a_pattern() -> None:
    with pytest.raises(ValueError, match="orders:\\*"):
        scopes.covering("orders:*")
