"""Clock mapping: how far a device stamp mapped to host time lands from the truth.

    python -m bench clock [-- --duration 20 --settle 10 --rate 12.5 --drift-ppm 50 --cameras 0
                              --order loop|trigger-first]

The realtime simulated rig gives every device domain (hand firmware, trigger board, motion
capture, cameras) its own clock: a different offset and `--drift-ppm` of drift. The loop's way of
running a cycle is repeated at `--rate` (fire the trigger, ask the hand's state, collect every
source) through the real drivers. The rig's clocks are known exactly, so each sample's device
stamp has a true host time: `(device_ns - offset) / (1 + drift)`. After `--settle` s, every
sample's error (mapped capture_ns - true host time) is measured.

ours   ClockMapper (raas_drivers.clock_sync): least-delay exchanges + Theil-Sen for the boards'
       request/answer pairs, lower-hull line for the pushed mocap/camera frames.
peer   the naive mappings one would write first, on the same samples in the same run:
       `arrival`   no device clock at all: a sample is stamped when it is read;
       `last`      offset = host time of the last exchange - its device stamp, no drift, no
                   filter (for a request/answer: the midpoint of the last exchange; for a pushed
                   frame: its arrival).
Also the mapper's own cost per observation (add + to_host) at 1 kHz, beside the naive `last`
mapping's, because drivers may feed it every ms.
Target: |error| p99 <= 100 us at 12.5 Hz after 10 s with 50 ppm drift.

Sources are polled in the loop's order (hand, trigger, mocap, cameras: raasd's collect phase);
`--order trigger-first` polls the trigger board before the hand. A board's answer is stamped when
its driver reads it, so an answer read after another board's (bigger) answer was decoded looks
later than it came, and its exchange's midpoint too.
"""

from __future__ import annotations

import argparse
import select
import sys
import time
from typing import Any

import numpy as np
from raas_drivers.clock_sync import ClockMapper
from raas_drivers.sim import RigConfig, SimRig
from raas_drivers.sim.clocks import DomainClock, RigClocks
from raas_drivers.source import Sample, Source

from bench.common import dist_us, fmt_dist, ratio, write_report

TARGET_P99_US = 100.0


def _true_host(device_ns: int, clock: DomainClock) -> float:
    return (device_ns - clock.offset_us * 1000) / (1.0 + clock.drift_ppm * 1e-6)


class _Last:
    """The naive peer: the offset of the last observation, no drift, no filtering."""

    def __init__(self) -> None:
        self.offset = 0

    def add(self, device_ns: int, before: int, after: int | None = None) -> None:
        host = before if after is None else before + (after - before) // 2
        self.offset = host - device_ns

    def to_host(self, device_ns: int) -> int:
        return device_ns + self.offset


def _collect(sources: list[Source], cycle: int) -> dict[str, tuple[Sample, int]]:
    """Poll every source until each has `cycle`: (sample, host time it was read)."""
    poller = select.poll()
    for s in sources:
        poller.register(s.fileno(), select.POLLIN)
    got: dict[str, tuple[Sample, int]] = {}
    deadline = time.monotonic() + 5.0
    while len(got) < len(sources):
        for s in sources:
            if s.source_name not in got:
                sample = s.poll(cycle)
                if sample is not None:
                    got[s.source_name] = (sample, time.monotonic_ns())
        if time.monotonic() > deadline:
            raise RuntimeError(f"cycle {cycle}: no answer from {set(map(str, sources)) - set(got)}")
        if len(got) < len(sources):
            poller.poll(50)
    return got


def bench_rig(
    rate: float,
    duration_s: float,
    settle_s: float,
    drift_ppm: float,
    cameras: int,
    trigger_first: bool = False,
) -> dict[str, Any]:
    clocks = RigClocks(
        hand=DomainClock(offset_us=1_000_000, drift_ppm=drift_ppm),
        trigger=DomainClock(offset_us=2_000_000, drift_ppm=-drift_ppm),
        mocap=DomainClock(offset_us=3_000_000, drift_ppm=drift_ppm),
        cameras=DomainClock(offset_us=4_000_000, drift_ppm=-drift_ppm),
    )
    cfg = RigConfig(
        clock="realtime",
        rate_hz=rate,
        cameras=cameras,
        camera_width=64,
        camera_height=48,
        seed=0,
        clocks=clocks,
    )
    domain = {"hand": clocks.hand, "trigger": clocks.trigger, "mocap": clocks.mocap}
    errors: dict[str, dict[str, list[float]]] = {}
    with SimRig(cfg) as rig:
        devs = rig.devices()
        devices: list[Any] = [devs.hand, devs.trigger, devs.mocap]
        sources: list[Source] = [devs.hand, devs.trigger, devs.mocap]
        if trigger_first:
            sources[:2] = [devs.trigger, devs.hand]
        if devs.cameras is not None:
            devices.append(devs.cameras)
            for cam in devs.cameras.sources():
                sources.append(cam)
                domain[cam.source_name] = clocks.cameras
        for d in devices:
            d.configure()
            d.activate()
        naive = {name: _Last() for name in domain}
        period = round(1e9 / rate)
        cycles = max(2, round(duration_s * rate))
        settle = round(settle_s * rate)
        start = time.monotonic_ns()
        for k in range(cycles):
            due = start + k * period
            while (left := due - time.monotonic_ns()) > 0:
                time.sleep(left / 1e9)
            fired = devs.trigger.fire(k)
            asked = time.monotonic_ns()
            devs.hand.request_state(k)
            devs.trigger.settle()  # the clock fits while the boards answer, as the loop does
            devs.hand.settle()
            got = _collect(sources, k)
            for name, (sample, read_ns) in got.items():
                assert sample.device_ns is not None
                before = fired if name == "trigger" else asked
                if name in ("hand", "trigger"):
                    naive[name].add(sample.device_ns, before, read_ns)
                else:
                    naive[name].add(sample.device_ns, read_ns)
                if k < settle:
                    continue
                truth = _true_host(sample.device_ns, domain[name])
                e = errors.setdefault(name, {"ours": [], "arrival": [], "last": []})
                e["ours"].append(sample.capture_ns - truth)
                e["arrival"].append(read_ns - truth)
                e["last"].append(naive[name].to_host(sample.device_ns) - truth)
        stats = {d.name: d.stats() for d in devices}
        for d in devices:
            d.shutdown()
    return {"errors": errors, "stats": stats, "cycles": cycles, "settle_cycles": settle}


