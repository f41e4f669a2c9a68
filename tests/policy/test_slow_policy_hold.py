"""A policy that is fast at load and slow in the loop (its inference takes twice the budget once
the observation is not all zeros) on the realtime simulated cell: the supervisor holds it for
inference_overrun, and from then on the loop neither runs the policy nor its warm-ups, so every
cycle keeps its period and keeps sending the hold target. Before, the policy still ran (with its
warm-ups) every cycle while held, cycles stretched to ~400 ms and the hand's 500 ms firmware
watchdog tripped (DEVICE LOST, exit 3) in 3 runs of 4."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from policy_bundles import slow_when_observed_model, write_manifest

from raas.config import sim_cell_config
from raas.core.observation import Step
from raas.daemon import EXIT_OK, cell_up, run_loop
from raas.policy import CellSpec, PolicyController, load_bundle
from raas.safety import SafetyState

pytestmark = [pytest.mark.system, pytest.mark.slow]

PERIOD_NS = 80_000_000


@pytest.fixture(scope="module")
def slow_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("slow") / "slow_when_observed"
    d.mkdir()
    slow_when_observed_model(d / "model.onnx", 22, 20, iterations=60)  # ~80 ms observed
    write_manifest(d)
    return d


def test_a_policy_slow_in_the_loop_is_held_and_the_hold_keeps_the_period(
    slow_bundle: Path,
) -> None:
    cfg = sim_cell_config(
        {
            "loop": {"rate_hz": 12.5, "duration_s": 4.0, "warmup_cycles": 0, "max_repeats": 3},
            "rig": {"clock": "realtime", "rate_hz": 12.5, "cameras": 0},
            "rt": {"enabled": False},
        }
    )
    runner = load_bundle(slow_bundle, period_s=0.08, cell=CellSpec.from_config(cfg))
    assert runner.load_latency_us["p99"] < 40_000  # the load-time check passes
    triggers: list[tuple[int, int]] = []  # (trigger time, supervisor state) per cycle

    def record(step: Step) -> None:
        triggers.append((step.obs.trigger_ns, step.safety))

    with cell_up(cfg) as cell:
        loop = cell.build_loop(PolicyController(runner), status_stream=io.StringIO())
        loop.on_cycle = record
        code = run_loop(loop)  # EXIT_DEVICE_LOST (3) when the hand's firmware watchdog trips
    res = loop.result
    sup = loop.supervisor
    assert code == EXIT_OK and res.lost_device is None, res.stop_reason
    assert res.stop_reason == "duration"
    assert (sup.state.label, sup.reason.value) == ("hold", "inference_overrun")
    # held once the fallback ran out (N + 1 late decisions; at once when nothing was applied
    # yet), and the policy was not run after that: its inferences are the cycles up to the hold
    held_at = next(i for i, (_, s) in enumerate(triggers) if s == SafetyState.HOLD)
    assert held_at <= 4 + 1, held_at
    assert runner.inferences == held_at + 1
    assert res.rested == len(triggers) - held_at - 1
    # the hold keeps the loop's period: no cycle after it missed a slot, the spacing stays at T
    after = np.diff([t for t, _ in triggers[held_at + 1 :]])
    assert len(after) >= 40
    assert np.median(after) == pytest.approx(PERIOD_NS, rel=0.05)
    assert after.max() < 300_000_000, after.max()  # far below the 500 ms firmware watchdog
    assert res.missed <= 4 * (held_at + 1), res.missed  # only the slow cycles up to the hold
