"""The benchmark's load generators send the request a scenario describes: method, headers, body.

wrk runs a Lua script, and a script that does not parse is reported on stderr while wrk goes on
without it (exit status 0), so a broken script once made every scenario measure an anonymous GET.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.load import Load, Result, run_python, run_wrk

Generator = Callable[[Load, int | None], Result]

#: Everything Lua's string syntax could trip on: quotes, backslashes, brackets, newlines, a control byte.
BODY = '{"headers": {"Authorization": "Bearer sk_live_x"}, "odd": "a\\"b\\\\c]]d[[e\\n\x01"}'
HEADERS = {"Authorization": "Bearer sk_live_abc", "X-Quote": 'say "hi" \\ [[no]] ]==]', "Content-Type": "text/plain"}


async def seen_by_server(generate: Generator) -> list[tuple[str, dict[str, str], str]]:
    seen: list[tuple[str, dict[str, str], str]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append((request.method, dict(request.headers), await request.text()))
        return web.Response(text="{}")

    app = web.Application()
    app.router.add_route("*", "/hook", record)
    async with TestServer(app, host="127.0.0.1") as server:
        load = Load(str(server.make_url("/hook")), "POST", HEADERS, BODY, connections=1, duration_s=1.0)
        result = await asyncio.to_thread(generate, load, None)
    assert result.requests > 0
    assert result.bad == 0
    return seen


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (.ci/run installs it)")
async def test_wrk_sends_the_scenarios_method_headers_and_body() -> None:
    seen = await seen_by_server(run_wrk)
    assert seen
    method, headers, body = seen[-1]
    assert method == "POST"
    assert body == BODY
    assert {k: headers.get(k) for k in HEADERS} == HEADERS


async def test_the_python_load_generator_sends_the_same_request() -> None:
    seen = await seen_by_server(run_python)
    method, headers, body = seen[-1]
    assert (method, body) == ("POST", BODY)
    assert {k: headers.get(k) for k in HEADERS} == HEADERS
