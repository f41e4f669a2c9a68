"""`raas run BUNDLE --robot R --episodes N`: upload a policy bundle, run it in the robot's loop,
follow its progress, print the results and fetch the session's recording."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from raas_client.commands.connection import add_arguments, connect
from raas_client.errors import RaasClientError, RemoteError
from raas_client.session import RemoteRobot


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "run", help="upload a policy bundle and run it on a robot", description=__doc__
    )
    p.add_argument("bundle", type=Path, metavar="BUNDLE", help="bundle file or directory")
    add_arguments(p, robot_flag=True)
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path(), help="where the recording goes (.)")
    p.add_argument("--no-fetch", action="store_true", help="do not fetch the recording")
    p.add_argument("--max-wait", type=float, default=3600.0, help="give up after S seconds")
    p.set_defaults(func=main)


def _progress(done: int, total: int) -> None:
    print(f"\r  upload {done / max(total, 1):6.1%} of {total} bytes", end="", file=sys.stderr)


def _follow(robot: RemoteRobot, max_wait: float) -> dict[str, Any] | None:
    """Print run events until the run ends; the summary, or None when it failed."""
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        robot.heartbeat()
        for ev in robot.events(timeout_s=0.2):
            kind = ev.get("kind")
            data = {k: v for k, v in ev.items() if k not in ("v", "t", "kind")}
            if kind == "run_done":
                summary: dict[str, Any] = data.get("summary", {})
                return summary
            if kind == "run_failed":
                print(f"run failed: {data.get('message')}", file=sys.stderr)
                return None
            if kind == "session_closed":
                print(f"session closed by the robot: {data.get('reason')}", file=sys.stderr)
                return None
            if kind == "estop":
                print(f"E-STOP by {data.get('by')}", file=sys.stderr)
                continue
            print(f"  {kind}: {json.dumps(data, default=str)}", flush=True)
    print("run did not finish in time; stopping it", file=sys.stderr)
    robot.stop()
    return None


def main(args: argparse.Namespace) -> int:
    if not args.bundle.exists():
        print(f"raas run: no such bundle: {args.bundle}", file=sys.stderr)
        return 2
    try:
        with connect(args) as robot:
            session = robot.open("control")
            sid = str(session["session"])
            print(f"session {sid} on {robot.info['robot']} (lease ends {session['expires_at']})")
            sha = robot.upload(args.bundle, _progress)
            print(f"\nuploaded {args.bundle.name} sha256 {sha[:16]}")
            robot.run(args.episodes, args.seed)
            print(f"running {args.episodes} episode(s); the robot pauses to load the bundle")
            summary = _follow(robot, args.max_wait)
            robot.request("close")
            robot.session = None
            if summary is not None:
                print("results:")
                for key, value in summary.items():
                    print(f"  {key}: {value}")
            if not args.no_fetch:
                _fetch(robot, sid, args.out)
            return 0 if summary is not None else 1
    except RaasClientError as exc:
        print(f"raas run: {exc}", file=sys.stderr)
        return 1


def _fetch(robot: RemoteRobot, sid: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    robot.open("observe")
    for _ in range(20):  # the recorder finishes the file off the loop: give it a moment
        try:
            path = robot.fetch_recording(sid, out)
        except RemoteError as exc:
            if exc.code in ("not_found", "busy"):
                time.sleep(0.25)
                continue
            raise
        print(f"recording: {path} (`raas report {path}` summarises it)")
        return
    print("no recording on the robot for this session (recorder not configured?)")
