"""Basler cameras on pypylon: hardware-triggered frames with the camera's ids and timestamps.

One PylonCamera per `[cameras.NAME]` section, one Source (itself). Acquisition:

- FrameStart trigger on (TriggerSelector=FrameStart, TriggerMode=On) from `trigger_source`
  (Line1 by default: the trigger board's pulse on the opto-isolated input starts each exposure);
- pylon's own grab engine (C++ threads inside pylon) queues the finished frames; the driver never
  waits for one: `poll()` drains them with `RetrieveResult(0, TimeoutHandling_Return)`, and
  `fileno()` is the file descriptor of the camera's grab-result WaitObject, which pylon makes
  readable while a result is queued. No Python thread runs.
- each frame carries its block id (`frame_id`, gaps counted as dropped), the camera's tick
  counter (`device_ns`), and `capture_ns` on the host clock: the tick counter mapped through a
  ClockMapper fed by latching the counter against the host clock every `clock_sync_interval_s`
  (TimestampLatch/TimestampLatchValue on USB3 and ace 2 cameras, GevTimestampControlLatch on GigE);
  a camera without a readable counter (pylon's emulation) is stamped on arrival instead;
- the cycle of a frame: the CycleWindow (raas_drivers.cycle_window) of the cycles' start times,
  from the software trigger's fire() when it is the pylon-software trigger, else from the first
  poll of each cycle; a frame goes to the latest cycle that began (less half a period) before it
  was captured. Cycles that end without a frame are counted as missing.

Errors: DeviceNotReadyError when the camera is absent or refuses a setting at configure (naming
the setting), DeviceLostError naming the camera when it is removed or stops grabbing while active.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from raas_drivers.cameras.driver import CameraDriver, CameraFrame
from raas_drivers.clock_sync import ClockMapper
from raas_drivers.cycle_window import CycleWindow
from raas_drivers.errors import (
    DeviceLostError,
    DeviceNotReadyError,
    DriverConfigError,
    LifecycleTransitionError,
)
from raas_drivers.pylon.config import PylonCameraSettings, PylonSoftwareTriggerSettings
from raas_drivers.trigger.driver import TriggerAck, TriggerDriver

#: Emulated cameras pylon is asked for when a cell names one (PYLON_CAMEMU); serials 0815-0000...
EMULATED_CAMERAS = 8

#: PixelFormat names that differ between SFNC 2 cameras and older ones (and the emulation).
_PIXEL_ALIASES = {
    "RGB8": "RGB8Packed",
    "RGB8Packed": "RGB8",
    "BGR8": "BGR8Packed",
    "BGR8Packed": "BGR8",
}


def load_pylon(emulated: bool) -> Any:
    """Import pypylon (on first use: it is a vendor library); ask for emulated cameras first."""
    if emulated:
        have = int(os.environ.get("PYLON_CAMEMU", "0") or "0")
        if have < EMULATED_CAMERAS:
            os.environ["PYLON_CAMEMU"] = str(EMULATED_CAMERAS)
    from pypylon import pylon  # noqa: PLC0415

    return pylon


def find_device(pylon: Any, settings: PylonCameraSettings) -> Any | None:
    """The DeviceInfo of the camera the settings name, or None."""
    for info in pylon.TlFactory.GetInstance().EnumerateDevices():
        if settings.serial_number is not None and info.GetSerialNumber() == settings.serial_number:
            return info
        if settings.user_id is not None and info.GetUserDefinedName() == settings.user_id:
            return info
    return None


def _node(camera: Any, *names: str) -> Any | None:
    """The first of `names` the camera's node map has and can access, else None."""
    for name in names:
        try:
            node = getattr(camera, name)
            if node.GetAccessMode() in (0, 1):  # NI, NA
                continue
            return node
        except Exception:
            continue
    return None


class PylonHub:
    """What a cell's pylon devices share (BuildContext.shared["pylon"]): the cameras, so the
    pylon-software trigger can fire them, and the start of each cycle as the trigger saw it."""

    def __init__(self) -> None:
        self.cameras: list[PylonCamera] = []

    def attach(self, camera: PylonCamera) -> None:
        if camera not in self.cameras:
            self.cameras.append(camera)

    def detach(self, camera: PylonCamera) -> None:
        with contextlib.suppress(ValueError):
            self.cameras.remove(camera)

    def close(self) -> None:
        self.cameras.clear()


