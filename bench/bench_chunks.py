"""A slow policy (simulated latency, default 150 +- 50 ms) driving the simulated hand at 12.5 Hz,
twice in one run against the same realtime daemon (`raasd robot --sim --clock realtime`):

ours   served as action chunks of H (default 16): `raas_client.policy_server.serve` with
       --workers (default 4) calls of the policy at once; the loop indexes into the newest chunk
       and never waits (docs/protocol.md, Policy servers).
peer   the same policy through remote stepping: observation -> policy -> `act` with the first
       action; a hold (N+1 late actions) is re-armed at once, as a persistent client would.

idle   the same loop for the same time with no policy server (an observer only), half before
       the chunks side and half after it (so a drift of the machine's load weighs on both): the
       reference for the loop's own timing.

Per side, from the robot's stream (every cycle's `fallback`, `safety`, `applied`,
`lateness_ns`): cycles, fallbacks (and per minute), held cycles, action jerk (sum of squared second
differences of the applied targets, over cycles the hand was not held, and per cycle) and the
loop's lateness (trigger sent - t_k) p50/p99/p99.9/max; for chunks also the applied action's
computation age (cycles, and ms at the period) beside the policy's latency p99 + one period, and
the lateness p99.9 with chunks arriving over the idle side's (the issue's targets: <= 1.1).

  python -m bench chunks -- [--duration S] [--latency MEAN,SD] [--chunk H] [--rate HZ] [--workers W]
                             [--no-peer]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from raas_client.errors import RaasClientError, SafetyStopError
from raas_client.policy_server import SimulatedLatency, serve
from raas_client.session import Observation, RemoteRobot
from raas_client.wire import Topic

from bench.common import dist_us, fmt_dist, ratio, write_report
from raas.leases import LeaseClaims, generate_private_key, save_private_key, sign_lease

ROOT = Path(__file__).resolve().parents[1]
Taken = tuple[list[tuple[int, int, int, np.ndarray]], list[int], list[int]]
_BANNER = re.compile(r"control (\S+) stream (\S+) (?:server key (\S+)|PLAIN)")


def _daemon(tmp: Path, rate: float) -> tuple[subprocess.Popen[str], str, str, str]:
    key = generate_private_key()
    save_private_key(key, tmp / "lease.pem")
    now = int(time.time())
    claims = LeaseClaims(
        iss="bench", sub="bench", robot="shadow-1", rid=1, scope="control",
        nbf=now - 5, exp=now + 7200, jti=uuid.uuid4().hex, iat=now,
    )  # fmt: skip
    lease = sign_lease(key, claims)
    cmd = [
        sys.executable, "-m", "raas.cli", "robot", "--sim", "--no-rt", "--quiet",
        "--clock", "realtime", "--rate", str(rate), "--cameras", "0",
        "--control", "tcp://127.0.0.1:*", "--stream", "tcp://127.0.0.1:*",
        "--state-dir", str(tmp), "--lease-key", str(tmp / "lease.pem.pub"),
        "--no-health-check",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = _BANNER.search(line)
        if m:
            threading.Thread(target=lambda: [None for _ in proc.stdout or ()], daemon=True).start()
            return proc, m.group(1), m.group(3) or "plain", lease
    proc.kill()
    raise RuntimeError("raasd robot did not come up")


class Recorder:
    """Every stream step while a side runs: fallback, safety, applied."""

    def __init__(self, robot: RemoteRobot) -> None:
        # the stream reaches open sessions only (docs/protocol.md, "Stream authorization")
        robot.open("observe")
        self.robot = robot
        self.stream = robot.stream((Topic.STEP,))
        self.rows: list[tuple[int, int, int, np.ndarray]] = []
        self.lateness: list[int] = []
        self.decide: list[int] = []
        self.on = False
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        beat = time.monotonic()
        while not self.stop:
            if time.monotonic() - beat > 0.2:  # keep the observer session alive
                self.robot.heartbeat()
                beat = time.monotonic()
            got = self.stream.recv(0.1)
            if got is None or not self.on:
                continue
            _, h, arrays = got
            self.rows.append(
                (int(h["cycle"]), int(h["fallback"]), int(h["safety"]), arrays["applied"].copy())
            )
            self.lateness.append(int(h["lateness_ns"]))
            self.decide.append(int(h["decide_ns"]))

    def take(self) -> Taken:
        rows, self.rows = self.rows, []
        late, self.lateness = self.lateness, []
        decide, self.decide = self.decide, []
        return rows, late, decide

    def close(self) -> None:
        self.stop = True
        self.thread.join(2)
        self.stream.close()


def figures(taken: Taken, seconds: float, budget_ns: int) -> dict[str, Any]:
    rows, lateness, decide = taken
    fallbacks = sum(1 for _, f, _, _ in rows if f)
    # Why each fallback: the controller gave no action, or its decide overran the budget (the
    # loop then repeats the last action whatever was decided: docs/architecture.md, the cycle).
    over = [i for i, (_, f, _, _) in enumerate(rows) if f and decide[i] > budget_ns]
    held = sum(1 for _, _, s, _ in rows if s in (3, 4, 5))
    applied = np.array([a for _, _, s, a in rows if s not in (3, 4, 5)])
    jerk = float((np.diff(applied, n=2, axis=0) ** 2).sum()) if len(applied) > 2 else 0.0
    return {
        "cycles": len(rows),
        "seconds": seconds,
        "fallbacks": fallbacks,
        "fallbacks_per_min": fallbacks * 60.0 / seconds,
        "fallbacks_over_budget": len(over),
        "fallback_cycles": [rows[i][0] for i, (_, f, _, _) in enumerate(rows) if f][:20],
        "over_budget_decide_ms": [decide[i] / 1e6 for i in over][:20],
        "held_cycles": held,
        "jerk": jerk,
        "jerk_per_cycle": jerk / max(1, len(applied) - 2),
        "lateness_us": dist_us(lateness),
        "decide_us": dist_us(decide),
    }


def make_policy(h: int, n: int) -> Any:
    """A smooth policy of time: each row a sine target around the idle pose (small amplitude),
    so jerk measures what the chunking and fallbacks add, not the policy."""

    def fn(obs: Observation) -> np.ndarray:
        t = (obs.cycle + np.arange(h)) * 0.08
        return 0.1 * np.sin(2 * np.pi * 0.25 * t)[:, None] * np.ones((1, n)) + 0.2

    return fn


def run_remote_step(
    endpoint: str, key: str, lease: str, fn: Any, latency: SimulatedLatency, seconds: float
) -> int:
    slow = latency.wrap(fn)
    rearms = 0
    end = time.monotonic() + seconds
    with RemoteRobot(endpoint, server_key=key, lease=lease) as r:
        r.open("control")
        r.arm()
        last = -1
        while time.monotonic() < end:
            try:
                obs = r.observation(after=last)
            except SafetyStopError:
                r.arm()
                rearms += 1
                continue
            last = obs.cycle
            r.act(obs.cycle, slow(obs)[0])
    return rearms


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench chunks", description=__doc__)
    p.add_argument("--duration", type=float, default=20.0, help="seconds per side")
    p.add_argument("--latency", default="150,50", help="policy latency MEAN,SD in ms")
    p.add_argument("--chunk", type=int, default=16)
    p.add_argument("--rate", type=float, default=12.5)
    p.add_argument("--workers", type=int, default=4, help="policy calls at once (chunks side)")
    p.add_argument(
        "--no-peer",
        action="store_true",
        help="skip the remote-step side (no target reads it; `bench targets` uses this)",
    )
    args = p.parse_args(argv)
    mean, _, sd = args.latency.partition(",")
    lat_mean, lat_sd = float(mean), float(sd or 0)
    period_ms = 1000.0 / args.rate
    budget_ns = round(1e9 / args.rate / 2)  # the daemon's default decide budget, T/2
    with tempfile.TemporaryDirectory() as tmp:
        proc, endpoint, key, lease = _daemon(Path(tmp), args.rate)
        try:
            watcher = RemoteRobot(endpoint, server_key=key, lease=lease)
            n = len(watcher.hello()["spaces"]["action"]["idle"])
            rec = Recorder(watcher)
            fn = make_policy(args.chunk, n)
            time.sleep(0.5)  # the subscription settles
            rec.on = True
            t0 = time.monotonic()
            time.sleep(args.duration / 2)  # the same loop, no policy server: the reference
            idle_taken = rec.take()
            idle_s = time.monotonic() - t0
            t0 = time.monotonic()
            stats = serve(
                fn, args.chunk, endpoint, lease=lease, server_key=key,
                duration_s=args.duration, latency=SimulatedLatency(lat_mean, lat_sd, seed=1),
                workers=args.workers,
            )  # fmt: skip
            ours = figures(rec.take(), time.monotonic() - t0, budget_ns)
            s = stats.summary or {}
            ours.update(
                chunks=stats.chunks,
                workers=args.workers,
                dropped=stats.dropped,
                refused=stats.refused,
                serve_fallbacks=s.get("fallbacks"),
                age_cycles_p50=s.get("age_cycles_p50"),
                age_cycles_p99=s.get("age_cycles_p99"),
                age_cycles_max=s.get("age_cycles_max"),
            )
            time.sleep(1.5)  # the hand ramps home, the next session opens on a quiet robot
            rec.take()
            t0 = time.monotonic()
            time.sleep(args.duration / 2)  # the reference's second half
            rest = rec.take()
            both = (idle_taken[0] + rest[0], idle_taken[1] + rest[1], idle_taken[2] + rest[2])
            idle = figures(both, idle_s + time.monotonic() - t0, budget_ns)
            peer: dict[str, Any] | None = None
            if not args.no_peer:
                t0 = time.monotonic()
                rearms = run_remote_step(
                    endpoint, key, lease, fn, SimulatedLatency(lat_mean, lat_sd, seed=1),
                    args.duration,
                )  # fmt: skip
                peer = figures(rec.take(), time.monotonic() - t0, budget_ns)
                peer["rearms"] = rearms
            rec.close()
            watcher.close()
        except RaasClientError as exc:
            print(f"bench chunks: {exc}", file=sys.stderr)
            return 1
        finally:
            proc.terminate()
            proc.wait(30)
    draws = SimulatedLatency(lat_mean, lat_sd, seed=1)
    lat_p99 = float(np.percentile([draws.draw_s() * 1000 for _ in range(10_000)], 99))
    p99 = ours.get("age_cycles_p99")
    late_ratio = ratio(ours["lateness_us"]["p999"], idle["lateness_us"]["p999"])
    report = {
        "rate_hz": args.rate,
        "chunk": args.chunk,
        "latency_ms": {"mean": lat_mean, "sd": lat_sd, "p99": lat_p99},
        "ours": ours,
        "peer": peer,
        "idle": idle,
        "lateness_p999_ratio": late_ratio,
        "age_ms_p99": None if p99 is None else p99 * period_ms,
        "age_target_ms": lat_p99 + period_ms,
        "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }
    print(
        f"{args.rate:g} Hz, latency {lat_mean:g} +- {lat_sd:g} ms, H = {args.chunk}, "
        f"{args.workers} policy worker(s) on the chunks side"
    )
    print(f"{'':<14}{'cycles':>8}{'fallbacks':>11}{'/min':>9}{'held':>7}{'jerk/cycle':>13}")
    sides = [("idle", idle), ("chunks", ours)] + ([] if peer is None else [("remote step", peer)])
    for name, f in sides:
        print(
            f"{name:<14}{f['cycles']:>8}{f['fallbacks']:>11}{f['fallbacks_per_min']:>9.1f}"
            f"{f['held_cycles']:>7}{f['jerk_per_cycle']:>13.2e}"
        )
    if ours["fallbacks"]:
        print(
            f"chunks side: {ours['fallbacks_over_budget']} of {ours['fallbacks']} fallback(s) "
            f"had an action but decide overran the {budget_ns / 1e6:g} ms budget "
            f"(decide ms: {ours['over_budget_decide_ms']}); cycles {ours['fallback_cycles']}"
        )
    print(fmt_dist("decide time, chunks side", ours["decide_us"]))
    if p99 is not None:
        print(
            f"applied action's computation age: p50 {ours['age_cycles_p50']:g}, p99 {p99:g} "
            f"cycles ({p99 * period_ms:.0f} ms; target <= latency p99 + one period = "
            f"{lat_p99 + period_ms:.0f} ms)"
        )
    print("loop lateness (trigger sent - t_k), same loop, same run:")
    for name, f in (("idle", idle), ("chunks", ours)):
        print(fmt_dist(f"  {name}", f["lateness_us"]))
    if late_ratio is not None:
        print(f"lateness p99.9 with chunks arriving / idle: {late_ratio:.2f} (target <= 1.1)")
    write_report("chunks", report)
    return 0
