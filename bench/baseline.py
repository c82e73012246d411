"""The baseline: a bare aiohttp + uvloop server answering with fixed JSON bytes (GET and POST).

Run as ``python -m bench.baseline PORT BODY_FILE``; the POST handler reads the request body, as
any webhook must, and answers the same bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvloop
from aiohttp import web


def make_app(body: bytes) -> web.Application:
    async def get(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def post(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/", get)
    app.router.add_post("/", post)
    return app


def main() -> None:
    port, body_file = int(sys.argv[1]), Path(sys.argv[2])
    uvloop.install()
    web.run_app(make_app(body_file.read_bytes()), host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
