"""The e-stop reaches the hand's own firmware: the ESTOP frame goes out in the cycle the e-stop
latches, before that cycle's targets, in every mode (idle, stepping, a policy run) and during a
bundle load, when no loop runs. Judged on the firmware emulator's own record."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from raas_client.session import RemoteRobot
from raas_firmware_bridge.emulator.record import read_events

from tests.transport.harness import LeaseIssuer, RobotDaemon, start_daemon, wait_for

pytestmark = [pytest.mark.system, pytest.mark.slow]

RATE_HZ = 12.5  # the example bundles are made for the cell's rate


@pytest.fixture
def robot(tmp_path: Path, issuer: LeaseIssuer) -> Iterator[tuple[RobotDaemon, Path]]:
    record = tmp_path / "events.jsonl"
    cfg = tmp_path / "cell.toml"
    cfg.write_text(f'[rig.link]\nrecord_events = true\n[rig.faults]\nrecord_path = "{record}"\n')
    d = start_daemon(tmp_path / "robot", issuer, rate=RATE_HZ, extra=("--config", str(cfg)))
    try:
        yield d, record
    finally:
        d.stop()


def _hand(record: Path) -> list[dict[str, Any]]:
    return [e for e in read_events(record) if e["board"] == "hand"]


def _estop_cycle(robot: RemoteRobot) -> int:
    """The cycle in which the supervisor latched the e-stop (its FAULT transition)."""
    for t in reversed(robot.status()["safety"]["last_transitions"]):
        if t["to"] == "fault" and t["reason"] == "estop":
            return int(t["cycle"])
    raise AssertionError("no e-stop transition in the daemon's status")


def _assert_estop_in_its_cycle(record: Path, cycle: int) -> None:
    hand = wait_for_estop(record)
    at = next(i for i, e in enumerate(hand) if e["event"] == "estop")
    applied = [e["seq"] for e in hand[:at] if e["event"] == "applied"]
    # the ESTOP frame went out before the targets of the cycle that latched the e-stop ...
    assert applied and max(applied) < cycle, (max(applied, default=None), cycle)
    # ... and the board took no target after it (it holds where it is until RESET)
    assert not [e for e in hand[at:] if e["event"] == "applied"]


def wait_for_estop(record: Path) -> list[dict[str, Any]]:
    assert wait_for(lambda: any(e["event"] == "estop" for e in _hand(record)), 10.0)
    return _hand(record)


def test_estop_while_idle(robot: tuple[RobotDaemon, Path], issuer: LeaseIssuer) -> None:
    d, record = robot
    passer = RemoteRobot(d.control, server_key=d.key)
    try:
        assert wait_for(lambda: len(_hand(record)) > 5, 10.0)  # the loop is running
        passer.estop(lease=issuer.issue(scope="observe", sub="passer"))
        _assert_estop_in_its_cycle(record, _estop_cycle(passer))
    finally:
        passer.close()


def test_estop_while_stepping_then_cleared(
    robot: tuple[RobotDaemon, Path], issuer: LeaseIssuer
) -> None:
    d, record = robot
    ctl = RemoteRobot(d.control, server_key=d.key, lease=issuer.issue())
    try:
        ctl.open("control")
        ctl.arm()
        obs = ctl.observation()
        for _ in range(3):
            ctl.act(obs.cycle, np.array(ctl.info["spaces"]["action"]["idle"]))
            obs = ctl.observation(after=obs.cycle)
        ctl.estop()
        _assert_estop_in_its_cycle(record, _estop_cycle(ctl))
        # cleared: the board's latch is released (RESET) and it takes targets again
        ctl.clear_estop()
        ctl.arm()
        obs = ctl.observation()
        ctl.act(obs.cycle, np.array(ctl.info["spaces"]["action"]["idle"]))
        n = len(_hand(record))
        assert wait_for(lambda: any(e["event"] == "applied" for e in _hand(record)[n:]), 10.0), (
            "the board took no targets after the e-stop was cleared"
        )
        assert any(e["event"] == "reset" for e in _hand(record))
        assert d.alive(), d.output()  # the expected e-stop answers did not fault the link
    finally:
        ctl.close()


@pytest.fixture(scope="module")
def small_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from raas.policy.examples import ensure_examples

    made: Path = ensure_examples(tmp_path_factory.mktemp("bundles"), ["small"])["small"]
    return made


def test_estop_during_a_policy_run(
    robot: tuple[RobotDaemon, Path], issuer: LeaseIssuer, small_bundle: Path
) -> None:
    d, record = robot
    ctl = RemoteRobot(d.control, server_key=d.key, lease=issuer.issue())
    try:
        ctl.open("control")
        ctl.upload(small_bundle)
        ctl.run(episodes=100)
        assert wait_for(lambda: "run_started" in [e["kind"] for e in ctl.events(0.05)], 120.0)
        ctl.estop()
        _assert_estop_in_its_cycle(record, _estop_cycle(ctl))
    finally:
        ctl.close()


def test_estop_during_a_bundle_load(
    robot: tuple[RobotDaemon, Path], issuer: LeaseIssuer, small_bundle: Path
) -> None:
    d, record = robot
    ctl = RemoteRobot(d.control, server_key=d.key, lease=issuer.issue())
    staff = RemoteRobot(d.control, server_key=d.key)
    try:
        ctl.open("control")
        ctl.upload(small_bundle)
        ctl.run(episodes=1)

        # the load has begun once the holding thread re-sends the last cycle's targets
        def refreshing() -> bool:
            seqs = [e["seq"] for e in _hand(record) if e["event"] == "applied"]
            return len(seqs) >= 2 and seqs[-1] == seqs[-2]

        assert wait_for(refreshing, 60.0, interval=0.002)
        sent_ns = time.monotonic_ns()
        staff.estop(lease=issuer.issue(scope="observe", sub="staff"))
        hand = wait_for_estop(record)
        at = next(i for i, e in enumerate(hand) if e["event"] == "estop")
        refreshes = [e for e in hand[:at] if e["event"] == "applied" and e["mono_ns"] >= sent_ns]
        # served every cycle by the holding thread: at most the refresh of the cycle it came in
        # (and one more when the request was still on its way through the sockets)
        assert len(refreshes) <= 2, refreshes
        assert "loaded in" in d.output() or wait_for(lambda: "loaded in" in d.output(), 60.0)
        assert wait_for(lambda: "run_failed" in [e["kind"] for e in ctl.events(0.05)], 30.0)
        assert not [e for e in _hand(record)[at:] if e["event"] == "applied"]
    finally:
        ctl.close()
        staff.close()
