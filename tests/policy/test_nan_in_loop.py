"""In the real loop on the lockstep rig: a NaN-producing policy's actions are rejected by the
safety pipeline, counted, the hand driver is never handed a non-finite target, and the
non-finite watchdog puts the supervisor in HOLD where the hand was measured."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from raas.config import sim_cell_config
from raas.daemon import cell_up, run_loop
from raas.policy import CellSpec, PolicyController, load_bundle

pytestmark = [pytest.mark.system]


def test_nan_policy_never_reaches_the_hand(nan_bundle: Path) -> None:
    cfg = sim_cell_config(
        {
            "loop": {
                "rate_hz": 12.5,
                "duration_s": 2.0,
                "warmup_cycles": 0,
                "max_repeats": 3,
                "status_interval_s": 1e-6,
            },
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
        status = io.StringIO()
        loop = cell.build_loop(PolicyController(runner), status_stream=status)
        assert run_loop(loop) == 0
    res = loop.result
    assert res.cycles == 25
    assert len(sent) == 25
    assert all(np.isfinite(t).all() for t in sent)
    sup = loop.supervisor
    assert (sup.state.label, sup.reason.value) == ("hold", "nonfinite_action")
    k = cell.cfg.safety.watchdogs.nonfinite_cycles
    # every output up to the hold was NaN, and counted; once held the policy is not run
    assert runner.nonfinite == k
    assert res.rested == 25 - k
    assert res.interventions["nonfinite"] == 0  # never RUNNING: no action was ever usable
    assert sup.history[-1].cycle == k - 1  # the K-th NaN action in a row
    # armed, then held: every target was a measured pose (the fingers settle a little under
    # gravity in the first cycles), none went anywhere the policy asked; once held, it stays
    for t in sent[k - 1 :]:
        np.testing.assert_allclose(t, sup.hold_target, atol=1e-4)
    # the live status line says the hand is held, and why (not the loop's RUNNING)
    lines = status.getvalue().splitlines()
    assert lines and lines[-1].startswith("[raasd] HOLD nonfinite_action "), lines[-1:]
    spread = np.ptp(np.array(sent), axis=0)
    assert spread.max() < 0.2, spread
