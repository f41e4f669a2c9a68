"""Helpers for the device-driver tests (pylon, uvc, natnet): run a few cycles like the loop does."""

from __future__ import annotations

import importlib.util
import select
import time
from collections.abc import Callable
from typing import Any

from raas_drivers.source import Sample, Source

from tests.conftest import require


def require_module(module: str, pip_name: str) -> None:
    """The vendor library is installed (CI: a failure if not)."""
    require(pip_name, importlib.util.find_spec(module) is not None, f"pip install {pip_name}")


def collect(source: Source, cycle: int, timeout_s: float = 2.0) -> Sample | None:
    """Poll `source` for `cycle` until it has the sample or `timeout_s` passes, sleeping in
    poll(2) on its fileno like the loop's Collector."""
    p = select.poll()
    p.register(source.fileno(), select.POLLIN)
    deadline = time.monotonic() + timeout_s
    while True:
        sample = source.poll(cycle)
        if sample is not None:
            return sample
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        p.poll(max(1, min(50, int(left * 1000))))


def run_cycles(
    source: Source,
    cycles: range,
    period_s: float,
    *,
    fire: Callable[[int], Any] | None = None,
    timeout_s: float = 2.0,
) -> dict[int, Sample | None]:
    """Cycles on a fixed grid: at t_k fire(k) (if given), then collect cycle k."""
    out: dict[int, Sample | None] = {}
    t0 = time.monotonic()
    for i, k in enumerate(cycles):
        delay = t0 + i * period_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if fire is not None:
            fire(k)
        out[k] = collect(source, k, timeout_s)
    return out
