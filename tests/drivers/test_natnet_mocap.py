"""OptiTrack NatNet mocap on the real `natnet` package, against the NatNet server emulator."""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from raas_drivers.errors import DeviceLostError, DeviceNotReadyError, DriverConfigError
from raas_drivers.mocap import MocapFrame
from raas_drivers.natnet.emulator import NatNetEmulator
from raas_drivers.registry import BuildContext, lookup

from tests.drivers.camoc_helpers import collect, require_module, run_cycles

PERIOD_NS = 40_000_000
MARKERS = {
    "ff_tip": {"rigid_body": "hand", "marker": 1},
    "thtip": {"rigid_body": "hand", "marker": 5},
    "block": {"rigid_body": "block"},
}


@pytest.fixture(autouse=True)
def _natnet() -> None:
    require_module("natnet", "natnet")


def ctx() -> BuildContext:
    return BuildContext(device="mocap", base_dir=Path(), period_ns=PERIOD_NS)


def build(port: int, **extra: Any) -> Any:
    spec = lookup("mocap", "natnet")
    raw = {"command_port": port, "markers": MARKERS, "connect_timeout_s": 2.0, **extra}
    return spec.build(spec.parse("mocap", raw), ctx())


@pytest.fixture
def emulator() -> Iterator[NatNetEmulator]:
    with NatNetEmulator(rate_hz=100.0) as emu:
        yield emu


@pytest.fixture
def mocap(emulator: NatNetEmulator) -> Iterator[Any]:
    m = build(emulator.address[1])
    try:
        m.configure()
        m.activate()
        yield m
    finally:
        m.shutdown()


def frames(m: Any, cycles: range) -> list[MocapFrame]:
    got = run_cycles(m, cycles, PERIOD_NS / 1e9)
    out = [f for f in got.values() if isinstance(f, MocapFrame)]
    assert len(out) == len(cycles), got
    return out


@pytest.mark.parametrize("version", ["3.0", "3.1", "4.0", "4.1"])
def test_frames_arrive_per_cycle_with_mapped_rows(version: str) -> None:
    with NatNetEmulator(rate_hz=100.0, version=version) as emu:
        m = build(emu.address[1])
        try:
            m.configure()
            m.activate()
            assert m.server_info["natnet_version"].startswith(version)
            assert m.bodies == {"hand": 1, "block": 2}
            got = frames(m, range(10, 20))
        finally:
            m.shutdown()
    assert [f.cycle for f in got] == list(range(10, 20))
    for f in got:
        assert f.positions.shape == (3, 3) and f.visible.all()
        # y-up turned to z-up: the hand is 30 cm up, the block 22 cm; fingertips ~9 cm in front
        assert f.positions[0, 2] == pytest.approx(0.30, abs=0.03)
        assert f.positions[2, 2] == pytest.approx(0.22, abs=0.01)
        assert f.positions[0, 1] == pytest.approx(-0.09, abs=0.02)
    assert all(b.capture_ns > a.capture_ns for a, b in itertools.pairwise(got))
    assert not np.array_equal(got[0].positions, got[-1].positions)  # the scene moves


def test_capture_time_is_the_server_clock_mapped_to_the_host(mocap: Any) -> None:
    got = frames(mocap, range(25))
    stats = mocap.stats()
    assert stats["clock_observations"] >= 25
    # the emulator's clock runs 1000 s ahead of its start; the mapping takes that off
    now = time.monotonic_ns()
    assert now - 1_000_000_000 < got[-1].capture_ns <= now
    assert stats["clock_residual_ns"] < 5_000_000  # kernel receive stamps, wide margin
    # each frame carries the server's own stamp beside it: Motive's frame time (1000 s + the
    # emulator's uptime), increasing, in ns
    stamps = [f.device_ns for f in got]
    assert all(s is not None and 1_000_000_000_000 <= s < 1_100_000_000_000 for s in stamps)
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


@pytest.mark.parametrize("mode", ["absent", "occluded"])
def test_dropout_keeps_last_position_and_is_invisible(
    emulator: NatNetEmulator, mocap: Any, mode: str
) -> None:
    before = frames(mocap, range(5))[-1]
    emulator.dropout("thtip", mode)
    time.sleep(0.05)
    during = frames(mocap, range(5, 10))
    for f in during[1:]:
        assert not f.visible[1]
        assert f.visible[0] and f.visible[2]
        assert np.array_equal(f.positions[1], during[1].positions[1])  # frozen
    assert np.allclose(during[-1].positions[1], before.positions[1], atol=0.02)
    assert np.any(during[-1].positions[1] != 0.0)  # not the occluded marker's zeros
    emulator.dropout("thtip", None)
    time.sleep(0.05)
    after = frames(mocap, range(10, 13))
    assert after[-1].visible.all()


