"""The webhook's session body: strings only, PostgreSQL array literals, Cache-Control bounds."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sidecar.domain.hasura_session import (
    SessionBodies,
    cache_max_age,
    encode_session,
    pg_array_literal,
    session_variables,
)
from sidecar.models import CredentialType, Environment, KeyType, Principal
from tests.hasura_rules import hasura_reads, parse_pg_text_array

NOW = datetime(2026, 1, 1, tzinfo=UTC)
AWKWARD = ["a,b", 'say "hi"', "{x}", "back\\slash", "two words", "", "NULL", "null", " lead", "trail ", "tab\t"]

# Text PostgreSQL can hold: no NUL; and any other code point, including quotes and braces.
pg_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
elements = st.one_of(pg_text, st.sampled_from([*AWKWARD, "orders:read", "returns:*"]))


@pytest.fixture(scope="module")
def pg_parse() -> Iterator[Callable[[str], list[str | None]]]:
    """``text -> text[]`` as a real PostgreSQL (the pgserver wheel) reads it."""
    pgserver = pytest.importorskip("pgserver")
    asyncpg = pytest.importorskip("asyncpg")
    with tempfile.TemporaryDirectory() as tmp, asyncio.Runner() as runner:
        server = pgserver.get_server(tmp, cleanup_mode="delete")
        try:
            conn = runner.run(asyncpg.connect(server.get_uri()))

            def parse(literal: str) -> list[str | None]:
                return list(runner.run(conn.fetchval("SELECT $1::text::text[]", literal)))

            yield parse
            runner.run(conn.close())
        finally:
            server.cleanup()


@given(st.lists(elements, max_size=6))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(AWKWARD)
@example([])
def test_array_literal_round_trips_through_postgresql(
    pg_parse: Callable[[str], list[str | None]], items: list[str]
) -> None:
    literal = pg_array_literal(items)
    assert pg_parse(literal) == items
    assert parse_pg_text_array(literal) == items


@pytest.mark.parametrize(
    ("items", "literal"),
    [
        ([], "{}"),
        (["orders:read", "returns:*"], "{orders:read,returns:*}"),
        (["a,b"], '{"a,b"}'),
        (['q"q'], '{"q\\"q"}'),
        (["b\\s"], '{"b\\\\s"}'),
        (["{x}"], '{"{x}"}'),
        ([""], '{""}'),
        (["NULL"], '{"NULL"}'),
        (["a b"], '{"a b"}'),
    ],
)
def test_array_literal_quotes_exactly_what_postgresql_requires(items: list[str], literal: str) -> None:
    assert pg_array_literal(items) == literal


def principal(**overrides: Any) -> Principal:
    fields: dict[str, Any] = {
        "credential_type": CredentialType.API_KEY,
        "subject": "user_1",
        "org_id": "org_1",
        "role": "operator",
        "allowed_roles": ("operator", "viewer", "anonymous"),
        "scopes": ("orders:read", "orders:write"),
        "environment": Environment.LIVE,
        "user_id": "user_1",
        "key_id": "key_1",
        "key_type": KeyType.SECRET,
    }
    return Principal(**{**fields, **overrides})


def test_session_holds_only_strings_and_hasura_accepts_it() -> None:
    session = session_variables(principal(team_id="team_7"), "viewer")
    view = hasura_reads(200, encode_session(session, 60))
    assert view.session == {
        "x-hasura-role": "viewer",
        "x-hasura-user-id": "user_1",
        "x-hasura-org-id": "org_1",
        "x-hasura-team-id": "team_7",
        "x-hasura-key-id": "key_1",
        "x-hasura-environment": "live",
        "x-hasura-permissions": "{orders:read,orders:write}",
        "cache-control": "max-age=60",
    }
    assert view.max_age == 60


def test_team_is_left_out_when_unset_and_test_keys_say_test() -> None:
    session = session_variables(principal(environment=Environment.TEST), "operator")
    assert "X-Hasura-Team-Id" not in session
    assert session["X-Hasura-Environment"] == "test"


def test_keys_without_a_user_use_their_subject_and_anonymous_has_no_user() -> None:
    keyed = session_variables(principal(user_id=None, subject="key_1"), "operator")
    assert keyed["X-Hasura-User-Id"] == "key_1"
    anon = principal(credential_type=CredentialType.ANONYMOUS, org_id=None, user_id=None, key_id=None, scopes=())
    assert set(session_variables(anon, "anonymous")) == {
        "X-Hasura-Role",
        "X-Hasura-Environment",
        "X-Hasura-Permissions",
    }


def test_forbidden_keys_never_leave_even_if_a_session_carries_them() -> None:
    body = encode_session({"X-Hasura-Role": "admin", "X-Hasura-Admin-Secret": "s", "x-hasura-access-key": "k"}, 5)
    assert set(json.loads(body)) == {"X-Hasura-Role", "Cache-Control"}


@pytest.mark.parametrize(
    ("expires_in", "max_age", "expected"),
    [
        (None, 60, 60),
        (3600, 60, 60),
        (30, 60, 30),
        (30.9, 60, 30),  # never rounds up past the expiry
        (0.5, 60, 0),
    ],
)
def test_cache_max_age_never_outlives_expiry_nor_the_bound(
    expires_in: float | None, max_age: int, expected: int
) -> None:
    expires_at = None if expires_in is None else NOW + timedelta(seconds=expires_in)
    assert cache_max_age(NOW, expires_at, max_age) == expected


def test_odd_characters_stay_valid_json_strings() -> None:
    session = session_variables(principal(org_id="org \ud800 \u00e9", scopes=('x"y',)), "operator")
    view = hasura_reads(200, encode_session(session, 1))
    assert view.session["x-hasura-org-id"] == "org \ud800 \u00e9"
    assert parse_pg_text_array(view.session["x-hasura-permissions"]) == ['x"y']


def test_session_bodies_are_kept_per_identity_and_bounded() -> None:
    bodies = SessionBodies(max_entries=2)
    first = bodies.body(principal(), "operator", 60)
    assert first == encode_session(session_variables(principal(), "operator"), 60)
    assert bodies.body(principal(), "operator", 7) == encode_session(session_variables(principal(), "operator"), 7)
    assert len(bodies) == 1
    other_scopes = bodies.body(principal(scopes=("orders:read",)), "operator", 60)
    other_role = bodies.body(principal(), "viewer", 60)
    assert len({first, other_scopes, other_role}) == 3
    assert len(bodies) == 2