class PylonCamera(CameraDriver):
    """One Basler camera, a Source of CameraFrame named after its cell key ("cameras.left")."""

    def __init__(
        self,
        name: str,
        settings: PylonCameraSettings,
        *,
        period_ns: int,
        hub: PylonHub | None = None,
    ) -> None:
        super().__init__(name)
        self.settings = settings
        self.camera = name.rsplit(".", 1)[-1]
        self.hub = hub
        self.window = CycleWindow(period_ns)
        self.clock = ClockMapper(name, min_samples=4)
        self._pylon: Any = None
        self._cam: Any = None
        self._converter: Any = None
        self._fd = -1
        self._resolution = (0, 0)
        self._slots: list[np.ndarray] = []
        self._slot = 0
        self._frame: CameraFrame | None = None  # the newest frame, for a later poll of its cycle
        self._last_id = -1
        self._last_cycle = -1
        self._last_frame_ns = 0
        self._tick_ns = 0.0  # ns per camera tick; 0: the camera has no readable counter
        self._latch: tuple[Any, Any] | None = None
        self._fired: deque[tuple[int, int]] = deque(maxlen=64)  # software triggers not yet seen
        self._next_sync_ns = 0
        self.device_info: dict[str, str] = {}
        self.counts = {
            "frames": 0,
            "missing_cycles": 0,
            "dropped_ids": 0,
            "late": 0,
            "failed_grabs": 0,
            "unassigned": 0,
            "trigger_not_ready": 0,
        }
        self._can_wait_ready = False
        self._status: Any = None  # AcquisitionStatus node reading FrameTriggerWait, if any

    # -- contract ------------------------------------------------------------------------------

    @property
    def camera_names(self) -> tuple[str, ...]:
        return (self.camera,)

    @property
    def resolution(self) -> tuple[int, int]:
        return self._resolution

    @property
    def source_name(self) -> str:
        return self.name

    def sources(self) -> Sequence[PylonCamera]:
        if self._cam is None:
            raise LifecycleTransitionError(self.name, "sources() needs the driver configured")
        return (self,)

    def fileno(self) -> int:
        if self._fd < 0:
            raise LifecycleTransitionError(self.name, f"not grabbing (state {self.state.value})")
        return self._fd

    @property
    def software_triggered(self) -> bool:
        return self.settings.trigger_source == "Software"

    @property
    def clock_domain(self) -> str:
        """'camera' when frames carry the camera's mapped timestamp, 'host-arrival' otherwise."""
        return "camera" if self._tick_ns > 0 else "host-arrival"

    def stats(self) -> dict[str, float]:
        out = {k: float(v) for k, v in self.counts.items()}
        if self._tick_ns > 0:
            out.update({f"clock_{k}": v for k, v in self.clock.stats().items()})
        return out

    # -- lifecycle -----------------------------------------------------------------------------

    def _on_configure(self) -> None:
        s = self.settings
        pylon = load_pylon(s.emulated)
        self._pylon = pylon
        deadline = time.monotonic() + s.open_timeout_s
        info = find_device(pylon, s)
        while info is None and time.monotonic() < deadline:
            time.sleep(0.1)
            info = find_device(pylon, s)
        if info is None:
            who = (
                f"serial_number {s.serial_number!r}"
                if s.serial_number is not None
                else f"user_id {s.user_id!r}"
            )
            seen = [d.GetSerialNumber() for d in pylon.TlFactory.GetInstance().EnumerateDevices()]
            raise DeviceNotReadyError(
                self.name,
                f"no Basler camera with {who} found (cameras seen: {', '.join(seen) or 'none'}; "
                "raasd devices probes them)",
            )
        try:
            cam = pylon.InstantCamera(pylon.TlFactory.GetInstance().CreateDevice(info))
            cam.Open()
        except Exception as exc:
            raise DeviceNotReadyError(self.name, f"cannot open camera: {exc}") from exc
        self._cam = cam
        try:
            self.device_info = {
                "model": str(info.GetModelName()),
                "serial_number": str(info.GetSerialNumber()),
                "device_class": str(info.GetDeviceClass()),
            }
            self._apply_settings(cam)
            w, h = int(cam.Width.Value), int(cam.Height.Value)
            self._resolution = (w, h)
            self._slots = [np.zeros((h, w, 3), dtype=np.uint8) for _ in range(3)]
            self._converter = pylon.ImageFormatConverter()
            self._converter.OutputPixelFormat = pylon.PixelType_RGB8packed
            self._find_clock(cam)
        except BaseException:
            self._close()
            raise

    def _apply_settings(self, cam: Any) -> None:
        s = self.settings

        def put(field: str, value: Any, *names: str) -> None:
            node = _node(cam, *names)
            if node is None:
                raise DriverConfigError(
                    f"{self.name}.{field}", f"this camera has no {' or '.join(names)} setting"
                )
            try:
                node.Value = value
            except Exception as exc:
                raise DriverConfigError(
                    f"{self.name}.{field}", f"camera refused {value!r}: {exc}"
                ) from exc

        formats = tuple(cam.PixelFormat.Symbolics)
        fmt = s.pixel_format
        if fmt not in formats:
            fmt = _PIXEL_ALIASES.get(fmt, fmt)
        if fmt not in formats:
            raise DriverConfigError(
                f"{self.name}.pixel_format",
                f"{s.pixel_format!r} not offered by this camera (it has: {', '.join(formats)})",
            )
        put("pixel_format", fmt, "PixelFormat")
        # ROI: offsets to 0 first so a smaller width/height always fits, then size, then offsets.
        put("offset_x", 0, "OffsetX")
        put("offset_y", 0, "OffsetY")
        put("width", s.width if s.width is not None else int(cam.Width.Max), "Width")
        put("height", s.height if s.height is not None else int(cam.Height.Max), "Height")
        put("offset_x", s.offset_x, "OffsetX")
        put("offset_y", s.offset_y, "OffsetY")
        put("exposure_us", float(s.exposure_us), "ExposureTime", "ExposureTimeAbs")
        if s.gain_db is not None:
            put("gain_db", float(s.gain_db), "Gain", "GainAbs")
        # Only FrameStart is triggered; every other trigger off (a camera left in burst mode by
        # another program would otherwise wait for a second trigger).
        selectors = tuple(cam.TriggerSelector.Symbolics)
        for sel in selectors:
            cam.TriggerSelector.Value = sel
            with contextlib.suppress(Exception):
                cam.TriggerMode.Value = "Off"
        if "FrameStart" not in selectors:
            raise DriverConfigError(
                f"{self.name}.trigger_source", "camera has no FrameStart trigger"
            )
        cam.TriggerSelector.Value = "FrameStart"
        put("trigger_source", s.trigger_source, "TriggerSource")
        put("trigger_activation", s.trigger_activation, "TriggerActivation")
        if s.trigger_delay_us:
            put("trigger_delay_us", float(s.trigger_delay_us), "TriggerDelay", "TriggerDelayAbs")
        cam.TriggerMode.Value = "On"
        if _node(cam, "AcquisitionMode") is not None:
            cam.AcquisitionMode.Value = "Continuous"
        cam.MaxNumBuffer.Value = s.buffers

    def _find_clock(self, cam: Any) -> None:
        """Which node pair latches the tick counter, and the tick length."""
        self._tick_ns = 0.0
        self._latch = None
        if self.settings.clock_sync_interval_s <= 0:
            return
        usb = (_node(cam, "TimestampLatch"), _node(cam, "TimestampLatchValue"))
        gige = (_node(cam, "GevTimestampControlLatch"), _node(cam, "GevTimestampValue"))
        if usb[0] is not None and usb[1] is not None:
            self._latch = usb
            self._tick_ns = 1.0  # USB3 Vision and ace 2 count nanoseconds
        elif gige[0] is not None and gige[1] is not None:
            freq = _node(cam, "GevTimestampTickFrequency")
            if freq is not None and int(freq.Value) > 0:
                self._latch = gige
                self._tick_ns = 1e9 / int(freq.Value)

    def _sync_clock(self, n: int = 1) -> None:
        """Latch the camera's counter `n` times between two host stamps (request/response)."""
        if self._latch is None:
            return
        self._require_attached()
        latch, value = self._latch
        for _ in range(n):
            before = time.monotonic_ns()
            latch.Execute()
            ticks = int(value.Value)
            after = time.monotonic_ns()
            self.clock.add(round(ticks * self._tick_ns), before, after)
        interval = round(self.settings.clock_sync_interval_s * 1e9)
        self._next_sync_ns = time.monotonic_ns() + interval

    def _on_activate(self) -> None:
        cam, pylon = self._cam, self._pylon
        self._frame = None
        self._last_id = -1
        self._last_cycle = -1
        self._fired.clear()
        try:
            self._sync_clock(8)
            cam.StartGrabbing(pylon.GrabStrategy_OneByOne)
            self._fd = int(cam.GetGrabResultWaitObject().GetFd())
            # A trigger before the camera waits for one is lost (the emulation drops it).
            self._can_wait_ready = bool(cam.CanWaitForFrameTriggerReady())
            self._status = None
            selector = _node(cam, "AcquisitionStatusSelector")
            status = _node(cam, "AcquisitionStatus")
            if selector is not None and status is not None:
                with contextlib.suppress(Exception):
                    selector.Value = "FrameTriggerWait"
                    self._status = status
            ready = not self._can_wait_ready or cam.WaitForFrameTriggerReady(
                round(self.settings.open_timeout_s * 1000), pylon.TimeoutHandling_Return
            )
        except Exception as exc:
            raise DeviceNotReadyError(self.name, f"cannot start grabbing: {exc}") from exc
        if not ready:
            with contextlib.suppress(Exception):
                cam.StopGrabbing()
            self._fd = -1
            raise DeviceNotReadyError(self.name, "camera never became ready for a frame trigger")
        self._last_frame_ns = time.monotonic_ns()
        if self.hub is not None:
            self.hub.attach(self)

    def _on_deactivate(self) -> None:
        if self.hub is not None:
            self.hub.detach(self)
        self._fd = -1
        if self._cam is not None:
            with contextlib.suppress(Exception):
                self._cam.StopGrabbing()

    def _on_shutdown(self) -> None:
        self._close()

    def _close(self) -> None:
        if self.hub is not None:
            self.hub.detach(self)
        self._fd = -1
        cam, self._cam = self._cam, None
        if cam is not None:
            with contextlib.suppress(Exception):
                cam.StopGrabbing()
            with contextlib.suppress(Exception):
                cam.Close()
            with contextlib.suppress(Exception):
                cam.DestroyDevice()

    # -- software trigger ----------------------------------------------------------------------

    def fire_software(self, cycle: int, trigger_ns: int, wait_ready_ms: int) -> None:
        """Execute TriggerSoftware for `cycle` (the pylon-software trigger calls this)."""
        cam = self._cam
        if cam is None:
            raise LifecycleTransitionError(self.name, "software trigger needs the camera open")
        self.window.mark(cycle, trigger_ns)
        self._require_attached()  # cached nodes of a detached device would crash pylon
        try:
            # A trigger the camera is not ready for (still exposing or reading out the last
            # frame) would be dropped by the camera without a word, and the next frame paired
            # with the wrong cycle: read its FrameTriggerWait status first (one register read;
            # WaitForFrameTriggerReady costs ~1 ms even with timeout 0, so only when asked to
            # wait) and skip the trigger, counted, when it is not waiting.
            if wait_ready_ms and self._can_wait_ready:
                ready = cam.WaitForFrameTriggerReady(
                    wait_ready_ms, self._pylon.TimeoutHandling_Return
                )
            else:
                ready = self._status is None or bool(self._status.Value)
            if not ready:
                self.counts["trigger_not_ready"] += 1
                return  # this cycle's frame will be counted missing
            cam.ExecuteSoftwareTrigger()
            self._fired.append((cycle, trigger_ns))
        except Exception as exc:
            raise DeviceLostError(self.name, f"software trigger failed: {exc}") from exc

    # -- polling -------------------------------------------------------------------------------

    def poll(self, cycle: int) -> CameraFrame | None:
        cam = self._cam
        if cam is None or self._fd < 0:
            raise LifecycleTransitionError(self.name, f"not grabbing (state {self.state.value})")
        now = time.monotonic_ns()
        self.window.mark(cycle, now)
        got = False
        while True:
            try:
                result = cam.RetrieveResult(0, self._pylon.TimeoutHandling_Return)
            except Exception as exc:
                raise DeviceLostError(self.name, f"camera stopped grabbing: {exc}") from exc
            if not result.IsValid():
                break
            try:
                got = True
                self._take(result, cycle)
            finally:
                result.Release()
        frame = self._frame
        if frame is not None and frame.cycle == cycle:
            return frame
        if not got and now - self._last_frame_ns > self.settings.stale_after_s * 1e9:
            self._check_attached()
        if self._latch is not None and now >= self._next_sync_ns:
            try:
                self._sync_clock()
            except Exception as exc:
                raise DeviceLostError(self.name, f"timestamp latch failed: {exc}") from exc
        return None

    def _require_attached(self) -> None:
        cam = self._cam
        if cam is None or not cam.IsPylonDeviceAttached() or cam.IsCameraDeviceRemoved():
            raise DeviceLostError(self.name, "camera removed")

    def _check_attached(self) -> None:
        self._require_attached()
        if not self._cam.IsGrabbing():
            raise DeviceLostError(self.name, "camera no longer grabbing")

    def _take(self, result: Any, cycle: int) -> None:
        arrival = time.monotonic_ns()
        self._last_frame_ns = arrival
        if not result.GrabSucceeded():
            self.counts["failed_grabs"] += 1
            return
        block_id = int(result.BlockID)
        gap = block_id - self._last_id - 1 if self._last_id >= 0 else 0
        if gap > 0:
            self.counts["dropped_ids"] += gap
        self._last_id = block_id
        ticks = int(result.TimeStamp)
        device_ns = round(ticks * self._tick_ns) if self._tick_ns > 0 and ticks else None
        capture = arrival
        if device_ns is not None and self.clock.ready:
            capture = self.clock.to_host(device_ns)
        frame_cycle: int | None
        if self._fired:
            # Software trigger: the n-th frame answers the n-th trigger (a dropped block id
            # consumed a trigger too). Exposure began at the trigger, the capture time unless the
            # camera's own clock says better.
            for _ in range(min(max(gap, 0), len(self._fired) - 1)):
                self._fired.popleft()
            frame_cycle, fired_ns = self._fired.popleft()
            if device_ns is None or not self.clock.ready:
                capture = fired_ns
        else:
            frame_cycle = self.window.cycle_of(capture)
        if frame_cycle is None:
            self.counts["unassigned"] += 1
            return
        if frame_cycle < cycle:  # its collect window is over: it can no longer be used
            self.counts["late"] += 1
            return
        if self._last_cycle >= 0 and frame_cycle > self._last_cycle + 1:
            self.counts["missing_cycles"] += frame_cycle - self._last_cycle - 1
        self._last_cycle = frame_cycle
        image = self._slots[self._slot]
        self._slot = (self._slot + 1) % len(self._slots)
        self._to_rgb(result, image)
        self.counts["frames"] += 1
        self._frame = CameraFrame(
            cycle=frame_cycle,
            capture_ns=capture,
            camera=self.camera,
            image=image,
            triggered=True,
            frame_id=block_id,
            device_ns=device_ns,
        )

    def _to_rgb(self, result: Any, out: np.ndarray) -> None:
        pylon = self._pylon
        ptype = result.PixelType
        if ptype == pylon.PixelType_RGB8packed:
            np.copyto(out, result.GetArray())
        elif ptype == pylon.PixelType_Mono8:
            grey = result.GetArray()
            # one plain copy per channel: a broadcasting copyto is ~6x slower
            out[..., 0] = grey
            out[..., 1] = grey
            out[..., 2] = grey
        else:  # Bayer, BGR, 10/12 bit: pylon's converter (slow: prefer RGB8 from the camera)
            np.copyto(out, self._converter.Convert(result).GetArray())


