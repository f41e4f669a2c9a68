"""`raas jobs ...`: evaluation jobs on the reservation service (docs/fleet.md, "Submitting jobs").

  raas jobs submit BUNDLE --task reorientation --episodes N [--robot NAME | --hand MODEL]
                   [--priority P] [--deadline ISO] [--seed S] [--wait]
  raas jobs submit --policy-server tcp://HOST:PORT --policy-key KEY [--horizon H] --episodes N
                   [...]   (the robot dials your policy server for each episode: AutoEval)
  raas jobs list [--all] [--status S] [--json]
  raas jobs show ID [--json]
  raas jobs cancel ID
  raas jobs logs ID [--follow]
  raas jobs fetch ID [--dest DIR]

The service and your token come from --service/--token, RAAS_SERVICE_URL/RAAS_TOKEN or
~/.config/raas/client.toml, as for `raas run ROBOT-NAME`.

Exit codes: 0 done (with --wait: the job succeeded); 1 the job ended otherwise (failed,
cancelled, expired), or the service is unreachable (--wait/--follow: for 5 minutes); 2 bad input
here (no such bundle, a deadline that is not a time); 5 the service refused (the reason is
printed: the field or name at fault); 130 Ctrl-C (only the following stops: the job goes on).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from raas_client import bundles, directory
from raas_client.commands.events import END_REASONS
from raas_client.commands.run import upload_progress
from raas_client.errors import (
    ConfigurationError,
    RaasClientError,
    ServiceRefusedError,
    ServiceUnreachableError,
)
from raas_client.jobs import (
    STATUSES,
    TASKS,
    Job,
    JobEvent,
    JobRequest,
    JobsClient,
    PolicyServer,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 5
#: How often --wait and --follow ask the service for news (seconds).
POLL_S = 1.0
#: How long --wait and --follow keep asking a service that does not answer (seconds).
UNREACHABLE_GIVE_UP_S = 300.0
EXIT_INTERRUPTED = 130
#: Bundles from this size get a progress bar on a terminal.
BIG_BUNDLE = 4 << 20


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "jobs",
        help="evaluation jobs: submit a bundle for N episodes, follow, fetch the recordings",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    jobs = p.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)

    s = jobs.add_parser(
        "submit",
        help="upload a bundle (once) and queue a job; or queue one that names a policy server",
    )
    s.add_argument(
        "bundle", type=Path, nargs="?", metavar="BUNDLE", help="bundle file or directory"
    )
    s.add_argument(
        "--policy-server",
        metavar="tcp://HOST:PORT",
        help="instead of BUNDLE: the robot dials this policy server for each episode (`raas "
        "serve-policy --bind ... --robot-key ... --keep-serving`)",
    )
    s.add_argument("--policy-key", metavar="KEY", help="with --policy-server: its public key (Z85)")
    s.add_argument(
        "--horizon",
        type=int,
        default=16,
        metavar="H",
        help="with --policy-server: actions per chunk, the server's --chunk (16)",
    )
    s.add_argument("--task", default="reorientation", choices=TASKS)
    s.add_argument("--episodes", type=int, required=True, help="episodes to run (1..1000)")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--robot", metavar="NAME", help="only this robot")
    where.add_argument("--hand", metavar="MODEL", help="any robot with this hand model")
    s.add_argument("--priority", type=int, default=5, help="0..10, default 5 (above 5: staff)")
    s.add_argument(
        "--deadline",
        metavar="ISO",
        help="give up if not started by then (2026-12-04T18:00, local time without a zone)",
    )
    s.add_argument("--seed", type=int, default=0, help="episode i runs with seed S + i")
    s.add_argument("--episode-timeout", type=float, metavar="S", help="seconds per episode")
    s.add_argument("--wait", action="store_true", help="follow the job until it ends")
    _service_args(s)
    s.set_defaults(func=submit)

    ls = jobs.add_parser("list", help="your jobs (staff with --all: everyone's)")
    ls.add_argument("--all", action="store_true", help="everyone's jobs (staff)")
    ls.add_argument("--status", choices=STATUSES)
    ls.add_argument("--json", action="store_true", help="print the jobs as JSON")
    _service_args(ls)
    ls.set_defaults(func=list_jobs)

    sh = jobs.add_parser("show", help="one job, with its per-episode results")
    sh.add_argument("id", type=int, metavar="ID")
    sh.add_argument("--json", action="store_true", help="print the job as JSON")
    _service_args(sh)
    sh.set_defaults(func=show)

    c = jobs.add_parser("cancel", help="cancel a queued or running job")
    c.add_argument("id", type=int, metavar="ID")
    _service_args(c)
    c.set_defaults(func=cancel)

    lg = jobs.add_parser("logs", help="a job's events")
    lg.add_argument("id", type=int, metavar="ID")
    lg.add_argument("--follow", "-f", action="store_true", help="keep printing until it ends")
    _service_args(lg)
    lg.set_defaults(func=logs)

    f = jobs.add_parser("fetch", help="download the per-episode recordings")
    f.add_argument("id", type=int, metavar="ID")
    f.add_argument("--dest", type=Path, help="where they go (default ./job-ID)")
    _service_args(f)
    f.set_defaults(func=fetch)


def _service_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--service", help="reservation service URL (RAAS_SERVICE_URL)")
    p.add_argument("--token", help="your API token for the service (RAAS_TOKEN)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for answers")


def _client(args: argparse.Namespace) -> JobsClient:
    return JobsClient(directory.service_from(args.service, args.token), timeout_s=args.timeout)


Command = Callable[[argparse.Namespace], int]


def _command(name: str) -> Callable[[Command], Command]:
    """Turn the client's errors into one line on stderr and an exit code."""

    def wrap(fn: Command) -> Command:
        def run(args: argparse.Namespace) -> int:
            try:
                return fn(args)
            except ServiceRefusedError as exc:
                _err(f"raas jobs {name}: refused ({exc.code}): {exc.message}")
                return EXIT_REFUSED
            except ConfigurationError as exc:
                _err(f"raas jobs {name}: {exc}")
                return EXIT_FAILED
            except RaasClientError as exc:
                _err(f"raas jobs {name}: {exc}")
                return EXIT_FAILED
            except KeyboardInterrupt:
                _err(f"raas jobs {name}: interrupted")
                return EXIT_INTERRUPTED

        return run

    return wrap


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _say(text: str) -> None:
    print(text, flush=True)


