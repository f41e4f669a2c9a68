"""The loop holds the machine's CPU wake-up latency at [rt] cpu_latency_us (0 by default) on
/dev/cpu_dma_latency while it runs, so idle CPUs poll instead of halting (a halted vCPU took
100-250 us to wake for a device's answer here), and gives it back when its cell is down; -1
leaves the machine's setting alone; a machine without the device (or without the right to
write it) gets a note, never an error."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from raas.core import rt
from raas.core.rt import RtRequest, acquire, current_sched, release_cpu_latency, restore
from tests.conftest import require

_CHILD = r"""
import json, os, struct, sys
from raas.core.rt import RtRequest, acquire, current_sched, restore

def held():
    fd = os.open("/dev/cpu_dma_latency", os.O_RDONLY)
    try:
        return struct.unpack("=i", os.read(fd, 4))[0]
    finally:
        os.close(fd)

before = held()
sched = current_sched()
report = acquire(RtRequest(cpus=None, mlock=False, cpu_latency_us=int(sys.argv[1])))
during = held()
summary = report.summary()
stats = report.as_dict()
notes = restore(sched, report)
print(json.dumps({"before": before, "during": during, "after": held(), "summary": summary,
                  "stats": stats, "notes": notes}))
"""


def _writable() -> bool:
    return os.access(rt.CPU_DMA_LATENCY, os.W_OK)


def _run(latency_us: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(latency_us)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_the_latency_is_held_while_the_loop_runs_and_given_back() -> None:
    require(rt.CPU_DMA_LATENCY, _writable(), "root or write access to the PM QoS device")
    got = _run(0)
    assert got["during"] == 0
    assert got["after"] == got["before"] != 0
    stats = got["stats"]
    assert isinstance(stats, dict) and stats["cpu_latency_us"] == 0 and "qos_fd" not in stats
    assert "cpu wake-up latency 0 us" in str(got["summary"])


def test_minus_one_leaves_the_machine_alone() -> None:
    require(rt.CPU_DMA_LATENCY, _writable(), "root or write access to the PM QoS device")
    got = _run(-1)
    assert got["during"] == got["before"] == got["after"]
    stats = got["stats"]
    assert isinstance(stats, dict) and stats["cpu_latency_us"] is None
    assert "cpu wake-up latency not held" in str(got["summary"])


def test_a_machine_without_the_device_gets_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rt, "CPU_DMA_LATENCY", str(tmp_path / "missing"))
    sched = current_sched()
    report = acquire(RtRequest(cpus=None, mlock=False, fifo_priority=1))
    try:
        assert report.cpu_latency_us is None and report.qos_fd == -1
        assert any(n.startswith("cpu wake-up latency not held") for n in report.notes), report.notes
        assert "cpu wake-up latency not held" in report.summary()
    finally:
        restore(sched, report)


def test_release_closes_what_it_held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "qos"
    path.write_bytes(b"")
    monkeypatch.setattr(rt, "CPU_DMA_LATENCY", str(path))
    report = rt.RtReport(requested=True)
    rt._hold_cpu_latency(25, report)
    assert report.cpu_latency_us == 25 and report.qos_fd >= 0
    assert struct.unpack("=i", path.read_bytes())[0] == 25  # what the kernel is told
    fd = report.qos_fd
    release_cpu_latency(report)
    assert report.qos_fd == -1 and report.cpu_latency_us is None
    with pytest.raises(OSError):
        os.fstat(fd)
