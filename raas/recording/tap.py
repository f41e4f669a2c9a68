"""The recorder's tap in the loop process: a Publisher and a SessionSink that never blocks.

Every cycle it packs the Step into one preallocated record and hands it to the recorder process
with a non-blocking send on a local ZeroMQ PUSH socket. The socket's queue is bounded (its
high-water mark); when it is full the cycle is dropped and counted, never waited for. Fresh
camera frames go the same way on a second socket with their own small bound, so a backlog of
frames never costs a cycle record. The recorder reports back (opened, closed, error) on a status
socket that the tap looks at every 32 cycles; an error (e.g. a full disk) stops the recording,
is printed once, and the loop goes on.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

import zmq
from raas_drivers.cameras import CameraFrame

from raas.core.observation import Observation, SourceReading, Step
from raas.core.rt import keep_io_threads_off_the_loop
from raas.recording import wire
from raas.recording.errors import RecorderDidNotStart, RecordingDirectoryUnusable
from raas.recording.layout import RecordLayout, StepPacker

_STATUS_EVERY = 32  # cycles between looks at the status socket


class RecordingPublisher:
    """Feeds the recorder process. Control messages (session start/end) wait a bounded time;
    `publish()` and `event()` never wait."""

    def __init__(
        self,
        layout: RecordLayout,
        *,
        cycles_endpoint: str,
        frames_endpoint: str,
        status_endpoint: str,
        directory: Path,
        now_ns: Callable[[], int],
        static_metadata: Mapping[str, str] | None = None,
        queue_cycles: int = 20_000,
        queue_frames: int = 32,
        record_cameras: bool = True,
        err: TextIO | None = None,
        control_timeout_s: float = 10.0,
        close_timeout_s: float = 60.0,
    ) -> None:
        self.layout = layout
        self.directory = Path(directory)
        self.now_ns = now_ns
        self.static_metadata = dict(static_metadata or {})
        self.err = err if err is not None else sys.stderr
        self.control_timeout_s = control_timeout_s
        self.close_timeout_s = close_timeout_s  # the recorder may have a backlog to write
        self.packer = StepPacker(layout)
        self._ctx = zmq.Context(io_threads=1)
        keep_io_threads_off_the_loop(self._ctx)
        self._cycles = self._ctx.socket(zmq.PUSH)
        self._cycles.setsockopt(zmq.SNDHWM, queue_cycles)
        self._cycles.setsockopt(zmq.LINGER, 0)
        self._cycles.connect(cycles_endpoint)
        self._frames = self._ctx.socket(zmq.PUSH)
        self._frames.setsockopt(zmq.SNDHWM, queue_frames)
        self._frames.setsockopt(zmq.LINGER, 0)
        self._frames.connect(frames_endpoint)
        self._status = self._ctx.socket(zmq.PULL)
        self._status.setsockopt(zmq.LINGER, 0)
        self._status.connect(status_endpoint)
        self._record_cameras = record_cameras
        self._camera_headers: list[tuple[int, str, bytearray]] = []
        for i, s in enumerate(layout.sources):
            if s.name.startswith("cameras."):
                name = s.name.removeprefix("cameras.").encode()
                buf = bytearray(wire.FRAME_HEADER.size + len(name))
                buf[wire.FRAME_HEADER.size :] = name
                self._camera_headers.append((i, s.name, buf))
        self._camera_readings: list[tuple[SourceReading | None, bytearray]] = []
        self._camera_obs: Observation | None = None
        self._control(wire.LAYOUT + json.dumps(layout.to_json()).encode())

        self.active = False
        self.session_seq = 0
        self.path: Path | None = None
        self.recorder_pid: int | None = None
        self.error: str | None = None
        self.last_closed: dict[str, Any] = {}
        self.sent_cycles = 0
        self.dropped_cycles = 0
        self.sent_frames = 0
        self.dropped_frames = 0
        self.dropped_events = 0
        self._last_cycle = -1
        self._n = 0

    # ----------------------------------------------------------------- the hot path
    def publish(self, step: Step) -> None:
        if not self.active:
            return
        self._n += 1
        if self._n % _STATUS_EVERY == 0 and self._status.poll(0):
            self._read_status()
            if not self.active:
                return
        obs = step.obs
        self._last_cycle = obs.cycle
        data = self.packer.pack(step, self.dropped_cycles)
        try:
            self._cycles.send(data, zmq.NOBLOCK, copy=True)
            self.sent_cycles += 1
        except zmq.Again:
            self.dropped_cycles += 1
        if self._record_cameras and self._camera_headers:
            self._send_frames(obs)

    def _send_frames(self, obs: Observation) -> None:
        if self._camera_obs is not obs:
            self._camera_obs = obs
            self._camera_readings = [(obs.sources.get(n), h) for _, n, h in self._camera_headers]
        cycle = obs.cycle
        for reading, header in self._camera_readings:
            if reading is None or reading.stale:
                continue
            frame = reading.sample
            if not isinstance(frame, CameraFrame) or frame.cycle != cycle:
                continue
            img = frame.image
            if img.ndim != 3 or img.shape[2] != 3 or not img.flags.c_contiguous:
                continue
            wire.FRAME_HEADER.pack_into(
                header, 0, self.session_seq, cycle, frame.capture_ns, img.shape[0], img.shape[1]
            )
            try:
                self._frames.send(header, zmq.NOBLOCK | zmq.SNDMORE, copy=True)
            except zmq.Again:
                self.dropped_frames += 1
                continue
            # The first part was queued, so the second is too (HWM counts whole messages).
            self._frames.send(img.data, zmq.NOBLOCK, copy=True)
            self.sent_frames += 1

    # ----------------------------------------------------------------- sessions
    def attach(self, loop: Any) -> None:
        """Called by Cell.build_loop: note the controller and, for a policy, its bundle hash,
        so every session of this loop carries them."""
        ctl = getattr(loop, "controller", None)
        name = getattr(ctl, "name", None)
        if isinstance(name, str):
            self.static_metadata["controller"] = name
        runner = getattr(ctl, "runner", None)
        bundle_hash = getattr(runner, "bundle_hash", None)
        if isinstance(bundle_hash, str):
            self.static_metadata["bundle_sha256"] = bundle_hash
        manifest = getattr(runner, "manifest", None)
        bundle_name = getattr(manifest, "name", None)
        if isinstance(bundle_name, str):
            self.static_metadata["bundle"] = bundle_name

    def start_session(self, session_id: str, metadata: Mapping[str, str]) -> Path | None:
        """Open `<directory>/<session_id>.mcap` (a suffix when it exists). None when the
        recorder cannot open it; the error is printed and kept in `self.error`."""
        if self.active:
            self.end_session()
        self._drain_status()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordingDirectoryUnusable(f"{self.directory}: {exc.strerror}") from None
        path = self.directory / f"{session_id}.mcap"
        n = 1
        while path.exists():
            path = self.directory / f"{session_id}-{n}.mcap"
            n += 1
        self.session_seq += 1
        self.error = None
        self.sent_cycles = self.dropped_cycles = 0
        self.sent_frames = self.dropped_frames = self.dropped_events = 0
        self._last_cycle = -1
        self._n = 0
        meta = {**self.static_metadata, **{k: str(v) for k, v in metadata.items()}}
        meta.setdefault("session_id", session_id)
        meta.setdefault("started_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        msg = {
            "session": self.session_seq,
            "session_id": session_id,
            "path": str(path.resolve()),
            "metadata": meta,
            "clock_ns0": self.now_ns(),
            "wall_ns0": time.time_ns(),
        }
        self._control(wire.START + json.dumps(msg).encode())
        reply = self._await_status(("opened", "error"))
        if reply is None or reply["kind"] == "error":
            why = "no answer from the recorder" if reply is None else reply.get("message", "")
            self._fail(f"recording not started: {why}")
            return None
        self.path = path
        self.active = True
        print(f"raasd: recording to {path}", file=self.err, flush=True)
        return path

    def end_session(self) -> None:
        """Close the session's file; waits (bounded) for the recorder to write what it has."""
        if self.path is None:
            return
        was_active = self.active
        self.active = False
        if was_active and self._status.poll(0):
            self._read_status()
        counts = {
            "session": self.session_seq,
            "cycles_sent": self.sent_cycles,
            "dropped_cycles": self.dropped_cycles,
            "frames_sent": self.sent_frames,
            "dropped_frames": self.dropped_frames,
            "dropped_events": self.dropped_events,
        }
        self._control(wire.END + json.dumps(counts).encode())
        reply = self._await_status(("closed",), timeout_s=self.close_timeout_s)
        path, self.path = self.path, None
        if reply is None:
            self._fail(f"the recorder did not confirm closing {path}; the file may be truncated")
            return
        self.last_closed = reply
        if reply.get("error"):
            self.error = self.error or str(reply["error"])
        summary = (
            f"raasd: recording {path}: {reply.get('cycles', 0)} cycles, "
            f"{reply.get('frames', 0)} camera frames, {self.dropped_cycles} cycles dropped"
        )
        if reply.get("error"):
            summary += f" (STOPPED EARLY: {reply['error']})"
        print(summary, file=self.err, flush=True)

    def event(self, kind: str, data: Mapping[str, Any]) -> None:
        if not self.active:
            return
        body = {"kind": kind, "cycle": self._last_cycle, "data": dict(data)}
        try:
            self._cycles.send(wire.EVENT + json.dumps(body, default=str).encode(), zmq.NOBLOCK)
        except zmq.Again:
            self.dropped_events += 1

    def close(self) -> None:
        """End any session, tell the recorder to quit, close the sockets."""
        if self.path is not None:
            self.end_session()
        with contextlib.suppress(zmq.ZMQError):
            self._cycles.send(wire.QUIT, zmq.NOBLOCK)
        time.sleep(0.01)  # LINGER is 0: give libzmq a moment to hand the quit over
        for s in (self._cycles, self._frames, self._status):
            s.close(0)
        self._ctx.term()

    # ----------------------------------------------------------------- status
    def _control(self, msg: bytes) -> None:
        """A control message: may wait (bounded) for room, never drops silently."""
        if self._cycles.poll(round(self.control_timeout_s * 1000), zmq.POLLOUT):
            self._cycles.send(msg, zmq.NOBLOCK)
        else:
            self._fail("the recorder's queue stayed full; control message not sent")

    def wait_ready(self, timeout_s: float, alive: Callable[[], bool]) -> int:
        """Wait for the recorder's `ready`; returns its pid."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._status.poll(100):
                msg = json.loads(self._status.recv())
                if msg.get("kind") == "ready":
                    return int(msg["pid"])
            if not alive():
                raise RecorderDidNotStart("the recorder process exited before it was ready")
        raise RecorderDidNotStart(f"the recorder was not ready within {timeout_s:g} s")

    def _await_status(
        self, kinds: tuple[str, ...], timeout_s: float | None = None
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + (timeout_s or self.control_timeout_s)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self._status.poll(round(left * 1000)):
                return None
            msg: dict[str, Any] = json.loads(self._status.recv())
            if msg.get("kind") == "error" and "error" not in kinds:
                self._on_error(msg)
                continue
            if (
                msg.get("kind") in kinds
                and msg.get("session", self.session_seq) == self.session_seq
            ):
                return msg

    def _drain_status(self) -> None:
        while self._status.poll(0):
            self._read_status()

    def _read_status(self) -> None:
        msg = json.loads(self._status.recv())
        if msg.get("kind") == "error":
            self._on_error(msg)

    def _on_error(self, msg: Mapping[str, Any]) -> None:
        if msg.get("session") not in (None, self.session_seq):
            return
        self.active = False
        self._fail(str(msg.get("message", "recording failed")))

    def _fail(self, message: str) -> None:
        if self.error == message:
            return
        self.error = message
        print(f"raasd: RECORDING STOPPED: {message}; the loop goes on", file=self.err, flush=True)
