"""The fault matrix's wall-clock shim (tests/safety/wallclock_shim.c) steps a process's wall clock
as a real NTP step would: timed waits on CLOCK_REALTIME that start after the step still last as
long as the program asked. Before the fix, a deadline computed from the shifted clock reached the
kernel shifted: after a step back every wait returned at once (onnxruntime's telemetry thread
then busy-spun a CPU in the daemon and starved the loop: the clock_jump_back-step flake), after a
step forward it hung for an hour."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import require
from tests.safety.matrix_harness import build_wallclock_shim, compiler

WAITS_SOURCE = Path(__file__).with_name("wallclock_waits.c")
WAITS = (
    "pthread_cond_timedwait",
    "pthread_cond_timedwait_monotonic",
    "pthread_cond_clockwait",
    "sem_timedwait",
    "clock_nanosleep",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    require("cc", compiler() is not None, "the wall-clock shim is compiled with cc/gcc")
    cc = compiler()
    assert cc is not None
    d = tmp_path_factory.mktemp("shim")
    prog = d / "wallclock_waits"
    subprocess.run(
        [cc, "-O2", "-o", str(prog), str(WAITS_SOURCE), "-pthread"],
        check=True,
        capture_output=True,
    )
    return build_wallclock_shim(d), prog


def _run(shim: Path, prog: Path, offset_file: Path) -> dict[str, float]:
    env = {
        **os.environ,
        "LD_PRELOAD": str(shim),
        "RAAS_WALLCLOCK_OFFSET_FILE": str(offset_file),
    }
    # a deadline shifted 1 h into the future would hang: the timeout turns that into a failure
    out = subprocess.run(
        [str(prog)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert out.returncode == 0, out.stderr
    return {name: float(ms) for name, ms in (line.split() for line in out.stdout.splitlines())}


def test_the_shim_shifts_the_wall_clock(built: tuple[Path, Path], tmp_path: Path) -> None:
    shim, _ = built
    offset = tmp_path / "offset"
    offset.write_text("-3600\n")
    env = {**os.environ, "LD_PRELOAD": str(shim), "RAAS_WALLCLOCK_OFFSET_FILE": str(offset)}
    code = "import time; print(time.time())"
    shifted = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert abs(float(shifted.stdout) - (time.time() - 3600)) < 60


@pytest.mark.parametrize("offset_s", [-3600, 3600])
def test_timed_waits_on_the_wall_clock_last_as_asked_after_a_step(
    built: tuple[Path, Path], tmp_path: Path, offset_s: int
) -> None:
    shim, prog = built
    offset = tmp_path / "offset"
    offset.write_text(f"{offset_s}\n")
    took = _run(shim, prog, offset)
    assert set(took) == set(WAITS)
    for name, ms in took.items():
        # each waits 200 ms; a shifted deadline returns at once or hangs (wide margins: CI)
        assert 150 <= ms < 20_000, f"{name} waited {ms:.1f} ms for a 200 ms deadline"
