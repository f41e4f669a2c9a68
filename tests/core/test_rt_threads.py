"""Real-time settings of the loop's process: the zmq I/O threads made after the loop took
SCHED_FIFO run at normal priority off the loop's CPU (at the loop's own FIFO priority they would
keep it from running while busy), and garbage is collected before the loop, not in a cycle."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import require

_CHILD = r"""
import json, os, time, zmq
from raas.core.rt import RtRequest, acquire, keep_io_threads_off_the_loop
n = os.cpu_count()
report = acquire(RtRequest(cpus=(n - 1,), mlock=False))
ctx = zmq.Context()
keep_io_threads_off_the_loop(ctx)
sock = ctx.socket(zmq.PUB)
sock.bind("tcp://127.0.0.1:0")

def threads():
    out = {}
    for tid in os.listdir("/proc/self/task"):
        comm = open(f"/proc/self/task/{tid}/comm").read().strip()
        stat = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        cpus = sorted(os.sched_getaffinity(int(tid)))
        out[comm + ":" + tid] = {"policy": int(stat[38]), "cpus": cpus}
    return out

# an I/O thread sets its own scheduling once it runs: wait for that (deadline), not a time
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    io = [t for name, t in threads().items() if name.startswith("ZMQbg")]
    if io and all(t["policy"] == 0 for t in io):
        break
    time.sleep(0.01)
threads = threads()
print(json.dumps({"policy": report.sched_policy, "loop_cpus": report.affinity, "threads": threads}))
sock.close(); ctx.term()
"""


def _can_fifo() -> bool:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except (OSError, AttributeError):
        return False
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    return True


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs a CPU beside the loop's")
def test_zmq_io_threads_leave_the_loops_priority_and_cpu() -> None:
    require("SCHED_FIFO", _can_fifo(), "run as root (or with CAP_SYS_NICE) to test RT settings")
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=60, check=True
    )
    got = json.loads(out.stdout)
    assert got["policy"] == "SCHED_FIFO"
    io = {name: t for name, t in got["threads"].items() if name.startswith("ZMQbg")}
    assert io, got["threads"]
    for name, t in io.items():
        assert t["policy"] == os.SCHED_OTHER, name
        assert not set(t["cpus"]) & set(got["loop_cpus"]), name
