"""`python -m bench fleet -- --robots 3 --jobs 12 --episodes 2`: evaluation jobs on a fleet of
lockstep simulated robots (issue 17).

One reservation service (SQLite) and N robots, each a `raasd robot --sim --clock lockstep`
daemon (cameras off) with its `raasd worker` (bench/fleet_stack.py). Three phases, one after the
other:

1. **peer**: the same work with no service: a bare loop per robot (a thread with a control lease
   of a booking) takes the next job from an in-memory list the moment it is free (a queue that
   costs nothing) and runs it, each episode through the worker's own
   episode function (raas.fleet.episode.run_episode: session, scene reset, upload,
   `run(1, seed + i)`, follow, close, fetch the recording) but with no service between jobs.
   Its utilisation is the ceiling the queue is judged against.
2. **ours**: J jobs of E episodes (the example bundle, uploaded once to the service) submitted at
   once; the workers claim and run them. Measured from the jobs' event logs:
   - utilisation: the time robots held a job (claimed -> finished/requeued) over robots x the
     time jobs were waiting (first submit -> last claim), i.e. how much of the robots' time the
     queue kept busy while it had work;
   - claim latency: claimed - max(submitted (or requeued), the robot's previous attempt's end):
     how long a free robot and a waiting job stayed apart (p50/p99, ms);
   - every job succeeded.
3. **robot death** (skip with --no-kill): N jobs of 2E episodes; once each robot holds one and the
   last robot's job has started, that robot's daemon and worker are SIGKILLed (process groups,
   as a dying control PC). The job must be requeued after the claim timeout and finish on
   another robot; jobs_lost counts jobs of phases 2 and 3 that did not succeed.

The JSON report (bench/results/fleet.json) has jobs_submitted, jobs_succeeded, jobs_lost,
utilisation, claim_latency_ms {p50, p99, n}, the peer's utilisation and their ratio, the job
times of both sides, the killed robot's job and the machine's load average before and after.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ratio, write_report
from bench.fleet_stack import Api, FleetStack, Robot
from raas.commands import demo_session as demo

#: The service's job_claim_timeout_s (its default: raas/service/settings.py).
CLAIM_TIMEOUT_S = 20.0
TERMINAL = ("succeeded", "failed", "cancelled", "expired")


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _pct(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0, "n": 0}
    arr = np.asarray(values, dtype=float)
    return {
        "p50": round(float(np.percentile(arr, 50)), 1),
        "p99": round(float(np.percentile(arr, 99)), 1),
        "max": round(float(arr.max()), 1),
        "n": len(values),
    }


def _bundle(tmp: Path, rate_hz: float) -> tuple[Path, bytes, str]:
    """The example Dactyl-shaped bundle with its control period set to the robots' rate."""
    from raas_client.bundles import pack, sha256

    from raas.policy.examples import ensure_examples

    ensure_examples(tmp / "examples", ["dactyl"])
    path = tmp / "bundles" / f"dactyl-{rate_hz:g}hz"
    shutil.copytree(tmp / "examples" / "dactyl", path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["control_period_s"] = 1.0 / rate_hz
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    data = pack(path)
    return path, data, sha256(data)


# ---------------------------------------------------------------------- the jobs' timelines
@dataclass
class Attempt:
    job: int
    robot: str
    claimed: float
    ended: float | None  # finished / requeued
    waiting_since: float  # submitted, or the requeue that put the job back


@dataclass
class Timeline:
    attempts: list[Attempt] = field(default_factory=list)
    submitted: dict[int, float] = field(default_factory=dict)


def _timeline(api: Api, jobs: list[dict[str, Any]]) -> Timeline:
    """Every attempt of every job from its event log (claimed, requeued, finished ...)."""
    tl = Timeline()
    for job in jobs:
        jid = int(job["id"])
        waiting = _ts(job["created_at"])
        tl.submitted[jid] = waiting
        current: Attempt | None = None
        for ev in sorted(api.logs(jid), key=lambda e: int(e["seq"])):
            at, kind, data = _ts(ev["at"]), ev["kind"], ev.get("data") or {}
            if kind == "claimed":
                robot = str(data.get("robot") or data.get("robot_name") or "?")
                current = Attempt(jid, robot, at, None, waiting)
                tl.attempts.append(current)
            elif kind in ("requeued", "interrupted", "finished", "cancelled") and current:
                if current.ended is None:
                    current.ended = at
                if kind in ("requeued", "interrupted"):
                    waiting = at
                    current = None
    return tl


def _claim_latencies_ms(tl: Timeline) -> list[float]:
    """claimed - max(waiting since, the robot's previous attempt's end)."""
    out: list[float] = []
    by_robot: dict[str, list[Attempt]] = {}
    for a in tl.attempts:
        by_robot.setdefault(a.robot, []).append(a)
    for attempts in by_robot.values():
        attempts.sort(key=lambda a: a.claimed)
        free_since = float("-inf")
        for a in attempts:
            out.append(max(0.0, a.claimed - max(a.waiting_since, free_since)) * 1000)
            free_since = a.ended if a.ended is not None else a.claimed
    return out


def _utilisation(busy: list[tuple[str, float, float]], robots: int, t0: float, t1: float) -> float:
    """Held time inside [t0, t1] over robots x (t1 - t0)."""
    if t1 <= t0:
        return 0.0
    held = sum(max(0.0, min(e, t1) - max(s, t0)) for _, s, e in busy)
    return held / (robots * (t1 - t0))


def _wait_jobs(
    api: Api, stack: FleetStack, ids: list[int], timeout_s: float
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = [api.job(i) for i in ids]
        if all(j["status"] in TERMINAL for j in jobs):
            return jobs
        if time.monotonic() > deadline:
            left = {j["id"]: j["status"] for j in jobs if j["status"] not in TERMINAL}
            print(f"   jobs not finished after {timeout_s:.0f} s: {left}", flush=True)
            print(stack.tails(), flush=True)
            return jobs
        for r in stack.robots:  # a robot that died on its own is a failure of the run
            if not r.killed and r.daemon.proc.poll() is not None:
                raise RuntimeError(f"{r.name}'s daemon exited with {r.daemon.proc.returncode}")
        time.sleep(0.25)


# ---------------------------------------------------------------------- phase 1: the peer
def _peer(
    svc: demo.Service, robots: list[Robot], bundle: Path, jobs: int, episodes: int
) -> dict[str, Any]:
    """Each robot takes the next job from an in-memory list the moment it is free and runs it
    with no service in between (a queue that costs nothing: the ceiling), each episode exactly
    as the worker runs it (raas.fleet.episode.run_episode)."""
    from raas.fleet.episode import EpisodeRun, run_episode
    from raas.fleet.reset import Resetter

    work = bundle.parent.parent / "peer"

    bookings = [demo.book_now(svc, r.robot_id, minutes=20) for r in robots]
    todo = collections.deque(range(jobs))  # taken in order by whichever robot is free
    busy: list[tuple[str, float, float]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def run_share(robot: Robot, lease: str) -> None:
        resetter = Resetter(None, ask_staff=False, log=lambda line: None)
        while True:
            with lock:
                if not todo:
                    return
                j = todo.popleft()
            job = EpisodeRun(
                endpoint=robot.endpoint, server_key=robot.server_key, lease=lease,
                bundle=bundle, seed=j * 1000, robot=robot.name, job_id=j, episodes=episodes,
                resetter=resetter, work_dir=work / robot.name, timeout_s=600.0,
            )  # fmt: skip
            start = time.time()
            for i in range(episodes):
                out = run_episode(job, i, lambda: None)
                if not out.is_result:
                    with lock:
                        errors.append(
                            f"{robot.name} job {j} episode {i}: {out.ended} {out.message}"
                        )
            with lock:
                busy.append((robot.name, start, time.time()))

    t0 = time.time()
    threads = [
        threading.Thread(target=run_share, args=(r, b.lease), daemon=True)
        for r, b in zip(robots, bookings, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for b in bookings:
        demo.cancel(svc, b)
    starts = sorted(s for _, s, _ in busy)
    last_start = starts[-1] if starts else t0
    durations = [e - s for _, s, e in busy]
    return {
        "jobs": jobs,
        "episodes": episodes,
        "errors": errors,
        "wall_s": round(time.time() - t0, 2),
        "utilisation": round(_utilisation(busy, len(robots), t0, last_start), 4),
        "job_s": _pct(durations),
    }


# ---------------------------------------------------------------------- phase 2: ours
def _ours(api: Api, stack: FleetStack, sha: str, jobs: int, episodes: int) -> dict[str, Any]:
    t_submit = time.time()
    submitted = [api.submit(sha, episodes, seed=j * 1000) for j in range(jobs)]
    ids = [int(j["id"]) for j in submitted]
    final = _wait_jobs(api, stack, ids, 300 + 120 * jobs * episodes / len(stack.robots))
    wall = time.time() - t_submit
    tl = _timeline(api, final)
    claims = sorted(a.claimed for a in tl.attempts)
    first_submit = min(tl.submitted.values()) if tl.submitted else t_submit
    last_claim = claims[-1] if claims else first_submit
    busy = [(a.robot, a.claimed, a.ended or time.time()) for a in tl.attempts]
    succeeded = sum(1 for j in final if j["status"] == "succeeded")
    durations = [
        _ts(j["finished_at"]) - _ts(j["started_at"])
        for j in final
        if j["status"] == "succeeded" and j.get("started_at") and j.get("finished_at")
    ]
    return {
        "jobs": jobs,
        "episodes": episodes,
        "succeeded": succeeded,
        "statuses": {j["id"]: j["status"] for j in final if j["status"] != "succeeded"},
        "messages": {j["id"]: j["message"] for j in final if j["status"] != "succeeded"},
        "wall_s": round(wall, 2),
        "queued_window_s": round(last_claim - first_submit, 2),
        "utilisation": round(_utilisation(busy, len(stack.robots), first_submit, last_claim), 4),
        "claim_latency_ms": _pct(_claim_latencies_ms(tl)),
        "job_s": _pct(durations),
        "attempts": len(tl.attempts),
        "per_robot_jobs": {
            r.name: sum(1 for a in tl.attempts if a.robot == r.name) for r in stack.robots
        },
    }


# ---------------------------------------------------------------------- phase 3: a robot dies
def _kill(api: Api, stack: FleetStack, sha: str, episodes: int) -> dict[str, Any]:
    robots = stack.robots
    victim = robots[-1]
    ids = [int(api.submit(sha, 2 * episodes, seed=50_000 + j)["id"]) for j in range(len(robots))]
    deadline = time.monotonic() + 300
    target: dict[str, Any] | None = None
    while time.monotonic() < deadline and target is None:
        for i in ids:
            job = api.job(i)
            running_there = job["status"] == "running" and job.get("claimed_by") == victim.name
            if running_there and job["episodes_done"] >= 1:  # mid-job: one episode kept
                target = job
        time.sleep(0.2)
    if target is None:
        return {"killed": None, "why": f"no job ran on {victim.name} within 300 s", "ids": ids}
    time.sleep(2.0)  # into its next episode
    killed_at = time.time()
    stack.kill(victim)
    print(f"   SIGKILLed {victim.name} (daemon + worker) during job {target['id']}", flush=True)
    final = _wait_jobs(api, stack, ids, 300 + CLAIM_TIMEOUT_S + 240 * episodes)
    job = next(j for j in final if j["id"] == target["id"])
    events = api.logs(int(target["id"]))
    requeued = [e for e in events if e["kind"] == "requeued"]
    claims = [e for e in events if e["kind"] == "claimed"]
    finished_on = (claims[-1].get("data") or {}).get("robot") if claims else None
    kept = [r for r in job.get("results", []) if r.get("attempt") == target.get("attempt")]
    return {
        "killed": victim.name,
        "job": target["id"],
        "status": job["status"],
        "finished_on": finished_on,
        "episodes_kept_from_killed_attempt": len(kept),
        "attempts": job.get("attempt"),
        "requeued_after_s": round(_ts(requeued[0]["at"]) - killed_at, 2) if requeued else None,
        "succeeded": sum(1 for j in final if j["status"] == "succeeded"),
        "jobs": len(ids),
        "statuses": {j["id"]: j["status"] for j in final},
        "messages": {j["id"]: j["message"] for j in final if j["status"] != "succeeded"},
    }


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench fleet", description=__doc__)
    ap.add_argument("--robots", type=int, default=3, help="simulated robots (3)")
    ap.add_argument("--jobs", type=int, default=12, help="jobs submitted at once (12)")
    ap.add_argument("--episodes", type=int, default=2, help="episodes per job (2)")
    ap.add_argument("--no-kill", action="store_true", help="skip the robot-death phase")
    ap.add_argument("--no-peer", action="store_true", help="skip the bare-loop peer")
    ap.add_argument(
        "--rate",
        type=float,
        default=5.0,
        help="the robots' loop rate, and the bundle's control period to match (5 Hz: the "
        "load-time latency check then allows 100 ms, see docs/fleet.md)",
    )
    ap.add_argument("--verbose", action="store_true", help="echo the workers' progress lines")
    ap.add_argument(
        "--health-check",
        action="store_true",
        help="run the post-session health check after each job (off: a lockstep sim check "
        "measures nothing about the queue)",
    )
    args = ap.parse_args(argv)
    if args.robots < 1 or args.jobs < 1 or args.episodes < 1:
        ap.error("--robots, --jobs and --episodes must be 1 or more")
    if not args.no_kill and args.robots < 2:
        ap.error("the robot-death phase needs 2 robots or more (or --no-kill)")
    load_start = [round(x, 2) for x in os.getloadavg()]
    print(f"== machine load (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in load_start)}")
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp_name:
        tmp = Path(tmp_name)
        stack = FleetStack(tmp, health_check=args.health_check)
        stack.verbose = args.verbose
        try:
            bundle, data, sha = _bundle(tmp, args.rate)
            svc = stack.start_service()
            print(f"== {args.robots} lockstep robots (cameras off) + workers", flush=True)
            stack.start_robots(args.robots, rate_hz=args.rate)
            peer: dict[str, Any] = {}
            if not args.no_peer:
                print("== peer: a bare loop per robot, no queue", flush=True)
                peer = _peer(svc, stack.robots, bundle, args.jobs, args.episodes)
                print(
                    f"   utilisation {peer['utilisation']:.3f}, job p50 "
                    f"{peer['job_s']['p50']:.1f} s, {len(peer['errors'])} errors",
                    flush=True,
                )
            for robot in stack.robots:
                stack.start_worker(robot)
            stack.wait_workers()  # claim latency is the queue's, not a worker's start-up
            api = Api(svc)
            api.put_bundle(data, sha)
            print(f"== ours: {args.jobs} jobs x {args.episodes} episodes", flush=True)
            ours = _ours(api, stack, sha, args.jobs, args.episodes)
            lat = ours["claim_latency_ms"]
            print(
                f"   {ours['succeeded']}/{args.jobs} succeeded, utilisation "
                f"{ours['utilisation']:.3f} over {ours['queued_window_s']:.1f} s, claim latency "
                f"p50 {lat['p50']:.0f} ms p99 {lat['p99']:.0f} ms, job p50 "
                f"{ours['job_s']['p50']:.1f} s",
                flush=True,
            )
            for jid, message in ours["messages"].items():
                print(f"   job {jid} {ours['statuses'][jid]}: {message}", flush=True)
            kill: dict[str, Any] = {}
            if not args.no_kill:
                print("== a robot dies mid-job (SIGKILL daemon + worker)", flush=True)
                kill = _kill(api, stack, sha, args.episodes)
                print(f"   job {kill.get('job')}: {kill.get('status')} on "
                      f"{kill.get('finished_on')}, requeued after "
                      f"{kill.get('requeued_after_s')} s", flush=True)  # fmt: skip
        finally:
            stack.close()
    submitted = args.jobs + int(kill.get("jobs", 0))
    succeeded = ours["succeeded"] + int(kill.get("succeeded", 0))
    peer_util = peer.get("utilisation", 0.0)
    load_end = [round(x, 2) for x in os.getloadavg()]
    report = {
        "robots": args.robots,
        "jobs_submitted": submitted,
        "jobs_succeeded": succeeded,
        "jobs_lost": submitted - succeeded,
        "utilisation": ours["utilisation"],
        "claim_latency_ms": ours["claim_latency_ms"],
        "peer": {"utilisation": peer_util, **peer},
        "utilisation_vs_peer": ratio(ours["utilisation"], peer_util) if peer_util else None,
        "ours": ours,
        "kill": kill,
        "killed_job_finished_elsewhere": bool(
            kill.get("killed")
            and kill.get("status") == "succeeded"
            and kill.get("finished_on") not in (None, kill.get("killed"))
        ),
        "settings": {
            "clock": "lockstep",
            "rate_hz": args.rate,
            "cameras": 0,
            "claim_timeout_s": CLAIM_TIMEOUT_S,
            "health_check": args.health_check,
            "bundle": f"example:dactyl at {args.rate:g} Hz",
        },
        "load_start": load_start,
        "load_end": load_end,
    }
    print(
        f"== jobs {succeeded}/{submitted} succeeded, lost {submitted - succeeded}; utilisation "
        f"ours {ours['utilisation']:.3f} vs peer {peer_util:.3f} (ratio "
        f"{report['utilisation_vs_peer']}); claim latency p99 "
        f"{ours['claim_latency_ms']['p99']:.0f} ms"
    )
    print(f"== machine load (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in load_end)}")
    write_report("fleet", report)
    return 0
