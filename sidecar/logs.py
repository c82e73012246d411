"""Logging set-up: one JSON object per line on stderr (or plain text for a terminal).

Fields passed with ``extra=`` become top-level JSON keys. The access log (one line per request,
``sidecar.access``) has a path of its own, ``AccessLog``: on the webhook's hot path a line through
``logging`` (a ``LogRecord``, the formatter's generic walk over its attributes, ``json.dumps``,
one ``write`` and ``flush`` per line) cost about as much as answering the request. ``JsonAccessLog``
writes the same line from an f-string into a ``LineBuffer``, which hands everything written during
one turn of the event loop to the stream in one write. ``RecordAccessLog`` keeps the ``logging``
route, for the text format and for apps built without ``sidecar serve`` (tests, embedding).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TextIO

_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
ACCESS_LOGGER = "sidecar.access"


class Timestamps:
    """``2026-12-04T02:21:07.995Z``, the date part formatted once a second, not once a line."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def format(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        return self._text + _MILLIS[int((created - second) * 1000)]


#: ``.000Z`` to ``.999Z``: a table, not a format per line
_MILLIS = tuple(f".{n:03d}Z" for n in range(1000))


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", …extra}``; ``exc_info`` becomes ``"exception"``."""

    def __init__(self) -> None:
        super().__init__()
        self._timestamps = Timestamps()

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": self._timestamps.format(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD_ATTRS and value is not None:
                data[name] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, separators=(",", ":"), default=str, ensure_ascii=False)


class LineBuffer:
    """Lines for a text stream, written once per turn of the event loop.

    Inside a running loop a line joins the pending ones and one ``call_soon`` writes them all
    when the loop next gets round to it, after the responses of this turn are out; outside a loop
    (start-up, shutdown, other threads) a line is written at once, after whatever is pending.
    A process killed outright loses at most the current turn's lines.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._pending: list[str] = []
        self._scheduled_on: asyncio.AbstractEventLoop | None = None
        #: the thread that loop was running in when it scheduled its flush
        self._scheduled_in: int | None = None
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        """Write ``line`` (ending in a newline) at the end of this loop turn, or now."""
        with self._lock:
            self._pending.append(line)
            # The usual case, told without asyncio._get_running_loop(): that makes a getpid() system
            # call each time (CPython's check for a fork), which cost about as much as the line itself.
            scheduled = self._scheduled_on
            if scheduled is not None and self._scheduled_in == threading.get_ident() and scheduled.is_running():
                return  # this thread's loop, mid-turn, with its flush already due
        loop = asyncio._get_running_loop()  # the C fast path (in asyncio.events.__all__); no exception when none
        with self._lock:
            if loop is self._scheduled_on is not None:
                return
            if loop is None or self._scheduled_on is not None:  # no loop here, or another loop's turn
                self._write_pending()
            if loop is not None:
                self._scheduled_on = loop
                self._scheduled_in = threading.get_ident()
                loop.call_soon(self.flush)

    def flush(self) -> None:
        with self._lock:
            self._scheduled_on = self._scheduled_in = None
            self._write_pending()

    def _write_pending(self) -> None:
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        try:
            self._stream.write("".join(lines))
            self._stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: like logging, never fail a request over it
            pass


class BufferedStreamHandler(logging.Handler):
    """A ``logging`` handler writing through the ``LineBuffer``, so every line keeps its order."""

    def __init__(self, lines: LineBuffer) -> None:
        super().__init__()
        self._lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.write(self.format(record) + "\n")
        except Exception:  # logging's contract: report it, never raise
            self.handleError(record)


class AccessLog(Protocol):
    """The one line per request; ``enabled`` is whether the log level lets INFO lines through."""

    @property
    def enabled(self) -> bool: ...

    def request(
        self,
        *,
        request_id: str,
        method: str,
        route: str,
        status: int,
        latency_ms: float,
        reason: str | None,
        key_id: str | None,
    ) -> None: ...


class RecordAccessLog:
    """Access lines as ``logging`` records of ``sidecar.access`` (whatever handlers are configured)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger(ACCESS_LOGGER)

    @property
    def enabled(self) -> bool:
        return self._log.isEnabledFor(logging.INFO)

    def request(
        self,
        *,
        request_id: str,
        method: str,
        route: str,
        status: int,
        latency_ms: float,
        reason: str | None,
        key_id: str | None,
    ) -> None:
        log = self._log
        # makeRecord + handle is what Logger.info does, less the stack walk for the caller's line
        record = log.makeRecord(
            log.name,
            logging.INFO,
            __file__,
            0,
            "%s %s %s",
            (method, route, status),
            None,
            extra={
                "request_id": request_id,
                "method": method,
                "route": route,
                "status": status,
                "latency_ms": latency_ms,
                "reason": reason,
                "key_id": key_id,
            },
        )
        log.handle(record)


def _json_text(value: str) -> str:
    """``value`` as the inside of a JSON string, as ``JsonFormatter`` (``ensure_ascii=False``) writes it."""
    if value.isprintable() and '"' not in value and "\\" not in value:
        return value  # the usual case: ids, route templates, reason codes
    return json.dumps(value, ensure_ascii=False)[1:-1]


class JsonAccessLog:
    """Access lines written straight to a ``LineBuffer``, byte for byte what ``JsonFormatter``
    writes for ``RecordAccessLog``'s records (a test holds the two to that)."""

    def __init__(self, lines: LineBuffer, *, enabled: bool) -> None:
        self._lines = lines
        self._enabled = enabled
        self._timestamps = Timestamps()
        self._middles: dict[tuple[str, str, int], tuple[str, str]] = {}

    @property
    def enabled(self) -> bool:
        return self._enabled

    def request(
        self,
        *,
        request_id: str,
        method: str,
        route: str,
        status: int,
        latency_ms: float,
        reason: str | None,
        key_id: str | None,
    ) -> None:
        middle = self._middles.get((method, route, status)) or self._middle(method, route, status)
        line = (
            f'{{"ts":"{self._timestamps.format(time.time())}",{middle[0]}"request_id":"{_json_text(request_id)}",'
            f'{middle[1]}"latency_ms":{latency_ms!r}'
        )
        if reason is not None:
            line += f',"reason":"{_json_text(reason)}"'
        if key_id is not None:
            line += f',"key_id":"{_json_text(key_id)}"'
        self._lines.write(line + "}\n")

    def _middle(self, method: str, route: str, status: int) -> tuple[str, str]:
        """The fields a (method, route, status) always writes the same, before and after the id."""
        m, r = _json_text(method), _json_text(route)
        middle = (
            f'"level":"INFO","logger":"{ACCESS_LOGGER}","message":"{m} {r} {status}",',
            f'"method":"{m}","route":"{r}","status":{status},',
        )
        if len(self._middles) < 1024:  # routes are templates and methods few: a bound, not a limit
            self._middles[method, route, status] = middle
        return middle


def configure_logging(level: str, fmt: Literal["json", "text"] = "json", stream: TextIO | None = None) -> AccessLog:
    """Route the ``sidecar`` loggers (and aiohttp's) to stderr at ``level``; the access log to use."""
    lines = LineBuffer(stream or sys.stderr)
    atexit.register(lines.flush)  # the last loop turn's lines, should the loop stop before writing them
    handler = BufferedStreamHandler(lines)
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    # The logging HOWTO's "Optimization": no line of ours prints thread or process, so don't collect them
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    if fmt == "text":
        return RecordAccessLog()
    return JsonAccessLog(lines, enabled=logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO))
