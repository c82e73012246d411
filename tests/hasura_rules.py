"""Hasura, as far as the auth webhook is concerned: how it calls it and how it reads the answer.

Each rule cites shared/hasura-contract.md. ``hasura_reads`` applies Hasura v2's acceptance rules
to a webhook response and fails the test exactly where Hasura would fail the client's request.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: §1.4: client headers Hasura never forwards to a GET webhook (compared case-insensitively).
IGNORED_HEADERS = frozenset(
    {
        "content-length", "content-md5", "user-agent", "host", "origin", "referer", "accept", "accept-encoding",
        "accept-language", "accept-datetime", "cache-control", "connection", "dnt", "content-type",
    }
)  # fmt: skip
USER_AGENT = "hasura-graphql-engine/v2.44.0"
#: §1.5 / §2.1: the headers Hasura itself puts on the webhook call.
HASURA_HEADERS = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
MISSING: Any = object()

#: A browser's request to Hasura's /v1/graphql, before Hasura filters it.
BROWSER_HEADERS = {
    "Host": "hasura.example.com",
    "User-Agent": "Mozilla/5.0",
    "Accept": "application/json",
    "Accept-Encoding": "gzip, br",
    "Accept-Language": "en",
    "Origin": "https://shop.example.com",
    "Referer": "https://shop.example.com/orders",
    "Content-Type": "application/json",
    "Content-Length": "87",
    "Connection": "keep-alive",
    "Cache-Control": "no-cache",
    "DNT": "1",
}


def get_mode_headers(client: dict[str, str]) -> dict[str, str]:
    """What a GET webhook receives for a client request with ``client`` headers (§1.4, §1.5)."""
    forwarded = {k: v for k, v in client.items() if k.lower() not in IGNORED_HEADERS}
    return {**forwarded, **HASURA_HEADERS}


def post_v2_body(client: dict[str, str], request: Any = MISSING) -> dict[str, Any]:
    """A v2 POST body: every client header in its original case (§2.2), plus ``request`` (§2.3)."""
    body: dict[str, Any] = {"headers": dict(client)}
    if request is not MISSING:
        body["request"] = request
    return body


def post_v3_body(client: dict[str, str]) -> dict[str, Any]:
    """A v3 POST body: lower-case header names and no ``request`` (§5.7)."""
    return {"headers": {k.lower(): v for k, v in client.items()}}


@dataclass(frozen=True)
class HasuraView:
    """What Hasura makes of a webhook answer: denied, or a session (keys folded, §1.9) and expiry."""

    denied: bool
    session: dict[str, str]
    max_age: int | None = None
    expires: datetime | None = None

    @property
    def role(self) -> str:
        return self.session["x-hasura-role"]


def hasura_reads(status: int, body: bytes) -> HasuraView:
    """Apply Hasura v2's rules (§1.7 to §1.14); an AssertionError is a 500 for the client."""
    if status == 401:
        return HasuraView(denied=True, session={})  # §1.7: the 401 body is ignored
    assert status == 200, f"§1.7: status {status} -> 500 'Invalid response from authorization hook'"
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise AssertionError(f"§1.8: body is not JSON: {body!r}") from exc
    assert isinstance(data, dict), "§1.8: top level must be an object"
    bad = {k: v for k, v in data.items() if not isinstance(v, str)}
    assert not bad, f"§1.8: parsing Text failed for {bad}"
    folded = {k.lower() for k in data}
    assert len(folded) == len(data), "§1.9: keys differing only in case: Hasura keeps one at random"
    role = next((v for k, v in data.items() if k.lower() == "x-hasura-role"), "")
    assert role, "§1.10: x-hasura-role missing or empty"
    for never in ("x-hasura-admin-secret", "x-hasura-access-key", "x-hasura-use-backend-only-permissions"):
        assert never not in folded, f"§1.12: {never} must never be in a webhook answer"
    session = {k.lower(): v for k, v in data.items()}
    return HasuraView(
        denied=False,
        session=session,
        max_age=parse_cache_control(data.get("Cache-Control")),  # §1.14: exact key case
        expires=parse_expires(data.get("Expires")),
    )


_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_DIRECTIVE = re.compile(rf"({_TOKEN})(?:=({_TOKEN}|\"(?:[^\"\\]|\\.)*\"))?")


def parse_cache_control(value: str | None) -> int | None:
    """§1.14 [CC]: an RFC 7234 directive list; the first max-age/s-maxage with a decimal value."""
    if value is None:
        return None
    directives = []
    for part in value.split(","):
        part = part.strip(" \t")
        if not part:
            continue
        match = _DIRECTIVE.fullmatch(part)
        if match is None:
            return None  # parse failure: Hasura logs a warning and falls back to Expires
        directives.append((match.group(1), match.group(2)))
    for name, arg in directives:
        if name in ("max-age", "s-maxage") and arg is not None and arg.isdigit():
            return int(arg)
    return None


def parse_expires(value: str | None) -> datetime | None:
    """§1.14 [EXP]: ``%a, %d %b %Y %T GMT``."""
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%a, %d %b %Y %H:%M:%S GMT")
    except ValueError:
        return None


#: What PostgreSQL's array reader treats as structure or trims (array_in, scanner_isspace).
_PG_SPECIAL = frozenset('{}"\\ \t\n\r\v\f')


def parse_pg_text_array(literal: str) -> list[str | None]:
    """A strict reader of a one-dimensional PostgreSQL array literal (PG array.sgml I/O rules)."""
    assert literal.startswith("{"), literal
    assert literal.endswith("}"), literal
    inner = literal[1:-1]
    if inner == "":
        return []
    items: list[str | None] = []
    i = 0
    while True:
        if inner[i] == '"':
            i += 1
            chars = []
            while inner[i] != '"':
                if inner[i] == "\\":
                    i += 1
                chars.append(inner[i])
                i += 1
            i += 1
            items.append("".join(chars))
        else:
            j = i
            while j < len(inner) and inner[j] != ",":
                assert inner[j] not in _PG_SPECIAL, f"unquoted special in {literal!r}"
                j += 1
            word = inner[i:j]
            assert word, f"empty unquoted element in {literal!r}"
            items.append(None if word.upper() == "NULL" else word)
            i = j
        if i == len(inner):
            return items
        assert inner[i] == ",", f"expected a comma at {i} in {literal!r}"
        i += 1
