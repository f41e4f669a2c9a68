"""Cross-process wake-up latency of the service: PostgreSQL LISTEN/NOTIFY against polling.

Two `raasd serve` processes (A and B) on one throwaway PostgreSQL server (initdb + pg_ctl, as in
the tests: tests/service/pg_server.py). A staff client posts `--events` e-stops and clears to A,
one every `--gap` seconds; a daemon-style client follows the robot's command feed on B with held
long-polls (`wait=20`). Latency: from just before A's POST is sent to the moment B's long-poll
answered with that entry, in microseconds.

- ours: the notifier as shipped (A publishes `commands`, B's listener wakes B's waiters);
- peer: the same processes with `RAAS_NOTIFY_LISTEN=0`: B finds A's entries by re-reading the
  database every 0.25 s, which is what every process did before LISTEN/NOTIFY.

    python -m bench notify -- [--events 40] [--gap 0.1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import dist_us, fmt_dist, ratio, write_report

REPO = Path(__file__).resolve().parents[1]


def _follow(
    url: str, headers: dict[str, str], arrived: dict[int, int], stop: threading.Event
) -> None:
    """Held long-polls on B's command feed; the arrival time of every entry by seq."""
    cursor = httpx.get(url, headers=headers, timeout=30).json()["head"]
    with httpx.Client(headers=headers, timeout=60) as client:
        while not stop.is_set():
            r = client.get(url, params={"since": cursor, "wait": 20.0})
            now = time.monotonic_ns()
            r.raise_for_status()
            body = r.json()
            for entry in body["commands"]:
                arrived[int(entry["seq"])] = now
            cursor = body["cursor"]


def run_side(server: Any, label: str, listen: bool, events: int, gap: float) -> dict[str, Any]:
    from raas.service.models import Role
    from tests.service.harness import ServerProcess, seed, settings_for

    url = server.create_database(f"bench_notify_{label}_{os.getpid()}")
    with tempfile.TemporaryDirectory(prefix="raas-bench-notify-") as tmp:
        seeded = seed(settings_for(url, Path(tmp)), users={"staff@lab": Role.staff})
        env = {"RAAS_NOTIFY_LISTEN": "1" if listen else "0"}
        a = ServerProcess(seeded.settings, Path(tmp) / "a.log", env=env).start()
        b = ServerProcess(seeded.settings, Path(tmp) / "b.log", env=env).start()
        try:
            robot = seeded.robots["arm-1"]
            daemon = {"Authorization": f"Bearer {seeded.robot_tokens['arm-1']}"}
            staff = seeded.headers("staff@lab")
            time.sleep(1.0)  # both listeners connected (ours)
            arrived: dict[int, int] = {}
            stop = threading.Event()
            feed = f"{b.base_url}/robots/{robot}/commands"
            follower = threading.Thread(
                target=_follow, args=(feed, daemon, arrived, stop), daemon=True
            )
            follower.start()
            time.sleep(0.5)
            sent: dict[int, int] = {}
            with httpx.Client(headers=staff, timeout=30) as client:
                for i in range(events):
                    action = "estop" if i % 2 == 0 else "clear-estop"
                    t0 = time.monotonic_ns()
                    r = client.post(f"{a.base_url}/robots/{robot}/{action}", json={})
                    r.raise_for_status()
                    sent[int(r.json()["seq"])] = t0
                    time.sleep(gap)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not set(sent) <= set(arrived):
                time.sleep(0.05)
            stop.set()
            missing = sorted(set(sent) - set(arrived))
            latencies = [arrived[s] - t for s, t in sent.items() if s in arrived]
            return {"latency_us": dist_us(latencies), "missing": len(missing)}
        finally:
            b.stop()
            a.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench notify")
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument("--gap", type=float, default=0.1, help="seconds between two posts")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from tests.service.pg_server import start_pg_server, unavailable_reason

    why = unavailable_reason()
    if why is not None:
        print(f"cannot start PostgreSQL: {why}")
        return 1
    server = start_pg_server()
    try:
        peer = run_side(server, "poll", False, args.events, args.gap)
        ours = run_side(server, "notify", True, args.events, args.gap)
    finally:
        server.stop()
    print(fmt_dist("peer: database poll (0.25 s)", peer["latency_us"]))
    print(fmt_dist("ours: LISTEN/NOTIFY", ours["latency_us"]))
    p50 = ratio(ours["latency_us"]["p50"], peer["latency_us"]["p50"])
    p99 = ratio(ours["latency_us"]["p99"], peer["latency_us"]["p99"])
    print(
        f"ratio ours/peer: p50 {p50}  p99 {p99}; missing: ours {ours['missing']}, "
        f"peer {peer['missing']}"
    )
    write_report(
        "notify",
        {
            "what": "e-stop posted on service process A -> command feed long-poll on B, one "
            "PostgreSQL",
            "events": args.events,
            "gap_s": args.gap,
            "ours": ours,
            "peer": peer,
            "ratio_p50": p50,
            "ratio_p99": p99,
        },
    )
    return 0 if ours["missing"] == 0 and peer["missing"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
