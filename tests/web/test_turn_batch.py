"""Jobs of one event-loop turn run back to back after it: each gets its own result or error."""

from __future__ import annotations

import asyncio

import pytest

from sidecar.web.turn_batch import TurnBatch


async def test_the_jobs_of_one_turn_run_together_after_it_in_order() -> None:
    batch = TurnBatch()
    ran: list[str] = []
    queued: list[str] = []

    async def request(name: str) -> str:
        queued.append(name)

        def job() -> str:
            assert queued == ["a", "b", "c"]  # every request of the turn queued before the first job runs
            ran.append(name)
            return name.upper()

        return await batch.run(job)

    results = await asyncio.gather(request("a"), request("b"), request("c"))
    assert results == ["A", "B", "C"]
    assert ran == ["a", "b", "c"]


async def test_a_failing_job_fails_only_its_own_request() -> None:
    batch = TurnBatch()

    def broken() -> str:
        raise ValueError("this one")

    results = await asyncio.gather(
        batch.run(lambda: 1), batch.run(broken), batch.run(lambda: 3), return_exceptions=True
    )
    assert results[0] == 1
    assert isinstance(results[1], ValueError)
    assert results[2] == 3


async def test_the_job_of_a_request_gone_meanwhile_is_not_run() -> None:
    batch = TurnBatch()
    ran: list[int] = []
    gone = asyncio.ensure_future(batch.run(lambda: ran.append(1)))
    stays = asyncio.ensure_future(batch.run(lambda: ran.append(2)))
    await asyncio.sleep(0)  # both queued
    gone.cancel()
    await stays
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert ran == [2]


async def test_a_lone_job_runs_in_the_next_turn_and_later_turns_run_theirs() -> None:
    batch = TurnBatch()
    for n in range(3):
        assert await asyncio.wait_for(batch.run(lambda n=n: n), timeout=1) == n  # type: ignore[misc]


async def test_a_long_batch_lets_the_loop_run_other_callbacks_between_slices() -> None:
    """A webhook call that arrives during a batch of signatures waits for one slice, not all."""
    batch = TurnBatch(slice_s=0)  # every job overruns the slice: one job a slice
    order: list[str] = []
    loop = asyncio.get_running_loop()

    def job(n: int) -> None:
        if n == 0:
            loop.call_soon(order.append, "other")  # something that became ready meanwhile
        order.append(f"job {n}")

    await asyncio.gather(*(batch.run(lambda n=n: job(n)) for n in range(3)))  # type: ignore[misc]
    assert order == ["job 0", "other", "job 1", "job 2"]
