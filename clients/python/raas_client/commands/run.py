"""`raas run BUNDLE --robot R --episodes N`: upload a policy bundle, run it in the robot's loop,
follow its progress, print the results and fetch the session's recording.

Exit codes: 0 the run finished; 1 it failed or stopped (a connection error, a safety stop that
ended the run, the session closed); 2 no such bundle; 5 the robot refused the bundle (the reason
is printed: the field at fault and what is wrong)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from raas_client.commands.connection import add_arguments, connect
from raas_client.commands.events import as_json, describe, fields
from raas_client.errors import RaasClientError, RemoteError
from raas_client.session import RemoteRobot

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 5


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="upload a policy bundle and run it on a robot",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("bundle", type=Path, metavar="BUNDLE", help="bundle file or directory")
    add_arguments(p, robot_flag=True)
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path(), help="where the recording goes (.)")
    p.add_argument("--no-fetch", action="store_true", help="do not fetch the recording")
    p.add_argument(
        "--max-wait",
        type=float,
        default=3600.0,
        help="stop the run after S seconds (default 3600): the results so far are printed, exit 1",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print each event as one JSON object per line on stdout (the other lines go to "
        "stderr)",
    )
    p.set_defaults(func=main)


class _Out:
    """Where lines go: events and results on stdout; with --json the events as JSON there and
    everything else on stderr, so stdout stays machine-readable."""

    def __init__(self, json_events: bool) -> None:
        self.json = json_events

    def say(self, text: str) -> None:
        print(text, file=sys.stderr if self.json else sys.stdout, flush=True)

    def event(self, ev: dict[str, Any]) -> None:
        print(as_json(ev) if self.json else f"  {describe(ev)}", flush=True)

    def warn(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)


@contextmanager
def upload_progress(total_hint: str) -> Iterator[Any]:
    """A progress bar (rich) on a terminal; nothing elsewhere (a pipe, a log, `raasd up`), where
    a redrawn line would mix with other lines. Yields the callback for RemoteRobot.upload."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    columns = (TextColumn(f"upload {total_hint}"), BarColumn(), DownloadColumn())
    with Progress(*columns, TransferSpeedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("upload", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


class _Ended:
    def __init__(self, summary: dict[str, Any] | None, refused: str | None = None) -> None:
        self.summary, self.refused = summary, refused


def _follow(robot: RemoteRobot, max_wait: float, out: _Out) -> _Ended:
    """Print run events until the run ends."""
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        robot.heartbeat()
        for ev in robot.events(timeout_s=0.2):
            kind = ev.get("kind")
            data = fields(ev)
            out.event(ev)
            if kind == "run_done":
                summary: dict[str, Any] = data.get("summary", {})
                return _Ended(summary)
            if kind == "run_failed":  # the robot could not load the bundle
                return _Ended(None, str(data.get("message")))
            if kind == "session_closed":
                return _Ended(None)
    out.warn("raas run: the run did not finish in time; stopping it (its results so far follow)")
    so_far = robot.stop().get("summary")  # the episodes run so far (protocol.md, `stop`)
    return _Ended(so_far if isinstance(so_far, dict) else None)


def _counts(counts: dict[str, int] | None) -> str:
    """{"timeout": 2, "dropped": 1} -> "timeout 2, dropped 1"."""
    return ", ".join(f"{k} {v}" for k, v in (counts or {}).items()) or "none"


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)


def _results(s: dict[str, Any], upload_sha: str, out: _Out) -> None:
    out.say(
        f"results: {s.get('episodes_run')} episode(s), successes per episode "
        f"{s.get('successes')} (median {_or_dash(s.get('median_successes'))}, max "
        f"{_or_dash(s.get('max_successes'))}); episodes ended by: {_counts(s.get('end_reasons'))}; "
        f"the run ended: {s.get('reason')}"
    )
    if s.get("safety_stops"):
        out.say(f"  HELD: episodes ended by a safety stop: {_counts(s['safety_stops'])}")
    p = s.get("policy") or {}
    if p:
        lat = p.get("inference_latency_us") or {}
        out.say(
            f"  bundle {p.get('bundle')} sha256 {str(p.get('bundle_sha256'))[:16]} (over the "
            f"bundle's files, as `raasd eval` prints it; the upload's {upload_sha[:16]} is of the "
            "bytes sent)"
        )
        out.say(
            f"  inference p50 {lat.get('p50', 0):.1f} us, p99 {lat.get('p99', 0):.1f} us "
            f"(budget {p.get('budget_us', 0):.0f} us) on {p.get('execution_provider')}; "
            f"{p.get('cycles')} cycles, overruns {p.get('overruns')}, non-finite outputs "
            f"{p.get('nonfinite_outputs')}, missing observations {p.get('missing_observations')}"
        )


def main(args: argparse.Namespace) -> int:
    out = _Out(args.json)
    if not args.bundle.exists():
        out.warn(f"raas run: no such bundle: {args.bundle}")
        return EXIT_USAGE
    try:
        with connect(args, lease=True) as robot:
            session = robot.open("control")
            sid = str(session["session"])
            out.say(f"session {sid} on {robot.info['robot']} (lease ends {session['expires_at']})")
            t0 = time.monotonic()
            with upload_progress(args.bundle.name) as progress:
                sha = robot.upload(args.bundle, progress)
            out.say(
                f"uploaded {args.bundle.name} in {time.monotonic() - t0:.1f} s "
                f"(upload sha256 {sha[:16]}: the bytes sent)"
            )
            robot.run(args.episodes, args.seed)
            out.say(f"running {args.episodes} episode(s); the robot pauses to load the bundle")
            ended = _follow(robot, args.max_wait, out)
            robot.request("close")
            robot.session = None
            if ended.refused is not None:
                out.warn(f"raas run: the robot refused the bundle: {ended.refused}")
                return EXIT_REFUSED  # nothing ran, so nothing was recorded
            if ended.summary is not None:
                _results(ended.summary, sha, out)
            if not args.no_fetch:
                _fetch(robot, sid, args.out, out)
            finished = ended.summary is not None and ended.summary.get("reason") == "done"
            return EXIT_OK if finished else EXIT_FAILED
    except RaasClientError as exc:
        out.warn(f"raas run: {exc}")
        return EXIT_FAILED


def _fetch(robot: RemoteRobot, sid: str, dest: Path, out: _Out) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    robot.open("observe")
    for _ in range(20):  # the recorder finishes the file off the loop: give it a moment
        try:
            path = robot.fetch_recording(sid, dest)
        except RemoteError as exc:
            if exc.code in ("not_found", "busy"):
                time.sleep(0.25)
                continue
            raise
        out.say(f"recording: {path} (`raas report {path}` summarises it)")
        return
    out.say(f"no recording of session {sid} on the robot (is its recorder enabled?)")
