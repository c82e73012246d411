"""The access log's two paths write the same line; the line buffer keeps order and loses nothing."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import threading

import pytest

from sidecar.logs import JsonAccessLog, JsonFormatter, LineBuffer, RecordAccessLog

TS = re.compile(r'^\{"ts":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",')

REQUESTS = [
    {"request_id": "abc-1", "method": "GET", "route": "/v1/hasura/webhook", "status": 200, "latency_ms": 0.25,
     "reason": None, "key_id": "key_9xQ2"},
    {"request_id": "4f6c2a1e8a554f0e", "method": "POST", "route": "/v1/api_keys/{key_id}", "status": 401,
     "latency_ms": 12.0, "reason": "api_key_unknown", "key_id": None},
    {"request_id": "x", "method": "PATCH", "route": "unmatched", "status": 503, "latency_ms": 1e-3,
     "reason": 'quote " backslash \\ newline \n tab \t nul \x00 del \x7f', "key_id": "ключ \u2028 ✓"},
]  # fmt: skip


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("fields", REQUESTS, ids=["allowed", "refused", "escaped"])
def test_the_fast_line_is_the_formatters_line(fields: dict[str, object]) -> None:
    logger = logging.getLogger("tests.access.fast")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = ListHandler()
    logger.addHandler(handler)
    try:
        RecordAccessLog(logger).request(**fields)  # type: ignore[arg-type]
    finally:
        logger.removeHandler(handler)
    (record,) = handler.records
    record.name = "sidecar.access"  # the logger the sidecar's records come from
    expected = JsonFormatter().format(record) + "\n"

    out = io.StringIO()
    JsonAccessLog(LineBuffer(out), enabled=True).request(**fields)  # type: ignore[arg-type]
    got = out.getvalue()

    assert TS.match(got)
    assert TS.sub("{", got) == TS.sub("{", expected)
    assert json.loads(got)["status"] == fields["status"]


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


async def test_lines_of_one_loop_turn_go_out_together_after_it() -> None:
    out = CountingStream()
    lines = LineBuffer(out)
    for n in range(5):
        lines.write(f"line {n}\n")
    assert out.getvalue() == ""  # nothing yet: the responses of this turn go first
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert out.getvalue() == "".join(f"line {n}\n" for n in range(5))
    assert out.writes == 1


async def test_lines_of_one_loop_turn_ask_for_the_running_loop_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """``asyncio._get_running_loop`` makes a getpid() system call each time: once a turn, not once a line."""
    asked = []
    real = asyncio._get_running_loop

    def counted() -> asyncio.AbstractEventLoop | None:
        asked.append(1)
        return real()

    monkeypatch.setattr(asyncio, "_get_running_loop", counted)
    out = io.StringIO()
    lines = LineBuffer(out)
    for turn in range(3):
        for n in range(5):
            lines.write(f"turn {turn} line {n}\n")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    assert len(asked) == 3
    assert out.getvalue().count("\n") == 15


def test_a_line_after_its_loop_stopped_is_written_at_once_with_the_pending_ones() -> None:
    out = io.StringIO()
    lines = LineBuffer(out)
    loop = asyncio.new_event_loop()
    try:
        loop.call_soon(lambda: (lines.write("last turn\n"), loop.stop()))
        loop.run_forever()  # stops before the turn that would have written the line
        assert out.getvalue() == ""
        lines.write("after the loop\n")
        assert out.getvalue() == "last turn\nafter the loop\n"
    finally:
        loop.close()


async def test_a_line_from_another_thread_comes_after_the_pending_ones() -> None:
    out = io.StringIO()
    lines = LineBuffer(out)
    lines.write("from the loop\n")
    worker = threading.Thread(target=lines.write, args=("from a thread\n",))
    worker.start()
    worker.join()
    assert out.getvalue() == "from the loop\nfrom a thread\n"  # written at once, in order
    await asyncio.sleep(0)
    assert out.getvalue() == "from the loop\nfrom a thread\n"  # and nothing twice


def test_outside_a_loop_a_line_is_written_at_once() -> None:
    out = io.StringIO()
    LineBuffer(out).write("start-up\n")
    assert out.getvalue() == "start-up\n"
