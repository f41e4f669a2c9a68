"""The fault matrix (issue 7): every fault x phase on the realtime simulated robot, its declared
end state and bound beside what was measured.

    python -m bench fault_matrix [-- --only CELL[,CELL...] | --faults F[,F...]] [--no-docs]

Runs the cells one after another (each starts its own `raasd robot --sim`, ~10-30 s), prints
the table, writes bench/results/fault_matrix.json and the Markdown table into docs/safety.md
between `<!-- matrix:begin -->` and `<!-- matrix:end -->` (only for a full run, unless
--docs is given). The cells and their measurement are tests/safety/matrix_harness.py, shared
with tests/safety/test_fault_matrix.py. There is no peer to run beside: the "peer" of each
cell is its declared bound.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import RESULTS, fingerprint, write_report

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "safety.md"
BEGIN, END = "<!-- matrix:begin -->", "<!-- matrix:end -->"


def _fmt_s(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f} ms" if v < 10 else f"{v:.1f} s"


def _declared(r: dict[str, Any]) -> str:
    d = str(r["declared"])
    if r["declared_reason"]:
        d += " " + " or ".join(f"`{c}`" for c in str(r["declared_reason"]).split("|"))
    if d.startswith("ramp_down"):
        d += " -> idle"
    return d


def _bound(r: dict[str, Any]) -> str:
    b = r["declared_bound_s"]
    return "-" if b is None else f"{b * 1000:.0f} ms"


def _measured(r: dict[str, Any]) -> str:
    out = _fmt_s(r["measured_s"])
    if r.get("then_s") is not None:
        out += f" (idle {_fmt_s(r['then_s'])})"
    return out


def _state(r: dict[str, Any]) -> str:
    s = str(r["end_state"])
    if r["reason"]:
        s += f" `{r['reason']}`"
    if r["detail"]:
        s += f" ({r['detail']})"
    if r["exit_code"] not in (None, 0):
        s += f", exit {r['exit_code']}"
    return s


METHOD = """\
Each cell starts a realtime `raasd robot --sim` at 12.5 Hz (a fresh daemon and rig per cell),
brings it into the phase with a real client process (idle: none; armed: open + arm; step: remote
step of a slow sinusoid around the idle pose; policy: a bundle uploaded and run in the loop),
injects the fault at a known moment and watches the robot's PUB stream (every step carries the
supervisor's state; every transition is a `safety` event with its reason and CLOCK_MONOTONIC
time), the daemon's exit code and the simulated hand firmware's own event record. How each
fault is made:

{how}
Uncontrolled motion: after the declared state is reached, a target that changes in
HOLD/FAULT/IDLE, a ramp-down target that moves faster than the ramp speed or away from home,
joint speeds still >= 0.05 rad/s 2 s later, a non-finite target, or the firmware applying a
target after a lost device / the daemon's death. Run it: `python -m bench fault_matrix`
(one cell: `-- --only mocap_lost-step`); the same cells are `tests/safety/test_fault_matrix.py`.

"""

HOW = (
    ("client SIGKILL / SIGSTOP", "the client process is killed / stopped"),
    ("lease expiry", "the lease's `exp` falls a few seconds after the phase is reached"),
    (
        "mocap lost, camera lost",
        "`[rig.faults] mocap_lost_at_s` / `camera_lost_at_s` (camera `left`), started by a file",
    ),
    (
        "inference overrun",
        "a bundle whose ONNX `Loop` runs ~55 ms of MatMuls per step once its recurrent step "
        "counter passes 25 (the load-time latency check feeds zeros, which do not advance it)",
    ),
    ("NaN policy", "the same counter switches the action to NaN after 25 steps"),
    (
        "serial noise",
        "`[rig.link] bit_error_rate = 1e-4` both ways (`corrupt_rx`); every target the firmware "
        "applied must be one the daemon sent",
    ),
    ("firmware reset, port unplugged", "`[rig.link] reset_at_s` / `vanish_at_s`, hand board"),
    (
        "daemon SIGKILL",
        "the daemon is killed; the rig keeps the hand running (`[rig.faults] outlive_parent_s`) "
        "so the firmware watchdog's hold shows in its record",
    ),
    (
        "wall-clock jump",
        "an LD_PRELOAD shim (tests/safety/wallclock_shim.c) steps the daemon's CLOCK_REALTIME by "
        "+/-1 h; CLOCK_MONOTONIC is untouched; the absolute wall-clock deadlines of glibc's timed "
        "waits are stepped back for the kernel, so a wait lasts as long as after a real step",
    ),
)


def method() -> str:
    how = "| fault | how |\n| --- | --- |\n" + "".join(f"| {f} | {h} |\n" for f, h in HOW)
    return METHOD.format(how=how)


def markdown(rows: list[dict[str, Any]], machine: str) -> str:
    head = (
        "| fault | phase | declared | bound | measured state | measured | motion | verdict |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- |\n"
    )
    body = "".join(
        f"| {r['fault']} | {r['phase']} | {_declared(r)} | {_bound(r)} | {_state(r)} | "
        f"{_measured(r)} | {'UNCONTROLLED' if r['uncontrolled_motion'] else 'controlled'} | "
        f"{'pass' if r['ok'] else '**FAIL**'} |\n"
        for r in rows
    )
    failed = [r for r in rows if not r["ok"]]
    notes = "".join(f"- `{r['cell']}`: {'; '.join(r['notes'])}\n" for r in failed)
    passed = len(rows) - len(failed)
    uncontrolled = sum(1 for r in rows if r["uncontrolled_motion"])
    summary = (
        f"{passed} of {len(rows)} cells end in their declared state within the CI margin "
        f"(3 x bound + 0.5 s); {uncontrolled} end in uncontrolled motion. Measured on {machine}. "
        "`measured` is the time from the injection to the declared state (for a lost device: to "
        "the daemon's exit; for a daemon SIGKILL: to the firmware watchdog's hold, from the rig's "
        "event record).\n"
    )
    return head + body + "\n" + summary + ("\nCells that failed:\n" + notes if notes else "")


def write_docs(table: str) -> None:
    text = DOCS.read_text() if DOCS.exists() else "# Safety\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    a = text.index(BEGIN) + len(BEGIN)
    b = text.index(END)
    DOCS.write_text(text[:a] + "\n" + method() + table + text[b:])
    print(f"docs: {DOCS}", flush=True)


def _merge(new: list[dict[str, Any]], order: list[str]) -> list[dict[str, Any]]:
    """The last report's cells with `new` in their place (docs for a partial re-run)."""
    path = RESULTS / "fault_matrix.json"
    old = json.loads(path.read_text()).get("cells", []) if path.exists() else []
    by_name = {r["cell"]: r for r in old} | {r["cell"]: r for r in new}
    return [by_name[n] for n in order if n in by_name]


