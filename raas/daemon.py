"""The robot daemon: build the cell from its cell file, run the control loop, report, shut down.

This is the composition root: it reads the cell file's devices (raas.config), builds each
through the driver registry (raas_drivers.registry), and owns `Cell`. Subsystems (metrics,
recording, the health check) get what they need as arguments and never import this module.

Order matters: drivers are built first (the simulated rig's processes start then, so they do not
inherit the loop's SCHED_FIFO and CPU pinning), then devices are configured and activated, then
this process asks for its real-time settings and runs the loop. Whatever happens, devices are
shut down in reverse order and shared resources (the simulated rig) closed; a lost device gives
exit code 3 with the device named.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TextIO

from raas_drivers.cameras import CameraDriver
from raas_drivers.errors import DriverConfigError
from raas_drivers.hand import HandDriver
from raas_drivers.hand.shape import HandShape
from raas_drivers.lifecycle import Device
from raas_drivers.mocap import MocapDriver
from raas_drivers.registry import ProbeReport, lookup
from raas_drivers.sim import SimRig
from raas_drivers.source import Source
from raas_drivers.trigger import TriggerDriver

from raas.config import CellConfig, build_context, refused
from raas.controllers import make_controller
from raas.core.clock import Clock, LockstepClock, MonotonicClock
from raas.core.controller import Controller
from raas.core.loop import ControlLoop, LoopConfig, Publisher, SourceSpec
from raas.core.rt import RtReport, RtRequest, acquire, current_sched, restore
from raas.core.stats import build_stats, device_clocks, format_summary
from raas.core.status import StatusLine
from raas.errors import ConfigError, DeviceLost
from raas.metrics.cell import layout_for as metrics_layout
from raas.metrics.cell import start_metrics
from raas.recording.cell import layout_for as record_layout
from raas.recording.cell import start_recorder, static_metadata
from raas.safety import Supervisor, supervisor_for_hand
from raas.safety.health import HealthCheck, HealthConfig, HealthReport, run_health_check
from raas.safety.supervisor import Transition

EXIT_OK = 0
EXIT_DEVICE_LOST = 3
#: `raasd run` ended with the supervisor holding the hand (or in fault): a watchdog stopped the
#: controller (a late or non-finite policy, a stale sensor, ...); the same code as `raasd eval`'s
EXIT_HELD = 6

_CONTRACTS: dict[str, type[Device]] = {
    "hand": HandDriver,
    "trigger": TriggerDriver,
    "mocap": MocapDriver,
    "cameras": CameraDriver,
}


@dataclass(slots=True)
class RunOutcome:
    exit_code: int
    stats: dict[str, Any]


def _rt_request(cfg: CellConfig) -> RtRequest:
    cpus = cfg.rt.cpus
    if cpus is None:
        n = os.cpu_count() or 1
        cpus = (n - 1,) if n >= 2 else None
    return RtRequest(
        enabled=cfg.rt.enabled,
        fifo_priority=cfg.rt.fifo_priority,
        cpus=cpus,
        mlock=cfg.rt.mlock,
        cpu_latency_us=cfg.rt.cpu_latency_us,
    )


def _prioritise_rig(rig: SimRig, cfg: CellConfig, loop_cpus: tuple[int, ...] | None) -> str:
    """The simulated rig stands in for microcontrollers and cameras that never compete with the
    host: when the loop asks for SCHED_FIFO, the rig's physics process gets it too, a notch
    lower, and, if `rig.render_priority` > 0 (opt-in), the camera process gets SCHED_FIFO at that
    priority (every thread); the rig's processes keep off the loop's CPUs, which is what an
    isolated real-time core would give."""
    if not cfg.rt.enabled or rig.config.clock != "realtime":
        return "SCHED_OTHER (not requested)"
    others = sorted(set(os.sched_getaffinity(0)) - set(loop_cpus or ()))
    if loop_cpus and others:
        for pid in (rig.pid, rig.renderer_pid):
            if pid:
                for tid in _threads(pid):
                    with contextlib.suppress(OSError):
                        os.sched_setaffinity(tid, others)
    render_prio = rig.config.render_priority
    if rig.renderer_pid and render_prio > 0:
        for tid in _threads(rig.renderer_pid):  # llvmpipe's threads too
            with contextlib.suppress(OSError):
                os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(render_prio))
    pid = rig.pid
    prio = max(1, cfg.rt.fifo_priority - 10)
    try:
        os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(prio))
    except OSError as exc:
        return f"SCHED_OTHER ({exc.strerror})"
    if rig.renderer_pid and render_prio > 0:
        return f"SCHED_FIFO prio {prio}, cameras SCHED_FIFO prio {render_prio}"
    return f"SCHED_FIFO prio {prio}"


def _threads(pid: int) -> list[int]:
    """The thread ids of a process (just the pid when /proc cannot be read)."""
    try:
        return [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return [pid]


def _clock(cfg: CellConfig, report: RtReport, rig: SimRig | None) -> Clock:
    """Lockstep only with the simulated rig in lockstep; every other cell runs on
    CLOCK_MONOTONIC."""
    if rig is not None and rig.config.clock == "lockstep":
        return LockstepClock()
    spin_us = cfg.rt.spin_us
    if spin_us is None:
        spin_us = 200 if report.sched_policy == "SCHED_FIFO" else 1000
    return MonotonicClock(spin_ns=spin_us * 1000)


@contextmanager
def _stop_on_signals(loop: ControlLoop) -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        loop.request_stop(signal.Signals(signum).name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def probe_devices(cfg: CellConfig) -> list[ProbeReport]:
    """Probe every device the cell file names (`raasd devices`); a driver without a probe is
    reported as not probed. Nothing is started."""
    shared: dict[str, Any] = {}
    out: list[ProbeReport] = []
    for entry in cfg.devices():
        try:
            spec = lookup(entry.family, entry.driver, device=entry.key)
            settings = spec.parse(entry.key, entry.settings)
        except DriverConfigError as exc:
            out.append(ProbeReport(entry.key, entry.driver, False, problems=[str(exc)]))
            continue
        if spec.probe is None:
            out.append(
                ProbeReport(
                    entry.key,
                    entry.driver,
                    False,
                    problems=[f"driver {entry.driver!r} cannot probe; start the cell to try it"],
                )
            )
            continue
        try:
            out.append(spec.probe(settings, build_context(cfg, entry, shared)))
        except Exception as exc:  # a probe that fails is what `devices` must report, not raise
            out.append(
                ProbeReport(entry.key, entry.driver, False, problems=[f"probe failed: {exc!r}"])
            )
    return out


@dataclass(slots=True)
class Cell:
    """A brought-up cell: devices active, real-time settings taken, the loop's clock chosen.

    Everything a loop needs; `cell_up` shuts the devices down and closes shared resources."""

    cfg: CellConfig
    hand: HandDriver
    trigger: TriggerDriver
    #: every device, in the order they came up (hand, trigger, mocap, cameras)
    devices: list[Device]
    #: the cell file's device key -> (driver name, device)
    named: dict[str, tuple[str, Device]]
    sources: list[SourceSpec]
    rt_report: RtReport
    clock: Clock
    #: One supervisor for the cell's whole life: it outlives the loop segments of a robot.
    supervisor: Supervisor
    #: resources devices share (e.g. "sim": the simulated rig), closed after the devices
    shared: dict[str, Any] = field(default_factory=dict)
    rig_sched: str = ""

    @property
    def rig(self) -> SimRig | None:
        """The simulated rig, when any device is the simulated rig's."""
        rig = self.shared.get("sim")
        return rig if isinstance(rig, SimRig) else None

    @property
    def mocap(self) -> MocapDriver | None:
        return next((d for d in self.devices if isinstance(d, MocapDriver)), None)

    @property
    def cameras(self) -> list[CameraDriver]:
        return [d for d in self.devices if isinstance(d, CameraDriver)]

    @property
    def camera_names(self) -> list[str]:
        """Camera names as sources call them ("left" for the source "cameras.left")."""
        return [
            s.source.source_name.removeprefix("cameras.")
            for s in self.sources
            if s.source.source_name.startswith("cameras.")
        ]

    @property
    def camera_size(self) -> tuple[int, int]:
        """(width, height) of the cell's first camera with a known resolution, else (0, 0)."""
        for cam in self.cameras:
            if cam.resolution != (0, 0):
                return cam.resolution
        return (0, 0)

    @property
    def marker_names(self) -> tuple[str, ...]:
        m = self.mocap
        return m.marker_names if m is not None else ()

    @property
    def period_s(self) -> float:
        return self.cfg.loop.period_ns / 1e9

    def banner(self) -> str:
        cfg = self.cfg
        rig = self.rig
        rt = f"real-time: {self.rt_report.summary()}"
        if cfg.simulated and rig is not None:
            rc = rig.config
            w, h = self.camera_size if self.cameras else (rc.camera_width, rc.camera_height)
            return (
                f"raasd: simulated cell up ({rc.clock}, {cfg.loop.rate_hz:g} Hz, "
                f"{len(self.camera_names)} cameras at {w}x{h}, "
                f"renderer {rig.renderer_backend or 'none'}); {rt}; rig physics {self.rig_sched}"
            )
        hand = self.hand
        parts = [
            f"hand {self.named['hand'][0]} {hand.model!r} ({len(hand.actuator_names)} actuators)",
            f"trigger {self.named['trigger'][0]}",
            f"mocap {self.named['mocap'][0]}" if "mocap" in self.named else "no mocap",
        ]
        cams = [
            f"{k.removeprefix('cameras.')} {d}"
            for k, (d, _) in self.named.items()
            if k.startswith("cameras.")
        ]
        parts.append(f"cameras {', '.join(cams)}" if cams else "no cameras")
        clock = "lockstep" if not self.clock.realtime else "realtime"
        tail = f"; rig physics {self.rig_sched}" if rig is not None else ""
        return (
            f"raasd: cell up ({'; '.join(parts)}; {cfg.loop.rate_hz:g} Hz, {clock} clock); "
            f"{rt}{tail}"
        )

    def policy_cell(self) -> Any:
        """What this cell offers a policy bundle (raas.policy.CellSpec): its hand's shape, its
        cameras and their resolution. Bundles are checked against it at load."""
        # raas.policy loads onnxruntime: only when a bundle is to run
        from raas.policy.cell import CellSpec  # noqa: PLC0415

        spec = CellSpec.from_config(self.cfg, HandShape.of(self.hand))
        w, h = self.camera_size
        if (w, h) == (0, 0):
            return spec
        return dataclasses.replace(
            spec, cameras=tuple(self.camera_names), camera_width=w, camera_height=h
        )

    def health_check(
        self,
        cfg: HealthConfig | None = None,
        on_segment: Callable[[int, int, str], None] | None = None,
    ) -> HealthCheck:
        """The post-session health check for this cell's hand, mocap and cameras."""
        return HealthCheck.for_devices(
            cfg if cfg is not None else self.cfg.health,
            self.hand,
            self.supervisor,
            self.devices,
            self.period_s,
            on_segment=on_segment,
        )

    def run_health_check(
        self,
        cfg: HealthConfig | None = None,
        *,
        publishers: list[Publisher] | None = None,
        on_segment: Callable[[int, int, str], None] | None = None,
    ) -> HealthReport:
        return run_health_check(
            self.build_loop,
            self.cfg.loop,
            self.health_check(cfg, on_segment),
            publishers=publishers,
        )

    def build_loop(
        self,
        controller: Controller,
        *,
        publishers: list[Publisher] | None = None,
        status_stream: TextIO | None = None,
        loop_config: LoopConfig | None = None,
        arm_on_start: bool = True,
    ) -> ControlLoop:
        """A fresh ControlLoop on this cell (a loop runs once; build one per run or session).
        A controller that reads motion capture by row names (a policy, the eval's referee) gets
        the cell's rows first (`bind_markers`; ConfigError when its rows are not there)."""
        bind = getattr(controller, "bind_markers", None)
        if callable(bind):
            bind(self.marker_names)
        lc = loop_config if loop_config is not None else self.cfg.loop
        status = (
            StatusLine(round(lc.status_interval_s * 1e9), status_stream)
            if status_stream is not None
            else None
        )
        loop = ControlLoop(
            lc,
            self.clock,
            self.hand,
            self.trigger,
            self.sources,
            controller,
            publishers=publishers or [],
            rt_report=self.rt_report,
            status=status,
            supervisor=self.supervisor,
            arm_on_start=arm_on_start,
        )
        for pub in loop.publishers:  # outputs that follow the loop's own counters (metrics)
            attach = getattr(pub, "attach", None)
            if callable(attach):
                attach(loop)
        return loop