# ----------------------------------------------------------------- submit
def parse_deadline(text: str) -> datetime:
    """An ISO 8601 time; without a zone it is the local time of this machine."""
    when = datetime.fromisoformat(text)
    return when if when.tzinfo is not None else when.astimezone()


def _policy_choice(args: argparse.Namespace) -> str | None:
    """Why the policy arguments do not name exactly one policy, or None."""
    if args.bundle is not None and args.policy_server is not None:
        return "give BUNDLE or --policy-server, not both"
    if args.bundle is None and args.policy_server is None:
        return "give BUNDLE (a bundle to upload) or --policy-server tcp://HOST:PORT"
    if args.policy_server is not None and not args.policy_key:
        return "--policy-server needs --policy-key (the key `raas serve-policy --bind` prints)"
    if args.policy_server is None and args.policy_key:
        return "--policy-key goes with --policy-server"
    return None


@_command("submit")
def submit(args: argparse.Namespace) -> int:
    why = _policy_choice(args)
    if why is not None:
        _err(f"raas jobs submit: {why}")
        return EXIT_USAGE
    bundle: Path | None = args.bundle
    if bundle is not None and not bundle.exists():
        _err(f"raas jobs submit: no such bundle: {bundle}")
        return EXIT_USAGE
    deadline = None
    if args.deadline:
        try:
            deadline = parse_deadline(args.deadline)
        except ValueError:
            _err(
                f"raas jobs submit: --deadline {args.deadline!r} is not an ISO 8601 time "
                "(e.g. 2026-12-04T18:00 or 2026-12-04T17:00Z)"
            )
            return EXIT_USAGE
    with _client(args) as client:
        sha = None
        server = None
        if bundle is not None:
            sha = _upload(client, bundle)
        else:
            server = PolicyServer(args.policy_server, args.policy_key, args.horizon)
        job = client.submit(
            JobRequest(
                bundle_sha256=sha,
                policy_server=server,
                episodes=args.episodes,
                task=args.task,
                robot=args.robot,
                hand_model=args.hand,
                priority=args.priority,
                deadline=deadline,
                seed=args.seed,
                episode_timeout_s=args.episode_timeout,
            )
        )
        _say(
            f"job {job.id} {job.status}: {job.episodes} episode(s) of {job.task} on "
            f"{_where(job)}, priority {job.priority}"
        )
        if not args.wait:
            _say(f"follow it: raas jobs logs {job.id} --follow")
            return EXIT_OK
        return _follow(client, job.id, seen=0)


