"""The recorder process: `python -m raas.recording.process --cycles EP --frames EP --status EP`.

It binds the three local sockets, says `ready`, and writes each session the loop's tap starts to
its MCAP file. It runs at normal priority (never the loop's SCHED_FIFO), niced, on the CPUs the
loop does not use. A write error (full disk, size limit, I/O error) closes the file, tells the
tap (`error`) and drops the rest of that session; the process stays up for the next session.
When the loop's process dies it finishes the open file and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import zmq

from raas import __version__
from raas.recording import wire
from raas.recording.config import RecordingConfig
from raas.recording.images import compress_rgb
from raas.recording.layout import RecordLayout
from raas.recording.session_file import SessionFile

_POLL_MS = 100
_FRAMES_GRACE_S = 5.0


def _leave_loop_alone(avoid_cpus: set[int], nice: int) -> None:
    """Undo what the loop process took (this process may inherit SCHED_FIFO and its CPU)."""
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    with contextlib.suppress(OSError, AttributeError):
        cpus = set(range(os.cpu_count() or 1)) - avoid_cpus
        if cpus:
            os.sched_setaffinity(0, cpus)
    with contextlib.suppress(OSError):
        os.nice(nice)


class Recorder:
    def __init__(self, cfg: RecordingConfig, sockets: dict[str, zmq.Socket[bytes]]) -> None:
        self.cfg = cfg
        self.cycles = sockets["cycles"]
        self.frames = sockets["frames"]
        self.status = sockets["status"]
        self.layout: RecordLayout | None = None
        self.session: SessionFile | None = None
        self.session_seq = 0
        self.failed: str | None = None  # the session's write error, if any
        self.frames_dropped_late = 0
        self.frames_received = 0  # of the current session

    def tell(self, kind: str, **data: Any) -> None:
        self.status.send(json.dumps({"kind": kind, "session": self.session_seq, **data}).encode())

    # ------------------------------------------------------------- messages
    def on_cycles_message(self, msg: bytes) -> bool:
        """Handle one message; False means quit."""
        tag = msg[:1]
        if tag == wire.CYCLE:
            if self.session is not None:
                self._guard(self.session.write_cycle, msg)
        elif tag == wire.EVENT:
            if self.session is not None:
                body = json.loads(msg[1:])
                self._guard(self.session.write_event, body["kind"], body["cycle"], body["data"])
        elif tag == wire.START:
            self._start(json.loads(msg[1:]))
        elif tag == wire.END:
            self._end(json.loads(msg[1:]))
        elif tag == wire.LAYOUT:
            self.layout = RecordLayout.from_json(json.loads(msg[1:]))
        elif tag == wire.QUIT:
            return False
        return True

    def on_frame(self, parts: list[bytes]) -> None:
        if self.session is None or len(parts) != 2:
            return
        header, raw = parts
        seq, cycle, capture_ns, h, w = wire.FRAME_HEADER.unpack_from(header)
        if seq != self.session_seq:
            self.frames_dropped_late += 1
            return
        self.frames_received += 1
        camera = header[wire.FRAME_HEADER.size :].decode()
        data = compress_rgb(raw, w, h, self.cfg.camera_format, self.cfg.jpeg_quality)
        self._guard(
            self.session.write_frame, camera, cycle, capture_ns, self.cfg.camera_format, data
        )

    def _guard(self, fn: Any, *args: Any) -> None:
        """Run a write; on an OS error stop the session's recording and say why."""
        try:
            fn(*args)
        except OSError as exc:
            self._write_failed(exc)

    def _write_failed(self, exc: OSError) -> None:
        session = self.session
        if session is None:
            return
        self.session = None
        session.abandon()
        what = exc.strerror or str(exc)
        if exc.errno == 28:  # ENOSPC, a full disk or the size limit
            what = f"the disk is full ({what})"
        self.failed = (
            f"cannot write {session.path}: {what}; recording stopped after {session.cycles} "
            f"cycles, the file is readable up to its last complete chunk"
        )
        sys.stderr.write(f"raas recorder: {self.failed}\n")
        self.tell("error", code="write_failed", errno=exc.errno, message=self.failed)

    def _start(self, msg: dict[str, Any]) -> None:
        if self.session is not None:
            self._end({})
        self.session_seq = int(msg["session"])
        self.failed = None
        self.frames_received = 0
        if self.layout is None:
            self.tell("error", message="no layout received before the session")
            return
        cams = (
            tuple(n.removeprefix("cameras.") for n in self.layout.camera_sources)
            if self.cfg.cameras
            else ()
        )
        path = Path(msg["path"])
        try:
            self.session = SessionFile(
                path,
                self.layout,
                {k: str(v) for k, v in msg["metadata"].items()},
                clock_ns0=int(msg["clock_ns0"]),
                wall_ns0=int(msg["wall_ns0"]),
                chunk_bytes=self.cfg.chunk_kib * 1024,
                flush_interval_ns=round(self.cfg.flush_interval_s * 1e9),
                max_bytes=self.cfg.max_bytes,
                camera_names=cams,
                library=f"raas {__version__}",
            )
        except OSError as exc:
            self.failed = f"cannot create {path}: {exc.strerror or exc}"
            self.tell("error", code="open_failed", errno=exc.errno, message=self.failed)
            return
        self._guard(
            self.session.write_event, "session_start", -1, {"session_id": msg["session_id"]}
        )
        self.tell("opened", path=str(path))

    def _end(self, counts: dict[str, Any]) -> None:
        # Frames the tap sent belong to the session: wait (bounded) for the last ones, which
        # travel on their own socket and may arrive after the end message.
        expected = int(counts.get("frames_sent", 0))
        deadline = time.monotonic() + _FRAMES_GRACE_S
        while self.session is not None and (
            self.frames.poll(0) or (self.frames_received < expected and self.frames.poll(_POLL_MS))
        ):
            self.on_frame(self.frames.recv_multipart())
            if time.monotonic() > deadline:
                break
        session, self.session = self.session, None
        reply: dict[str, Any] = {"error": self.failed}
        if session is not None:
            summary = {
                "status": "complete",
                "cycles_written": str(session.cycles),
                "first_cycle": str(session.first_cycle),
                "last_cycle": str(session.last_cycle),
                "cycle_gaps": str(session.gaps),
                "frames_written": str(session.frames),
                "events_written": str(session.events),
                **{k: str(v) for k, v in counts.items()},
            }
            try:
                session.write_event("session_end", session.last_cycle, counts)
                session.finish(summary)
            except OSError as exc:
                self.session = session
                self._write_failed(exc)
            reply.update(path=str(session.path), cycles=session.cycles, frames=session.frames)
            reply["error"] = self.failed
        self.tell("closed", **reply)

    def flush_due(self) -> None:
        if self.session is not None:
            self._guard(self.session.maybe_flush, time.monotonic_ns())

    def shutdown(self) -> None:
        if self.session is not None:
            self._end({"ended_by": "recorder shutdown"})


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="raas-recorder")
    ap.add_argument("--cycles", required=True)
    ap.add_argument("--frames", required=True)
    ap.add_argument("--status", required=True)
    ap.add_argument("--config", default="{}", help="RecordingConfig as JSON")
    ap.add_argument("--avoid-cpus", default="", help="comma list of the loop's CPUs")
    ap.add_argument("--nice", type=int, default=5)
    args = ap.parse_args(argv)
    # Ctrl-C reaches the whole process group: the loop stops and ends the session, which is what
    # closes the file; SIGTERM finishes the open file and exits.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    cfg = RecordingConfig.model_validate_json(args.config)
    _leave_loop_alone({int(c) for c in args.avoid_cpus.split(",") if c}, args.nice)
    parent = os.getppid()

    ctx = zmq.Context(io_threads=1)
    cycles = ctx.socket(zmq.PULL)
    cycles.setsockopt(zmq.RCVHWM, cfg.queue_cycles)
    cycles.bind(args.cycles)
    frames = ctx.socket(zmq.PULL)
    frames.setsockopt(zmq.RCVHWM, cfg.queue_frames)
    frames.bind(args.frames)
    status = ctx.socket(zmq.PUSH)
    status.setsockopt(zmq.LINGER, 2000)
    status.bind(args.status)
    rec = Recorder(cfg, {"cycles": cycles, "frames": frames, "status": status})
    rec.tell("ready", pid=os.getpid())

    poller = zmq.Poller()
    poller.register(cycles, zmq.POLLIN)
    poller.register(frames, zmq.POLLIN)
    running = True
    try:
        while running:
            ready = dict(poller.poll(_POLL_MS))
            if cycles in ready:
                # A batch of cycle records, then a look at the frames: neither starves.
                for _ in range(256):
                    try:
                        msg = cycles.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if not rec.on_cycles_message(msg):
                        running = False
                        break
            if running and frames in ready:
                with contextlib.suppress(zmq.Again):
                    rec.on_frame(frames.recv_multipart(zmq.NOBLOCK))
            rec.flush_due()
            if not ready and os.getppid() != parent:
                break  # the loop's process is gone: finish the file and go
    except SystemExit:
        pass
    finally:
        rec.shutdown()
        for s in (cycles, frames, status):
            s.close()
        ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
