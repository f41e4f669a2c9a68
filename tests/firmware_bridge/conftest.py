"""Fixtures for the link and emulator tests: a raw pty pair, an emulator (the rig process) with
its event record, and small waiting helpers. Real ptys and real processes throughout."""

from __future__ import annotations

import contextlib
import os
import time
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from raas_drivers.sim import RigConfig, SimRig
from raas_firmware_bridge.emulator.config import LinkConfig
from raas_firmware_bridge.emulator.record import read_events

T = TypeVar("T")


@dataclass
class PtyPair:
    """master: the fd a test plays the board on; path: what the host link opens."""

    master: int
    slave: int
    path: str

    def read(self, timeout_s: float = 2.0) -> bytes:
        deadline = time.monotonic() + timeout_s
        out = b""
        while time.monotonic() < deadline:
            try:
                out += os.read(self.master, 65536)
            except BlockingIOError:
                if out:
                    return out
                time.sleep(0.002)
        return out


@pytest.fixture
def pty_pair() -> Iterator[PtyPair]:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    os.set_blocking(master, False)
    pair = PtyPair(master, slave, os.ttyname(slave))
    try:
        yield pair
    finally:
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def emulator(clock: str = "lockstep", **link: Any) -> SimRig:
    """The firmware emulator as it runs in every simulated cell: the rig process, no cameras,
    with its event record on. Start it with `with emulator(...) as rig:`."""
    cfg = RigConfig(
        clock=clock,  # type: ignore[arg-type]
        cameras=0,
        seed=0,
        link=LinkConfig(record_events=True, **link),
    )
    return SimRig(cfg)


def events(rig: SimRig, event: str | None = None) -> list[dict[str, Any]]:
    found = read_events(rig.events_path)
    return [e for e in found if event is None or e["event"] == event]


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


def exists(path: Path) -> bool:
    return path.exists()
