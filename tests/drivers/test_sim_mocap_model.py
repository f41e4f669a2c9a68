"""Motion-capture noise and dropouts: the fault statistics of the Dactyl rig, seeded."""

from __future__ import annotations

import numpy as np
import pytest
from raas_drivers.sim.mocap_model import MocapModel

RATE_HZ = 12.5


def run(model: MocapModel, seconds: float, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = int(seconds * RATE_HZ)
    vis = np.zeros((n, model.n), dtype=bool)
    pos = np.zeros((n, model.n, 3))
    for k in range(n):
        p, v = model.observe(truth + 0.001 * k, k / RATE_HZ)
        vis[k], pos[k] = v, p
    return pos, vis


def test_dropout_rate_and_duration_over_a_long_seeded_run() -> None:
    m = MocapModel(13, seed=7, noise_m=0.0)
    truth = np.zeros((13, 3))
    _, vis = run(m, 1000.0, truth)
    onsets = (~vis[1:] & vis[:-1]).sum()
    visible_s = vis[:-1].sum() / RATE_HZ
    rate = onsets / visible_s
    assert rate == pytest.approx(0.2, rel=0.1), rate
    # lengths of the invisible runs
    lengths = []
    for j in range(13):
        run_len = 0
        for v in vis[:, j]:
            if not v:
                run_len += 1
            elif run_len:
                lengths.append(run_len / RATE_HZ)
                run_len = 0
    mean = float(np.mean(lengths))
    assert mean == pytest.approx(1.0, abs=0.1), mean
    assert min(lengths) >= 0.8 - 1 / RATE_HZ and max(lengths) <= 1.2 + 1 / RATE_HZ
    assert m.dropouts == onsets  # every onset seen (none at t=0)


def test_frozen_marker_keeps_its_last_position() -> None:
    m = MocapModel(13, seed=1, noise_m=0.0005)
    truth = np.zeros((13, 3))
    pos, vis = run(m, 200.0, truth)
    k, j = np.argwhere(~vis[1:] & vis[:-1])[0]
    k += 1  # first invisible frame
    end = k
    while not vis[end, j]:
        np.testing.assert_array_equal(pos[end, j], pos[k - 1, j])
        end += 1
    assert not np.array_equal(pos[end, j], pos[k - 1, j])  # alive again, moving


def test_noise_is_gaussian_with_the_configured_std() -> None:
    m = MocapModel(13, seed=2, noise_m=0.002, dropout_rate_hz=0.0)
    truth = np.ones((13, 3))
    samples = np.array([m.observe(truth, k / RATE_HZ)[0].copy() for k in range(2000)])
    err = samples - truth
    assert abs(err.mean()) < 1e-4
    assert err.std() == pytest.approx(0.002, rel=0.05)


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    truth = np.zeros((13, 3))
    a = run(MocapModel(13, seed=5), 60.0, truth)
    b = run(MocapModel(13, seed=5), 60.0, truth)
    c = run(MocapModel(13, seed=6), 60.0, truth)
    assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()
    assert a[0].tobytes() != c[0].tobytes()


def test_configurable_rate_and_duration() -> None:
    m = MocapModel(13, seed=3, noise_m=0.0, dropout_rate_hz=1.0, dropout_s=0.2, dropout_jitter_s=0)
    _, vis = run(m, 300.0, np.zeros((13, 3)))
    onsets = (~vis[1:] & vis[:-1]).sum()
    rate = onsets / (vis[:-1].sum() / RATE_HZ)
    assert rate == pytest.approx(1.0, rel=0.1)
    off = MocapModel(13, seed=3, dropout_rate_hz=0.0)
    assert run(off, 100.0, np.zeros((13, 3)))[1].all()
