"""The robot on the network: the cell's loop driven by the SessionController, in segments.

A segment is one ControlLoop run (`cell.build_loop`). It ends on a signal (the daemon stops),
a lost device, or a policy run request: then, between cycles, the bundle is loaded (session
build, warm-up, latency measurement: far longer than a cycle, so never inside one) while the
hand holds its last target, and a new segment starts with the policy deciding. During that
pause e-stops (ZeroMQ and the service's) are served every cycle and reach the hand's firmware;
other control messages wait and are answered when the next segment starts.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import zmq
from raas_client.wire import ErrorCode
from raas_drivers.errors import DriverError

from raas.config import CellConfig
from raas.core.loop import ControlLoop
from raas.core.rt import keep_io_threads_off_the_loop
from raas.core.stats import build_stats
from raas.daemon import EXIT_DEVICE_LOST, EXIT_OK, Cell, cell_outputs, cell_up, run_loop
from raas.safety import TransitionRefusedError
from raas.safety.errors import WearFileCorruptError
from raas.safety.health import HealthCheck
from raas.safety.wear import WearMeter
from raas.transport.bundle_run import RunRequest
from raas.transport.config import TransportConfig
from raas.transport.directory_entry import advertised, directory_entry, unreachable
from raas.transport.errors import RequestRefusedError
from raas.transport.leases import LeaseGate
from raas.transport.service_link import ServiceLink
from raas.transport.service_report import ServiceReporter
from raas.transport.session import SessionController
from raas.transport.sockets import RobotSockets
from raas.transport.spaces import ObservationPacker
from raas.transport.stream import StreamPublisher

#: While a bundle loads, the hold targets are sent again and e-stops served this often (or every
#: period when that is shorter): the firmware watchdog, and an e-stop within a cycle.
HOLD_REFRESH_S = 0.1


def markers_of(cell: Cell) -> tuple[str, ...]:
    for spec in cell.sources:
        if spec.source.source_name == "mocap":
            names = getattr(spec.source, "marker_names", ())
            return tuple(names() if callable(names) else names)
    return ()


def _bundle_path(path: Path, work: Path) -> Path:
    """A tar upload is unpacked into a directory of its own; anything else is used as is."""
    if not tarfile.is_tarfile(path):
        return path
    dest = Path(tempfile.mkdtemp(prefix="bundle-", dir=work))
    with tarfile.open(path) as tar:
        tar.extractall(dest, filter="data")
    entries = list(dest.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


def _scene_reset(cell: Cell) -> Callable[[int], None] | None:
    """The `reset {scene: true}` of this cell: the simulated rig's reset command (a few ms,
    between cycles); None on a real cell (its reset hook runs next to the daemon, in the job
    worker, never inside the loop)."""
    rig = cell.rig
    if rig is None:
        return None

    def reset(seed: int) -> None:
        try:
            rig.reset_scene(seed)
        except DriverError as exc:
            raise RequestRefusedError(ErrorCode.UNAVAILABLE, str(exc)) from None

    return reset


@dataclass(slots=True)
class _Loaded:
    """What the loader thread made: the evaluation controller of a run, or why it failed."""

    runner: Any = None
    controller: Any = None
    error: str | None = None
    took_s: float = 0.0


def _load_bundle(ctl: SessionController, cell: Cell, req: RunRequest) -> _Loaded:
    """Load the requested bundle and build its evaluation controller (slow; no sockets: this
    runs in the loader thread while the serving thread keeps the sockets)."""
    t0 = time.monotonic()
    root: Path | None = None
    try:
        # Imported here: the runner and the evaluation are only needed when a bundle runs.
        load_bundle = importlib.import_module("raas.policy").load_bundle
        evaluation = importlib.import_module("raas.task.evaluation")
        EvaluationController = evaluation.EvaluationController

        root = _bundle_path(req.bundle, ctl.cfg.upload_dir)
        runner = load_bundle(
            root,
            period_s=1.0 / cell.cfg.loop.rate_hz,
            cell=cell.policy_cell(),
        )

        def on_event(event: Mapping[str, Any]) -> None:  # called by the loop, later
            data = {k: v for k, v in event.items() if k != "event"}
            ctl.run_event(str(event.get("event", "event")), data)

        # judged on the robot's task settings, as remote stepping and policy servers are
        ev = EvaluationController(
            runner, episodes=req.episodes, seed=req.seed, on_event=on_event, task=ctl.cfg.task
        )
        # a safety stop ends the episode (recorded as held, with the reason) before the session
        # ends the run on it
        ev.attach(ctl.supervisor, first=True)
    except Exception as exc:  # a bad bundle is the client's problem: report it, keep holding
        message = f"{type(exc).__name__}: {exc}"
        # paths inside the bundle, not where this robot unpacked it
        for place, name in ((root, "<bundle>"), (req.bundle, "<upload>")):
            if place is not None:
                message = message.replace(str(place), name)
        return _Loaded(error=message, took_s=time.monotonic() - t0)
    return _Loaded(runner=runner, controller=ev, took_s=time.monotonic() - t0)


def _start_run(ctl: SessionController, req: RunRequest, loaded: _Loaded, log: TextIO) -> None:
    """Hand the loaded bundle's controller to the session (serving thread)."""
    if loaded.error is not None:
        print(
            f"raasd: bundle {req.sha256[:12]} failed to load: {loaded.error}", file=log, flush=True
        )
        ctl.fail_run(loaded.error)
        return
    took = loaded.took_s
    print(f"raasd: bundle {req.sha256[:12]} loaded in {took:.2f} s", file=log, flush=True)
    ev = loaded.controller
    try:
        ctl.start_policy(ev, lambda: bool(ev.done), ev.summary)
    except TransitionRefusedError as exc:  # a fault latched meanwhile (an e-stop): no run
        ev.detach()
        ctl.fail_run(str(exc))
        return
    # The bundle's own hash (over its files: what the researcher cites, what `raasd replay`
    # compares), not the upload's (over the archive as sent, which its packing changes).
    bundle_sha = loaded.runner.bundle_hash
    ctl.start_recording_for_run(bundle_sha, str(loaded.runner.manifest.name))
    ctl.run_event(
        "run_started",
        {
            "sha256": bundle_sha,
            "upload_sha256": req.sha256,
            "episodes": req.episodes,
            "load_s": took,
        },
    )


