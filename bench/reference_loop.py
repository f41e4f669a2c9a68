"""The peer of the loop benchmark: a bare Python loop on the same absolute grid, with the same
real-time settings and the same sleep-then-spin wait, doing nothing else. Its lateness is the
floor this machine and scheduler give any Python loop; raasd's loop is compared against it.

    python bench/reference_loop.py --rate 1000 --duration 60 [--no-rt] --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from raas.core.rt import RtRequest, acquire, freeze_heap


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--no-rt", action="store_true")
    ap.add_argument("--warmup", type=int, default=25, help="cycles run before measuring (as raasd)")
    ap.add_argument("--spin-us", type=int, default=None)
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()

    n_cpu = os.cpu_count() or 1
    report = acquire(RtRequest(enabled=not args.no_rt, cpus=(n_cpu - 1,) if n_cpu >= 2 else None))
    spin_us = args.spin_us
    if spin_us is None:
        spin_us = 200 if report.sched_policy == "SCHED_FIFO" else 1000
    spin = spin_us * 1000
    period = round(1e9 / args.rate)
    n = max(1, round(args.duration * args.rate)) + args.warmup
    late = np.zeros(n, dtype=np.int64)
    now = time.monotonic_ns
    t0 = now() + 2 * period
    k = 0
    missed = 0
    i = 0
    while i < n:
        t_k = t0 + k * period
        rem = t_k - now() - spin
        if rem > 0:
            time.sleep(rem / 1e9)
        while now() < t_k:
            pass
        woke = now()
        late[i] = woke - t_k
        i += 1
        nxt = (woke - t0) // period + 1
        if i > args.warmup:
            missed += nxt - (k + 1)
        elif i == args.warmup and report.requested:
            freeze_heap(report)  # as raasd: after warm-up
        k = nxt
    args.json.write_text(
        json.dumps(
            {
                "lateness_ns": late[args.warmup :].tolist(),
                "missed": int(missed),
                "rt": report.as_dict(),
            }
        )
    )


if __name__ == "__main__":
    main()
