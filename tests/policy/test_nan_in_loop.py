"""In the real loop on the lockstep rig: a NaN-producing policy gives the declared fallback every
cycle, counted, and the hand driver is never handed a non-finite target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from raas.config import build_cell_config
from raas.daemon import cell_up, run_loop
from raas.policy import CellSpec, PolicyController, load_bundle

pytestmark = [pytest.mark.system]


def test_nan_policy_never_reaches_the_hand(nan_bundle: Path) -> None:
    cfg = build_cell_config(
        {
            "loop": {"rate_hz": 12.5, "duration_s": 2.0, "warmup_cycles": 0, "max_repeats": 3},
            "rig": {"clock": "lockstep", "rate_hz": 12.5, "cameras": 0},
            "rt": {"enabled": False},
        }
    )
    runner = load_bundle(nan_bundle, period_s=0.08, cell=CellSpec.from_config(cfg))
    sent: list[np.ndarray] = []
    with cell_up(cfg) as cell:
        hand = cell.hand
        real_apply = hand.apply

        def spy(targets: np.ndarray, cycle: int) -> np.ndarray:
            sent.append(np.array(targets, copy=True))
            return real_apply(targets, cycle)

        hand.apply = spy  # type: ignore[method-assign]
        loop = cell.build_loop(PolicyController(runner))
        assert run_loop(loop) == 0
    res = loop.result
    assert res.cycles == 25
    assert len(sent) == 25
    assert all(np.isfinite(t).all() for t in sent)
    assert runner.nonfinite == 25  # every cycle's output was NaN, and counted
    assert res.fallbacks_repeat + res.fallbacks_idle == 25  # and the loop took the fallback
    np.testing.assert_allclose(sent[-1], cell.hand.idle_action)