def _load_holding(
    ctl: SessionController,
    cell: Cell,
    log: TextIO,
    last: ControlLoop,
    build_next: Callable[[], ControlLoop],
) -> ControlLoop:
    """Load the bundle and build the next segment's loop in a thread while this one keeps the
    hand holding its last targets: the hand's firmware watchdog wants a command every W ms (500
    by default), and a load plus a loop build (its buffers are touched under mlockall) take
    longer. Every period this thread also serves the e-stops (ZeroMQ and the service's), so an
    e-stop reaches the hand within a cycle during a load too; other control messages wait for
    the next segment. The loader touches no socket. It drops to SCHED_OTHER: at the loop's
    SCHED_FIFO priority, on the loop's CPU, it would never give the holding thread its turn
    (FIFO threads of one priority do not share a CPU)."""
    req = ctl.pending_run
    ctl.pending_run = None
    loaded: list[_Loaded] = []
    built: list[ControlLoop] = []
    failed: list[BaseException] = []

    bundle_ready = threading.Event()  # the loader loaded the bundle
    run_started = threading.Event()  # the session took it (the next loop depends on its needs)

    def load() -> None:
        with contextlib.suppress(OSError, AttributeError):  # pid 0: this thread only (Linux)
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        try:
            if req is not None:
                loaded.append(_load_bundle(ctl, cell, req))
            bundle_ready.set()
            run_started.wait()
            built.append(build_next())
        except BaseException as exc:  # handed to the serving thread
            failed.append(exc)
            bundle_ready.set()

    targets, cycle = last.applied.copy(), last.obs.cycle
    every_s = min(HOLD_REFRESH_S, cell.cfg.loop.period_ns / 1e9)
    loader = threading.Thread(target=load, name="load bundle")
    loader.start()
    try:
        while loader.is_alive():
            cell.hand.apply(targets, cycle)
            ctl.serve_estops()
            if bundle_ready.is_set() and not run_started.is_set():
                if req is not None and loaded:
                    _start_run(ctl, req, loaded[0], log)
                run_started.set()
            loader.join(every_s)
    finally:
        run_started.set()
        loader.join()
    cell.hand.apply(targets, cycle)  # the new loop's first cycle is two periods away
    if failed:
        raise failed[0]
    return built[0]


def _advertised(sockets: RobotSockets, tcfg: TransportConfig, log: TextIO) -> tuple[str, str]:
    """The control and stream endpoints the robot directory gives clients (`advertise`)."""
    control = advertised(sockets.control_endpoint, tcfg.advertise, control=True)
    stream = advertised(sockets.stream_endpoint, tcfg.advertise, control=False)
    if tcfg.advertise is not None:
        print(f"raasd: advertised as control {control} stream {stream}", file=log, flush=True)
    elif tcfg.revocations is not None and unreachable(control):
        print(
            f"raasd: bound to {control} without --advertise: the robot directory gives clients "
            "an address they cannot reach; pass --advertise HOST",
            file=log,
            flush=True,
        )
    return control, stream


