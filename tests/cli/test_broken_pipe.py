"""`raasd ... | head`: when the reader of raasd's output goes away, raasd exits quietly with
status 1, no traceback (Python's recipe for SIGPIPE)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_into_closed_pipe(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run `python -u ARGV...` with its stdout a pipe nobody reads: the read end is closed
    before the interpreter has even started, so its first write fails (EPIPE)."""
    r, w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-u", *argv], stdout=w, stderr=subprocess.PIPE)
    os.close(r)
    os.close(w)
    _, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, b"", err)


def test_raasd_exits_quietly_when_its_reader_goes_away(tmp_path: Path) -> None:
    key = tmp_path / "lease.pem"
    made = subprocess.run(
        [sys.executable, "-m", "raas.cli", "lease", "keygen", str(key)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    # `raasd lease issue` prints the token on stdout
    res = run_into_closed_pipe(
        ["-m", "raas.cli", "lease", "issue", "--key", str(key), "--robot", "shadow-1"]
    )
    assert b"Traceback" not in res.stderr and b"BrokenPipe" not in res.stderr, res.stderr
    assert res.returncode == 1