class SessionSink(Protocol):
    """An output that cares where sessions begin and end (the recorder: one file per session)."""

    def start_session(self, session_id: str, metadata: Mapping[str, str]) -> Path | None:
        """Begin a session; return the file it goes to, if any."""
        ...

    def end_session(self) -> None: ...

    def event(self, kind: str, data: Mapping[str, Any]) -> None:
        """A discrete event (session opened, e-stop, episode end, ...), never blocking."""
        ...


@dataclass(slots=True)
class CellOutputs:
    """What every loop on a cell feeds, beside the controller: publishers (called every cycle)
    and session sinks (told where sessions begin and end)."""

    publishers: list[Publisher] = field(default_factory=list)
    sessions: list[SessionSink] = field(default_factory=list)


@contextmanager
def cell_outputs(cell: Cell) -> Iterator[CellOutputs]:
    """Start the cell's configured outputs (recorder, metrics board) and stop them afterwards.

    Each output is a process or a shared-memory board of its own, so feeding it never blocks
    the loop. With nothing configured this yields empty lists."""
    with contextlib.ExitStack() as stack:
        outputs = CellOutputs()
        cfg = cell.cfg
        if cfg.metrics.enabled:
            layout = metrics_layout(
                cfg.metrics,
                rate_hz=cfg.loop.rate_hz,
                sources=[spec.source.source_name for spec in cell.sources],
                cameras=cell.camera_names,
                camera_size=cell.camera_size,
            )
            loop_cpus = cell.rt_report.affinity if cell.rt_report.requested else []
            metrics = stack.enter_context(
                start_metrics(cfg.metrics, layout, cell.devices, loop_cpus=loop_cpus)
            )
            outputs.publishers.append(metrics)
            print(
                f"raasd: metrics on {metrics.url}metrics, live dashboard on {metrics.url}",
                flush=True,
            )
        if cfg.recording.enabled:
            rig = cell.rig
            meta = static_metadata(
                robot=f"sim-{platform.node()}"
                if cfg.simulated
                else (cfg.metrics.robot or platform.node()),
                clock=rig.config.clock if rig is not None else "realtime",
                rate_hz=cfg.loop.rate_hz,
                rt_summary=cell.rt_report.summary(),
                cell_config_json=cfg.model_dump_json(),
                hand_model=cell.hand.model,
            )
            recorder = stack.enter_context(
                start_recorder(
                    cfg.recording,
                    record_layout(cell.sources, cell.hand, cell.marker_names),
                    meta,
                    cell.rt_report,
                    cell.clock.now_ns,
                )
            )
            outputs.publishers.append(recorder)
            outputs.sessions.append(recorder)
        yield outputs