def serve_cell(
    cfg: CellConfig,
    tcfg: TransportConfig,
    *,
    log: TextIO | None = None,
    status_stream: TextIO | None = None,
    stats_json: Path | None = None,
) -> int:
    """Run the robot on the network until SIGINT/SIGTERM or a lost device; the exit code."""
    log = log if log is not None else sys.stdout
    with contextlib.ExitStack() as stack:
        cell = stack.enter_context(cell_up(cfg))
        outputs = stack.enter_context(cell_outputs(cell))
        ctx: zmq.Context[Any] = zmq.Context()
        keep_io_threads_off_the_loop(ctx)
        stack.callback(ctx.term)
        sockets = RobotSockets(tcfg, ctx)
        stack.callback(sockets.close)
        link = None
        if tcfg.revocations is not None:  # the service: revocations, REST e-stops, heartbeats
            link = ServiceLink(ctx, tcfg.revocations, tcfg.key_dir)
            stack.callback(link.close)
        sup = cell.supervisor
        period_s = cfg.loop.period_ns / 1e9
        wear = WearMeter(cell.hand.actuator_names, cell.hand.effort_limits, period_s)
        wear_file = tcfg.wear_dir / f"{tcfg.robot}.json"
        try:
            wear.load(wear_file)
        except WearFileCorruptError as exc:  # set aside by load(); counting starts again
            print(f"raasd: {exc}", file=log, flush=True)
        reporter = ServiceReporter(sup, wear, link, period_s, wear_file=wear_file)
        stack.callback(reporter.save)
        health_cfg = cfg.health

        def health_check() -> HealthCheck:
            return cell.health_check(health_cfg)

        gate = LeaseGate.from_file(tcfg.robot, tcfg.lease_public_key)
        lc = cfg.loop
        realtime = cell.clock.realtime
        if not realtime:  # lockstep: decide may wait in wall time for a remote action
            budget_ms = (tcfg.lockstep_action_timeout_s + 1.0) * 1000 + 1000 / lc.rate_hz
            lc = lc.model_copy(update={"decide_budget_ms": budget_ms})
        packer = ObservationPacker(cell.hand, markers_of(cell))
        loops: list[ControlLoop] = []

        def end_segment(reason: str) -> None:
            loops[-1].request_stop(reason)

        ctl = SessionController(
            sockets,
            gate,
            tcfg,
            packer,
            rate_hz=lc.rate_hz,
            decide_budget_ns=lc.decide_budget_ns,
            realtime=realtime,
            supervisor=sup,
            sinks=outputs.sessions,
            inbox=link,
            on_segment_end=end_segment,
            health_check=health_check if cfg.safety.health_after_session else None,
            on_health=reporter.on_health,
            reset_scene=_scene_reset(cell),
        )
        stream = StreamPublisher(
            sockets, ObservationPacker(cell.hand, packer.markers), image_every=tcfg.image_every
        )
        stream.mode = ctl._mode
        print(cell.banner(), file=log, flush=True)
        key = sockets.public_key
        print(
            f"raasd: robot {tcfg.robot!r} control {sockets.control_endpoint} stream "
            f"{sockets.stream_endpoint} "
            + (f"server key {key}" if key else "PLAIN (no encryption)"),
            file=log,
            flush=True,
        )
        control_at, stream_at = _advertised(sockets, tcfg, log)
        reporter.directory = directory_entry(
            control_endpoint=control_at,
            stream_endpoint=stream_at,
            server_public_key=key,
            hand_model=cell.hand.model,
            drivers={k: d for k, (d, _) in cell.named.items()},
            realtime=realtime,
        )
        if gate.public_key is None:
            print("raasd: no lease key configured: every session is refused", file=log, flush=True)
        rec = cfg.recording
        print(
            f"raasd: recording every controlling session to {rec.directory}/<session>.mcap"
            if rec.enabled
            else "raasd: not recording (raasd robot --record, or [recording] enabled = true)",
            file=log,
            flush=True,
        )
        exit_code = EXIT_OK

        def build_loop(first_cycle: int) -> ControlLoop:
            loop = cell.build_loop(
                ctl,
                publishers=[ctl, stream, reporter, *outputs.publishers],
                status_stream=status_stream,
                loop_config=lc,
                arm_on_start=False,  # sessions arm the supervisor
            )
            loop.first_cycle = first_cycle
            return loop

        loop = build_loop(0)
        try:
            while True:
                loops.clear()
                loops.append(loop)
                exit_code = run_loop(loop)
                if exit_code == EXIT_DEVICE_LOST or loop.result.stop_reason != "load bundle":
                    break
                reporter.save()
                try:
                    loop = _load_holding(
                        ctl, cell, log, loop, functools.partial(build_loop, loop.obs.cycle + 1)
                    )
                except DriverError as exc:
                    print(f"raasd: DEVICE LOST while loading: {exc}", file=log, flush=True)
                    exit_code = EXIT_DEVICE_LOST
                    break
        finally:
            ctl.close_all("daemon stopping")
        if stats_json is not None and loops:  # the last segment's figures, and the sessions'
            stats = build_stats(loops[-1], {"transport": ctl.status()}, devices=cell.devices)
            stats_json.parent.mkdir(parents=True, exist_ok=True)
            stats_json.write_text(json.dumps(stats, indent=2) + "\n")
        print(
            f"raasd: robot stopped ({loops[-1].result.stop_reason if loops else 'n/a'})", file=log
        )
    return exit_code
