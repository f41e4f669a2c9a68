"""Real-time settings: ask for them, never require them, and report exactly what was obtained.

The loop asks for SCHED_FIFO at a priority, CPU affinity, mlockall (no page faults in the cycle),
a 1 ns timer slack (sleeps end on time), a CPU wake-up latency of 0 us held on
/dev/cpu_dma_latency (idle CPUs poll instead of halting, as cyclictest does) and, after warm-up,
a frozen heap with the cyclic garbage collector switched off. Unprivileged, each request fails
softly and the report says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import struct
from dataclasses import asdict, dataclass, field
from typing import Any

import zmq

_MCL_CURRENT = 1
_MCL_FUTURE = 2
_PR_SET_TIMERSLACK = 29
_PR_GET_TIMERSLACK = 30
#: The kernel's PM QoS device for the CPU wake-up latency: a process that writes a 32-bit
#: latency in us and keeps the file open holds that limit for the whole machine; closing the file
#: (or the process ending) drops it.
CPU_DMA_LATENCY = "/dev/cpu_dma_latency"


@dataclass(frozen=True, slots=True)
class RtRequest:
    """What to ask for. `enabled=False` asks for nothing (the plain, unprivileged set-up)."""

    enabled: bool = True
    fifo_priority: int = 80
    cpus: tuple[int, ...] | None = None
    mlock: bool = True
    timer_slack_ns: int = 1
    #: the CPU wake-up latency to hold (us) while the loop runs; -1 leaves the machine's alone
    cpu_latency_us: int = 0


@dataclass(slots=True)
class RtReport:
    """What the process actually got."""

    requested: bool
    sched_policy: str = "SCHED_OTHER"
    fifo_priority: int | None = None
    affinity: list[int] = field(default_factory=list)
    mlockall: bool = False
    timer_slack_ns: int | None = None
    #: the CPU wake-up latency this process holds (us); None: none held
    cpu_latency_us: int | None = None
    gc_frozen: bool = False
    euid: int = -1
    notes: list[str] = field(default_factory=list)
    #: the open /dev/cpu_dma_latency that holds the limit (-1: none); release_cpu_latency closes it
    qos_fd: int = field(default=-1, repr=False)

    @property
    def privileged(self) -> bool:
        return self.sched_policy == "SCHED_FIFO" and self.mlockall

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        del d["qos_fd"]
        d["privileged"] = self.privileged
        return d

    def summary(self) -> str:
        prio = f" prio {self.fifo_priority}" if self.fifo_priority is not None else ""
        latency = "not held" if self.cpu_latency_us is None else f"{self.cpu_latency_us} us"
        return (
            f"{self.sched_policy}{prio}, cpus {self.affinity}, "
            f"mlockall {'yes' if self.mlockall else 'no'}, "
            f"timer slack {self.timer_slack_ns if self.timer_slack_ns is not None else '?'} ns, "
            f"cpu wake-up latency {latency}"
        )


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None


def acquire(request: RtRequest) -> RtReport:
    """Apply the request to the calling process, then collect garbage once (before the loop);
    never raises for a refused privilege."""
    report = RtReport(requested=request.enabled, euid=os.geteuid())
    libc = _libc()
    if request.enabled:
        if request.cpus:
            try:
                os.sched_setaffinity(0, set(request.cpus))
            except OSError as exc:
                report.notes.append(f"affinity {request.cpus} refused: {exc.strerror}")
        # mlockall first, at normal priority: it faults in and locks every page of the process
        # (hundreds of MB with the physics and the policy runtime), which takes 100s of ms of
        # kernel time. Done at SCHED_FIFO on the loop's CPU it would keep any other real-time
        # loop pinned there (another cell on the machine) from running for that long.
        if request.mlock and libc is not None:
            if libc.mlockall(_MCL_CURRENT | _MCL_FUTURE) != 0:
                err = ctypes.get_errno()
                report.notes.append(f"mlockall refused: {os.strerror(err)}")
            else:
                report.mlockall = True
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(request.fifo_priority))
        except (OSError, AttributeError) as exc:
            report.notes.append(f"SCHED_FIFO refused: {getattr(exc, 'strerror', exc)}")
        if libc is not None and libc.prctl(_PR_SET_TIMERSLACK, request.timer_slack_ns, 0, 0, 0):
            report.notes.append("timer slack refused")
        if request.cpu_latency_us >= 0:
            _hold_cpu_latency(request.cpu_latency_us, report)
    else:
        report.notes.append("real-time settings not requested")
    collect_garbage()
    _read_back(report, libc)
    return report


def _hold_cpu_latency(latency_us: int, report: RtReport) -> None:
    """Hold the machine's CPU wake-up latency at `latency_us` for as long as `report.qos_fd` is
    open. With 0 the idle governor keeps idle CPUs polling instead of halting: on this project's
    VMs a halted vCPU took 100-250 us to wake for a device's answer (and the host ran other work
    on its core meanwhile), which every cycle paid (docs/performance.md, "Where the devices'
    answers go; idle CPUs that halt"). The cost: idle CPUs spin (power; on a VM, host CPU
    time), only while the loop runs."""
    try:
        fd = os.open(CPU_DMA_LATENCY, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        report.notes.append(f"cpu wake-up latency not held: {CPU_DMA_LATENCY}: {exc.strerror}")
        return
    try:
        os.write(fd, struct.pack("=i", latency_us))
    except OSError as exc:
        os.close(fd)
        report.notes.append(f"cpu wake-up latency not held: {exc.strerror}")
        return
    report.qos_fd = fd
    report.cpu_latency_us = latency_us


def release_cpu_latency(report: RtReport) -> None:
    """Drop the wake-up latency `acquire` held (the machine's own setting applies again)."""
    if report.qos_fd >= 0:
        os.close(report.qos_fd)
        report.qos_fd = -1
        report.cpu_latency_us = None


@dataclass(frozen=True, slots=True)
class SchedState:
    """The calling thread's scheduling as it was before `acquire`: what `restore` puts back."""

    policy: int
    priority: int
    cpus: frozenset[int]
    timer_slack_ns: int | None


def current_sched() -> SchedState:
    libc = _libc()
    slack = None
    if libc is not None:
        slack = int(libc.prctl(_PR_GET_TIMERSLACK, 0, 0, 0, 0))
    return SchedState(
        policy=os.sched_getscheduler(0),
        priority=os.sched_getparam(0).sched_priority,
        cpus=frozenset(os.sched_getaffinity(0)),
        timer_slack_ns=slack,
    )


def restore(before: SchedState, report: RtReport) -> list[str]:
    """Undo `acquire` on the calling thread once its cell is down: its scheduling policy,
    priority, CPUs and timer slack as they were, and the memory lock and the CPU wake-up latency
    if `acquire` took them.
    What a thread starts afterwards inherits these, so without this a second cell in the same
    process (a benchmark comparing settings, a test) would start its simulated rig on the first
    loop's CPU at the loop's FIFO priority. Returns notes for what could not be undone."""
    notes: list[str] = []
    release_cpu_latency(report)
    if not report.requested:
        return notes
    try:
        os.sched_setscheduler(0, before.policy, os.sched_param(before.priority))
    except (OSError, AttributeError) as exc:
        notes.append(f"scheduling policy not restored: {getattr(exc, 'strerror', exc)}")
    try:
        os.sched_setaffinity(0, set(before.cpus))
    except OSError as exc:
        notes.append(f"affinity not restored: {exc.strerror}")
    libc = _libc()
    if libc is not None:
        if before.timer_slack_ns is not None:
            libc.prctl(_PR_SET_TIMERSLACK, before.timer_slack_ns, 0, 0, 0)
        if report.mlockall and libc.munlockall() != 0:
            notes.append(f"munlockall failed: {os.strerror(ctypes.get_errno())}")
    return notes


def _read_back(report: RtReport, libc: ctypes.CDLL | None) -> None:
    policy = os.sched_getscheduler(0)
    report.sched_policy = {
        os.SCHED_OTHER: "SCHED_OTHER",
        os.SCHED_FIFO: "SCHED_FIFO",
        os.SCHED_RR: "SCHED_RR",
    }.get(policy, str(policy))
    if policy in (os.SCHED_FIFO, os.SCHED_RR):
        report.fifo_priority = os.sched_getparam(0).sched_priority
    report.affinity = sorted(os.sched_getaffinity(0))
    if libc is not None:
        report.timer_slack_ns = int(libc.prctl(_PR_GET_TIMERSLACK, 0, 0, 0, 0))


def collect_garbage() -> None:
    """A full collection, before the loop's first cycle (and before the hand's firmware watchdog
    is armed by the first targets): with the physics and the policy runtime loaded it takes
    about 180 ms on an idle machine, far too long for inside a cycle."""
    gc.collect()


def freeze_heap(report: RtReport) -> None:
    """After warm-up (inside a cycle): collect the young generations only (what the warm-up
    allocated: about a millisecond), move every live object to the permanent generation and keep
    the cyclic collector out of the cycle. The loop allocates no reference cycles per cycle.
    A full collection here cost a missed cycle and a 160 ms gap in the hand's commands at every
    loop start (seen in the firmware emulator's record): `collect_garbage` runs before the loop."""
    gc.collect(1)
    gc.freeze()
    gc.disable()
    report.gc_frozen = True


def release_heap() -> None:
    gc.unfreeze()
    gc.enable()


def keep_io_threads_off_the_loop(ctx: Any) -> None:
    """Before a zmq context in the loop's process makes its first socket: its I/O threads (which
    start then and would inherit the loop's SCHED_FIFO priority and CPU) run at normal priority
    on the other CPUs instead. At the loop's own FIFO priority on the loop's CPU, an I/O thread
    busy with a camera frame or a stream message keeps the loop from running until it is done
    (FIFO threads of one priority do not preempt each other). A no-op when the calling thread is
    not real-time."""
    if os.sched_getscheduler(0) not in (os.SCHED_FIFO, os.SCHED_RR):
        return
    ctx.set(zmq.THREAD_SCHED_POLICY, os.SCHED_OTHER)
    ctx.set(zmq.THREAD_PRIORITY, 0)
    loop_cpus = os.sched_getaffinity(0)
    others = sorted(set(range(os.cpu_count() or 1)) - loop_cpus)
    for cpu in others:
        ctx.set(zmq.THREAD_AFFINITY_CPU_ADD, cpu)
