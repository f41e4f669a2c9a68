"""The recorder for a brought-up cell: its layout and the metadata every file carries."""

from __future__ import annotations

import contextlib
import getpass
import os
import platform
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from raas_drivers.mocap import MocapDriver

from raas import __version__
from raas.recording.launch import run_recorder
from raas.recording.layout import RecordLayout, SourceInfo
from raas.recording.tap import RecordingPublisher

if TYPE_CHECKING:
    from raas.daemon import Cell


def git_commit() -> str:
    """The commit of the raas source tree, when it is a git checkout ('' otherwise)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    if out.returncode != 0:
        return ""
    commit = out.stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    )
    return commit + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def layout_for(cell: Cell) -> RecordLayout:
    markers: tuple[str, ...] = ()
    for d in cell.devices:
        if isinstance(d, MocapDriver):
            markers = d.marker_names
    return RecordLayout(
        sources=tuple(
            SourceInfo(s.source.source_name, s.deadline_ns, s.required) for s in cell.sources
        ),
        actuator_names=tuple(cell.hand.actuator_names),
        joint_names=tuple(cell.hand.joint_names),
        marker_names=tuple(markers),
        limits=tuple((float(lo), float(hi)) for lo, hi in cell.hand.limits),
    )


def static_metadata(cell: Cell) -> dict[str, str]:
    """What every file of this cell carries (a session adds reservation, user, bundle...)."""
    cfg = cell.cfg
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = ""
    return {
        "robot": f"sim-{platform.node()}",
        "reservation": "",
        "user": user,
        "bundle_sha256": "",
        "raas_version": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "host": platform.node(),
        "rig_clock": cfg.rig.clock,
        "rate_hz": f"{cfg.loop.rate_hz:g}",
        "realtime": cell.rt_report.summary(),
        "cell_config": cfg.model_dump_json(),
    }


@contextlib.contextmanager
def recorder_for_cell(cell: Cell, err: TextIO | None = None) -> Iterator[RecordingPublisher]:
    """Start the recorder configured in `cell.cfg.recording` (the caller checks `enabled`)."""
    rt = cell.rt_report
    everything = set(range(os.cpu_count() or 1))
    pinned = rt.requested and bool(rt.affinity) and set(rt.affinity) != everything
    cpus = rt.affinity if pinned else None  # the loop's CPUs, which the recorder keeps off
    with run_recorder(
        cell.cfg.recording,
        layout_for(cell),
        now_ns=cell.clock.now_ns,
        static_metadata=static_metadata(cell),
        avoid_cpus=tuple(cpus or ()),
        err=err,
    ) as tap:
        yield tap
