"""CPU-bound jobs of one event-loop turn, run back to back in one callback after it.

A token exchange signs once per request (RSA-2048: about 250 µs). Signed inside each request's
own handler, every answer went out on its own, between one signature and the next: one wake-up
of the client's side per answer (and, likely, the interpreter's and OpenSSL's working sets
evicting each other from the caches in turn). Queued here, the exchanges that arrived in one
turn are signed one after another and their answers written together in the turn after. Under
load (wrk, 16 connections, the server on one core) that took RS256 exchanges per server
CPU-second from about 2,650 to 2,950 and HS256 from about 13,500 to 18,500, most of it in system
time (about 25 → 13 µs a request). A lone request waits for nothing: its job runs in the turn
after its own.

A batch runs in slices. While requests of other routes share the loop (a webhook call, the
JWKS), a slice lasts about 1 ms, so that a webhook call arriving behind sixteen RS256 exchanges
waits for a slice, not for all sixteen signatures: with wrk saturating the exchange, webhook
calls' p99 was 3.5-5.4 ms in slices against 5.9-6.0 ms in one piece (and, with the slices'
length chosen as below, 3.4 ms against 4.8 ms in 5 ms slices throughout). While the exchanges are
all the loop serves, a slice lasts up to 5 ms: every switch between signing and the rest of the
work costs about 80 µs of CPU (with one signature a slice, RSA itself ran about 30 µs slower and
the rest about 60 µs slower per exchange than in long runs; caches and branch predictors
refilled, most likely). Under wrk alone, 1 ms slices gave 0.76 of the raw signing rate and
8 ms slices 0.79 (medians of ten alternating rounds).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


#: the longest a batch holds the loop before it lets other callbacks in (four RS256 signatures)
SLICE_S = 0.001
#: the same while nothing but the batch's own requests was answered lately (twenty RS256 signatures)
ALONE_SLICE_S = 0.005
#: how long after a request of another route the slices stay short
SHARED_FOR_S = 1.0


class TurnBatch:
    """Jobs queued during a turn of the loop, run in order by one callback scheduled for the next.

    A batch holds the loop for at most ``slice_s`` (and one job more) when another request was
    answered within ``shared_for_s`` (``answered`` is told of each), ``alone_slice_s`` otherwise:
    what is left runs in the next turn, after the callbacks that came meanwhile (a webhook call
    waits for one slice of signatures, not for all of them).
    """

    def __init__(
        self,
        *,
        slice_s: float = SLICE_S,
        alone_slice_s: float = ALONE_SLICE_S,
        shared_for_s: float = SHARED_FOR_S,
        own_routes: frozenset[str] = frozenset(),
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """``own_routes``: the routes whose answers do not count as others sharing the loop (the
        batch's own, and those that can wait a few milliseconds, such as health checks)."""
        self._jobs: deque[tuple[Callable[[], Any], asyncio.Future[Any]]] = deque()
        self._slice = slice_s
        self._alone_slice = alone_slice_s
        self._shared_for = shared_for_s
        self._own_routes = own_routes
        self._clock = clock
        #: requests of other routes answered, and how many of them the last slice had seen
        self._others = 0
        self._others_seen = 0
        self._shared_until = -1.0
        #: bound at the first job: ``asyncio.get_running_loop`` costs a system call (its fork check)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False

    def answered(self, route: str) -> None:
        """Told of every request answered (``RequestObserver``): another route's shares the loop."""
        if route not in self._own_routes:
            self._others += 1

    @property
    def shared(self) -> bool:
        """Whether the next slice is a short one: another route's request was answered lately."""
        return self._shared_at(self._clock())

    def _shared_at(self, now: float) -> bool:
        if self._others != self._others_seen:  # answered since last asked: short slices from now on
            self._others_seen = self._others
            self._shared_until = now + self._shared_for
        return now < self._shared_until

    async def run(self, job: Callable[[], T]) -> T:
        """``job()``'s result (or its exception), computed with the other jobs of this turn."""
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
            self._jobs.clear()  # a closed loop's jobs never run: the tasks awaiting them went with it
            self._scheduled = False
        done: asyncio.Future[T] = loop.create_future()
        self._jobs.append((job, done))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._run_slice)
        return await done

    def _run_slice(self) -> None:
        jobs = self._jobs
        clock = self._clock
        now = clock()
        deadline = now + (self._slice if self._shared_at(now) else self._alone_slice)
        while jobs:
            job, done = jobs.popleft()
            if done.cancelled():  # its request is gone (the client hung up): nobody waits for it
                continue
            try:
                done.set_result(job())
            except Exception as exc:  # the job's own error, for its own request
                done.set_exception(exc)
            if clock() >= deadline:
                break
        if jobs and self._loop is not None:
            self._loop.call_soon(self._run_slice)
        else:
            self._scheduled = False
