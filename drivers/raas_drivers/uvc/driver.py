"""UVC/V4L2 webcams on OpenCV: free-running frames, stamped on arrival, flagged not triggered.

A webcam has no trigger input and no clock the host can read: it sends frames at its own rate.
OpenCV's VideoCapture.read() blocks until the next frame, and OpenCV gives no file descriptor to
wait on, so one reader thread per camera (inside OpenCV's C++ read, the GIL is released) takes
each frame, stamps it with the host's CLOCK_MONOTONIC as it returns, converts BGR to RGB into the
next of three buffers and writes an eventfd. `fileno()` is that eventfd; `poll(k)` reads it and
hands out the newest frame once, as cycle k's, if it arrived no earlier than half a period before
cycle k began (CycleWindow): `triggered` is False, `frame_id` counts frames since activation.

Errors: DeviceNotReadyError when the device cannot be opened or sends no first frame (naming the
device path), DeviceLostError when the reader sees read() fail or no frame comes for
`lost_after_s` (the camera was unplugged).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from raas_drivers.cameras.driver import CameraDriver, CameraFrame
from raas_drivers.cycle_window import CycleWindow
from raas_drivers.errors import DeviceLostError, DeviceNotReadyError, LifecycleTransitionError
from raas_drivers.uvc.config import UvcSettings


def load_cv2() -> Any:
    import cv2  # noqa: PLC0415 - vendor library, imported on use

    return cv2


def open_capture(cv2: Any, s: UvcSettings) -> Any:
    """An opened VideoCapture with the asked mode, or None."""
    api = cv2.CAP_V4L2 if s.backend == "v4l2" else cv2.CAP_ANY
    cap = cv2.VideoCapture(s.device, api)
    if not cap.isOpened():
        cap.release()
        return None
    if s.fourcc is not None:
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*s.fourcc))
    if s.width is not None:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, s.width)
    if s.height is not None:
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, s.height)
    if s.fps is not None:
        cap.set(cv2.CAP_PROP_FPS, s.fps)
    with contextlib.suppress(Exception):
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a queue of old ones
    return cap


class UvcCamera(CameraDriver):
    """One webcam, a Source of CameraFrame named after its cell key ("cameras.top")."""

    def __init__(self, name: str, settings: UvcSettings, *, period_ns: int) -> None:
        super().__init__(name)
        self.settings = settings
        self.camera = name.rsplit(".", 1)[-1]
        self.window = CycleWindow(period_ns)
        self._cv2: Any = None
        self._cap: Any = None
        self._efd = -1
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._slots: list[np.ndarray] = []
        self._resolution = (0, 0)
        self._fps = 0.0
        self._is_file = False
        # written by the reader thread under _lock
        self._newest = -1  # slot index of the newest frame
        self._newest_ns = 0
        self._count = 0
        self._error: str | None = None
        self._given = -1  # frame count handed out last
        self._handed = -1  # slot of the frame handed out last: valid until the next one
        self._last_arrival = 0
        self.counts = {"frames": 0, "given": 0, "overwritten": 0}

    @property
    def camera_names(self) -> tuple[str, ...]:
        return (self.camera,)

    @property
    def resolution(self) -> tuple[int, int]:
        return self._resolution

    @property
    def source_name(self) -> str:
        return self.name

    @property
    def fps(self) -> float:
        """The frame rate the camera reports after configure."""
        return self._fps

    def sources(self) -> Sequence[UvcCamera]:
        if self._cap is None:
            raise LifecycleTransitionError(self.name, "sources() needs the driver configured")
        return (self,)

    def fileno(self) -> int:
        if self._efd < 0:
            raise LifecycleTransitionError(self.name, f"not configured (state {self.state.value})")
        return self._efd

    def stats(self) -> dict[str, float]:
        with self._lock:
            frames = self._count
        return {**{k: float(v) for k, v in self.counts.items()}, "frames": float(frames)}

    # -- lifecycle -----------------------------------------------------------------------------

    def _on_configure(self) -> None:
        s = self.settings
        cv2 = load_cv2()
        self._cv2 = cv2
        if s.backend == "v4l2" and not Path(s.device).exists():
            raise DeviceNotReadyError(
                self.name, f"no device {s.device} (is the webcam plugged in? ls /dev/v4l/by-id)"
            )
        cap = open_capture(cv2, s)
        if cap is None:
            raise DeviceNotReadyError(self.name, f"OpenCV cannot open {s.device} ({s.backend})")
        deadline = time.monotonic() + s.open_timeout_s
        ok, img = cap.read()
        while not ok and time.monotonic() < deadline:
            time.sleep(0.05)
            ok, img = cap.read()
        if not ok or img is None or img.ndim != 3:
            cap.release()
            raise DeviceNotReadyError(self.name, f"{s.device} sent no colour frame")
        h, w = img.shape[:2]
        self._resolution = (w, h)
        self._fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self._is_file = Path(s.device).is_file()
        self._slots = [np.zeros((h, w, 3), dtype=np.uint8) for _ in range(3)]
        self._cap = cap
        self._efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def _on_activate(self) -> None:
        self._stop.clear()
        with self._lock:
            self._newest, self._error, self._count, self._handed = -1, None, 0, -1
        self._given = -1
        self._last_arrival = time.monotonic_ns()
        self._thread = threading.Thread(target=self._read_loop, name=f"uvc-{self.camera}")
        self._thread.daemon = True
        self._thread.start()

    def _on_deactivate(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(2.0, self.settings.lost_after_s))
            self._thread = None

    def _on_shutdown(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(2.0, self.settings.lost_after_s))
            self._thread = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        if self._efd >= 0:
            os.close(self._efd)
            self._efd = -1

    # -- the reader thread ---------------------------------------------------------------------

    def _read_loop(self) -> None:
        cap, cv2 = self._cap, self._cv2
        pace = 1.0 / self._fps if self._is_file and self.settings.realtime_file and self._fps else 0
        next_t = time.monotonic()
        slot = 0
        scratch: np.ndarray | None = None
        while not self._stop.is_set():
            ok, scratch = cap.read(scratch)
            arrival = time.monotonic_ns()
            if not ok or scratch is None:
                with self._lock:
                    self._error = "read failed (camera unplugged or stream ended)"
                os.eventfd_write(self._efd, 1)
                return
            with self._lock:  # never the newest frame's slot, nor the one handed to the loop
                while slot in (self._newest, self._handed):
                    slot = (slot + 1) % len(self._slots)
            cv2.cvtColor(scratch, cv2.COLOR_BGR2RGB, dst=self._slots[slot])
            with self._lock:
                self._newest, self._newest_ns = slot, arrival
                self._count += 1
            os.eventfd_write(self._efd, 1)
            slot = (slot + 1) % len(self._slots)
            if pace:
                next_t += pace
                delay = next_t - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_t = time.monotonic()

    # -- polling -------------------------------------------------------------------------------

    def poll(self, cycle: int) -> CameraFrame | None:
        if self._efd < 0:
            raise LifecycleTransitionError(self.name, f"not configured (state {self.state.value})")
        now = time.monotonic_ns()
        self.window.mark(cycle, now)
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._efd)
        with self._lock:
            slot, arrival, count, error = self._newest, self._newest_ns, self._count, self._error
        if error is not None:
            raise DeviceLostError(self.name, f"{self.settings.device}: {error}")
        if slot >= 0 and count != self._given:
            self._last_arrival = arrival
            if self.window.cycle_of(arrival) == cycle:
                if self._given >= 0 and count > self._given + 1:
                    self.counts["overwritten"] += count - self._given - 1
                self._given = count
                with self._lock:
                    self._handed = slot
                self.counts["given"] += 1
                return CameraFrame(
                    cycle=cycle,
                    capture_ns=arrival,
                    camera=self.camera,
                    image=self._slots[slot],
                    triggered=False,
                    frame_id=count - 1,
                    device_ns=None,
                )
        if now - self._last_arrival > self.settings.lost_after_s * 1e9:
            raise DeviceLostError(
                self.name,
                f"{self.settings.device}: no frame for {self.settings.lost_after_s:g} s",
            )
        return None