def _upload(client: JobsClient, bundle: Path) -> str:
    """Upload the bundle unless the service has it; its sha256."""
    data = bundles.pack(bundle)
    sha = bundles.sha256(data)
    if client.has_bundle(sha):
        _say(f"bundle {bundle.name}: sha256 {sha[:16]}, already on the service")
        return sha
    t0 = time.monotonic()
    with _upload_progress(bundle.name, len(data)) as progress:
        client.put_bundle(data, sha, progress)
    _say(
        f"bundle {bundle.name}: sha256 {sha[:16]}, uploaded {_size(len(data))} in "
        f"{time.monotonic() - t0:.1f} s"
    )
    return sha


@contextmanager
def _upload_progress(name: str, size: int) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on a terminal for a big bundle; a few plain lines on stderr otherwise (a
    log, a pipe), where a redrawn line would garble."""
    if size < BIG_BUNDLE:
        yield None
        return
    with upload_progress(f"{name} ({_size(size)})") as bar:
        if bar is not None:
            yield bar
            return
        marks = [25, 50, 75]

        def lines(done: int, total: int) -> None:
            while marks and done * 100 >= marks[0] * total:
                _err(f"upload {name}: {marks.pop(0)}% of {_size(total)}")

        yield lines


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1 << 20:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1 << 20):.1f} MiB"


def _message(job: Job) -> str:
    """The service's message, unless it only repeats the status."""
    return "" if job.message == job.status else job.message


def _ran_on(job: Job) -> str:
    """The robot running the job, else the robots that ran its episodes, else what it asks for."""
    if job.claimed_by:
        return job.claimed_by
    ran = sorted({str(r["robot"]) for r in job.results if r.get("robot")})
    if ran:
        return ",".join(ran)
    return job.robot or (f"any {job.hand_model}" if job.hand_model else "any")


def _where(job: Job) -> str:
    if job.robot:
        return f"robot {job.robot}"
    if job.hand_model:
        return f"any {job.hand_model} robot"
    return "any robot"


# ----------------------------------------------------------------- follow
def describe_event(ev: JobEvent, episodes: int) -> str:
    """One job event in words, e.g. `episode 3/10: 4 successes, ended by a goal timeout`."""
    d = ev.data
    if ev.kind == "claimed":
        robot = d.get("robot") or d.get("claimed_by") or "?"
        attempt = f" (attempt {d['attempt']})" if d.get("attempt") else ""
        return f"claimed by {robot}{attempt}"
    if ev.kind == "episode" and "index" in d:
        return f"episode {int(d['index']) + 1}/{episodes}: {describe_result(d)}"
    if ev.kind == "submitted":
        return f"queued{': ' + ev.message if ev.message else ''}"
    if ev.message.startswith(ev.kind):  # "cancelled by alice@lab"
        return ev.message
    return f"{ev.kind}: {ev.message}" if ev.message else ev.kind


def describe_result(r: dict[str, Any]) -> str:
    """An episode's result: successes, how it ended, a safety stop."""
    successes = r.get("successes")
    reason = str(r.get("end_reason") or "?")
    text = f"{successes} successes, ended by {END_REASONS.get(reason, reason)}"
    if r.get("safety_stop"):
        why = f": {r['safety_reason']}" if r.get("safety_reason") else ""
        text += f" (a SAFETY STOP{why})"
    return text


def _stamp(at: str) -> str:
    """`2026-12-03T10:15:02.123+00:00` -> `10:15:02` in local time (the text as is if odd)."""
    try:
        return datetime.fromisoformat(at).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return at


def _follow(client: JobsClient, job_id: int, *, seen: int) -> int:
    """Print the job's events after `seen` until the job ends; 0 only if it succeeded. The job
    runs on without us: Ctrl-C only stops following, and a service that does not answer for a
    while (a restart) is asked again."""
    lost_since: float | None = None
    try:
        while True:
            try:
                job = client.get(job_id)
                # read after the status: a job that ended has all its events in this read
                events = client.logs(job_id, since=seen)
            except ServiceUnreachableError as exc:
                now = time.monotonic()
                if lost_since is None:
                    lost_since = now
                    _err(f"raas jobs: {exc}; asking again (the job goes on without us)")
                if now - lost_since > UNREACHABLE_GIVE_UP_S:
                    raise
                time.sleep(POLL_S * 2)
                continue
            if lost_since is not None:
                _err("raas jobs: the service answers again")
                lost_since = None
            for ev in events:
                _say(f"{_stamp(ev.at)}  {describe_event(ev, job.episodes)}")
                seen = ev.seq
            if job.final:
                _say(_ending(job))
                return EXIT_OK if job.status == "succeeded" else EXIT_FAILED
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        _err(f"stopped following job {job_id}; it goes on (raas jobs cancel {job_id} stops it)")
        return EXIT_INTERRUPTED


