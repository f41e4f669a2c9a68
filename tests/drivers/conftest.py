"""Fixtures and helpers for the simulated rig's tests: running rigs, one cycle's collection."""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from raas_drivers import DeviceNotReadyError, Source
from raas_drivers.lifecycle import Device
from raas_drivers.sim import RigConfig, SimDevices, SimRig
from raas_drivers.sim.clocks import DomainClock
from raas_drivers.source import Sample

from tests.conftest import require

T = TypeVar("T")

#: Small frames keep the camera tests quick on a 2-core machine; 640x480 is tested once.
SMALL = {"camera_width": 64, "camera_height": 48}


def pulse_host(sample: Sample, clock: DomainClock) -> int:
    """The host time of a sample's device stamp by the rig's own definition of the device clock
    (drift 0: exact), whole us like the boards."""
    assert sample.device_ns is not None and clock.drift_ppm == 0
    return (sample.device_ns - clock.offset_us * 1000) // 1000 * 1000


def start_rig(cfg: RigConfig) -> SimRig:
    """Start a rig; a camera process that finds no offscreen GL skips (locally) or fails (CI)."""
    rig = SimRig(cfg)
    try:
        rig.start()
    except DeviceNotReadyError as exc:
        if exc.device == "cameras" and "no offscreen GL backend" in str(exc):
            require("offscreen GL", False, str(exc)[:500])
        raise
    return rig


@dataclass
class Cell:
    """A started rig with its devices configured and active, and every Source listed."""

    rig: SimRig
    devs: SimDevices
    sources: list[Source] = field(default_factory=list)
    cycle: int = 0

    def next_cycle(self) -> int:
        k = self.cycle
        self.cycle += 1
        return k


def bring_up(rig: SimRig) -> Cell:
    devs = rig.devices()
    devices: list[Device] = [devs.hand, devs.trigger, devs.mocap]
    if devs.cameras is not None:
        devices.append(devs.cameras)
    for d in devices:
        d.configure()
        d.activate()
    sources: list[Source] = [devs.hand, devs.trigger, devs.mocap]
    if devs.cameras is not None:
        sources += list(devs.cameras.sources())
    return Cell(rig, devs, sources)


def collect(sources: Sequence[Source], cycle: int, timeout_s: float = 10.0) -> dict[str, Any]:
    """Poll every source until each has `cycle` (sleeping in poll(2) on their fds)."""
    poller = select.poll()
    for s in sources:
        poller.register(s.fileno(), select.POLLIN)
    got: dict[str, Any] = {}
    deadline = time.monotonic() + timeout_s
    while True:
        for s in sources:
            if s.source_name not in got:
                sample = s.poll(cycle)
                if sample is not None:
                    got[s.source_name] = sample
        if len(got) == len(sources):
            return got
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            missing = [s.source_name for s in sources if s.source_name not in got]
            raise AssertionError(f"cycle {cycle}: no answer from {missing} in {timeout_s} s")
        poller.poll(max(1, min(100, int(remaining * 1000))))


def step(cell: Cell, timeout_s: float = 10.0) -> dict[str, Any]:
    """One cycle as the loop runs it: fire, request the hand state, the clock fits, collect."""
    k = cell.next_cycle()
    cell.devs.trigger.fire(k)
    cell.devs.hand.request_state(k)
    cell.devs.trigger.settle()
    cell.devs.hand.settle()
    return collect(cell.sources, k, timeout_s)


def process_gone(pid: int) -> bool:
    """True when `pid` does not run any more (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def wait_for(cond: Callable[[], T], timeout_s: float, what: str) -> T:
    """Wait on a condition with a deadline (never a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def realtime_cell() -> Iterator[Cell]:
    """A realtime rig with three small cameras, shared by a module's tests."""
    rig = start_rig(RigConfig(clock="realtime", rate_hz=12.5, cameras=3, seed=0, **SMALL))
    with rig:
        yield bring_up(rig)


@pytest.fixture
def lockstep_cell() -> Iterator[Cell]:
    """A fresh lockstep rig without cameras."""
    with SimRig(RigConfig(clock="lockstep", cameras=0, seed=0)) as rig:
        yield bring_up(rig)
