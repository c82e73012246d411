"""Bounded memos for answers asked on every request: the answer is kept until the memo is full,
and a full memo starts again (a flood of new questions clears it rather than grows it)."""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def remember(memo: dict[K, V], key: K, value: V, *, bound: int) -> V:
    """Keep ``value`` under ``key`` in ``memo``, emptying ``memo`` first when it holds ``bound``."""
    if len(memo) >= bound:
        memo.clear()
    memo[key] = value
    return value