def bench_cost(n: int) -> dict[str, dict[str, float]]:
    """ns per add + to_host at 1 kHz for ClockMapper and the naive peer."""
    out: dict[str, dict[str, float]] = {}
    rng = np.random.default_rng(0)
    jitter = rng.integers(50_000, 150_000, n)
    for label, mapper in (("ours", ClockMapper("bench")), ("peer (last)", _Last())):
        times = np.zeros(n, dtype=np.int64)
        for k in range(n):
            host = 10**12 + k * 1_000_000
            dev = host + 5 * 10**9 + k * 50  # 50 ppm
            t = time.perf_counter_ns()
            mapper.add(dev, host, host + int(jitter[k]))
            mapper.to_host(dev)
            times[k] = time.perf_counter_ns() - t
        out[label] = dist_us(times)
    return out


def _abs_dist(values: list[float]) -> dict[str, float]:
    return dist_us(np.round(np.abs(np.asarray(values))).astype(np.int64))


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench clock")
    p.add_argument("--rate", type=float, default=12.5)
    p.add_argument("--duration", type=float, default=20.0, help="seconds of cycles in all")
    p.add_argument("--settle", type=float, default=10.0, help="seconds before errors count")
    p.add_argument("--drift-ppm", type=float, default=50.0)
    p.add_argument("--cameras", type=int, default=0, choices=(0, 1, 2, 3))
    p.add_argument("--cost-n", type=int, default=20_000, help="observations for the cost run")
    p.add_argument("--order", choices=("loop", "trigger-first"), default="loop")
    args = p.parse_args(argv)
    print(
        f"== clock mapping on the realtime rig: {args.rate:g} Hz, {args.duration:g} s, errors "
        f"after {args.settle:g} s, drift +-{args.drift_ppm:g} ppm"
    )
    run = bench_rig(
        args.rate,
        args.duration,
        args.settle,
        args.drift_ppm,
        args.cameras,
        trigger_first=args.order == "trigger-first",
    )
    report: dict[str, Any] = {
        "rate_hz": args.rate,
        "duration_s": args.duration,
        "settle_s": args.settle,
        "drift_ppm": args.drift_ppm,
        "poll_order": args.order,
        "cycles": run["cycles"],
        "target_p99_us": TARGET_P99_US,
        "error_us": {},
        "ratio_p99_vs_last": {},
        "ratio_p99_vs_arrival": {},
        "device_stats": run["stats"],
    }
    worst_p99 = 0.0
    for name, e in run["errors"].items():
        d = {k: _abs_dist(v) for k, v in e.items()}
        report["error_us"][name] = d
        print(fmt_dist(f"{name}: ours (ClockMapper)", d["ours"]))
        print(fmt_dist(f"{name}: peer (last offset)", d["last"]))
        print(fmt_dist(f"{name}: peer (arrival time)", d["arrival"]))
        r_last = ratio(d["ours"]["p99"], d["last"]["p99"])
        r_arr = ratio(d["ours"]["p99"], d["arrival"]["p99"])
        report["ratio_p99_vs_last"][name] = r_last
        report["ratio_p99_vs_arrival"][name] = r_arr
        bias = float(np.median(e["ours"])) / 1000
        report.setdefault("bias_us", {})[name] = round(bias, 1)
        print(
            f"{name}: ratio ours/peer p99: vs last {r_last}, vs arrival {r_arr}; "
            f"median signed error (mapped - true) {bias:+.1f} us",
            flush=True,
        )
        worst_p99 = max(worst_p99, d["ours"]["p99"])
    met = worst_p99 <= TARGET_P99_US
    report["worst_p99_us"] = worst_p99
    report["target_met"] = met
    print(f"worst p99 {worst_p99:.1f} us: target {TARGET_P99_US:g} us {'met' if met else 'MISSED'}")
    print(f"== mapper cost per observation (add + to_host), {args.cost_n} at 1 kHz")
    cost = bench_cost(args.cost_n)
    for label, d in cost.items():
        print(fmt_dist(label, d))
    print(f"ratio ours/peer: p50 {ratio(cost['ours']['p50'], cost['peer (last)']['p50'])}")
    report["cost_us"] = cost
    write_report("clock" if args.order == "loop" else "clock_trigger_first", report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
