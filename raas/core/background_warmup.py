"""Warm-up work on a helper thread while the loop waits for the devices' answers.

After the trigger the loop sleeps in select() until the hand's state and the motion capture
arrive (0.4-1 ms on the simulated cell). A policy's inference after that wait runs cold: the
80 ms between cycles let the rest of the machine evict its code and weights from the caches
(docs/performance.md, "Cold after 80 ms"), and a warm-up before the trigger is undone by the gap
(measured: 3 warm-ups, then 3 ms asleep, 455-536 us; right after them, 287 us). Running the
warm-ups *in* the loop's thread during the wait made every answer that came mid-warm-up wait for
it. Here a helper thread runs them instead, on the loop's CPU, at SCHED_IDLE: it runs only
while the loop sleeps and nothing else wants that CPU, and the kernel preempts it the moment an
answer wakes the loop. So the wait's idle CPU warms the caches, and no answer waits for a
warm-up. Not a real-time priority below the loop's: tried, and the helper then kept the kernel's
workers that carry the devices' bytes (pty, UDP) off that CPU for the whole wait, so on a busy
machine every source came late.

The same helper also fills the lead before the trigger (`[loop] warm_during_lead`, default on):
after the controller's prepare() the loop sleeps prepare_lead_ms (3 ms) until the trigger, and
that gap cooled what prepare() warmed; with the helper warming through it, the in-loop inference
was lower in 10 of 10 interleaved pairs (docs/performance.md, "Warm-ups through the lead").

The controller says what to warm, on the loop's thread, once per cycle before the wait:
`background_warmup()` returns a callable (a policy's scratch-buffer inference), or None when
there is nothing to warm (no policy running: the helper is not even woken). The callable must
change nothing decide() will return and be safe while decide() runs: the helper may be
preempted in the middle of one, and decide() then runs beside it (onnxruntime's run is
thread-safe). An exception is counted and ends that wait's warm-ups; after
MAX_CONSECUTIVE_ERRORS in a row the helper stops for good. The loop goes on either way.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

#: After this many failed warm-ups in a row the helper stops for good (a broken controller
#: hook must not cost a traceback per cycle).
MAX_CONSECUTIVE_ERRORS = 10


class BackgroundWarmup:
    """The helper thread. The loop's thread calls begin(warm) once its requests went out, end()
    when what the controller reads has been collected, and close() when the loop ends."""

    def __init__(self, name: str = "raas warm-up") -> None:
        self._name = name
        self._armed = threading.Event()
        self._warm: Callable[[], object] | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        #: warm-ups run, failed ones included
        self.runs = 0
        self.errors = 0
        self.last_error = ""
        self.stopped_by_errors = False

    def begin(self, warm: Callable[[], object]) -> None:
        """The loop is about to wait: the helper runs `warm` until end() (the helper is started
        on first use, on the calling thread's CPUs, at SCHED_IDLE)."""
        if self.stopped_by_errors:
            return
        self._warm = warm
        if self._thread is None:
            self._start()
        self._armed.set()

    def end(self) -> None:
        """The wait is over: the helper stops after the warm-up it is in (if any)."""
        self._armed.clear()

    def close(self) -> None:
        self._closed = True
        self._armed.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _start(self) -> None:
        cpus = os.sched_getaffinity(0)
        self._thread = threading.Thread(
            target=self._run, args=(cpus,), name=self._name, daemon=True
        )
        self._thread.start()

    def _run(self, cpus: set[int]) -> None:
        # the loop's CPU (its caches are the ones to warm), idle time only
        os.sched_setaffinity(0, cpus)
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        armed = self._armed
        failed = 0
        while True:
            armed.wait()
            if self._closed:
                return
            while armed.is_set() and not self._closed:
                warm = self._warm
                if warm is None:
                    break
                self.runs += 1
                try:
                    warm()
                    failed = 0
                except Exception as exc:  # counted; the loop must go on
                    self.errors += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    failed += 1
                    armed.clear()  # no more this wait
                    if failed >= MAX_CONSECUTIVE_ERRORS:
                        self.stopped_by_errors = True
                        return
