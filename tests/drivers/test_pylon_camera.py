"""Basler cameras on the real pypylon, against pylon's own camera emulation (PYLON_CAMEMU)."""

from __future__ import annotations

import select
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from raas_drivers.cameras import CameraFrame
from raas_drivers.errors import DeviceLostError, DeviceNotReadyError, DriverConfigError
from raas_drivers.registry import BuildContext, lookup

from tests.drivers.camoc_helpers import collect, require_module

PERIOD_NS = 50_000_000
SMALL = {"width": 64, "height": 48}


@pytest.fixture(autouse=True)
def _pypylon() -> None:
    require_module("pypylon", "pypylon")


def ctx(device: str, shared: dict[str, Any] | None = None) -> BuildContext:
    return BuildContext(
        device=device,
        base_dir=Path(),
        period_ns=PERIOD_NS,
        shared={} if shared is None else shared,
    )


def build(device: str, raw: dict[str, Any], shared: dict[str, Any]) -> Any:
    spec = lookup("cameras", "pylon")
    return spec.build(spec.parse(device, raw), ctx(device, shared))


def emulated(serial: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "serial_number": f"0815-{serial:04d}",
        "emulated": True,
        "trigger_source": "Software",
        **SMALL,
        **extra,
    }


@pytest.fixture
def cell() -> Iterator[tuple[Any, Any, Any]]:
    """Two emulated cameras and the pylon-software trigger, as a cell file builds them."""
    shared: dict[str, Any] = {}
    left = build("cameras.left", emulated(0), shared)
    right = build("cameras.right", emulated(1, pixel_format="Mono8"), shared)
    spec = lookup("trigger", "pylon-software")
    trigger = spec.build(spec.parse("trigger", {}), ctx("trigger", shared))
    devices = (left, right, trigger)
    try:
        for d in devices:
            d.configure()
        for d in devices:
            d.activate()
        yield left, right, trigger
    finally:
        for d in devices:
            d.shutdown()


def test_software_trigger_gives_one_frame_per_cycle_with_ids_and_trigger_time(
    cell: tuple[Any, Any, Any],
) -> None:
    left, right, trigger = cell
    fired: dict[int, int] = {}

    def fire(k: int) -> None:
        fired[k] = trigger.fire(k)

    frames: dict[Any, dict[int, Any]] = {left: {}, right: {}}
    t0 = time.monotonic()
    for k in range(8):
        time.sleep(max(0.0, t0 + k * PERIOD_NS / 1e9 - time.monotonic()))  # the loop's grid
        fire(k)
        for cam in (left, right):
            frames[cam][k] = collect(cam, k)
    for cam in (left, right):
        got = frames[cam]
        assert all(isinstance(f, CameraFrame) for f in got.values()), got
        ids = [f.frame_id for f in got.values() if isinstance(f, CameraFrame)]
        assert ids == list(range(ids[0], ids[0] + 8))  # consecutive block ids
        for k, f in got.items():
            assert isinstance(f, CameraFrame)
            assert f.cycle == k
            assert f.triggered
            assert f.camera == cam.name.removeprefix("cameras.")
            assert f.capture_ns == fired[k]  # emulation has no tick counter: the trigger time
            assert f.device_ns is None
            assert f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8
        assert cam.stats()["frames"] == 8
        assert cam.stats()["missing_cycles"] == 0
        assert cam.clock_domain == "host-arrival"
    assert trigger.stats()["fired"] == 8
    # the emulated test image is not flat, and Mono8 became grey RGB
    last = frames[right][7]
    assert isinstance(last, CameraFrame)
    assert last.image.std() > 0
    assert np.array_equal(last.image[..., 0], last.image[..., 2])


def test_trigger_ack_is_a_source_for_the_cycle(cell: tuple[Any, Any, Any]) -> None:
    _, _, trigger = cell
    sent = trigger.fire(3)
    ack = collect(trigger, 3)
    assert ack is not None and ack.cycle == 3 and ack.capture_ns == sent
    assert trigger.poll(4) is None


def test_a_trigger_the_camera_is_not_ready_for_is_skipped_and_counted(
    cell: tuple[Any, Any, Any],
) -> None:
    """Back to back: the emulated camera is still exposing frame 0 when trigger 1 comes. The
    trigger is skipped (counted), cycle 1 has no frame, and cycle 2's frame is cycle 2's."""
    left, _, trigger = cell
    trigger.fire(0)
    trigger.fire(1)
    assert left.stats()["trigger_not_ready"] == 1
    f0 = collect(left, 0)
    assert isinstance(f0, CameraFrame) and f0.cycle == 0
    assert collect(left, 1, timeout_s=0.2) is None
    trigger.fire(2)
    f = collect(left, 2)
    assert isinstance(f, CameraFrame) and f.cycle == 2
    assert left.stats()["missing_cycles"] == 1


