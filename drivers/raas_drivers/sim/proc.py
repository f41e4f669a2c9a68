"""Plumbing shared by the rig's child processes: die with the parent, report readiness."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
from typing import Any

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGTERM us when the launching process dies (no orphans), then make sure it
    has not died already before we asked."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if parent_pid > 0 and os.getppid() != parent_pid:
        sys.exit(1)


def report_ready(fd: int, info: dict[str, Any]) -> None:
    """Write one JSON line on the ready pipe and close it: the launcher's handshake."""
    if fd < 0:
        return
    data = (json.dumps(info) + "\n").encode()
    with os.fdopen(fd, "wb", buffering=0) as f:
        f.write(data)


def log(*parts: object) -> None:
    """Diagnostics go to stderr, which the launcher keeps for its error messages."""
    sys.stderr.write(" ".join(str(p) for p in parts) + "\n")
    sys.stderr.flush()


def exit_on_sigterm() -> None:
    """SIGTERM (from the launcher, or from the kernel when the parent died) raises SystemExit, so
    `finally` blocks run (the camera process unlinks its shared memory there)."""

    def _exit(signum: int, frame: object) -> None:
        # once is enough: when the launcher dies, PR_SET_PDEATHSIG can fire once per reparenting
        # (to a sibling thread, then to init), and a second SystemExit would abort the clean-up
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _exit)
