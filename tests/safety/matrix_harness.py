"""The fault matrix: one cell = one fault injected into a real `raasd robot --sim` (realtime,
12.5 Hz) in one phase, measured from the robot's PUB stream, its exit code and the simulated
rig's firmware event record. Shared by tests/safety/test_fault_matrix.py and
bench/bench_fault_matrix.py.

A cell:
  1. writes a cell config (TOML: [rig.link] record_events, [rig.faults] with a start file so
     the sensor and serial faults start when the harness says), starts the daemon, subscribes
     to its stream (steps and events) in a thread;
  2. brings the robot into the phase with a client process: idle (none), armed (open + arm,
     heartbeats), step (remote step, a slow sinusoid around the idle pose), policy (upload and
     run a bundle in the loop, heartbeats);
  3. injects the fault at a known time (on the harness's CLOCK_MONOTONIC, which is the
     daemon's and the rig's too: one host);
  4. measures the end state, the reason, the time from injection to the declared state and
     whether anything moved that should not have ("uncontrolled motion", docs/safety.md).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from raas_client.session import RemoteRobot
from raas_client.wire import Topic

from raas.safety.reasons import SafetyState
from tests.transport.harness import ROOT, LeaseIssuer, RobotDaemon, start_daemon

RATE_HZ = 12.5
PERIOD_S = 1 / RATE_HZ
LIVENESS_S = 0.5  # the transport harness's --liveness
MAX_REPEATS = 3  # LoopConfig.max_repeats (N)
STALE_K = 3  # [safety.watchdogs] stale_cycles
NONFINITE_CYCLES = 3
WATCHDOG_S = 0.5  # [rig.link] watchdog_ms
RAMP_VELOCITY = 0.5  # [safety] ramp_velocity_rad_s
DEVICE_EXIT_S = 1.0
EXIT_DEVICE_LOST = 3
SETTLE_S = 2.0  # joint speeds must be below SETTLE_SPEED this long after the declared state
SETTLE_SPEED = 0.05

S = SafetyState


def ci_margin(bound_s: float) -> float:
    """What a cell may take in CI on a shared machine: 3x the declared bound + 0.5 s."""
    return 3 * bound_s + 0.5


# --------------------------------------------------------------------------------- the matrix
@dataclass(frozen=True)
class Cell:
    fault: str
    phase: str
    declared: str  # hold | fault | ramp_down | continue | firmware_hold | unchanged
    reason: str | None  # the declared reason code (None: no transition declared)
    bound_s: float | None  # the declared bound (None: none)
    then: str | None = None  # a second state after the first (ramp_down -> idle)
    detail: str | None = None  # the reason's detail (stale_sensor: which source)

    @property
    def name(self) -> str:
        return f"{self.fault}-{self.phase}"


def _cells() -> list[Cell]:
    p = PERIOD_S
    out: list[Cell] = []
    for fault in ("client_sigkill", "client_sigstop"):
        # Stepping, the missing actions use up the fallback's N repeats before the liveness
        # timeout ends: whichever watchdog trips first holds the hand.
        step_bound = min(LIVENESS_S, (MAX_REPEATS + 1) * p) + p
        out.append(Cell(fault, "step", "hold", "client_late|client_lost", step_bound))
        out.append(Cell(fault, "policy", "hold", "client_lost", LIVENESS_S + p))
    for phase in ("armed", "step", "policy"):
        out.append(Cell("lease_expiry", phase, "ramp_down", "lease_ended", p, then="idle"))
    for phase in ("step", "policy"):
        out.append(Cell("mocap_lost", phase, "hold", "stale_sensor", STALE_K * p, detail="mocap"))
    out.append(Cell("camera_lost", "policy", "continue", None, None))
    out.append(
        Cell(
            "camera_lost",
            "vision_policy",
            "hold",
            "stale_sensor",
            STALE_K * p,
            detail="cameras.",
        )
    )
    out.append(
        Cell("inference_overrun", "policy", "hold", "inference_overrun", (MAX_REPEATS + 1) * p)
    )
    out.append(Cell("nan_policy", "policy", "hold", "nonfinite_action", NONFINITE_CYCLES * p))
    for phase in ("step", "policy"):
        out.append(Cell("serial_noise", phase, "continue", None, None))
    for fault in ("firmware_reset", "port_unplugged"):
        for phase in ("idle", "step", "policy"):
            out.append(Cell(fault, phase, "fault", "device_lost", DEVICE_EXIT_S))
    for phase in ("idle", "step", "policy"):
        out.append(Cell("daemon_sigkill", phase, "firmware_hold", None, WATCHDOG_S))
    out.append(Cell("clock_jump_fwd", "step", "ramp_down", "lease_ended", p, then="idle"))
    out.append(Cell("clock_jump_back", "step", "unchanged", None, p))
    return out


CELLS: list[Cell] = _cells()


def cell_by_name(name: str) -> Cell:
    for c in CELLS:
        if c.name == name:
            return c
    raise KeyError(f"no cell {name!r}; cells: {', '.join(c.name for c in CELLS)}")


# --------------------------------------------------------------------------------- results
@dataclass
class CellResult:
    cell: str
    fault: str
    phase: str
    declared: str
    declared_reason: str | None
    declared_bound_s: float | None
    end_state: str = "?"
    reason: str | None = None
    detail: str | None = None
    measured_s: float | None = None  # injection -> the declared (first) state
    then_s: float | None = None  # injection -> the second state (ramp_down -> idle)
    exit_code: int | None = None
    uncontrolled_motion: bool = False
    ok: bool = False
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------- the stream
@dataclass(slots=True)
class StepRec:
    recv_ns: int
    mono_ns: int  # the daemon's CLOCK_MONOTONIC when it published the step
    cycle: int
    safety: int
    mode: str
    fallback: int
    stale: list[str]
    applied: np.ndarray
    desired: np.ndarray
    hand_vel: np.ndarray


class StreamRecorder:
    """Every step and event of the robot's PUB stream, in a thread (its own SUB socket)."""

    def __init__(self, daemon: RobotDaemon, issuer: LeaseIssuer) -> None:
        # The stream reaches open sessions only: an observer session, kept alive by _run.
        lease = issuer.issue(scope="observe", sub="recorder", minutes=120)
        self.watcher = RemoteRobot(daemon.control, server_key=daemon.key, timeout_s=10, lease=lease)
        self.info = self.watcher.hello()
        self.watcher.open("observe")
        self.stream = self.watcher.stream((Topic.STEP, Topic.EVENT))
        self.steps: list[StepRec] = []
        self.events: list[tuple[int, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream", daemon=True)
        self._thread.start()

    @property
    def idle(self) -> np.ndarray:
        return np.array(self.info["spaces"]["action"]["idle"], dtype=np.float64)

    def _run(self) -> None:
        beat = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= beat:  # liveness: the session must not time out
                    self.watcher.heartbeat()
                    list(self.watcher.events())
                    beat = time.monotonic() + 0.25
                got = self.stream.recv(timeout_s=0.1)
            except Exception:  # a torn-down socket at the end
                return
            if got is None:
                continue
            topic, h, arrays = got
            now = time.monotonic_ns()
            if topic == "step":
                self.steps.append(
                    StepRec(
                        now,
                        int(h.get("mono_ns", now)),
                        int(h["cycle"]),
                        int(h.get("safety", -1)),
                        str(h.get("mode", "")),
                        int(h.get("fallback", 0)),
                        list(h.get("stale", [])),
                        np.array(arrays["applied"], dtype=np.float64),
                        np.array(arrays["desired"], dtype=np.float64),
                        np.array(arrays["hand_vel"], dtype=np.float64),
                    )
                )
            elif topic == "event":
                self.events.append((now, dict(h)))

    def wait_steps(self, n: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        start = len(self.steps)
        while time.monotonic() < deadline:
            if len(self.steps) - start >= n:
                return True
            time.sleep(0.02)
        return False

    def last_state(self) -> int | None:
        return self.steps[-1].safety if self.steps else None

    def wait_state(self, want: int, timeout_s: float) -> int | None:
        """Wait (with a deadline) until the newest step is in state `want`; the newest state
        then. A policy's robot is ARMED until its first action, and a new loop segment starts
        only once the bundle is loaded and the loop built: a count of steps says neither."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.last_state() == want:
                return want
            time.sleep(0.02)
        return self.last_state()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        with contextlib.suppress(Exception):
            self.stream.close()
        with contextlib.suppress(Exception):
            self.watcher.close()

    def transitions(self) -> list[dict[str, Any]]:
        """The supervisor's transitions as the 'safety' events carry them."""
        out = []
        for recv_ns, ev in self.events:
            if ev.get("kind") != "safety":
                continue
            t = ev.get("transition") if isinstance(ev.get("transition"), dict) else ev
            if "to" in t:
                out.append({**t, "recv_ns": recv_ns})
        return out


# --------------------------------------------------------------------------------- the client
CLIENT = r"""
import json, math, sys, time
from pathlib import Path
import numpy as np
from raas_client.session import RemoteRobot
endpoint, key, lease, mode, bundle = sys.argv[1:6]
def say(s):
    print(s, flush=True)
r = RemoteRobot(endpoint, server_key=key, lease=lease, timeout_s=60)
try:
    r.open("control")
    if mode == "armed":
        r.arm(); say("ready")
        while True:
            r.heartbeat(); list(r.events(0.1))
    elif mode == "step":
        r.arm()
        spaces = r.info["spaces"]["action"]
        idle, lo, hi = (np.array(spaces[k]) for k in ("idle", "low", "high"))
        obs = r.observation(); n = 0; t0 = time.monotonic()
        while True:
            a = np.clip(idle + 0.15 * math.sin(2 * math.pi * 0.3 * (time.monotonic() - t0)), lo, hi)
            r.act(obs.cycle, a)
            obs = r.observation(after=obs.cycle, timeout_s=10)
            n += 1
            if n == 12:
                say("ready")
    elif mode == "policy":
        r.upload(Path(bundle))
        r.run(episodes=1000, seed=0)
        started = False
        while True:
            r.heartbeat()
            for ev in r.events(0.1):
                if ev.get("kind") == "run_started" and not started:
                    started = True; say("ready")
                elif ev.get("kind") == "run_failed":
                    say("failed " + json.dumps(ev)); sys.exit(2)
except Exception as exc:
    say(f"ended {type(exc).__name__}: {exc}")
    time.sleep(3600)
"""


@dataclass
class Client:
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def wait_ready(self, timeout_s: float) -> bool:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if not r:
                if self.proc.poll() is not None:
                    return False
                continue
            line = self.proc.stdout.readline()
            if not line:
                return False
            self.lines.append(line)
            if line.strip() == "ready":
                return True
            if line.startswith(("failed", "ended")):
                return False
        return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        self.proc.wait()


def start_client(daemon: RobotDaemon, lease: str, mode: str, bundle: Path | None) -> Client:
    proc = subprocess.Popen(
        [sys.executable, "-c", CLIENT, daemon.control, daemon.key, lease, mode, str(bundle or "")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return Client(proc)


# --------------------------------------------------------------------------------- config
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {v!r}")


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    scalars = [(k, v) for k, v in data.items() if not isinstance(v, dict)]
    tables = [(k, v) for k, v in data.items() if isinstance(v, dict)]
    lines = [f"[{prefix}]"] if prefix and scalars else []
    lines += [f"{k} = {_toml_value(v)}" for k, v in scalars]
    for k, v in tables:
        lines.append(to_toml(v, f"{prefix}.{k}" if prefix else k))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------- bundles
@dataclass
class Bundles:
    small: Path
    slow: Path
    nan: Path
    vision: Path | None = None


def make_bundles(directory: Path, vision: bool = False) -> Bundles:
    from raas.policy import examples
    from tests.safety.matrix_bundles import counter_bundle

    directory.mkdir(parents=True, exist_ok=True)
    small = directory / "small"
    if not (small / "manifest.json").exists():
        examples.make_small(small)
    b = Bundles(
        small,
        counter_bundle(directory / "slow", kind="slow", after_steps=25, slow_ms=55.0),
        counter_bundle(directory / "nan", kind="nan", after_steps=25),
    )
    if vision:
        v = directory / "vision"
        if not (v / "manifest.json").exists():
            examples.make_vision(v)
        b.vision = v
    return b


# --------------------------------------------------------------------------------- a cell run
@dataclass
class Run:
    """Everything one cell run needs and measured."""

    cell: Cell
    work: Path
    daemon: RobotDaemon
    rec: StreamRecorder
    events_path: Path
    start_file: Path
    offset_file: Path | None  # the wall-clock shim's offset (clock-jump cells)
    client: Client | None = None
    lease_exp: float | None = None
    t_inject_ns: int | None = None
    exit_ns: int | None = None

    def record(self) -> list[dict[str, Any]]:
        from raas_firmware_bridge.emulator.record import read_events

        try:
            return read_events(self.events_path)
        except (json.JSONDecodeError, OSError):  # a line being written: read again
            time.sleep(0.05)
            return read_events(self.events_path)

    def wait_record(
        self, match: Callable[[dict[str, Any]], bool], timeout_s: float
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for ev in self.record():
                if match(ev):
                    return ev
            time.sleep(0.02)
        return None


def _config(cell: Cell, work: Path, start_file: Path, cameras: int) -> dict[str, Any]:
    faults: dict[str, Any] = {
        "start_file": str(start_file),
        "record_path": str(work / "events.jsonl"),
    }
    link: dict[str, Any] = {"record_events": True}
    f = cell.fault
    if f == "mocap_lost":
        faults["mocap_lost_at_s"] = 0.0
    elif f == "camera_lost":
        faults["camera_lost_at_s"] = 0.0
        faults["camera_lost"] = "left"
    elif f == "serial_noise":
        link.update(bit_error_rate=1e-4, corrupt_rx=True)
    elif f == "firmware_reset":
        link["reset_at_s"] = 0.0
    elif f == "port_unplugged":
        link["vanish_at_s"] = 0.0
    elif f == "daemon_sigkill":
        faults["outlive_parent_s"] = 3.0
    return {
        "loop": {"rate_hz": RATE_HZ},
        # The matrix runs without real-time priority on shared CI machines: the hand's 2 ms
        # default deadline would make it stale on scheduling noise alone (and hold every K
        # cycles) when no fault is injected. 10 ms still leaves 70 ms of the 80 ms cycle.
        "deadlines": {"hand_ms": 10.0, "trigger_ms": 10.0},
        "rig": {
            "clock": "realtime",
            "rate_hz": RATE_HZ,
            "cameras": cameras,
            "link": link,
            "faults": faults,
        },
    }


SHIM_SOURCE = Path(__file__).with_name("wallclock_shim.c")


def compiler() -> str | None:
    return shutil.which("cc") or shutil.which("gcc")


def build_wallclock_shim(directory: Path) -> Path:
    """Compile tests/safety/wallclock_shim.c (an LD_PRELOAD that steps CLOCK_REALTIME only)."""
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler (cc/gcc) for the wall-clock shim")
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / "wallclock_shim.so"
    subprocess.run(
        [cc, "-shared", "-fPIC", "-O2", "-o", str(out), str(SHIM_SOURCE), "-ldl"],
        check=True,
        capture_output=True,
    )
    return out


def _wallclock_env(shim: Path, offset_file: Path) -> dict[str, str]:
    offset_file.write_text("0\n")
    return {"LD_PRELOAD": str(shim), "RAAS_WALLCLOCK_OFFSET_FILE": str(offset_file)}


@contextlib.contextmanager
def cell_run(cell: Cell, work: Path, issuer: LeaseIssuer) -> Iterator[Run]:
    work.mkdir(parents=True, exist_ok=True)
    start_file = work / "inject"
    start_file.unlink(missing_ok=True)
    (work / "events.jsonl").unlink(missing_ok=True)  # the record appends
    cameras = 3 if cell.fault == "camera_lost" else 0
    cfg_path = work / "cell.toml"
    cfg_path.write_text(to_toml(_config(cell, work, start_file, cameras)))
    env: dict[str, str] = {}
    offset_file = None
    if cell.fault.startswith("clock_jump"):
        offset_file = work / "wallclock_offset"
        env = _wallclock_env(build_wallclock_shim(work), offset_file)
    daemon = start_daemon(
        work / "state",
        issuer,
        clock="realtime",
        rate=RATE_HZ,
        extra=("--config", str(cfg_path), "--cameras", str(cameras)),
        env=env,
        timeout=90,
    )
    rec = None
    run = None
    try:
        rec = StreamRecorder(daemon, issuer)
        run = Run(cell, work, daemon, rec, work / "events.jsonl", start_file, offset_file)
        yield run
    finally:
        if run is not None and run.client is not None:
            run.client.stop()
        if rec is not None:
            rec.close()
            _dump_timeline(rec, work / "timeline.jsonl", run.t_inject_ns if run else None)
        daemon.stop(timeout=20)
        (work / "daemon.log").write_text(daemon.output())


def _dump_timeline(rec: StreamRecorder, path: Path, t0: int | None) -> None:
    """For a post-mortem: each state change on the stream and every event, in order."""
    rows: list[tuple[int, dict[str, Any]]] = []
    last = None
    for s in rec.steps:
        if s.safety != last or s.mode != (rows[-1][1].get("mode") if rows else None):
            rows.append((s.mono_ns, {"cycle": s.cycle, "safety": _label(s.safety), "mode": s.mode}))
            last = s.safety
    rows += [(int(ev.get("mono_ns", n)), {"event": ev}) for n, ev in rec.events]
    rows.sort(key=lambda r: r[0])
    with path.open("w") as f:
        for t, row in rows:
            rel = None if t0 is None else round((t - t0) / 1e9, 3)
            f.write(json.dumps({"t_s": rel, **row}, default=str) + "\n")


# --------------------------------------------------------------------------------- phases
def enter_phase(run: Run, issuer: LeaseIssuer, bundles: Bundles | None) -> None:
    cell = run.cell
    phase = cell.phase
    if not run.rec.wait_steps(5, 30):
        raise RuntimeError("the robot publishes no steps")
    if phase == "idle":
        return
    minutes = 30.0
    if cell.fault == "lease_expiry":  # the lease ends a while after the phase is reached
        minutes = {"armed": 6.0, "step": 8.0}.get(phase, 25.0) / 60
    wall0 = time.time()
    lease = issuer.issue(minutes=minutes)
    run.lease_exp = float(int(wall0 + minutes * 60))
    mode = "policy" if phase in ("policy", "vision_policy") else phase
    bundle = None
    if mode == "policy":
        assert bundles is not None
        if cell.fault == "inference_overrun":
            bundle = bundles.slow
        elif cell.fault == "nan_policy":
            bundle = bundles.nan
        elif phase == "vision_policy":
            bundle = bundles.vision
        else:
            bundle = bundles.small
    run.client = start_client(run.daemon, lease, mode, bundle)
    if not run.client.wait_ready(90):
        raise RuntimeError(
            f"the client never reached the {phase} phase: {''.join(run.client.lines)[-2000:]}"
        )
    run.rec.wait_steps(6, 5)  # settle in the phase


def inject(run: Run) -> None:
    """Inject the cell's fault; sets run.t_inject_ns (CLOCK_MONOTONIC)."""
    f = run.cell.fault
    if f in ("client_sigkill", "client_sigstop"):
        assert run.client is not None
        run.t_inject_ns = time.monotonic_ns()
        os.kill(run.client.proc.pid, signal.SIGKILL if f == "client_sigkill" else signal.SIGSTOP)
    elif f == "lease_expiry":
        assert run.lease_exp is not None
        left = run.lease_exp - time.time()
        if left < 0.3:
            raise RuntimeError(f"the phase took too long: the lease ended {-left:.1f} s ago")
        run.t_inject_ns = time.monotonic_ns() + int(left * 1e9)
        time.sleep(left)
    elif f in ("inference_overrun", "nan_policy"):
        # the bundle changes by itself after 25 steps; injection = its first changed step
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and run.t_inject_ns is None:
            for s in run.rec.steps:
                if s.mode != "policy":
                    continue
                changed = s.fallback != 0 if f == "inference_overrun" else np.isnan(s.desired).any()
                if changed:
                    run.t_inject_ns = s.mono_ns - int(PERIOD_S * 1e9) * (
                        1 if f == "inference_overrun" else 0
                    )
                    break
            time.sleep(0.05)
        if run.t_inject_ns is None:
            raise RuntimeError("the bundle never changed its behaviour")
    elif f == "daemon_sigkill":
        run.t_inject_ns = time.monotonic_ns()
        run.daemon.proc.kill()
    elif f.startswith("clock_jump"):
        assert run.offset_file is not None
        run.t_inject_ns = time.monotonic_ns()
        run.offset_file.write_text("3600\n" if f == "clock_jump_fwd" else "-3600\n")
    else:  # rig faults: the fault clock starts with the file; the record says when it hit
        kind = {
            "mocap_lost": ("rig", "fault", "mocap_lost"),
            "camera_lost": ("cameras", "fault", "camera_lost"),
            "serial_noise": ("rig", "fault", "byte_faults"),
            "firmware_reset": ("hand", "reboot", None),
            "port_unplugged": ("hand", "unplugged", None),
        }[f]
        t0 = time.monotonic_ns()
        run.start_file.write_text("go\n")
        ev = run.wait_record(
            lambda e: (
                e.get("board") == kind[0]
                and e.get("event") == kind[1]
                and (kind[2] is None or e.get("kind") == kind[2])
                and int(e["mono_ns"]) >= t0
            ),
            5,
        )
        if ev is None:
            raise RuntimeError(f"the rig never injected {f}")
        run.t_inject_ns = int(ev["mono_ns"])


def observe(run: Run) -> None:
    """Watch long enough for the declared state, its bound (CI margin) and the settling."""
    cell = run.cell
    assert run.t_inject_ns is not None
    bound = cell.bound_s or 0.0
    if cell.declared == "fault":
        deadline = time.monotonic() + ci_margin(bound) + 3
        while time.monotonic() < deadline and run.daemon.proc.poll() is None:
            time.sleep(0.01)
        if run.daemon.proc.poll() is not None:
            run.exit_ns = time.monotonic_ns()
        return
    if cell.declared == "firmware_hold":
        run.daemon.proc.wait()
        run.wait_record(_watchdog_after(run.t_inject_ns), ci_margin(bound) + 1)
        return
    window = ci_margin(bound) + SETTLE_S + 0.5
    if cell.then == "idle":  # the ramp home takes a while
        window += 6.0
    if cell.declared in ("continue", "unchanged"):
        window = 5.0 if cell.declared == "continue" else 3.0
    end = run.t_inject_ns / 1e9 + window
    while time.monotonic() < end:
        if cell.then == "idle" and _reached(run, S.IDLE) and _settled_after(run, S.IDLE):
            break
        time.sleep(0.05)


# --------------------------------------------------------------------------------- analysis
def _label(state: int) -> str:
    try:
        return S(state).label
    except ValueError:
        return f"?{state}"


def _first_step_in(run: Run, state: SafetyState, after_ns: int) -> StepRec | None:
    for s in run.rec.steps:
        if s.mono_ns >= after_ns and s.safety == state:
            return s
    return None


def _reached(run: Run, state: SafetyState) -> bool:
    assert run.t_inject_ns is not None
    return _first_step_in(run, state, run.t_inject_ns - int(PERIOD_S * 1e9)) is not None


def _settled_after(run: Run, state: SafetyState) -> bool:
    first = _first_step_in(run, state, run.t_inject_ns or 0)
    return first is not None and run.rec.steps[-1].mono_ns - first.mono_ns > SETTLE_S * 1e9


def _transition_to(run: Run, state: SafetyState, after_ns: int) -> dict[str, Any] | None:
    for t in run.rec.transitions():
        if t.get("to") == state.label and int(t.get("mono_ns", t["recv_ns"])) >= after_ns:
            return t
    return None


def _motion_ok(run: Run, state: SafetyState, since: StepRec, res: CellResult) -> bool:
    """No uncontrolled motion after `since` (the first step in `state`), while in that state."""
    steps = [s for s in run.rec.steps if s.mono_ns >= since.mono_ns]
    in_state = []
    for s in steps:
        if s.safety != state:
            break
        in_state.append(s)
    ok = True
    idle = run.rec.idle
    ramp_step = RAMP_VELOCITY * PERIOD_S
    for a, b in itertools.pairwise(in_state):
        d = np.abs(b.applied - a.applied)
        if not np.isfinite(b.applied).all():
            res.notes.append(f"cycle {b.cycle}: non-finite target")
            ok = False
            break
        if state == S.RAMP_DOWN:
            if d.max() > ramp_step * 1.01 + 1e-9:
                res.notes.append(f"cycle {b.cycle}: ramp step {d.max():.4f} > {ramp_step:.4f}")
                ok = False
                break
            if (np.abs(b.applied - idle) > np.abs(a.applied - idle) + 1e-9).any():
                res.notes.append(f"cycle {b.cycle}: a ramp target moved away from home")
                ok = False
                break
        elif d.max() > 1e-9:
            res.notes.append(f"cycle {b.cycle}: target moved {d.max():.4g} rad in {state.label}")
            ok = False
            break
    if state != S.RAMP_DOWN:
        late = [s for s in in_state if s.mono_ns - since.mono_ns >= SETTLE_S * 1e9]
        if late:
            v = max(float(np.abs(s.hand_vel).max()) for s in late)
            if v >= SETTLE_SPEED:
                res.notes.append(f"joint speeds {v:.3f} rad/s {SETTLE_S} s after {state.label}")
                ok = False
        elif len(in_state) > 1:
            res.notes.append(f"left {state.label} before {SETTLE_S} s: settling not judged")
    return ok


def analyse(run: Run) -> CellResult:
    cell = run.cell
    res = CellResult(cell.name, cell.fault, cell.phase, cell.declared, cell.reason, cell.bound_s)
    assert run.t_inject_ns is not None
    t0 = run.t_inject_ns
    steps = run.rec.steps
    res.exit_code = run.daemon.proc.poll()
    if steps:
        res.end_state = _label(steps[-1].safety)
    trans = run.rec.transitions()
    if trans:
        last = trans[-1]
        res.reason, res.detail = last.get("reason"), last.get("detail")
    margin = ci_margin(cell.bound_s) if cell.bound_s is not None else None

    if cell.declared in ("hold", "ramp_down"):
        state = S.HOLD if cell.declared == "hold" else S.RAMP_DOWN
        t = _transition_to(run, state, t0 - int(PERIOD_S * 1e9))
        first = _first_step_in(run, state, t0 - int(PERIOD_S * 1e9))
        if t is not None:
            res.reason, res.detail = t.get("reason"), t.get("detail")
            res.measured_s = (int(t.get("mono_ns", t["recv_ns"])) - t0) / 1e9
        elif first is not None:
            res.measured_s = (first.mono_ns - t0) / 1e9
            res.notes.append("no safety event: time from the first step in the state")
        reached = first is not None or t is not None
        if cell.then == "idle":
            idle_step = _first_step_in(run, S.IDLE, (first.mono_ns if first else t0))
            ti = _transition_to(run, S.IDLE, t0)
            if ti is not None:
                res.then_s = (int(ti.get("mono_ns", ti["recv_ns"])) - t0) / 1e9
                res.reason = f"{res.reason} -> {ti.get('reason')}"
            elif idle_step is not None:
                res.then_s = (idle_step.mono_ns - t0) / 1e9
            if res.then_s is None:
                res.notes.append("never reached idle (home)")
                reached = False
        motion_ok = True
        if first is not None:
            motion_ok = _motion_ok(run, state, first, res)
            if cell.then == "idle":
                idle_first = _first_step_in(run, S.IDLE, first.mono_ns)
                if idle_first is not None:
                    motion_ok = _motion_ok(run, S.IDLE, idle_first, res) and motion_ok
        res.uncontrolled_motion = not motion_ok
        in_time = res.measured_s is not None and margin is not None and res.measured_s <= margin
        reason_ok = (
            cell.reason is None
            or res.reason is None
            or any(res.reason.startswith(r) for r in cell.reason.split("|"))
        )
        if res.reason is None:
            res.notes.append("reason not seen (no safety events)")
        elif not reason_ok:
            res.notes.append(f"reason {res.reason}, declared {cell.reason}")
        detail_ok = cell.detail is None or res.detail is None or cell.detail in str(res.detail)
        if cell.then == "idle" and res.then_s is not None and first is not None:
            ramp_s = float(np.abs(first.applied - run.rec.idle).max()) / RAMP_VELOCITY
            if res.then_s > ci_margin(cell.bound_s or 0) + ramp_s * 1.5 + 1.0:
                res.notes.append(f"idle after {res.then_s:.2f} s (ramp {ramp_s:.2f} s)")
                in_time = False
        if first is not None and steps and steps[-1].safety not in (state, S.IDLE):
            res.notes.append(f"left {state.label} for {_label(steps[-1].safety)}")
        if cell.fault == "nan_policy":  # the hand sees only finite targets
            finite = all(np.isfinite(s.applied).all() for s in steps if s.mono_ns >= t0)
            fw = [e for e in run.record() if e.get("event") == "applied"]
            finite = finite and all(np.isfinite(np.asarray(e["targets"])).all() for e in fw)
            if not finite:
                res.notes.append("a non-finite target reached the hand")
            motion_ok = motion_ok and finite
            res.uncontrolled_motion = not motion_ok
        res.ok = reached and in_time and reason_ok and detail_ok and motion_ok
        if not reached:
            res.notes.append(f"never reached {state.label}")
        return res

    if cell.declared in ("continue", "unchanged"):
        before = [s for s in steps if s.mono_ns < t0]
        after = [s for s in steps if s.mono_ns >= t0]
        pre = before[-1].safety if before else -1
        changed = [s for s in after if s.safety != pre]
        gaps = sum(max(0, b.cycle - a.cycle - 1) for a, b in itertools.pairwise(after))
        fallbacks = sum(1 for s in after if s.fallback != 0)
        res.notes.append(
            f"before: {_label(pre)}; {len(after)} steps after, {gaps} missed cycles, "
            f"{fallbacks} fallbacks"
        )
        if changed:
            res.notes.append(
                f"state changed to {_label(changed[0].safety)} "
                f"{(changed[0].mono_ns - t0) / 1e9:.2f} s after the fault"
            )
        res.measured_s = None
        ok = not changed and len(after) > 10 and pre == S.RUNNING
        if cell.declared == "unchanged":
            ok = ok and gaps == 0
        if cell.fault == "serial_noise":
            ok = _no_corrupt_target_acted_on(run, res) and ok
        res.ok = ok
        return res

    if cell.declared == "fault":
        if run.exit_ns is not None:
            res.measured_s = (run.exit_ns - t0) / 1e9
        saw_fault = any(s.safety == S.FAULT for s in steps) or any(
            t.get("to") == "fault" for t in trans
        )
        tf = _transition_to(run, S.FAULT, t0 - int(PERIOD_S * 1e9))
        if tf is not None:
            res.reason, res.detail = tf.get("reason"), tf.get("detail")
        if saw_fault:
            res.end_state = "fault"
        elif "DEVICE LOST" in run.daemon.output():
            res.notes.append("no FAULT on the stream; the daemon logged DEVICE LOST")
        applied_after = [
            e
            for e in run.record()
            if e.get("event") == "applied" and int(e["mono_ns"]) > t0 and e.get("board") == "hand"
        ]
        if applied_after:
            res.notes.append(f"the firmware applied {len(applied_after)} targets after the fault")
        res.uncontrolled_motion = bool(applied_after)
        res.ok = (
            res.exit_code == EXIT_DEVICE_LOST
            and res.measured_s is not None
            and margin is not None
            and res.measured_s <= margin
            and not applied_after
            and (saw_fault or "DEVICE LOST" in run.daemon.output())
            and (res.reason is None or res.reason == "device_lost")
        )
        if res.exit_code != EXIT_DEVICE_LOST:
            res.notes.append(f"daemon exit {res.exit_code}, declared {EXIT_DEVICE_LOST}")
        return res

    if cell.declared == "firmware_hold":
        wd = run.wait_record(_watchdog_after(t0), 0.5)
        res.end_state = "firmware_hold" if wd is not None else "no_hold"
        if wd is not None:
            res.measured_s = (int(wd["mono_ns"]) - t0) / 1e9
            res.reason = "watchdog"
            res.detail = f"silent {wd.get('silent_ms')} ms"
        after = [e for e in run.record() if e.get("event") == "applied" and int(e["mono_ns"]) > t0]
        res.uncontrolled_motion = bool(after)
        res.ok = (
            wd is not None
            and res.measured_s is not None
            and margin is not None
            and res.measured_s <= margin
            and not after
        )
        return res
    raise ValueError(cell.declared)


def _watchdog_after(t0: int) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("event") == "watchdog" and int(e["mono_ns"]) >= t0


def _no_corrupt_target_acted_on(run: Run, res: CellResult) -> bool:
    """Every target the hand's firmware applied is one the daemon sent (the stream's applied,
    to the wire's 1e-4 rad resolution): a corrupted SET_TARGETS was never acted on."""
    assert run.t_inject_ns is not None
    sent = np.array([s.applied for s in run.rec.steps])
    if sent.size == 0:
        return False
    applied = [
        e
        for e in run.record()
        if e.get("event") == "applied"
        and e.get("board") == "hand"
        and e["mono_ns"] > run.t_inject_ns
    ]
    bad = 0
    for e in applied:
        t = np.asarray(e["targets"])
        if not (np.abs(sent - t).max(axis=1) <= 1.5e-4).any():
            bad += 1
    res.notes.append(
        f"{len(applied)} targets applied by the firmware, {bad} of them not sent by the daemon"
    )
    return bad == 0 and len(applied) > 10


class PhaseNotReachedError(RuntimeError):
    """The robot was not in the phase when the fault was due (e.g. a watchdog held it first on
    a loaded machine): the cell says nothing about the fault, so it is run again."""


_PHASE_STATE = {"idle": S.IDLE, "step": S.RUNNING, "policy": S.RUNNING, "vision_policy": S.RUNNING}


def run_cell(
    cell: Cell, work: Path, issuer: LeaseIssuer, bundles: Bundles | None, attempts: int = 3
) -> CellResult:
    """Run one cell end to end; never raises for a cell that fails (the result says why). A run
    whose robot never reached the phase is repeated (up to `attempts` runs, each noted)."""
    retries: list[str] = []
    for attempt in range(attempts):
        try:
            res = _run_once(cell, work / f"try{attempt}" if attempt else work, issuer, bundles)
        except PhaseNotReachedError as exc:
            retries.append(f"attempt {attempt + 1}: {exc}")
            continue
        except Exception as exc:
            res = CellResult(
                cell.name, cell.fault, cell.phase, cell.declared, cell.reason, cell.bound_s
            )
            res.notes.append(f"harness: {type(exc).__name__}: {exc}")
            res.end_state = "error"
        break
    else:
        res = CellResult(
            cell.name, cell.fault, cell.phase, cell.declared, cell.reason, cell.bound_s
        )
        res.end_state = "phase_not_reached"
    res.notes += [f"phase not reached, run again ({r})" for r in retries]
    res.notes = [" ".join(n.split()) for n in res.notes]
    (work / "result.json").write_text(json.dumps(res.as_dict(), indent=2))
    return res


def _run_once(cell: Cell, work: Path, issuer: LeaseIssuer, bundles: Bundles | None) -> CellResult:
    with cell_run(cell, work, issuer) as run:
        try:
            enter_phase(run, issuer, bundles)
        except RuntimeError as exc:
            if "never reached" in str(exc):
                raise PhaseNotReachedError(str(exc)[:300]) from None
            raise
        want = _PHASE_STATE.get(cell.phase)
        pre = run.rec.wait_state(want, 60) if want is not None else run.rec.last_state()
        if want is not None and pre != want:
            last = run.rec.transitions()[-1:] or [{}]
            raise PhaseNotReachedError(
                f"{_label(pre or -1)} ({last[0].get('reason')} {last[0].get('detail')}) "
                f"instead of {want.label} before the fault"
            )
        inject(run)
        observe(run)
        res = analyse(run)
        res.notes.insert(0, f"phase state {_label(pre) if pre is not None else '?'}")
        return res
