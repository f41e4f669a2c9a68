"""The robot daemon: bring the simulated cell up, run the control loop, report, shut down.

Order matters: the rig processes start first (so they do not inherit the loop's SCHED_FIFO and
CPU pinning), then devices are configured and activated, then this process asks for its
real-time settings and runs the loop. Whatever happens, devices are shut down and the rig
processes are stopped; a lost device gives exit code 3 with the device named.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TextIO

from raas_drivers.hand import HandDriver
from raas_drivers.lifecycle import Device
from raas_drivers.sim import SimRig
from raas_drivers.source import Source
from raas_drivers.trigger import TriggerDriver

from raas.config import CellConfig
from raas.controllers import make_controller
from raas.core.clock import Clock, LockstepClock, MonotonicClock
from raas.core.controller import Controller
from raas.core.loop import ControlLoop, LoopConfig, Publisher, SourceSpec
from raas.core.rt import RtReport, RtRequest, acquire
from raas.core.stats import build_stats, format_summary
from raas.core.status import StatusLine
from raas.errors import DeviceLost
from raas.metrics.cell import metrics_for_cell
from raas.recording.cell import recorder_for_cell
from raas.safety import Supervisor, supervisor_for_hand

EXIT_OK = 0
EXIT_DEVICE_LOST = 3


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
        enabled=cfg.rt.enabled, fifo_priority=cfg.rt.fifo_priority, cpus=cpus, mlock=cfg.rt.mlock
    )


def _prioritise_rig(rig: SimRig, cfg: CellConfig, loop_cpus: tuple[int, ...] | None) -> str:
    """The simulated rig stands in for microcontrollers that never compete with the host: when
    the loop asks for SCHED_FIFO, the rig's physics process gets it too, a notch lower, and the
    rig's processes (physics and camera renderer) keep off the loop's CPUs, which is what an
    isolated real-time core would give. The renderer stays at normal priority."""
    if not cfg.rt.enabled or cfg.rig.clock != "realtime":
        return "SCHED_OTHER (not requested)"
    others = sorted(set(os.sched_getaffinity(0)) - set(loop_cpus or ()))
    if loop_cpus and others:
        for pid in (rig.pid, rig.renderer_pid):
            if pid:
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(pid, others)
    pid = rig.pid
    prio = max(1, cfg.rt.fifo_priority - 10)
    try:
        os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(prio))
    except OSError as exc:
        return f"SCHED_OTHER ({exc.strerror})"
    return f"SCHED_FIFO prio {prio}"


def _clock(cfg: CellConfig, report: RtReport) -> Clock:
    if cfg.rig.clock == "lockstep":
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


@dataclass(slots=True)
class Cell:
    """A brought-up cell: devices active, real-time settings taken, the loop's clock chosen.

    Everything a loop needs; `cell_up` owns the rig processes and shuts the devices down."""

    cfg: CellConfig
    rig: SimRig
    hand: HandDriver
    trigger: TriggerDriver
    devices: list[Device]
    sources: list[SourceSpec]
    rt_report: RtReport
    clock: Clock
    rig_sched: str
    #: One supervisor for the cell's whole life: it outlives the loop segments of a robot.
    supervisor: Supervisor

    def banner(self) -> str:
        cfg = self.cfg
        return (
            f"raasd: simulated cell up ({cfg.rig.clock}, {cfg.loop.rate_hz:g} Hz, "
            f"{cfg.rig.cameras} cameras at {cfg.rig.camera_width}x{cfg.rig.camera_height}, "
            f"renderer {self.rig.renderer_backend or 'none'}); "
            f"real-time: {self.rt_report.summary()}; rig physics {self.rig_sched}"
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
        """A fresh ControlLoop on this cell (a loop runs once; build one per run or session)."""
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
        if cell.cfg.metrics.enabled:
            metrics = stack.enter_context(metrics_for_cell(cell))
            outputs.publishers.append(metrics)
            print(
                f"raasd: metrics on {metrics.url}metrics, live dashboard on {metrics.url}",
                flush=True,
            )
        if cell.cfg.recording.enabled:
            recorder = stack.enter_context(recorder_for_cell(cell))
            outputs.publishers.append(recorder)
            outputs.sessions.append(recorder)
        yield outputs


@contextmanager
def cell_up(cfg: CellConfig) -> Iterator[Cell]:
    """Start the rig, configure and activate every device, take the RT settings.

    On exit (normal or not) every device is shut down in reverse order and the rig stopped."""
    deadlines = cfg.deadlines.resolve(cfg.loop.period_ns)
    with SimRig(cfg.rig) as rig:
        devs = rig.devices()
        devices: list[Device] = [devs.hand, devs.trigger, devs.mocap]
        if devs.cameras is not None:
            devices.append(devs.cameras)
        try:
            for d in devices:
                d.configure()
            for d in devices:
                d.activate()
            specs = [
                SourceSpec(devs.hand, deadlines["hand"]),
                SourceSpec(devs.trigger, deadlines["trigger"], required=False),
                SourceSpec(devs.mocap, deadlines["mocap"]),
            ]
            if devs.cameras is not None:
                cam_sources: list[Source] = list(devs.cameras.sources())
                specs += [SourceSpec(s, deadlines["cameras"], required=False) for s in cam_sources]
            request = _rt_request(cfg)
            rig_sched = _prioritise_rig(rig, cfg, request.cpus)
            report = acquire(request)
            yield Cell(
                cfg=cfg,
                rig=rig,
                hand=devs.hand,
                trigger=devs.trigger,
                devices=devices,
                sources=specs,
                rt_report=report,
                clock=_clock(cfg, report),
                rig_sched=rig_sched,
                supervisor=supervisor_for_hand(devs.hand, cfg.safety, cfg.loop.period_ns / 1e9),
            )
        finally:
            for d in reversed(devices):
                try:
                    d.shutdown()
                except Exception as exc:
                    print(f"raasd: shutdown of {d.name} failed: {exc}", file=sys.stderr)


def run_loop(loop: ControlLoop) -> int:
    """Run a built loop with SIGINT/SIGTERM as a clean stop; exit code 3 on a lost device."""
    with _stop_on_signals(loop):
        try:
            loop.run()
        except DeviceLost as exc:
            print(
                f"raasd: DEVICE LOST: {exc.device} ({exc.cause}); idle action sent, stopping",
                file=sys.stderr,
                flush=True,
            )
            return EXIT_DEVICE_LOST
    return EXIT_OK


def run_cell(
    cfg: CellConfig,
    *,
    stats_json: Path | None = None,
    status_stream: TextIO | None = None,
    publishers: list[Publisher] | None = None,
    controller: Controller | None = None,
    out: TextIO | None = None,
) -> RunOutcome:
    """Run the simulated cell until the duration ends, a signal arrives or a device is lost.

    `controller` defaults to the built-in one named by `cfg.controller`."""
    out = out if out is not None else sys.stdout
    period_ns = cfg.loop.period_ns
    with cell_up(cfg) as cell:
        ctl = (
            controller
            if controller is not None
            else make_controller(cfg.controller, period_ns / 1e9)
        )
        with cell_outputs(cell) as outputs:
            loop = cell.build_loop(
                ctl,
                publishers=[*outputs.publishers, *(publishers or [])],
                status_stream=status_stream,
            )
            print(cell.banner(), file=out, flush=True)
            for sink in outputs.sessions:
                sink.start_session(f"run-{os.getpid()}", {"mode": "run"})
            try:
                exit_code = run_loop(loop)
            finally:
                for sink in outputs.sessions:
                    sink.end_session()
        stats = build_stats(
            loop,
            {
                "rig": {
                    "renderer": cell.rig.renderer_backend,
                    "clock": cfg.rig.clock,
                    "seed": cfg.rig.seed,
                }
            },
            devices=cell.devices,
        )
    print(format_summary(stats), file=out, flush=True)
    if stats_json is not None:
        stats_json.parent.mkdir(parents=True, exist_ok=True)
        stats_json.write_text(json.dumps(stats, indent=2) + "\n")
        print(f"raasd: statistics written to {stats_json}", file=out)
    return RunOutcome(exit_code, stats)
