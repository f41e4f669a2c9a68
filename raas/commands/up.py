"""`raasd up`: the whole product on one machine, what `make run` starts.

A small supervisor, never in the control path. It starts
1. the reservation service with demo users and robots (`raasd serve --demo`);
2. the robot daemon for the demo robot shadow-1 (`raasd robot --sim --clock realtime`), which
   trusts the service's lease key, follows its revocations, records every session and serves
   the live dashboard; its service link keeps its status live in the service (a heartbeat
   every 2 s with its safety state, wear and the post-session health check); with
   `--robots N`, shadow-2..N beside it, each with its own ports, keys, robot token and
   directory entry (raas/commands/up_fleet.py);
3. one job worker per robot (`raasd worker`), which claims the evaluation jobs the robot
   qualifies for and runs them through its daemon;
4. then, as the demo researcher: books shadow-1 now, takes a control lease, runs the example
   Dactyl-shaped policy bundle with `raas run` (progress live), fetches the session's recording
   and renders it with `raas report`; and submits a small evaluation job (2 episodes of the
   same bundle, any robot), which a free robot's worker runs (with one robot: once the demo
   booking of shadow-1 ends);
and prints where everything is. The robot keeps serving until Ctrl-C (or SIGTERM), which stops
everything in order and exits 0. A child that fails stops the rest and exits 4.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from raas.commands import demo_session as demo
from raas.commands.errors import ChildFailedError, ServiceRequestError
from raas.commands.up_children import Child, Children
from raas.commands.up_fleet import RobotPlan, plan_robots
from raas.commands.up_summary import RobotRow, Summary, save_client_config, save_lease

EXIT_FAILED = 4
DEMO_ROBOT = "shadow-1"
DEMO_MINUTES = 30  # the demo booking (cancelled when raasd up stops)
DEMO_JOB_EPISODES = 2  # the demo's evaluation job
_ROBOT_BANNER = re.compile(r"control (\S+) stream (\S+) (?:server key (\S+)|PLAIN)")
_DASHBOARD = re.compile(r"live dashboard on (\S+)")
_LOGIN = re.compile(r"demo login \((\w+)\): (\S+) / (\S+)")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "up",
        help="the whole stack on this machine: service, robot, a demo session (make run)",
        description="Start the reservation service (demo data) and the robot daemon for "
        "shadow-1 (simulated cell, real time, recording, dashboard), then book the robot as "
        "the demo researcher, run a policy bundle on it with `raas run`, fetch the recording "
        "and render `raas report`. The robot keeps serving until Ctrl-C. Arguments after -- "
        "go to `raasd robot --sim`.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address everything listens on")
    p.add_argument("--port", type=int, default=8080, help="reservation service port (8080)")
    p.add_argument("--database-url", help="service database (sqlite:///VAR/raas.db)")
    p.add_argument(
        "--robot-port",
        type=int,
        default=5555,
        help="robot control port; the stream is the next one (5555; 0: any free ports)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=9180,
        help="the robot's Prometheus metrics and live dashboard (9180; 0: any free; -1: off)",
    )
    p.add_argument(
        "--bundle",
        default="example:dactyl",
        help="policy bundle the demo session runs: a path, example:NAME (dactyl, small, "
        "vision; generated into VAR/bundles/ when missing) or none (no demo session)",
    )
    p.add_argument("--episodes", type=int, default=1, help="episodes of the demo run (1)")
    p.add_argument(
        "--robots",
        type=_positive,
        default=1,
        metavar="N",
        help="simulated robots shadow-1..N, each its own daemon, ports (control --robot-port "
        "+ 2(i-1), metrics --metrics-port + i-1), keys, token and directory entry (1)",
    )
    p.add_argument(
        "--extra-cameras",
        type=int,
        choices=(0, 1, 2, 3),
        default=0,
        metavar="N",
        help="cameras each of shadow-2..N renders (0: none, so N daemons fit a small machine; "
        "shadow-1 renders the cell's 3 unless `-- --cameras N`)",
    )
    p.add_argument(
        "--advertise",
        metavar="HOST",
        help="the address the robots register in the service's directory (default: --host; "
        "give it when --host is 0.0.0.0)",
    )
    p.add_argument("--var", type=Path, default=Path("var"), help="state directory (var)")
    p.add_argument("robot_args", nargs=argparse.REMAINDER, help="-- then flags for raasd robot")
    p.set_defaults(func=main)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _bundle(spec: str, var: Path) -> Path | None:
    """The bundle to run; example bundles are generated on first use (onnx.helper, no torch)."""
    if spec == "none":
        return None
    if not spec.startswith("example:"):
        if not Path(spec).exists():
            raise ValueError(f"no such bundle: {spec}")
        return Path(spec)
    from raas.policy.examples import EXAMPLES, ensure_examples

    name = spec.split(":", 1)[1]
    if name not in EXAMPLES:
        raise ValueError(f"no example bundle {name!r}; choose from {', '.join(EXAMPLES)}")
    path = var / "bundles" / name
    if not (path / "manifest.json").is_file():
        print(f"raasd up: generating the example bundle {path} (first run, random weights)")
        with _working("generating the example bundle"):
            ensure_examples(var / "bundles", [name])
    return path


def _step(text: str) -> None:
    print(f"\nraasd up: {text}", flush=True)


@contextmanager
def _working(text: str) -> Iterator[None]:
    """A spinner saying what runs (rich), on a terminal only, while a long step runs. The
    children's echoed lines print above it: rich redirects stdout while it shows. On a pipe or
    in a log nothing is drawn, so every line stays a line."""
    from rich.console import Console

    console = Console(soft_wrap=True)  # the terminal wraps long lines; rich must not break them
    if not console.is_terminal:
        yield
        return
    with console.status(f"[dim]{text}[/dim]", spinner="dots"):
        yield


def _start_service(kids: Children, args: argparse.Namespace) -> tuple[demo.Service, Child]:
    cmd = [sys.executable, "-m", "raas.cli", "serve", "--demo", "--host", args.host]
    cmd += ["--port", str(args.port), "--log-level", "warning"]
    cmd += ["--database-url", args.database_url or f"sqlite:///{args.var / 'raas.db'}"]
    cmd += ["--signing-key", str(args.var / "lease-signing-key.pem")]
    # uvicorn waits for open requests (a revocation long-poll: up to 25 s) on the first
    # SIGINT and stops at once on the second
    env = {"RAAS_STATE_DIR": str(args.var)}
    child = kids.start("service", cmd, env=env, stop_signals=(signal.SIGINT, signal.SIGINT))
    child.wait_for(re.compile("reservation service on"), 90)
    svc = demo.Service(f"http://{args.host}:{args.port}/")
    deadline = time.monotonic() + 30
    while not svc.healthy():  # the banner comes just before the server listens
        kids.check()
        if time.monotonic() > deadline:
            raise ChildFailedError("service", f"no answer at {svc.base}health within 30 s")
        time.sleep(0.1)
    return svc, child


def _start_robot(
    kids: Children,
    args: argparse.Namespace,
    svc: demo.Service,
    plan: RobotPlan,
    creds: demo.RobotCredentials,
) -> Child:
    key = args.var / "transport" / f"{plan.name}-lease-key.pem"
    key.parent.mkdir(parents=True, exist_ok=True)
    key.write_text(creds.lease_key_pem)
    lines = ["# written by raasd up", "[recording]", "enabled = true"]
    lines.append(f"directory = {json.dumps(str(plan.recordings))}")
    if plan.metrics_port is not None:
        lines += ["[metrics]", "enabled = true", f"port = {plan.metrics_port}"]
        lines.append(f"host = {json.dumps(args.host)}")
        lines.append(f"robot = {json.dumps(plan.name)}")
    plan.config.write_text("\n".join(lines) + "\n")
    cmd = [sys.executable, "-m", "raas.cli", "robot", "--sim", "--clock", "realtime"]
    cmd += ["--config", str(plan.config), "--robot", plan.name, "--state-dir", str(plan.state)]
    cmd += ["--control", f"tcp://{args.host}:{plan.control_port}"]
    cmd += ["--stream", f"tcp://{args.host}:{plan.stream_port}"]
    cmd += ["--lease-key", str(key), "--revocations", svc.base.rstrip("/")]
    cmd += ["--robot-id", str(creds.robot_id), "--quiet"]
    if plan.advertise:
        cmd += ["--advertise", plan.advertise]
    if plan.cameras is not None:
        cmd += ["--cameras", str(plan.cameras)]
    cmd += [a for a in args.robot_args if a != "--"]
    return kids.start(plan.child, cmd, env={"RAAS_ROBOT_TOKEN": creds.daemon_token})


def _start_worker(
    kids: Children, svc: demo.Service, plan: RobotPlan, creds: demo.RobotCredentials, row: RobotRow
) -> Child:
    """The robot's job worker: claims its jobs and runs them through its daemon (a client of
    it, with the lease each claim brings), with the robot's own token."""
    cmd = [sys.executable, "-m", "raas.cli", "worker", "--service", svc.base.rstrip("/")]
    cmd += ["--robot-id", str(creds.robot_id), "--endpoint", row.endpoint]
    cmd += [f"--server-key={row.server_key}", "--state-dir", str(plan.state / "worker")]
    name = "worker" if plan.index == 1 else f"worker-{plan.index}"
    env = {"RAAS_ROBOT_TOKEN": creds.daemon_token}
    return kids.start(name, cmd, env=env, stop_signals=(signal.SIGINT, signal.SIGTERM))


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a service manager's stop), handled as Ctrl-C is."""


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def main(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)  # a service manager's stop
    args.var.mkdir(parents=True, exist_ok=True)
    try:
        bundle = _bundle(args.bundle, args.var)
    except ValueError as exc:
        print(f"raasd up: {exc}", file=sys.stderr)
        return 2
    kids = Children()
    stop = threading.Event()
    svc: demo.Service | None = None
    booking: demo.Booking | None = None
    job: demo.DemoJob | None = None
    code = 0
    try:
        _step("[1/4] the reservation service, with demo users and robots")
        plans = plan_robots(args)
        with _working("starting the reservation service"):
            svc, service = _start_service(kids, args)
            creds = [demo.robot_credentials(svc, p.name, p.dashboard) for p in plans]
        _step(_robots_step(plans))
        with _working("starting the robot daemon: the simulated rig, its devices, the loop"):
            robots = [
                _start_robot(kids, args, svc, p, c) for p, c in zip(plans, creds, strict=True)
            ]
            rows = [_robot_row(p, r) for p, r in zip(plans, robots, strict=True)]
            for p, c, row in zip(plans, creds, rows, strict=True):
                _start_worker(kids, svc, p, c, row)
        first = rows[0]
        info = Summary(
            DEMO_ROBOT, svc.base, first.endpoint, first.stream, first.server_key, first.dashboard
        )
        info.others = rows[1:]
        info.logins = _LOGIN.findall(service.output())
        creds1 = creds[0]
        if bundle is not None:
            booking = demo.book_now(svc, creds1.robot_id, minutes=DEMO_MINUTES)
            info.recording, info.report = _demo_run(kids, args, bundle, booking, info)
            job = demo.submit_job(svc, booking.researcher_token, bundle, DEMO_JOB_EPISODES)
            info.job = job
        info.lease_file = save_lease(args.var, booking)
        info.client_config = save_client_config(args.var, svc, booking)
        info.print()
        while True:  # hold: the robot serves until Ctrl-C
            kids.check()
            stop.wait(0.5)
    except KeyboardInterrupt as stop:
        why = "SIGTERM" if isinstance(stop, _Terminated) else "Ctrl-C"
        print(f"\nraasd up: stopping ({why}) ...", flush=True)
    except (ChildFailedError, ServiceRequestError) as exc:
        print(f"raasd up: FAILED: {exc}; stopping everything", file=sys.stderr, flush=True)
        code = EXIT_FAILED
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut this short
            signal.signal(sig, signal.SIG_IGN)
        code = _shut_down(kids, svc, booking, job, code)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return code


