"""Wear accounting per actuator: the counters' arithmetic, no allocation per cycle, and the
counter file surviving restarts (and a corrupt one being kept aside, counting from zero)."""

from __future__ import annotations

import json
import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from raas.safety.errors import SafetyConfigError, WearFileCorruptError
from raas.safety.wear import WearMeter

NAMES = ("A_X", "A_Y", "A_Z")
LIMITS = np.array([2.0, 1.0, 4.0])
T = 0.08  # 12.5 Hz


def meter() -> WearMeter:
    return WearMeter(NAMES, LIMITS, T, load_fraction=0.5)


def field(m: WearMeter, name: str, key: str) -> float:
    return float(m.totals()["actuators"][name][key])


def test_travel_sums_absolute_steps_from_the_second_sample() -> None:
    m = meter()
    zero = np.zeros(3)
    m.update(np.array([5.0, 1.0, -1.0]), zero, running=False)  # first sample: no travel
    assert m.totals()["actuators"]["A_X"]["travel_rad"] == 0.0
    m.update(np.array([5.5, 0.5, -1.0]), zero, running=False)
    m.update(np.array([5.0, 0.7, -1.0]), zero, running=False)
    assert field(m, "A_X", "travel_rad") == pytest.approx(1.0)
    assert field(m, "A_Y", "travel_rad") == pytest.approx(0.7)
    assert field(m, "A_Z", "travel_rad") == 0.0


def test_non_finite_positions_are_skipped_and_the_gap_is_bridged() -> None:
    m = meter()
    zero = np.zeros(3)
    m.update(np.array([0.0, 0.0, 0.0]), zero, running=True)
    m.update(np.array([np.nan, np.inf, 0.1]), zero, running=True)
    assert field(m, "A_X", "travel_rad") == 0.0
    assert field(m, "A_Y", "travel_rad") == 0.0
    m.update(np.array([0.3, -0.2, 0.1]), zero, running=True)
    # the last finite position (0.0) is the reference after the gap
    assert field(m, "A_X", "travel_rad") == pytest.approx(0.3)
    assert field(m, "A_Y", "travel_rad") == pytest.approx(0.2)
    assert field(m, "A_Z", "travel_rad") == pytest.approx(0.1)
    for key in ("travel_rad", "load_s", "peak_effort", "hours_run"):
        for name in NAMES:
            assert math.isfinite(field(m, name, key))


def test_load_time_counts_cycles_at_or_above_the_load_fraction() -> None:
    m = meter()
    pos = np.zeros(3)
    # ratios: X 0.5 (at the threshold), Y 0.49 (below), Z 0.75 (above); sign does not matter
    efforts = np.array([-1.0, 0.49, 3.0])
    for _ in range(10):
        m.update(pos, efforts, running=False)
    assert field(m, "A_X", "load_s") == pytest.approx(10 * T)
    assert field(m, "A_Y", "load_s") == 0.0
    assert field(m, "A_Z", "load_s") == pytest.approx(10 * T)


def test_peak_effort_is_the_running_max_of_the_effort_ratio() -> None:
    m = meter()
    pos = np.zeros(3)
    m.update(pos, np.array([1.0, -0.2, 4.8]), running=False)
    m.update(pos, np.array([0.5, 0.9, np.nan]), running=False)
    m.update(pos, np.array([np.inf, 0.1, 1.0]), running=False)  # inf is skipped
    assert field(m, "A_X", "peak_effort") == pytest.approx(0.5)
    assert field(m, "A_Y", "peak_effort") == pytest.approx(0.9)
    assert field(m, "A_Z", "peak_effort") == pytest.approx(1.2)
    assert math.isfinite(field(m, "A_X", "load_s"))
    assert field(m, "A_X", "load_s") == pytest.approx(T)  # only the finite 0.5 counted


def test_hours_run_only_while_running() -> None:
    m = meter()
    pos, eff = np.zeros(3), np.zeros(3)
    for i in range(4500):  # 4500 cycles of 80 ms = 360 s = 0.1 h
        m.update(pos, eff, running=i % 2 == 0)
    assert field(m, "A_X", "hours_run") == pytest.approx(0.05)
    assert field(m, "A_Z", "hours_run") == pytest.approx(0.05)


def test_update_allocates_nothing_per_cycle() -> None:
    m = meter()
    rng = np.random.default_rng(1)
    positions = rng.normal(size=(2000, 3))
    efforts = rng.normal(size=(2000, 3))
    m.update(positions[0], efforts[0], running=True)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for i in range(1, 2000):
            m.update(positions[i], efforts[i], running=True)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 1024
    assert peak - before < 4096  # no per-cycle temporaries piling up


