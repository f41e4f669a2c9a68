"""The camera process: offscreen MuJoCo rendering into shared memory.

    python -m raas_drivers.sim.render --config '<RigConfig JSON>' --sock <path> \
        --shm left=<name>,right=<name>,... [--ready-fd N] [--parent-pid P]
    python -m raas_drivers.sim.render --bench [--width W --height H --frames N]

It runs apart from the rig so that rendering (tens of ms per frame on a CPU rasteriser) never
stalls the physics or the 1 kHz hand link. The GL backend is chosen by MUJOCO_GL, which must be
in the environment before `import mujoco`: the launcher sets it per attempt (egl, then osmesa,
unless the user set MUJOCO_GL) and this process reports which one worked, with the GL renderer
string, in its ready line. A backend that cannot make a context exits with BACKEND_FAILED.

Links on <sock> (SOCK_SEQPACKET, msgpack):
  rig     -> ["hello", "rig"], then ["render", cycle, capture_ns, want_done, state bytes];
             lockstep requests get ["done", cycle] once every camera's frame is out.
             realtime requests that queued while we rendered are skipped (newest wins: a camera
             does not deliver stale frames late), counted as dropped.
  camera driver -> ["sub", {camera: dgram socket path}] -> ["hello", {info}]; then one
             notification datagram per frame (sim/protocol.py). Its link's EOF tells the driver
             the camera process is gone.
When the rig's link closes, this process exits (and unlinks the frame segments).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import socket
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from raas_firmware_bridge.emulator.record import EventRecord

from raas_drivers.sim.config import RigConfig
from raas_drivers.sim.fault_clock import FaultClock
from raas_drivers.sim.link import LinkClosedError, LinkServer
from raas_drivers.sim.proc import die_with_parent, exit_on_sigterm, log, report_ready
from raas_drivers.sim.protocol import FRAME_MAGIC, FRAME_NOTE, ShmSegment

# mujoco (and world.py, which imports it) are imported inside functions: MUJOCO_GL must be set
# before `import mujoco`, and main() sets it when the caller did not.

BACKENDS: tuple[str, ...] = ("egl", "osmesa")
BACKEND_FAILED = 3


def backend_candidates() -> list[str]:
    """MUJOCO_GL if the user set it, else egl then osmesa."""
    chosen = os.environ.get("MUJOCO_GL", "").strip()
    return [chosen] if chosen else list(BACKENDS)


def _gl_renderer_string() -> str:
    try:
        from OpenGL import GL  # type: ignore[import-untyped]  # noqa: PLC0415

        value = GL.glGetString(GL.GL_RENDERER)
        return value.decode() if isinstance(value, bytes) else str(value)
    except Exception:
        return "unknown"


class CameraProcess:
    def __init__(self, cfg_json: str, sock_path: str, shm_names: dict[str, str]) -> None:
        import mujoco  # noqa: PLC0415

        from raas_drivers.sim.world import CAMERA_VIEWS, apply_render_state, build_model  # noqa: PLC0415

        self.apply_render_state = apply_render_state
        cfg = RigConfig.model_validate_json(cfg_json)
        self.cfg = cfg
        self.model = build_model(cfg.world_params())
        self.data = mujoco.MjData(self.model)
        self.cameras = tuple(list(CAMERA_VIEWS)[: cfg.cameras])
        self.width, self.height = cfg.camera_width, cfg.camera_height
        self.model.vis.global_.offwidth = max(self.model.vis.global_.offwidth, self.width)
        self.model.vis.global_.offheight = max(self.model.vis.global_.offheight, self.height)
        # no multisampling: MuJoCo's default 4x costs llvmpipe ~2.5x the time per frame, and
        # the third camera of a cycle then missed its deadline (docs/performance.md)
        self.model.vis.quality.offsamples = cfg.render_samples
        # creating the renderer creates the GL context: this is where a backend fails
        self.renderer = mujoco.Renderer(self.model, self.height, self.width)
        self.gl_renderer = _gl_renderer_string()
        self.option = mujoco.MjvOption()
        self.option.geomgroup[2] = 0  # the goal ("target") is not in the real cell
        self.frame_bytes = self.width * self.height * 3
        self.shm = {c: ShmSegment(shm_names[c]) for c in self.cameras}
        self.slots: dict[str, list[Any]] = {}
        for c, seg in self.shm.items():
            n = seg.size // self.frame_bytes
            self.slots[c] = [
                np.ndarray(
                    (self.height, self.width, 3),
                    dtype=np.uint8,
                    buffer=seg.buf,
                    offset=i * self.frame_bytes,
                )
                for i in range(n)
            ]
        # warm-up: the first frames upload meshes and textures (~50 ms each with llvmpipe);
        # do it now so that cycle 0 is not late
        mujoco.mj_forward(self.model, self.data)
        for camera in self.cameras:
            self.renderer.update_scene(self.data, camera=camera, scene_option=self.option)
            self.renderer.render(out=self.slots[camera][0])
        self.server = LinkServer(sock_path)
        self.note = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.note.setblocking(False)
        self.subs: dict[str, str] = {}
        self.ep = select.epoll()
        self.ep.register(self.server.fileno(), select.EPOLLIN)
        self.conns: dict[int, Any] = {}
        self.rig_fd = -1
        self.rendered = 0
        self.dropped = 0
        # scheduled faults (RigConfig.faults): a lost camera, black frames
        self.fault_clock = FaultClock(cfg.faults)
        record_path = cfg.faults.record_path or Path(sock_path).parent / "events.jsonl"
        self.record = EventRecord(record_path if cfg.link.record_events else None)

    def _fault(self, kind: str, at_s: float | None, now_ns: int) -> bool:
        clock = self.fault_clock
        if not clock.due(at_s, now_ns):
            return False
        if clock.first(kind):
            log(f"render: fault injection: {kind}")
            self.record.write("cameras", "fault", now_ns, kind=kind)
        return True

    def info(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "backend": os.environ.get("MUJOCO_GL", ""),
            "gl_renderer": self.gl_renderer,
            "cameras": list(self.cameras),
            "width": self.width,
            "height": self.height,
            "samples": int(self.model.vis.quality.offsamples),
            "slots": {c: [s.name, len(self.slots[c])] for c, s in self.shm.items()},
        }

    def render_frame(self, cycle: int, capture_ns: int, state: bytes, lockstep: bool) -> None:
        """capture_ns on the host's clock (sim time in lockstep); the notes carry the cameras'
        own clock (RigConfig.clocks.cameras): capture and send time."""
        self.apply_render_state(self.model, self.data, np.frombuffer(state, dtype=np.float64))
        now = time.monotonic_ns()
        cam_clock = self.cfg.clocks.cameras
        device_capture = cam_clock.device_ns(capture_ns)
        pulse_ns = capture_ns - round(self.cfg.camera_offset_us * 1000)
        self.fault_clock.poll(now)
        faults = self.cfg.faults
        lost = self._fault("camera_lost", faults.camera_lost_at_s, now)
        black = self._fault("camera_black", faults.camera_black_at_s, now)
        for camera in self.cameras:
            if lost and faults.camera_lost in (None, camera):
                continue  # this camera delivers nothing any more
            slots = self.slots[camera]
            slot = cycle % len(slots)
            if black:
                slots[slot].fill(0)
            else:
                self.renderer.update_scene(self.data, camera=camera, scene_option=self.option)
                self.renderer.render(out=slots[slot])
            path = self.subs.get(camera)
            if path:
                # lockstep: sim time stands still at the pulse while the cycle's frames go out
                sent = cam_clock.device_ns(pulse_ns if lockstep else time.monotonic_ns())
                note = FRAME_NOTE.pack(FRAME_MAGIC, cycle, device_capture, sent, slot)
                with contextlib.suppress(OSError):  # driver not listening: the frame is lost
                    self.note.sendto(note, path)
        self.rendered += 1

    def serve(self) -> None:
        while True:
            for fd, _ in self.ep.poll():
                if fd == self.server.fileno():
                    conn = self.server.accept()
                    if conn is not None:
                        self.conns[conn.fileno()] = conn
                        self.ep.register(conn.fileno(), select.EPOLLIN)
                    continue
                conn = self.conns.get(fd)
                if conn is None:
                    continue
                latest: list[Any] | None = None
                try:
                    while (message := conn.recv()) is not None:
                        kind = message[0]
                        if kind == "hello":
                            self.rig_fd = fd
                        elif kind == "sub":
                            self.subs.update({str(k): str(v) for k, v in message[1].items()})
                            conn.send(["hello", self.info()])
                        elif kind == "render":
                            if message[3]:  # lockstep: every frame, in order, then "done"
                                self.render_frame(
                                    int(message[1]), int(message[2]), message[4], True
                                )
                                conn.send(["done", int(message[1])])
                            else:
                                if latest is not None:
                                    self.dropped += 1
                                latest = message
                except LinkClosedError:
                    self.ep.unregister(fd)
                    self.conns.pop(fd).close()
                    if fd == self.rig_fd:
                        return  # the rig is gone: so are we
                    continue
                if latest is not None:
                    self.render_frame(int(latest[1]), int(latest[2]), latest[4], False)

    def close(self) -> None:
        for seg in self.shm.values():
            seg.unlink()
        with contextlib.suppress(Exception):
            self.renderer.close()


def bench(width: int, height: int, frames: int, cameras: int, samples: int = 0) -> dict[str, Any]:
    """Measure ms per rendered camera frame (update_scene + render + readback) here."""
    import mujoco  # noqa: PLC0415

    from raas_drivers.sim.world import CAMERA_VIEWS, World  # noqa: PLC0415

    world = World()
    model = world.model
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, height)
    model.vis.quality.offsamples = samples
    renderer = mujoco.Renderer(model, height, width)
    names = list(CAMERA_VIEWS)[:cameras]
    out = np.zeros((height, width, 3), dtype=np.uint8)
    for name in names:  # warm-up: first frames upload meshes and textures
        renderer.update_scene(world.data, camera=name)
        renderer.render(out=out)
    times = []
    for _ in range(frames):
        world.step(0.08)
        for name in names:
            t = time.perf_counter()
            renderer.update_scene(world.data, camera=name)
            renderer.render(out=out)
            times.append((time.perf_counter() - t) * 1e3)
    gl_renderer = _gl_renderer_string()
    renderer.close()
    arr = np.array(times)
    return {
        "backend": os.environ.get("MUJOCO_GL", ""),
        "gl_renderer": gl_renderer,
        "width": width,
        "height": height,
        "samples": samples,
        "frames": len(times),
        "ms_per_frame_median": round(float(np.median(arr)), 2),
        "ms_per_frame_p90": round(float(np.percentile(arr, 90)), 2),
        "ms_per_cycle_all_cameras": round(float(np.median(arr)) * len(names), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m raas_drivers.sim.render")
    parser.add_argument("--config", default="")
    parser.add_argument("--sock", default="")
    parser.add_argument("--shm", default="", help="camera=segment,...")
    parser.add_argument("--ready-fd", type=int, default=-1)
    parser.add_argument("--parent-pid", type=int, default=0)
    parser.add_argument("--bench", action="store_true")
    parser.add_argument("--width", type=int, default=200)
    parser.add_argument("--height", type=int, default=200)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--cameras", type=int, default=3)
    parser.add_argument("--samples", type=int, default=0, help="MSAA samples (MuJoCo: 4)")
    args = parser.parse_args(argv)
    if not os.environ.get("MUJOCO_GL"):
        os.environ["MUJOCO_GL"] = BACKENDS[0]
    if args.bench:
        sys.stdout.write(
            json.dumps(bench(args.width, args.height, args.frames, args.cameras, args.samples))
            + "\n"
        )
        return 0
    exit_on_sigterm()
    die_with_parent(args.parent_pid)
    cfg = RigConfig.model_validate_json(args.config)
    if cfg.render_nice:
        with contextlib.suppress(OSError):
            os.nice(cfg.render_nice)  # frames may wait; the physics and the loop may not
    shm_names = dict(item.split("=", 1) for item in args.shm.split(",") if item)
    try:
        proc = CameraProcess(args.config, args.sock, shm_names)
    except Exception as exc:
        # the launcher may try the next backend with the same segments: leave them
        log(f"render: backend {os.environ.get('MUJOCO_GL')!r} failed: {exc!r}")
        return BACKEND_FAILED
    try:
        report_ready(args.ready_fd, proc.info())
        with contextlib.suppress(KeyboardInterrupt):
            proc.serve()
    finally:
        proc.close()  # unlinks the frame segments (the launcher may be gone)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