def _robots_step(plans: list[RobotPlan]) -> str:
    if len(plans) == 1:
        return f"[2/4] the robot daemon for {DEMO_ROBOT} (simulated cell, real time, recording)"
    return (
        f"[2/4] the robot daemons for {plans[0].name}..{plans[-1].name} (simulated cells, real "
        f"time, recording; {plans[1].name}..{plans[-1].name} render "
        f"{plans[1].cameras} camera(s))"
    )


def _robot_row(plan: RobotPlan, robot: Child) -> RobotRow:
    """The robot's addresses, once its banner says it serves (the daemons start together)."""
    found = robot.wait_for(_ROBOT_BANNER, 120 + 60 * plan.index)
    dash = _DASHBOARD.search(robot.output())
    return RobotRow(
        plan.name, found.group(1), found.group(2), found.group(3) or "plain", dash and dash.group(1)
    )


def _demo_run(
    kids: Children, args: argparse.Namespace, bundle: Path, booking: demo.Booking, info: Summary
) -> tuple[Path, Path]:
    _step(
        f"[3/4] as {demo.DEMO_RESEARCHER[0]}: booked {DEMO_ROBOT} (reservation "
        f"{booking.reservation_id}, {booking.starts_at} to {booking.ends_at}), control lease "
        f"taken; now `raas run {bundle} --robot {info.endpoint} --episodes {args.episodes}`: "
        "upload, run in the robot's loop, live progress"
    )
    out = args.var / "demo"
    with _working("raas run: uploading, then running the policy in the robot's loop"):
        recording = demo.run_bundle(
            kids,
            bundle,
            endpoint=info.endpoint,
            server_key=info.server_key,
            lease=booking.lease,
            episodes=args.episodes,
            out_dir=out,
            timeout_s=600 + 200 * args.episodes,
        )
    _step(f"[4/4] `raas report {recording}`: plots of the session's recording")
    with _working("raas report: reading the recording, drawing the plots"):
        report = demo.render_report(kids, recording, timeout_s=300)
    return recording, report


def _shut_down(
    kids: Children,
    svc: demo.Service | None,
    booking: demo.Booking | None,
    job: demo.DemoJob | None,
    code: int,
) -> int:
    """The demo job cancelled (a running one stops at once, the hand holds), then the workers
    and robots (hand to idle, rig down, files closed), then the booking, then the service."""
    if svc is not None and booking is not None and job is not None:
        demo.cancel_job(svc, booking.researcher_token, job)
    robot = [
        c
        for c in kids.children
        if c.name == "raas" or c.name.startswith(("robot", "worker"))  # workers stop first
    ]
    for child in reversed(robot):
        rc = kids.stop(child, 30.0)
        if child.name.startswith("robot") and rc not in (0, -signal.SIGINT) and code == 0:
            print(f"raasd up: the robot daemon exited with code {rc}", file=sys.stderr)
            code = EXIT_FAILED
    if svc is not None and booking is not None:
        try:
            demo.cancel(svc, booking)
        except ServiceRequestError as exc:
            print(f"raasd up: the demo booking stays: {exc}", file=sys.stderr)
    kids.stop_all(15.0)
    print("raasd up: stopped", flush=True)
    return code