def _close_shared(shared: dict[str, Any]) -> None:
    for key, res in reversed(list(shared.items())):
        close = getattr(res, "close", None)
        if callable(close):
            try:
                close()
            except Exception as exc:
                print(f"raasd: closing {key} failed: {exc}", file=sys.stderr)


def build_devices(
    cfg: CellConfig, shared: dict[str, Any], built: dict[str, tuple[str, Device]]
) -> None:
    """Build every device the cell file names through its registration (unconfigured) into
    `built` (key -> (driver, device)), so the caller can shut down what was built even when a
    later device is refused. Raises ConfigError for an unknown driver, bad settings or a device
    of the wrong family."""
    for entry in cfg.devices():
        try:
            spec = lookup(entry.family, entry.driver, device=entry.key)
            settings = spec.parse(entry.key, entry.settings)
            dev = spec.build(settings, build_context(cfg, entry, shared))
        except DriverConfigError as exc:
            raise refused(exc) from None
        built[entry.key] = (entry.driver, dev)
        contract = _CONTRACTS[entry.family]
        if not isinstance(dev, contract):
            raise ConfigError(
                f"{entry.key}.driver",
                f"driver {entry.driver!r} built a {type(dev).__name__}, not a {contract.__name__}",
            )


@contextmanager
def cell_up(cfg: CellConfig) -> Iterator[Cell]:
    """Build the cell file's devices, configure and activate them, take the RT settings.

    On exit (normal or not) every device is shut down in reverse order and shared resources
    (the simulated rig's processes) are closed. Raises ConfigError (a device refused) and
    DriverError (a device did not come up)."""
    deadlines = cfg.deadlines.resolve(cfg.loop.period_ns)
    shared: dict[str, Any] = {}
    named: dict[str, tuple[str, Device]] = {}
    devices: list[Device] = []
    sched_before = current_sched()
    report: RtReport | None = None
    try:
        try:
            build_devices(cfg, shared, named)
        finally:
            devices = [d for _, d in named.values()]
        for d in devices:
            d.configure()
        for d in devices:
            d.activate()
        hand = named["hand"][1]
        trigger = named["trigger"][1]
        assert isinstance(hand, HandDriver) and isinstance(trigger, TriggerDriver)
        specs = [
            SourceSpec(hand, deadlines["hand"]),
            SourceSpec(trigger, deadlines["trigger"], required=False),
        ]
        for _, dev in named.values():
            if isinstance(dev, MocapDriver):
                specs.append(SourceSpec(dev, deadlines["mocap"]))
            elif isinstance(dev, CameraDriver):
                cam_sources: list[Source] = list(dev.sources())
                specs += [SourceSpec(s, deadlines["cameras"], required=False) for s in cam_sources]
        request = _rt_request(cfg)
        rig = shared.get("sim")
        rig_sched = _prioritise_rig(rig, cfg, request.cpus) if isinstance(rig, SimRig) else ""
        report = acquire(request)
        yield Cell(
            cfg=cfg,
            hand=hand,
            trigger=trigger,
            devices=devices,
            named=named,
            sources=specs,
            rt_report=report,
            clock=_clock(cfg, report, rig if isinstance(rig, SimRig) else None),
            supervisor=supervisor_for_hand(hand, cfg.safety, cfg.loop.period_ns / 1e9),
            shared=shared,
            rig_sched=rig_sched,
        )
    finally:
        for d in reversed(devices):
            try:
                d.shutdown()
            except Exception as exc:
                print(f"raasd: shutdown of {d.name} failed: {exc}", file=sys.stderr)
        _close_shared(shared)
        if report is not None:
            for note in restore(sched_before, report):
                print(f"raasd: {note}", file=sys.stderr)