def test_a_cycle_without_trigger_is_counted_missing(cell: tuple[Any, Any, Any]) -> None:
    left, _, trigger = cell
    trigger.fire(0)
    assert collect(left, 0) is not None
    assert collect(left, 1, timeout_s=0.2) is None  # the board "missed" cycle 1
    trigger.fire(2)
    f = collect(left, 2)
    assert isinstance(f, CameraFrame) and f.cycle == 2
    assert left.stats()["missing_cycles"] == 1


def test_fd_turns_readable_when_a_frame_is_queued(cell: tuple[Any, Any, Any]) -> None:
    left, _, trigger = cell
    p = select.poll()
    p.register(left.fileno(), select.POLLIN)
    left.poll(0)
    assert p.poll(0) == []  # nothing queued before the trigger
    trigger.fire(0)
    assert p.poll(2000), "grab-result WaitObject fd never became readable"
    assert collect(left, 0) is not None


def test_poll_never_blocks(cell: tuple[Any, Any, Any]) -> None:
    left, _, _ = cell
    t = time.monotonic()
    for k in range(50):
        assert left.poll(k) is None
    assert time.monotonic() - t < 1.0  # 50 empty polls; a blocking grab would take seconds


def test_line1_trigger_in_the_emulation_takes_no_frame_by_itself() -> None:
    """The emulation offers Line1 as a trigger source but has no line input: a camera set to it
    stays silent (it does not free-run), which is what a real camera does without a pulse."""
    shared: dict[str, Any] = {}
    cam = build("cameras.top", emulated(2, trigger_source="Line1"), shared)
    try:
        cam.configure()
        cam.activate()
        assert collect(cam, 0, timeout_s=0.5) is None
        assert cam.stats()["frames"] == 0
    finally:
        cam.shutdown()


def test_absent_camera_is_refused_naming_the_device() -> None:
    cam = build("cameras.left", emulated(99, open_timeout_s=0.2), {})
    with pytest.raises(DeviceNotReadyError, match=r"cameras\.left.*0815-0099") as err:
        cam.configure()
    assert "(cameras seen: 0815-0000, 0815-0001" in str(err.value)  # what is there instead


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"serial_number": "1", "user_id": "x"}, "cameras.left"),
        ({"serial_number": "1", "exposur_us": 5}, "cameras.left.exposur_us"),
        ({"serial_number": "1", "trigger_source": "Line9"}, "cameras.left.trigger_source"),
        ({"serial_number": "1", "exposure_us": -1}, "cameras.left.exposure_us"),
        ({"user_id": "x", "emulated": True}, "cameras.left"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(DriverConfigError) as err:
        lookup("cameras", "pylon").parse("cameras.left", raw)
    assert err.value.device == field


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"pixel_format": "YUV9000"}, "cameras.left.pixel_format"),
        ({"width": 100_000}, "cameras.left.width"),
        ({"offset_x": 5000}, "cameras.left.offset_x"),
    ],
)
def test_settings_the_camera_refuses_name_the_field(extra: dict[str, Any], field: str) -> None:
    cam = build("cameras.left", emulated(3, **extra), {})
    try:
        with pytest.raises(DriverConfigError) as err:
            cam.configure()
        assert err.value.device == field
    finally:
        cam.shutdown()


def test_removed_camera_raises_device_lost_naming_it(cell: tuple[Any, Any, Any]) -> None:
    left, _, trigger = cell
    trigger.fire(0)
    assert collect(left, 0) is not None
    # What pylon does on a surprise removal: the device object goes away under the camera.
    left._cam.DestroyDevice()
    with pytest.raises(DeviceLostError, match=r"cameras\.left"):
        trigger.fire(1)


def test_removed_camera_is_noticed_by_poll_alone() -> None:
    shared: dict[str, Any] = {}
    cam = build("cameras.left", emulated(4, stale_after_s=0.1), shared)
    try:
        cam.configure()
        cam.activate()
        cam._cam.DestroyDevice()
        time.sleep(0.15)
        with pytest.raises(DeviceLostError, match=r"cameras\.left: camera removed"):
            cam.poll(0)
    finally:
        cam.shutdown()


def test_probe_reports_model_serial_firmware() -> None:
    spec = lookup("cameras", "pylon")
    assert spec.probe is not None
    report = spec.probe(spec.parse("cameras.left", emulated(5)), ctx("cameras.left"))
    assert report.found and report.ok, report.problems
    assert report.model == "Emulation"
    assert report.serial_number == "0815-0005"
    assert report.firmware
    assert "Line1" in report.details["trigger_sources"]
    missing = spec.probe(spec.parse("cameras.left", emulated(98)), ctx("cameras.left"))
    assert not missing.found
    assert "0815-0098" in missing.problems[0] and "0815-0000" in missing.problems[0]
