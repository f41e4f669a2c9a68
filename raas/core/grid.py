"""The absolute deadline grid of the cycle contract: t_k = t_0 + k * T, never t_prev + T."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DeadlineGrid:
    t0_ns: int
    period_ns: int

    def __post_init__(self) -> None:
        if self.period_ns <= 0:
            raise ValueError(f"period_ns must be positive, got {self.period_ns}")

    @classmethod
    def from_rate(cls, t0_ns: int, rate_hz: float) -> DeadlineGrid:
        return cls(t0_ns, round(1_000_000_000 / rate_hz))

    def t(self, k: int) -> int:
        """Start of cycle k."""
        return self.t0_ns + k * self.period_ns

    def index_at(self, now_ns: int) -> int:
        """The last cycle whose start is at or before `now_ns` (the slot `now_ns` falls in)."""
        return (now_ns - self.t0_ns) // self.period_ns