def run_loop(loop: ControlLoop) -> int:
    """Run a built loop with SIGINT/SIGTERM as a clean stop; exit code 3 on a lost device."""
    with _stop_on_signals(loop):
        try:
            loop.run()
        except DeviceLost as exc:
            print(
                f"raasd: DEVICE LOST: {exc.device} ({exc.cause}); "
                "hand held where it was measured, stopping",
                file=sys.stderr,
                flush=True,
            )
            return EXIT_DEVICE_LOST
    return EXIT_OK


def record_transitions(
    supervisor: Supervisor, sinks: Callable[[], list[SessionSink]]
) -> Callable[[Transition], None]:
    """Every supervisor transition into the recordings open at the time (`sinks()`) as a
    `safety` event, as a remote session records them (`raasd run`, `raasd eval`); returns the
    listener, to be removed after the run."""

    def record(t: Transition) -> None:
        for sink in sinks():
            sink.event("safety", t.as_dict())

    supervisor.listeners.append(record)
    return record


def run_cell(
    cfg: CellConfig,
    *,
    stats_json: Path | None = None,
    status_stream: TextIO | None = None,
    publishers: list[Publisher] | None = None,
    controller: Controller | None = None,
    out: TextIO | None = None,
) -> RunOutcome:
    """Run the cell until the duration ends, a signal arrives or a device is lost.

    `controller` defaults to the built-in one named by `cfg.controller`. Exit code: EXIT_OK,
    EXIT_DEVICE_LOST, or EXIT_HELD when the supervisor ended holding the hand (or in fault); the
    summary and stats say why (`safety`), and a policy's figures go in them too (`policy`)."""
    out = out if out is not None else sys.stdout
    period_ns = cfg.loop.period_ns
    with cell_up(cfg) as cell:
        ctl = (
            controller
            if controller is not None
            else make_controller(
                cfg.controller,
                period_ns / 1e9,
                limits=cell.hand.limits,
                actuator_names=tuple(cell.hand.actuator_names),
                idle=cell.hand.idle_action,
            )
        )
        with cell_outputs(cell) as outputs:
            loop = cell.build_loop(
                ctl,
                publishers=[*outputs.publishers, *(publishers or [])],
                status_stream=status_stream,
            )
            print(cell.banner(), file=out, flush=True)
            meta = {"mode": "run", "controller": ctl.name}
            policy_stats = getattr(ctl, "policy_stats", None)
            if callable(policy_stats):
                p = policy_stats()
                meta |= {"bundle": str(p["bundle"]), "bundle_sha256": str(p["bundle_sha256"])}
            for sink in outputs.sessions:
                sink.start_session(f"run-{os.getpid()}", meta)
            record_safety = record_transitions(cell.supervisor, lambda: outputs.sessions)
            try:
                exit_code = run_loop(loop)
            finally:
                cell.supervisor.listeners.remove(record_safety)
                for sink in outputs.sessions:
                    sink.end_session()
        rig = cell.rig
        extra: dict[str, Any] = {
            "cell": {
                "devices": {k: d for k, (d, _) in cell.named.items()},
                "hand_model": cell.hand.model,
                "actuators": len(cell.hand.actuator_names),
            }
        }
        if rig is not None:
            extra["rig"] = {
                "renderer": rig.renderer_backend,
                "clock": rig.config.clock,
                "seed": rig.config.seed,
            }
        extra["clocks"] = device_clocks(cell.devices)
        stats = build_stats(loop, extra, devices=cell.devices)
    print(format_summary(stats), file=out, flush=True)
    if exit_code == EXIT_OK and stats["safety"]["held"]:
        exit_code = EXIT_HELD
    if stats_json is not None:
        stats_json.parent.mkdir(parents=True, exist_ok=True)
        stats_json.write_text(json.dumps(stats, indent=2) + "\n")
        print(f"raasd: statistics written to {stats_json}", file=out)
    return RunOutcome(exit_code, stats)