def main(argv: list[str]) -> int:
    from tests.safety.matrix_harness import (
        CELLS,
        cell_by_name,
        make_bundles,
        run_cell,
    )
    from tests.transport.harness import LeaseIssuer

    p = argparse.ArgumentParser(prog="python -m bench fault_matrix")
    p.add_argument("--only", help="comma-separated cells (fault-phase), e.g. mocap_lost-step")
    p.add_argument("--faults", help="comma-separated faults (every phase of each)")
    p.add_argument(
        "--docs",
        action="store_true",
        help="a partial run: replace its cells in the last report and write docs/safety.md",
    )
    p.add_argument("--no-docs", action="store_true", help="do not touch docs/safety.md")
    p.add_argument("--work", type=Path, help="keep each cell's logs here (default: a temp dir)")
    args = p.parse_args(argv)
    cells = list(CELLS)
    if args.only:
        cells = [cell_by_name(n.strip()) for n in args.only.split(",") if n.strip()]
    if args.faults:
        wanted = {f.strip() for f in args.faults.split(",")}
        cells = [c for c in cells if c.fault in wanted]
    full = len(cells) == len(CELLS)
    work = args.work or Path(tempfile.mkdtemp(prefix="raas-matrix-"))
    issuer = LeaseIssuer.create(work)
    bundles = None
    if any("policy" in c.phase for c in cells):
        print("building bundles ...", flush=True)
        bundles = make_bundles(
            work / "bundles", vision=any(c.phase == "vision_policy" for c in cells)
        )
    rows: list[dict[str, Any]] = []
    t_all = time.monotonic()
    for c in cells:
        t0 = time.monotonic()
        res = run_cell(c, work / c.name, issuer, bundles).as_dict()
        res["cell_wall_s"] = round(time.monotonic() - t0, 1)
        rows.append(res)
        print(
            f"{c.name:32s} {_declared(res):38s} {_bound(res):>7s}  ->  {_state(res):44s} "
            f"{_measured(res):>20s}  {'ok' if res['ok'] else 'FAIL'}"
            + ("" if res["ok"] else f"  {'; '.join(res['notes'])}"),
            flush=True,
        )
    report = {
        "cells": rows,
        "passed": sum(1 for r in rows if r["ok"]),
        "total": len(rows),
        "uncontrolled": sum(1 for r in rows if r["uncontrolled_motion"]),
        "wall_s": round(time.monotonic() - t_all, 1),
        "work_dir": str(work),
    }
    m = fingerprint()
    if not full and args.docs:  # a partial run updates its cells in the last full report
        rows = _merge(rows, [c.name for c in CELLS])
        report.update(
            cells=rows,
            passed=sum(1 for r in rows if r["ok"]),
            total=len(rows),
            uncontrolled=sum(1 for r in rows if r["uncontrolled_motion"]),
        )
    write_report("fault_matrix", report)
    desc = f"{m.get('cpu_model', '?')}, {m.get('cpus', '?')} CPUs, load {m.get('loadavg', '?')}"
    table = markdown(rows, desc)
    print(table)
    if (full or args.docs) and not args.no_docs:
        write_docs(table)
    return 0 if report["passed"] == report["total"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
