"""SimRig: start the simulated rig's processes, hand out drivers, tear everything down.

    with SimRig(RigConfig(clock="realtime", cameras=3, seed=0)) as rig:
        devs = rig.devices()      # SimDevices(hand, trigger, mocap, cameras | None)
        rig.alive(); rig.pid; rig.renderer_backend

Processes (each `python -m ...`, each a child of this one, each dying with it via
PR_SET_PDEATHSIG):
  camera process   raas_drivers.sim.render (only when cameras > 0), started first: it is where a GL
                   backend is found or not (MUJOCO_GL if set, else egl then osmesa)
  rig process      raas_drivers.sim.rig: physics, the hand and trigger boards' emulated firmware
                   on two ptys (serial protocol of raas_firmware_bridge), mocap server
Both report readiness with one JSON line on a pipe; a process that does not within
`ready_timeout_s` is killed and DeviceNotReadyError carries the tail of its stderr.
The launcher creates the socket directory and the frame segments and removes them on exit
(also from a weakref finalizer, so a failing test that never reaches __exit__ leaves nothing).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from raas_drivers.cameras.driver import CAMERA_NAMES
from raas_drivers.errors import DeviceNotReadyError
from raas_drivers.hand.serial_driver import SerialHandDriver
from raas_drivers.sim.config import RigConfig
from raas_drivers.sim.drivers import SimCameraDriver, SimMocapDriver
from raas_drivers.sim.link import LinkClosedError, LinkConn
from raas_drivers.sim.protocol import ShmSegment, unlink_quietly
from raas_drivers.trigger.serial_driver import SerialTriggerDriver

BACKEND_FAILED = 3  # the camera process's exit code when its GL backend cannot make a context
STDERR_TAIL = 3000


@dataclass
class SimDevices:
    """The drivers of one simulated cell, unconfigured: the loop configures and activates them."""

    hand: SerialHandDriver
    trigger: SerialTriggerDriver
    mocap: SimMocapDriver
    cameras: SimCameraDriver | None


def _tail(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-STDERR_TAIL:]


def _stop(procs: list[subprocess.Popen[bytes]], timeout_s: float = 3.0) -> None:
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait()


def _cleanup(
    procs: list[subprocess.Popen[bytes]],
    sock_dir: str,
    shm_names: list[str],
    files: list[IO[bytes]],
) -> None:
    _stop(procs)
    for name in shm_names:
        unlink_quietly(name)
    for f in files:
        with contextlib.suppress(OSError):
            f.close()
    shutil.rmtree(sock_dir, ignore_errors=True)


class SimRig:
    """The simulated cell as processes. Use as a context manager (or start() / close())."""

    def __init__(self, config: RigConfig | None = None, *, python: str = sys.executable) -> None:
        self.config = config or RigConfig()
        self.python = python
        self.sock_dir = ""
        self.pid = 0
        self.renderer_pid: int | None = None
        self.renderer_backend: str | None = None
        self.renderer_info: dict[str, Any] = {}
        self.rig_info: dict[str, Any] = {}
        self._procs: list[subprocess.Popen[bytes]] = []
        self._rig: subprocess.Popen[bytes] | None = None
        self._renderer: subprocess.Popen[bytes] | None = None
        self._shm_names: list[str] = []
        self._files: list[IO[bytes]] = []
        self._devices: SimDevices | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    # ------------------------------------------------------------------ processes
    def _spawn(
        self, module: str, args: list[str], env: dict[str, str], err_name: str
    ) -> tuple[subprocess.Popen[bytes], int, Path]:
        read_fd, write_fd = os.pipe()
        err_path = Path(self.sock_dir) / err_name
        err = err_path.open("wb")
        self._files.append(err)
        cmd = [
            self.python,
            "-m",
            module,
            "--ready-fd",
            str(write_fd),
            "--parent-pid",
            str(os.getpid()),
            *args,
        ]
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                env=env,
                pass_fds=(write_fd,),
                close_fds=True,
            )
        finally:
            os.close(write_fd)
        self._procs.append(proc)
        return proc, read_fd, err_path

    def _wait_ready(
        self, name: str, proc: subprocess.Popen[bytes], read_fd: int, err_path: Path
    ) -> dict[str, Any] | int:
        """The ready JSON, or the exit code when the process died first."""
        deadline = time.monotonic() + self.config.ready_timeout_s
        data = b""
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    proc.kill()
                    proc.wait()
                    raise DeviceNotReadyError(
                        name,
                        f"no ready handshake within {self.config.ready_timeout_s} s; "
                        f"stderr tail:\n{_tail(err_path)}",
                    )
                ready, _, _ = select.select([read_fd], [], [], min(remaining, 0.5))
                if ready:
                    chunk = os.read(read_fd, 65536)
                    data += chunk
                    if b"\n" in data:
                        info: dict[str, Any] = json.loads(data.split(b"\n", 1)[0])
                        return info
                    if not chunk:  # EOF without a line: the process is exiting
                        return proc.wait(timeout=self.config.ready_timeout_s)
                elif proc.poll() is not None:
                    return proc.returncode
        finally:
            os.close(read_fd)

    def _start_renderer(self, cfg_json: str) -> None:
        cfg = self.config
        token = secrets.token_hex(4)
        frame = cfg.camera_width * cfg.camera_height * 3
        names: dict[str, str] = {}
        for camera in CAMERA_NAMES[: cfg.cameras]:
            name = f"raas-sim-{os.getpid()}-{token}-{camera}"
            ShmSegment(name, create=True, size=frame * cfg.camera_slots).close()
            self._shm_names.append(name)
            names[camera] = name
        shm_arg = ",".join(f"{c}={n}" for c, n in names.items())
        sock = str(Path(self.sock_dir) / "render.sock")
        user_choice = os.environ.get("MUJOCO_GL", "").strip()
        backends = [user_choice] if user_choice else ["egl", "osmesa"]
        failures: list[str] = []
        for backend in backends:
            with contextlib.suppress(FileNotFoundError):
                Path(sock).unlink()
            env = dict(os.environ, MUJOCO_GL=backend)
            if cfg.render_threads > 0 and "LP_NUM_THREADS" not in os.environ:
                env["LP_NUM_THREADS"] = str(cfg.render_threads)
            if backend in ("egl", "osmesa"):
                env["PYOPENGL_PLATFORM"] = backend
            proc, read_fd, err_path = self._spawn(
                "raas_drivers.sim.render",
                ["--config", cfg_json, "--sock", sock, "--shm", shm_arg],
                env,
                f"render-{backend}.err",
            )
            result = self._wait_ready("cameras", proc, read_fd, err_path)
            if isinstance(result, dict):
                self._renderer = proc
                self.renderer_pid = proc.pid
                self.renderer_info = result
                self.renderer_backend = str(result.get("backend", backend))
                return
            failures.append(f"[{backend}] exit {result}: {_tail(err_path)[-800:]}")
            if result != BACKEND_FAILED:
                break
        raise DeviceNotReadyError(
            "cameras",
            "no offscreen GL backend worked (tried "
            + ", ".join(backends)
            + "); set MUJOCO_GL or cameras=0.\n"
            + "\n".join(failures),
        )

    def start(self) -> SimRig:
        if self._rig is not None:
            return self
        self.sock_dir = tempfile.mkdtemp(prefix="raas-sim-")
        self._finalizer = weakref.finalize(
            self, _cleanup, self._procs, self.sock_dir, self._shm_names, self._files
        )
        try:
            cfg_json = self.config.model_dump_json()
            render_args: list[str] = []
            if self.config.cameras > 0:
                self._start_renderer(cfg_json)
                render_args = ["--render-sock", str(Path(self.sock_dir) / "render.sock")]
            proc, read_fd, err_path = self._spawn(
                "raas_drivers.sim.rig",
                ["--config", cfg_json, "--dir", self.sock_dir, *render_args],
                dict(os.environ),
                "rig.err",
            )
            result = self._wait_ready("rig", proc, read_fd, err_path)
            if not isinstance(result, dict):
                raise DeviceNotReadyError(
                    "rig", f"rig process exited with {result}; stderr tail:\n{_tail(err_path)}"
                )
            self._rig = proc
            self.pid = proc.pid
            self.rig_info = result
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._devices is not None:
            for dev in (
                self._devices.hand,
                self._devices.trigger,
                self._devices.mocap,
                self._devices.cameras,
            ):
                if dev is not None:
                    with contextlib.suppress(Exception):
                        dev.shutdown()
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> SimRig:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ queries
    def alive(self) -> bool:
        """True while the rig process (and the camera process, if any) run."""
        procs = [p for p in (self._rig, self._renderer) if p is not None]
        return bool(procs) and all(p.poll() is None for p in procs)

    def devices(self) -> SimDevices:
        """The cell's drivers (the same objects on every call), not yet configured."""
        if self._rig is None:
            raise DeviceNotReadyError("rig", "SimRig is not started")
        if self._devices is None:
            cameras = None
            if self.config.cameras > 0:
                cameras = SimCameraDriver(
                    "cameras",
                    str(Path(self.sock_dir) / "render.sock"),
                    self.sock_dir,
                    CAMERA_NAMES[: self.config.cameras],
                    lockstep_period_ns=(
                        self.config.period_ns if self.config.clock == "lockstep" else None
                    ),
                )
            lc = self.config.link
            # lockstep: the drivers map device stamps to sim time, k * period at cycle k
            lockstep = self.config.period_ns if self.config.clock == "lockstep" else None
            link_args: dict[str, Any] = {
                "lockstep_period_ns": lockstep,
                "max_bad_frames": lc.max_bad_frames,
                "request_timeout_s": lc.request_timeout_ms / 1000,
            }
            if lc.baud > 0:
                link_args["baudrate"] = lc.baud
            self._devices = SimDevices(
                hand=SerialHandDriver("hand", str(self.rig_info["hand_port"]), **link_args),
                trigger=SerialTriggerDriver(
                    "trigger", str(self.rig_info["trigger_port"]), **link_args
                ),
                mocap=SimMocapDriver(
                    "mocap", str(self.rig_info["mocap_sock"]), lockstep_period_ns=lockstep
                ),
                cameras=cameras,
            )
        return self._devices

    def reset_scene(self, seed: int, timeout_s: float = 5.0) -> None:
        """Between episodes: the rig puts the block back in the palm and the hand at its start
        pose, as a fresh rig seeded `seed` would (the `reset` command on the rig's control socket;
        its clock goes on). DeviceNotReadyError when the rig does not answer within timeout_s."""
        if self._rig is None:
            raise DeviceNotReadyError("rig", "SimRig is not started")
        path = str(self.rig_info["mocap_sock"])
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.settimeout(timeout_s)
        try:
            sock.connect(path)
            conn = LinkConn(sock)
            conn.send(["reset", int(seed)])
            answer = conn.recv_wait(timeout_s)
        except (OSError, TimeoutError, LinkClosedError) as exc:
            raise DeviceNotReadyError("rig", f"no answer to the reset command: {exc}") from exc
        finally:
            sock.close()
        if answer[0] != "reset":
            raise DeviceNotReadyError("rig", f"the reset command was refused: {answer!r}")

    @property
    def events_path(self) -> Path:
        """The emulator's event record (written when RigConfig.link.record_events is set)."""
        return Path(self.sock_dir) / "events.jsonl"

    def stderr_tail(self) -> str:
        """What the rig process wrote to stderr (diagnostics)."""
        return _tail(Path(self.sock_dir) / "rig.err")
