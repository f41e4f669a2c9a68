"""The simulated rig's camera process: with rig.render_priority > 0 (opt-in) and a loop that got
SCHED_FIFO, every thread of the renderer (llvmpipe's too) is SCHED_FIFO at that priority, below
the physics and the loop; 0 (the default) leaves it at normal scheduling; either way it stays off
the loop's CPUs and renders without multisampling (rig.render_samples = 0), which is what let
the third camera of a cycle meet its deadline (docs/performance.md, "Cameras")."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from raas.config import sim_cell_config
from raas.daemon import cell_up
from tests.conftest import require

pytestmark = [pytest.mark.system, pytest.mark.slow]


def _sched(tid: int) -> tuple[int, int]:
    return os.sched_getscheduler(tid), os.sched_getparam(tid).sched_priority


@pytest.fixture
def restore_sched() -> Iterator[None]:
    """cell_up gives the loop's real-time settings back on exit (test below); should a test fail
    inside the cell, later tests' children must not inherit them either."""
    cpus = os.sched_getaffinity(0)
    yield
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    os.sched_setaffinity(0, cpus)


@pytest.mark.parametrize("render_priority", [1, 0])
@pytest.mark.usefixtures("restore_sched")
def test_renderer_scheduling(render_priority: int) -> None:
    cfg = sim_cell_config(
        {
            "loop": {"rate_hz": 12.5},
            "rig": {"clock": "realtime", "cameras": 1, "render_priority": render_priority},
            "rt": {"enabled": True},
        }
    )
    with cell_up(cfg) as cell:
        rig = cell.rig
        assert rig is not None and rig.renderer_pid
        assert rig.renderer_info["samples"] == 0, "MuJoCo's default 4x MSAA is back"
        tids = [int(t.name) for t in Path(f"/proc/{rig.renderer_pid}/task").iterdir()]
        got_fifo = cell.rt_report.sched_policy == "SCHED_FIFO"
        for tid in tids:
            policy, prio = _sched(tid)
            if got_fifo and render_priority > 0:
                assert (policy, prio) == (os.SCHED_FIFO, render_priority), f"thread {tid}"
                assert prio < _sched(rig.pid)[1] < cell.rt_report.fifo_priority
            else:
                assert policy not in (os.SCHED_FIFO, os.SCHED_RR), f"thread {tid}"
            if got_fifo and len(os.sched_getaffinity(0)) > 1:
                assert not os.sched_getaffinity(tid) & set(cell.rt_report.affinity)
        if got_fifo and render_priority > 0:
            assert f"cameras SCHED_FIFO prio {render_priority}" in cell.banner()


def _fifo_cell(cameras: int) -> object:
    return sim_cell_config(
        {
            "loop": {"rate_hz": 12.5},
            "rig": {"clock": "realtime", "cameras": cameras},
            "rt": {"enabled": True},
        }
    )


@pytest.mark.usefixtures("restore_sched")
def test_cell_up_gives_back_the_callers_scheduling() -> None:
    """A second cell in one process (a benchmark comparing settings, a test) starts its rig like
    the first: off the loop's CPU and not at the loop's priority. Before the fix the caller kept
    the first loop's SCHED_FIFO and CPU, the second rig inherited both, and the rig then ran on
    the loop's CPU (its answers came ~2x later and the warm-up helper never ran)."""
    require("a second CPU", len(os.sched_getaffinity(0)) >= 2, "the rig runs beside the loop's")
    before = (_sched(0), os.sched_getaffinity(0))
    for _ in range(2):
        with cell_up(_fifo_cell(1)) as cell:  # type: ignore[arg-type]
            rig = cell.rig
            assert rig is not None and rig.renderer_pid
            loop_cpus = set(cell.rt_report.affinity)
            for pid in (rig.pid, rig.renderer_pid):
                for t in Path(f"/proc/{pid}/task").iterdir():
                    tid = int(t.name)
                    if cell.rt_report.sched_policy == "SCHED_FIFO":
                        assert not os.sched_getaffinity(tid) & loop_cpus, f"rig thread {tid}"
                        assert _sched(tid)[1] < cell.rt_report.fifo_priority, f"rig thread {tid}"
    assert (_sched(0), os.sched_getaffinity(0)) == before
