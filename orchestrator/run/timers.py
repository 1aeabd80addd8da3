"""Deadlines for the supervisor's thread: a heap of (when, callback) on an injected clock."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable


class Timers:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (self._clock() + delay_s, next(self._seq), callback))

    def timeout(self, longest_s: float) -> float:
        """How long the loop may sleep before the next deadline."""
        if not self._heap:
            return longest_s
        return max(0.0, min(longest_s, self._heap[0][0] - self._clock()))

    def run_due(self, guard: Callable[[Callable[[], None]], None] | None = None) -> None:
        """Run every callback that is due; `guard` runs each one (so a failing callback is
        handled there and the rest still run)."""
        now = self._clock()
        while self._heap and self._heap[0][0] <= now:
            _, _, callback = heapq.heappop(self._heap)
            if guard is None:
                callback()
            else:
                guard(callback)
