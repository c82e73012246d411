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


class StepClock:
    """A clock that each job moves on by ``step`` seconds."""

    def __init__(self, step: float) -> None:
        self.now = 100.0
        self.step = step

    def __call__(self) -> float:
        return self.now

    def job(self, order: list[str], n: int) -> None:
        if n == 0:
            asyncio.get_running_loop().call_soon(order.append, "other")  # became ready meanwhile
        self.now += self.step
        order.append(f"job {n}")


async def slices(batch: TurnBatch, clock: StepClock, jobs: int = 4) -> list[str]:
    """The order in which ``jobs`` queued jobs and a callback that became ready during the first ran."""
    order: list[str] = []
    await asyncio.gather(*(batch.run(lambda n=n: clock.job(order, n)) for n in range(jobs)))  # type: ignore[misc]
    return order


#: the batch's own route, and one whose answers can wait
OWN = frozenset({"/v1/auth/token", "/healthz"})


def timed_batch(clock: StepClock) -> TurnBatch:
    return TurnBatch(slice_s=0.001, alone_slice_s=0.005, shared_for_s=1.0, own_routes=OWN, clock=clock)


async def test_a_long_batch_lets_other_requests_in_between_slices_while_they_share_the_loop() -> None:
    """A webhook call that arrives during a batch of signatures waits for one slice, not all."""
    clock = StepClock(0.001)  # a job fills a short slice
    batch = timed_batch(clock)
    batch.answered("/v1/hasura/webhook")
    assert batch.shared
    assert await slices(batch, clock) == ["job 0", "other", "job 1", "job 2", "job 3"]


async def test_while_only_its_own_requests_are_answered_a_batch_runs_in_long_slices() -> None:
    """Switching between signing and the rest costs CPU: alone, the signatures run on."""
    clock = StepClock(0.001)
    batch = timed_batch(clock)
    batch.answered("/v1/auth/token")  # its own route
    batch.answered("/healthz")  # one that can wait
    assert not batch.shared
    assert await slices(batch, clock) == ["job 0", "job 1", "job 2", "job 3", "other"]
    clock.step = 0.002  # a long slice ends too: after its third 2 ms job
    assert await slices(batch, clock) == ["job 0", "job 1", "job 2", "other", "job 3"]


async def test_slices_stay_short_for_a_while_after_another_route_is_answered_then_grow_again() -> None:
    clock = StepClock(0.001)
    batch = timed_batch(clock)
    batch.answered("/.well-known/jwks.json")
    assert await slices(batch, clock) == ["job 0", "other", "job 1", "job 2", "job 3"]
    clock.now += 0.9  # 0.9 s after the first slice that saw the answer
    assert batch.shared
    assert await slices(batch, clock) == ["job 0", "other", "job 1", "job 2", "job 3"]
    clock.now += 0.2
    assert not batch.shared
    assert await slices(batch, clock) == ["job 0", "job 1", "job 2", "job 3", "other"]