def test_totals_are_the_heartbeat_wear_shape() -> None:
    m = meter()
    m.update(np.zeros(3), np.zeros(3), running=True)
    t = m.totals()
    assert set(t) == {"actuators"}
    assert set(t["actuators"]) == set(NAMES)
    for counters in t["actuators"].values():
        assert set(counters) == {"travel_rad", "load_s", "peak_effort", "hours_run"}
        assert all(isinstance(v, float) for v in counters.values())
    json.dumps(t)  # plain JSON


def test_save_and_load_continue_the_counts(tmp_path: Path) -> None:
    path = tmp_path / "wear" / "shadow-1.json"
    m = meter()
    m.update(np.zeros(3), np.array([1.5, 0.0, 0.0]), running=True)
    m.update(np.array([0.2, 0.1, 0.0]), np.array([1.5, 0.0, 0.0]), running=True)
    m.save(path)
    doc = json.loads(path.read_text())
    assert doc["version"] == 1
    assert not list(path.parent.glob(".*.tmp"))  # the temp file was renamed into place

    again = meter()
    assert again.load(path) is True
    assert again.totals() == m.totals()
    # the first sample after a restart is a new reference: no travel from the old position
    again.update(np.array([3.0, 3.0, 3.0]), np.zeros(3), running=True)
    assert field(again, "A_X", "travel_rad") == pytest.approx(0.2)
    again.update(np.array([3.1, 3.0, 3.0]), np.zeros(3), running=True)
    assert field(again, "A_X", "travel_rad") == pytest.approx(0.3)
    assert field(again, "A_X", "load_s") == pytest.approx(2 * T)  # zero effort since
    assert field(again, "A_X", "hours_run") == pytest.approx(4 * T / 3600)


def test_a_missing_file_starts_from_zero(tmp_path: Path) -> None:
    m = meter()
    assert m.load(tmp_path / "none.json") is False
    assert all(v == 0.0 for c in m.totals()["actuators"].values() for v in c.values())


def test_counters_of_actuators_not_on_this_hand_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    wide = WearMeter((*NAMES, "A_OLD"), np.append(LIMITS, 1.0), T)
    wide.update(np.zeros(4), np.zeros(4), running=True)
    wide.update(np.ones(4), np.zeros(4), running=True)
    wide.save(path)
    m = meter()
    m.load(path)
    m.save(path)
    assert json.loads(path.read_text())["actuators"]["A_OLD"]["travel_rad"] == 1.0


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", "not JSON"),
        ('{"version": 99, "actuators": {}}', "version 99"),
        ('{"version": 1}', "no 'actuators'"),
        ('{"version": 1, "actuators": {"A_X": {"travel_rad": -1}}}', "travel_rad"),
        (
            '{"version": 1, "actuators": {"A_X": {"travel_rad": 1, "load_s": "x",'
            ' "peak_effort": 0, "hours_run": 0}}}',
            "load_s",
        ),
        ("[1, 2]", "not a JSON object"),
    ],
)
def test_a_corrupt_file_is_kept_aside_and_counting_restarts(
    tmp_path: Path, content: str, why: str
) -> None:
    path = tmp_path / "w.json"
    path.write_text(content)
    m = meter()
    m.update(np.zeros(3), np.full(3, 9.0), running=True)  # something to be reset
    with pytest.raises(WearFileCorruptError) as err:
        m.load(path)
    assert why in str(err.value)
    assert str(path) in str(err.value)
    kept = tmp_path / "w.json.corrupt"
    assert kept.read_text() == content  # the bad file is kept, byte for byte
    assert not path.exists()
    assert all(v == 0.0 for c in m.totals()["actuators"].values() for v in c.values())
    # the meter keeps working and a later save writes a good file
    m.update(np.zeros(3), np.zeros(3), running=True)
    m.save(path)
    assert meter().load(path) is True
    # a second corrupt file does not overwrite the first one kept
    path.write_text("{also bad")
    with pytest.raises(WearFileCorruptError):
        meter().load(path)
    assert kept.read_text() == content
    assert (tmp_path / "w.json.corrupt.1").read_text() == "{also bad"


def test_bad_construction_is_refused() -> None:
    with pytest.raises(SafetyConfigError, match="effort limits"):
        WearMeter(NAMES, [1.0, 2.0], T)
    with pytest.raises(SafetyConfigError, match="> 0"):
        WearMeter(NAMES, [1.0, 0.0, 1.0], T)
    with pytest.raises(SafetyConfigError, match="period_s"):
        WearMeter(NAMES, LIMITS, 0.0)
    with pytest.raises(SafetyConfigError, match="unique"):
        WearMeter(("A", "A", "B"), LIMITS, T)