def test_frozen_body_repeats_its_pose_and_is_counted(emulator: NatNetEmulator, mocap: Any) -> None:
    frames(mocap, range(3))
    base = mocap.stats()["frozen_rows"]
    emulator.freeze("block")
    time.sleep(0.05)
    got = frames(mocap, range(3, 10))
    assert all(f.visible[2] for f in got)
    assert all(np.array_equal(f.positions[2], got[0].positions[2]) for f in got)
    assert not np.array_equal(got[0].positions[0], got[-1].positions[0])  # the hand moves on
    assert mocap.stats()["frozen_rows"] > base


def test_untracked_rigid_body_is_invisible(emulator: NatNetEmulator, mocap: Any) -> None:
    frames(mocap, range(3))
    emulator.track_lost("block")
    time.sleep(0.05)
    got = frames(mocap, range(3, 6))
    assert not got[-1].visible[2] and got[-1].visible[0]


def test_vanished_server_raises_device_lost_naming_it(emulator: NatNetEmulator) -> None:
    m = build(emulator.address[1], lost_after_s=0.3)
    try:
        m.configure()
        m.activate()
        frames(m, range(3))
        emulator.close()
        with pytest.raises(DeviceLostError, match=r"^mocap: no NatNet frame"):
            for k in range(3, 100):
                collect(m, k, timeout_s=0.1)
    finally:
        m.shutdown()


def test_no_server_is_refused_at_configure() -> None:
    with NatNetEmulator() as emu:  # bound, then closed: a port nobody answers on
        port = emu.address[1]
    m = build(port, connect_timeout_s=0.3)
    with pytest.raises(DeviceNotReadyError, match=rf"mocap: no NatNet server answered .*:{port}"):
        m.configure()
    m.shutdown()


def test_a_local_address_this_host_lacks_is_named() -> None:
    """192.0.2.1 (TEST-NET-1) is nobody's: the refusal names mocap.local, on one line."""
    m = build(1510, local="192.0.2.1", connect_timeout_s=0.3)
    with pytest.raises(DeviceNotReadyError) as err:
        m.configure()
    m.shutdown()
    msg = str(err.value)
    assert "'192.0.2.1' is not an address of this host: set mocap.local" in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("markers", "field"),
    [
        ({"x": {"rigid_body": "wrist"}}, "mocap.markers.x.rigid_body"),
        ({"x": {"rigid_body": "hand", "marker": 9}}, "mocap.markers.x.marker"),
    ],
)
def test_rows_the_server_lacks_are_refused_naming_the_field(
    emulator: NatNetEmulator, markers: dict[str, Any], field: str
) -> None:
    m = build(emulator.address[1], markers=markers)
    try:
        with pytest.raises(DriverConfigError) as err:
            m.configure()
        assert err.value.device == field
    finally:
        m.shutdown()


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"markers": {}}, "mocap.markers"),
        ({"markers": {"x": {"marker": 2}}}, "mocap.markers.x"),
        ({"markers": {"x": {"labeled_id": 1}}, "comand_port": 1}, "mocap.comand_port"),
        ({"markers": {"x": {"labeled_id": 1}}, "up_axis": "x"}, "mocap.up_axis"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(DriverConfigError) as err:
        lookup("mocap", "natnet").parse("mocap", raw)
    assert err.value.device == field


def test_probe_reports_server_and_bodies(emulator: NatNetEmulator) -> None:
    spec = lookup("mocap", "natnet")
    assert spec.probe is not None
    raw = {"command_port": emulator.address[1], "markers": MARKERS}
    report = spec.probe(spec.parse("mocap", raw), ctx())
    assert report.ok, report.problems
    assert report.model == "raas NatNet emulator"
    assert report.firmware is not None and "NatNet 4.1" in report.firmware
    assert report.details["rigid_bodies"] == {"hand": 1, "block": 2}
    raw["markers"] = {"x": {"rigid_body": "wrist"}}
    bad = spec.probe(spec.parse("mocap", raw), ctx())
    assert bad.found and not bad.ok and "wrist" in bad.problems[0]


def test_emulator_runs_as_a_program(tmp_path: Path) -> None:
    with NatNetEmulator() as emu:
        port = emu.address[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "raas_drivers.natnet.emulator",
            "--port",
            str(port),
            "--rate",
            "50",
            "--dropout",
            "thtip:occluded",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert f":{port}" in proc.stdout.readline()
        m = build(port)
        try:
            m.configure()
            m.activate()
            got = frames(m, range(3))
        finally:
            m.shutdown()
        assert not got[-1].visible[1] and got[-1].visible[0]
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_multicast_frames_arrive_on_the_data_socket() -> None:
    data_port = free_udp_port()
    group = "239.255.42.99"
    with NatNetEmulator(rate_hz=100.0, multicast=(group, data_port)) as emu:
        m = build(emu.address[1], multicast=True, multicast_group=group, data_port=data_port)
        try:
            m.configure()
            m.activate()
            got = frames(m, range(5))
            fd = m.fileno()
            assert fd == m._client._NatNetClient__data_socket.fileno()
        finally:
            m.shutdown()
    assert [f.cycle for f in got] == list(range(5)) and got[-1].visible.all()
