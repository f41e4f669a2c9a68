"""UVC webcams on the real OpenCV. No V4L2 device exists here (no /dev/video*, and v4l2loopback
needs a kernel module this machine cannot load), so the frame path runs against a real OpenCV
capture of a generated video file (backend "any", delivered at the file's frame rate), and the V4L2
path is tested for what it does without a device: the refusal naming it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from raas_drivers.cameras import CameraFrame
from raas_drivers.errors import DeviceLostError, DeviceNotReadyError, DriverConfigError
from raas_drivers.registry import BuildContext, lookup

from tests.drivers.camoc_helpers import collect, require_module, run_cycles

PERIOD_NS = 50_000_000


@pytest.fixture(autouse=True)
def _cv2() -> None:
    require_module("cv2", "opencv-python-headless")


def ctx() -> BuildContext:
    return BuildContext(device="cameras.top", base_dir=Path(), period_ns=PERIOD_NS)


def build(raw: dict[str, Any]) -> Any:
    spec = lookup("cameras", "uvc")
    return spec.build(spec.parse("cameras.top", raw), ctx())


@pytest.fixture
def video(tmp_path: Path) -> Path:
    """3 s of 80x60 MJPG at 30 fps: red, with the frame index in the blue channel."""
    import cv2

    path = tmp_path / "webcam.avi"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (80, 60))
    for i in range(90):
        img = np.zeros((60, 80, 3), np.uint8)
        img[:, :, 2] = 200  # BGR: red
        img[:, :, 0] = 2 * i
        out.write(img)
    out.release()
    return path


@pytest.fixture
def webcam(video: Path) -> Iterator[Any]:
    cam = build({"device": str(video), "backend": "any"})
    try:
        cam.configure()
        cam.activate()
        yield cam
    finally:
        cam.shutdown()


def test_frames_are_free_running_stamped_on_arrival_and_rgb(webcam: Any) -> None:
    assert webcam.resolution == (80, 60)
    got = run_cycles(webcam, range(100, 112), PERIOD_NS / 1e9)
    frames = [f for f in got.values() if isinstance(f, CameraFrame)]
    assert len(frames) == 12, got
    for k, f in got.items():
        assert isinstance(f, CameraFrame)
        assert f.cycle == k
        assert not f.triggered
        assert f.device_ns is None
        assert f.camera == "top"
        assert f.image.shape == (60, 80, 3)
        assert f.image[..., 0].mean() > 150 and f.image[..., 2].mean() < f.image[..., 0].mean()
    ids = [f.frame_id for f in frames]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # newest each cycle, never twice
    # 30 fps into 20 Hz cycles: some frames were newer-overwritten, none handed out twice
    stamps = [f.capture_ns for f in frames]
    assert stamps == sorted(stamps)
    assert webcam.stats()["given"] == 12


def test_a_frame_is_handed_out_once(webcam: Any) -> None:
    first = collect(webcam, 0)
    assert isinstance(first, CameraFrame)
    again = webcam.poll(0)
    assert again is None or again.frame_id != first.frame_id


def test_handed_frame_is_not_overwritten_by_the_reader(webcam: Any) -> None:
    f = collect(webcam, 0)
    assert isinstance(f, CameraFrame)
    blue = f.image[..., 2].copy()
    time.sleep(0.2)  # six more frames from the reader
    assert np.array_equal(f.image[..., 2], blue)


def test_stream_end_raises_device_lost_naming_the_camera(video: Path) -> None:
    cam = build({"device": str(video), "backend": "any", "realtime_file": False})
    try:
        cam.configure()
        cam.activate()
        with pytest.raises(DeviceLostError, match=r"^cameras\.top: .*read failed"):
            for k in range(1000):
                collect(cam, k, timeout_s=0.05)
    finally:
        cam.shutdown()


def test_absent_v4l2_device_is_refused_naming_it() -> None:
    cam = build({"device": "/dev/video97"})
    with pytest.raises(DeviceNotReadyError, match=r"cameras\.top: no device /dev/video97"):
        cam.configure()
    cam.shutdown()


def test_unopenable_source_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "not-a-video.avi"
    junk.write_bytes(b"\0" * 64)
    cam = build({"device": str(junk), "backend": "any", "open_timeout_s": 0.2})
    with pytest.raises(DeviceNotReadyError, match=r"cameras\.top: "):
        cam.configure()
    cam.shutdown()


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({}, "cameras.top.device"),
        ({"device": "/dev/video0", "fourcc": "MJPEG"}, "cameras.top.fourcc"),
        ({"device": "/dev/video0", "backend": "gst"}, "cameras.top.backend"),
        ({"device": "/dev/video0", "fps": 0}, "cameras.top.fps"),
        ({"device": "/dev/video0", "widht": 640}, "cameras.top.widht"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(DriverConfigError) as err:
        lookup("cameras", "uvc").parse("cameras.top", raw)
    assert err.value.device == field


def test_probe(video: Path) -> None:
    spec = lookup("cameras", "uvc")
    assert spec.probe is not None
    absent = spec.probe(spec.parse("cameras.top", {"device": "/dev/video97"}), ctx())
    assert not absent.found and "/dev/video97" in absent.problems[0]
    ok = spec.probe(spec.parse("cameras.top", {"device": str(video), "backend": "any"}), ctx())
    assert ok.ok, ok.problems
    assert ok.details["resolution"] == [80, 60]
