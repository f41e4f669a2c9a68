"""The processes `raasd up` supervises.

Each child runs in a process group of its own, so a Ctrl-C in the terminal reaches only the
supervisor, which then stops the children in order (the robot first: it puts the hand in its
idle pose and shuts its rig down). Their stdout is echoed with the child's name in front and
kept, so the supervisor can wait for a line (an address, a key) with a deadline. Stopping is
SIGINT, a wait, then SIGKILL to the whole group; anything left in a group after its leader
exited is named and killed, so nothing outlives `raasd up`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from raas.commands.errors import ChildFailedError

_PR_SET_PDEATHSIG = 1
_ECHO_LOCK = threading.Lock()


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """Linux: the child gets SIGTERM if `raasd up` itself is killed (SIGKILL, a crash)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[str]
    essential: bool  # its exit is a failure of the whole stack
    stop_signals: tuple[int, ...]  # sent in turn, each given its share of the stop timeout
    lines: list[str] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    reader: threading.Thread | None = None

    def _read(self, echo: Callable[[str], bool]) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if echo(line):
                with _ECHO_LOCK:  # one write per line: children's lines never interleave
                    sys.stdout.write(f"{self.name:<8}| {line.rstrip()}\n")
                    sys.stdout.flush()
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def output_done(self) -> bool:
        return self.reader is None or not self.reader.is_alive()

    def wait_for(self, pattern: re.Pattern[str], timeout_s: float) -> re.Match[str]:
        """The first output line matching `pattern`; ChildFailedError if the child exits or the
        deadline passes first."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        with self.cond:
            while True:
                for line in self.lines[seen:]:
                    if found := pattern.search(line):
                        return found
                seen = len(self.lines)
                if self.proc.poll() is not None and self.output_done():
                    raise ChildFailedError(
                        self.name, f"exited with code {self.proc.returncode} before it was up"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ChildFailedError(self.name, f"not up within {timeout_s:.0f} s")
                self.cond.wait(min(left, 0.2))

    def output(self) -> str:
        with self.cond:
            return "".join(self.lines)


class Children:
    """Start, watch and stop the stack's processes (stopped in reverse start order)."""

    def __init__(self) -> None:
        self.children: list[Child] = []

    def start(
        self,
        name: str,
        cmd: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        essential: bool = True,
        echo: Callable[[str], bool] = lambda line: True,
        merge_stderr: bool = True,
        stop_signals: tuple[int, ...] = (signal.SIGINT,),
    ) -> Child:
        proc = subprocess.Popen(
            list(cmd),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else None,
            text=True,
            bufsize=1,
            env={**os.environ, **(env or {})},
            process_group=0,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )
        child = Child(name, proc, essential, stop_signals)
        child.reader = threading.Thread(
            target=child._read, args=(echo,), name=f"echo {name}", daemon=True
        )
        child.reader.start()
        self.children.append(child)
        return child

    def check(self) -> None:
        """Raise ChildFailedError when an essential child has exited."""
        for c in self.children:
            code = c.proc.poll()
            if c.essential and code is not None:
                raise ChildFailedError(c.name, f"exited unexpectedly with code {code}")

    def wait(self, child: Child, timeout_s: float) -> int:
        """Wait for a non-essential child to finish, checking the others meanwhile."""
        deadline = time.monotonic() + timeout_s
        while child.proc.poll() is None:
            self.check()
            if time.monotonic() > deadline:
                self.stop(child, 10.0)
                raise ChildFailedError(child.name, f"did not finish within {timeout_s:.0f} s")
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=0.5)
        if child.reader is not None:
            child.reader.join(timeout=5)
        return child.proc.returncode

    def stop(self, child: Child, timeout_s: float) -> int:
        """Its stop signals in turn (SIGINT), then SIGKILL; then clear out its process group."""
        proc = child.proc
        for sig in child.stop_signals:
            if proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout_s / len(child.stop_signals))
        if proc.poll() is None:
            print(f"raasd up: {child.name} did not stop in {timeout_s:.0f} s; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _clear_group(child.name, proc.pid)
        if child.reader is not None:
            child.reader.join(timeout=5)
        return proc.returncode

    def stop_all(self, timeout_s: float = 30.0) -> dict[str, int]:
        codes: dict[str, int] = {}
        for child in reversed(self.children):
            codes[child.name] = self.stop(child, timeout_s)
        return codes


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _clear_group(name: str, pgid: int, grace_s: float = 5.0) -> None:
    """Give what the leader left in its group a moment to finish, then kill it."""
    deadline = time.monotonic() + grace_s
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            print(f"raasd up: {name} left processes behind; killing them", flush=True)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            return
        time.sleep(0.05)
