"""The heap is frozen when warm-up ends, also when there is no warm-up at all."""

from __future__ import annotations

import pytest

from raas.core.rt import RtReport


@pytest.mark.parametrize("warmup", [0, 3])
def test_heap_frozen_after_warmup(make_loop, warmup: int) -> None:
    loop, _ = make_loop(duration_s=0.05, warmup_cycles=warmup)
    loop.rt_report = RtReport(requested=True)
    res = loop.run()
    assert loop.rt_report.gc_frozen
    assert res.warmup_cycles == warmup
    assert res.cycles == 5
