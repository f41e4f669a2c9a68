"""Which control cycle a sample of a self-clocked device belongs to.

A camera on the trigger board's line, or a motion-capture server, does not know the loop's cycle
numbers: it sends frames with its own ids and times. The loop triggers cycle k at t_k and then
polls every source with k, so a driver marks t_k (the trigger's own host time when it knows it,
else the time of its first poll(k), which follows t_k by the collect phase's offset) and assigns a
sample captured (on the host clock) at c to the latest marked cycle k with t_k - slack <= c.

`slack` (default half a period) absorbs the gap between the trigger and the first poll and the
error of the clock mapping; a sample captured more than `slack` before the first mark belongs to
no cycle (None). Frames that arrive after their cycle's collect window has closed are late: the
driver drops them and counts them.
"""

from __future__ import annotations


class CycleWindow:
    """A ring of (cycle, host time the cycle began) marks, newest last."""

    def __init__(self, period_ns: int, slack_ns: int | None = None, depth: int = 64) -> None:
        if period_ns <= 0:
            raise ValueError(f"period_ns must be > 0, got {period_ns}")
        self.period_ns = period_ns
        self.slack_ns = period_ns // 2 if slack_ns is None else slack_ns
        self._cycles = [-1] * depth
        self._starts = [0] * depth
        self._n = 0
        self._depth = depth

    @property
    def newest(self) -> int:
        """The newest marked cycle, -1 before the first mark."""
        return self._cycles[(self._n - 1) % self._depth] if self._n else -1

    def mark(self, cycle: int, start_ns: int) -> None:
        """Record that `cycle` began at `start_ns`; a cycle already marked keeps its first mark."""
        if self._n and cycle <= self.newest:
            return
        i = self._n % self._depth
        self._cycles[i] = cycle
        self._starts[i] = start_ns
        self._n += 1

    def cycle_of(self, capture_ns: int) -> int | None:
        """The latest marked cycle whose start - slack is at or before `capture_ns`."""
        for back in range(min(self._n, self._depth)):
            i = (self._n - 1 - back) % self._depth
            if self._starts[i] - self.slack_ns <= capture_ns:
                return self._cycles[i]
        return None
