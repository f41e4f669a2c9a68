"""Shared plumbing of the Dynamixel tests: a real servo-chain emulator on a pty, the LEAP
calibration, and hands built on them (the real driver and the real dynamixel-sdk)."""

from __future__ import annotations

import select
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from raas_drivers.dynamixel.calibration import Calibration, load_calibration
from raas_drivers.dynamixel.config import DynamixelHandSettings
from raas_drivers.dynamixel.driver import DynamixelHandDriver
from raas_drivers.dynamixel.emulator import DynamixelEmulator
from raas_drivers.hand import HandState

LEAP_TOML = (
    Path(__file__).resolve().parents[2]
    / "drivers"
    / "raas_drivers"
    / "dynamixel"
    / "leap_hand.toml"
)


@pytest.fixture
def emu() -> Iterator[DynamixelEmulator]:
    with DynamixelEmulator(range(16)) as e:
        yield e


@pytest.fixture
def leap() -> Calibration:
    return load_calibration(LEAP_TOML)


def make_hand(emu: DynamixelEmulator, cal: Calibration, **settings: Any) -> DynamixelHandDriver:
    # A Python emulator on a shared 2-core machine answers late now and then: a wide timeout
    # keeps the tests about behaviour (tests of timeouts set their own).
    settings.setdefault("read_timeout_ms", 500)
    s = DynamixelHandSettings(port=emu.port, calibration=str(cal.source), **settings)
    return DynamixelHandDriver("hand", s, cal)


@pytest.fixture
def hand(emu: DynamixelEmulator, leap: Calibration) -> Iterator[DynamixelHandDriver]:
    h = make_hand(emu, leap)
    h.configure()
    h.activate()
    yield h
    h.shutdown()


def settle(emu: DynamixelEmulator, packets_before: int, n: int, timeout_s: float = 5.0) -> None:
    """Wait until the emulator has handled `n` more packets (a write has no answer to wait for)."""
    end = time.monotonic() + timeout_s
    while emu.chain.packets < packets_before + n:
        if time.monotonic() > end:
            raise AssertionError(f"the emulator handled {emu.chain.packets - packets_before}/{n}")
        time.sleep(0.001)


def read_state(hand: DynamixelHandDriver, k: int, timeout_s: float = 5.0) -> HandState | None:
    """request_state(k), then poll on the hand's fd until the state or the read's end."""
    hand.request_state(k)
    for _ in range(int(timeout_s / 0.005)):
        st = hand.poll(k)
        if st is not None:
            return st
        if hand._active_read is None:  # the read is over without a state (failed)
            return None
        select.select([hand.fileno()], [], [], 0.005)
    raise AssertionError(f"no end of the read of cycle {k} within {timeout_s} s")
