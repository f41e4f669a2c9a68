"""`raasd worker --service URL --robot-id ID`: the robot side of evaluation jobs. Next to the
robot's daemon, it claims the next job the robot qualifies for, runs its episodes one at a time
on the robot (reset, upload, run, recording), reports each to the service and finishes the job;
then claims the next. The robot's token comes from RAAS_ROBOT_TOKEN. docs/fleet.md.

Exit codes: 0 stopped (--once ran its job, --idle-exit, SIGTERM/Ctrl-C); 1 the service refused
this robot (token, robot id); 2 bad command line or cell file; 3 the cell's reset hook failed
(the cell needs staff)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

EXIT_CONFIG = 2


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "worker",
        help="run evaluation jobs on this robot (claims them from the reservation service)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--service",
        default=os.environ.get("RAAS_SERVICE_URL"),
        metavar="URL",
        help="the reservation service (RAAS_SERVICE_URL)",
    )
    p.add_argument("--robot-id", type=int, required=True, help="this robot's id in the service")
    p.add_argument(
        "--endpoint",
        metavar="ENDPOINT",
        help="the robot's control endpoint (default: the claim's, i.e. its directory entry)",
    )
    p.add_argument("--server-key", metavar="KEY", help="the robot's Curve server key (with it)")
    p.add_argument(
        "--config",
        type=Path,
        metavar="CELL.toml",
        help="the robot's cell file: its [reset] hook puts a real cell back between episodes",
    )
    p.add_argument(
        "--ask-staff",
        action="store_true",
        help="a cell without a reset: ask staff (a line here, Enter to go on) before each episode",
    )
    p.add_argument("--once", action="store_true", help="run one job, then exit")
    p.add_argument("--idle-exit", type=float, metavar="S", help="exit after S s without a job")
    p.add_argument(
        "--state-dir",
        type=Path,
        default=Path("var/worker"),
        help="bundle cache and episode recordings (var/worker)",
    )
    p.add_argument("--claim-wait", type=float, default=20.0, metavar="S", help="long poll (20)")
    p.add_argument(
        "--hold-margin",
        type=float,
        default=5.0,
        metavar="S",
        help="stop this long before the robot's hold ends (5)",
    )
    p.add_argument(
        "--episode-timeout",
        type=float,
        default=900.0,
        metavar="S",
        help="an episode that runs longer is stopped (900; a job's episode_timeout_s wins)",
    )
    p.add_argument(
        "--first-chunk-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="a job's policy server that sent no chunk this long after the robot dialled it "
        "fails the job (60)",
    )
    p.set_defaults(func=main)


def _reset_hook(config: Path | None) -> Any:
    """The cell file's [reset] section (raas.config.ResetHook), or None."""
    from pydantic import ValidationError

    from raas.config import ResetHook, load_config_file
    from raas.errors import ConfigError

    if config is None:
        return None
    section = load_config_file(config).get("reset")
    if section is None:
        return None
    try:
        return ResetHook.model_validate(section)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"reset.{where}", first["msg"]) from None


def main(args: argparse.Namespace) -> int:
    from raas.errors import ConfigError
    from raas.fleet.reset import Resetter
    from raas.fleet.service_client import TOKEN_ENV, ServiceClient
    from raas.fleet.worker import Worker, WorkerOptions

    def log(text: str) -> None:
        print(f"raasd worker: {text}", flush=True)

    if not args.service:
        print("raasd worker: --service URL (or RAAS_SERVICE_URL) is needed", file=sys.stderr)
        return EXIT_CONFIG
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        print(f"raasd worker: set {TOKEN_ENV} to this robot's token", file=sys.stderr)
        return EXIT_CONFIG
    try:
        hook = _reset_hook(args.config)
    except ConfigError as exc:
        print(f"raasd worker: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    service = ServiceClient(args.service, args.robot_id, token)
    opts = WorkerOptions(
        cache_dir=args.state_dir / "bundles",
        work_dir=args.state_dir / "episodes",
        endpoint=args.endpoint,
        server_key=args.server_key,
        claim_wait_s=args.claim_wait,
        hold_margin_s=args.hold_margin,
        episode_timeout_s=args.episode_timeout,
        first_chunk_s=args.first_chunk_timeout,
        once=args.once,
        idle_exit_s=args.idle_exit,
    )
    worker = Worker(service, Resetter(hook, args.ask_staff, log), opts, log)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log(f"{signal.Signals(signum).name}: stopping (a running episode is stopped safely)")
        worker.stop()
        if not worker.busy:  # idle in the claim's long poll: leave it now
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    reset = "the scene reset (simulated rig)"
    if hook is not None:
        reset += f", else the hook {hook.command!r}"
    if args.ask_staff:
        reset += ", else staff"
    log(f"robot {args.robot_id} on {args.service}; reset between episodes: {reset}")
    try:
        return worker.serve()
    except KeyboardInterrupt:
        return 0
    finally:
        service.close()
        log(f"stopped after {worker.jobs_run} job(s)")
