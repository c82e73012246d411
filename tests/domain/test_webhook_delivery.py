"""The retry schedule: exponential, jittered, capped."""

from __future__ import annotations

import random

from sidecar.domain.webhook_delivery import RetryPolicy


def test_backoff_doubles_with_jitter_within_half_a_step_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts=20, base_s=5, max_s=600)
    rng = random.Random(7)
    for failed in range(1, 15):
        step = min(600, 5 * 2 ** (failed - 1))
        delays = [policy.delay_s(failed, rng) for _ in range(50)]
        assert all(step / 2 <= d <= step for d in delays)
        assert len(set(delays)) > 1  # jittered: retries of many deliveries do not line up