def _ending(job: Job) -> str:
    why = f": {_message(job)}" if _message(job) else ""
    line = f"job {job.id} {job.status}{why} ({job.episodes_done}/{job.episodes} episodes)"
    if job.results:
        line += f"; successes per episode {[_successes(r) for r in job.results]}"
    if job.episodes_done:
        line += f"; recordings: raas jobs fetch {job.id}"
    return line


def _successes(r: dict[str, Any]) -> Any:
    return r.get("successes")


# ----------------------------------------------------------------- list / show
@_command("list")
def list_jobs(args: argparse.Namespace) -> int:
    with _client(args) as client:
        items = client.list_jobs(status=args.status, mine=None if args.all else True)
    if args.json:
        print(json.dumps([j.raw for j in items], indent=2))
        return EXIT_OK
    if not items:
        _say("no jobs" + (f" {args.status}" if args.status else ""))
        return EXIT_OK
    rows = [("ID", "STATUS", "DONE", "ROBOT", "USER", "PRIO", "CREATED", "MESSAGE")]
    for j in items:
        rows.append(
            (
                str(j.id),
                j.status,
                f"{j.episodes_done}/{j.episodes}",
                _ran_on(j),
                j.user,
                str(j.priority),
                _short_time(j.created_at),
                _message(j)[:40],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        _say("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return EXIT_OK


def _short_time(at: str | None) -> str:
    if not at:
        return "-"
    try:
        return datetime.fromisoformat(at).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return at


@_command("show")
def show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.get(args.id)
    if args.json:
        print(json.dumps(job.raw, indent=2))
        return EXIT_OK
    _say(f"job {job.id}: {job.status}" + (f" ({_message(job)})" if _message(job) else ""))
    _say(f"  by {job.user}; {job.episodes} episode(s) of {job.task} on {_where(job)}")
    ps = job.policy_server
    policy = (
        f"policy server {ps.endpoint} (key {ps.server_key}, chunks of {ps.horizon}, {ps.blend})"
        if ps is not None
        else f"bundle sha256 {job.bundle_sha256}"
    )
    _say(f"  {policy}; seed {job.seed}; priority {job.priority}")
    if job.deadline:
        _say(f"  deadline {_short_time(job.deadline)}")
    claimed = f"; on {job.claimed_by} (attempt {job.attempt})" if job.claimed_by else ""
    _say(
        f"  created {_short_time(job.created_at)}, started {_short_time(job.started_at)}, "
        f"finished {_short_time(job.finished_at)}{claimed}"
    )
    _say(f"  episodes done {job.episodes_done}/{job.episodes}")
    for r in sorted(job.results, key=lambda r: int(r.get("index", 0))):
        robot = f" on {r['robot']}" if r.get("robot") else ""
        _say(f"    episode {int(r.get('index', 0)) + 1}: {describe_result(r)}{robot}")
    return EXIT_OK


# ----------------------------------------------------------------- cancel / logs / fetch
@_command("cancel")
def cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        before = client.get(args.id)
        job = client.cancel(args.id)
    robot = before.claimed_by if before.status == "running" else None
    where = f" (it was running on {robot}: the robot stops, the hand holds)" if robot else ""
    _say(f"job {job.id} {job.status}: {job.episodes_done}/{job.episodes} episodes done{where}")
    return EXIT_OK


@_command("logs")
def logs(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.follow:
            return _follow(client, args.id, seen=0)
        job = client.get(args.id)
        for ev in client.logs(args.id):
            _say(f"{_stamp(ev.at)}  {describe_event(ev, job.episodes)}")
    return EXIT_OK


@_command("fetch")
def fetch(args: argparse.Namespace) -> int:
    dest: Path = args.dest or Path(f"job-{args.id}")
    with _client(args) as client:
        job = client.get(args.id)
        results = sorted(job.results, key=lambda r: int(r.get("index", 0)))
        if not results:
            _err(f"raas jobs fetch: job {job.id} has no finished episodes yet ({job.status})")
            return EXIT_FAILED
        dest.mkdir(parents=True, exist_ok=True)
        fetched = 0
        for r in results:
            index = int(r.get("index", 0))
            if not r.get("recording_sha256"):
                _say(f"episode {index + 1}: no recording (its robot uploaded none)")
                continue
            path = client.fetch_recording(job.id, index, dest)
            _say(f"episode {index + 1}: {path}")
            fetched += 1
    _say(f"{fetched} recording(s) in {dest} (`raas report FILE` summarises one)")
    return EXIT_OK if fetched else EXIT_FAILED