class PylonSoftwareTrigger(TriggerDriver):
    """fire(k) executes the software trigger on the cell's software-triggered pylon cameras.

    The acknowledgement (TriggerAck, capture_ns = the host time of the trigger) is ready at once;
    its fd is an eventfd written by fire()."""

    def __init__(self, name: str, settings: PylonSoftwareTriggerSettings, hub: PylonHub) -> None:
        super().__init__(name)
        self.settings = settings
        self.hub = hub
        self._efd = -1
        self._ack: TriggerAck | None = None
        self.fired = 0

    def _on_configure(self) -> None:
        self._efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def _on_shutdown(self) -> None:
        if self._efd >= 0:
            os.close(self._efd)
            self._efd = -1

    def fileno(self) -> int:
        if self._efd < 0:
            raise LifecycleTransitionError(self.name, "not configured")
        return self._efd

    def fire(self, cycle: int) -> int:
        self.require_active("fire")
        now = time.monotonic_ns()
        for cam in self.hub.cameras:
            if cam.software_triggered:
                cam.fire_software(cycle, now, self.settings.wait_ready_ms)
        self._ack = TriggerAck(cycle=cycle, capture_ns=now)
        self.fired += 1
        os.eventfd_write(self._efd, 1)
        return now

    def poll(self, cycle: int) -> TriggerAck | None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._efd)
        ack = self._ack
        return ack if ack is not None and ack.cycle == cycle else None

    def stats(self) -> dict[str, float]:
        return {"fired": float(self.fired), "cameras": float(len(self.hub.cameras))}
