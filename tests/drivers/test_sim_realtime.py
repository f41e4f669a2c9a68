"""The realtime rig in its own processes, reached only over IPC: every source answers each
trigger, stamped on the host's CLOCK_MONOTONIC."""

from __future__ import annotations

import select
import time

import numpy as np
import pytest
from raas_drivers.cameras import CameraFrame
from raas_drivers.hand import HandState
from raas_drivers.mocap import MocapFrame
from raas_drivers.sim import RigConfig
from raas_drivers.trigger import TriggerAck

from tests.drivers.conftest import Cell, bring_up, collect, pulse_host, start_rig, step

pytestmark = [pytest.mark.system]


def test_round_trip_every_source_answers_with_host_monotonic_stamps(realtime_cell: Cell) -> None:
    cell = realtime_cell
    clocks = cell.rig.config.clocks
    assert cell.rig.alive() and cell.rig.pid > 0
    assert cell.rig.renderer_backend in ("egl", "osmesa") or cell.rig.renderer_backend
    for _ in range(3):
        before = time.monotonic_ns()
        k = cell.cycle
        got = step(cell)
        after = time.monotonic_ns()
        hand, ack, mocap = got["hand"], got["trigger"], got["mocap"]
        assert isinstance(hand, HandState) and isinstance(ack, TriggerAck)
        assert isinstance(mocap, MocapFrame)
        for sample in got.values():
            assert sample.cycle == k
            assert before <= sample.capture_ns <= after, sample.__class__.__name__
        assert hand.positions.shape == (24,) and hand.temperatures.shape == (20,)
        assert mocap.positions.shape == (13, 3) and mocap.visible.dtype == bool
        assert cell.devs.mocap.marker_names[0] == "fftip"
        for name in ("left", "right", "top"):
            frame = got[f"cameras.{name}"]
            assert isinstance(frame, CameraFrame) and frame.camera == name
            assert frame.image.shape == (48, 64, 3) and frame.image.dtype == np.uint8
            assert frame.image.max() > 0  # not black
            # taken on the trigger pulse: the same instant in each device's own clock
            assert pulse_host(frame, clocks.cameras) == pulse_host(ack, clocks.trigger)


def test_applied_targets_move_the_hand(realtime_cell: Cell) -> None:
    cell = realtime_cell
    hand = cell.devs.hand
    target = hand.idle_action
    target[2] = 0.3  # A_FFJ3: index finger sideways
    applied = hand.apply(target, cell.cycle - 1)
    np.testing.assert_array_equal(applied, target)
    seq = cell.cycle - 1
    deadline = time.monotonic() + 5.0
    while True:
        state = step(cell)["hand"]
        assert state.applied_seq == seq
        if abs(state.positions[2] - 0.3) < 0.05:
            break
        assert time.monotonic() < deadline, state.positions[2]


def test_physics_follows_the_wall_clock(realtime_cell: Cell) -> None:
    """Block pose differs between two captures some time apart only through physics; what we
    check here is the clock: a hand state asked twice 50 ms apart is stamped 50 ms apart."""
    cell = realtime_cell
    a = step(cell)["hand"].capture_ns
    time.sleep(0.05)  # the quantity under test is the elapsed time itself
    b = step(cell)["hand"].capture_ns
    assert 0.05e9 <= b - a < 0.5e9


def test_fileno_works_with_select_poll(realtime_cell: Cell) -> None:
    cell = realtime_cell
    poller = select.poll()
    for s in cell.sources:
        poller.register(s.fileno(), select.POLLIN)
    k = cell.next_cycle()
    cell.devs.trigger.fire(k)
    cell.devs.hand.request_state(k)
    assert poller.poll(5000), "nothing became readable after a trigger"
    collect(cell.sources, k)


def test_rendering_does_not_stall_the_hand() -> None:
    """640x480 x 3 cameras take longer than a cycle here; the hand, trigger and mocap answers
    must not wait for them (the camera process is separate and skips stale requests)."""
    cfg = RigConfig(clock="realtime", rate_hz=50, cameras=3, camera_width=640, camera_height=480)
    with start_rig(cfg) as rig:
        cell = bring_up(rig)
        core = [cell.devs.hand, cell.devs.trigger, cell.devs.mocap]
        waits: list[int] = []
        start = time.monotonic()
        while time.monotonic() - start < 1.5:
            k = cell.next_cycle()
            sent = cell.devs.trigger.fire(k)
            cell.devs.hand.request_state(k)
            collect(core, k)
            waits.append(time.monotonic_ns() - sent)
        # a rig that waited for renders would be late in most cycles (a render takes >25 ms and
        # one is always running); the pty hops (a kernel worker per direction) can be late once
        # in a while on a loaded 2-core machine, so the bound is on the 95th percentile
        p95, worst = np.percentile(waits, 95), max(waits)
        assert p95 < 20e6, f"95% of hand/trigger/mocap answers within {p95 / 1e6:.1f} ms"
        assert worst < 200e6, f"slowest hand/trigger/mocap answer {worst / 1e6:.1f} ms"
        assert cell.cycle > 20
