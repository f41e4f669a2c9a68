"""The recorder for a brought-up cell: its layout and the metadata every file carries.

The composition (raas.daemon.cell_outputs) hands over the cell's sources, hand and markers, its
configuration and real-time report; nothing here knows the composition."""

from __future__ import annotations

import contextlib
import getpass
import os
import platform
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from raas_drivers.hand import HandDriver

from raas import __version__
from raas.recording.config import RecordingConfig
from raas.recording.launch import run_recorder
from raas.recording.layout import RecordLayout, SourceInfo
from raas.recording.tap import RecordingPublisher

if TYPE_CHECKING:
    from raas.core.loop import SourceSpec
    from raas.core.rt import RtReport


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


def layout_for(
    sources: Sequence[SourceSpec], hand: HandDriver, markers: Sequence[str]
) -> RecordLayout:
    """The record layout of a cell: its sources, its hand's shape, its mocap markers."""
    return RecordLayout(
        sources=tuple(SourceInfo(s.source.source_name, s.deadline_ns, s.required) for s in sources),
        actuator_names=tuple(hand.actuator_names),
        joint_names=tuple(hand.joint_names),
        marker_names=tuple(markers),
        limits=tuple((float(lo), float(hi)) for lo, hi in hand.limits),
    )


def static_metadata(
    *,
    robot: str,
    clock: str,
    rate_hz: float,
    rt_summary: str,
    cell_config_json: str,
    hand_model: str,
) -> dict[str, str]:
    """What every file of this cell carries (a session adds reservation, user, bundle...)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = ""
    return {
        "robot": robot,
        "reservation": "",
        "user": user,
        "bundle_sha256": "",
        "raas_version": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "host": platform.node(),
        "rig_clock": clock,
        "rate_hz": f"{rate_hz:g}",
        "realtime": rt_summary,
        "hand_model": hand_model,
        "cell_config": cell_config_json,
    }


@contextlib.contextmanager
def start_recorder(
    cfg: RecordingConfig,
    layout: RecordLayout,
    metadata: Mapping[str, str],
    rt: RtReport,
    now_ns: Callable[[], int],
    err: TextIO | None = None,
) -> Iterator[RecordingPublisher]:
    """Start the recorder configured in `cfg` (the caller checks `enabled`), off the loop's
    CPUs when the loop is pinned."""
    everything = set(range(os.cpu_count() or 1))
    pinned = rt.requested and bool(rt.affinity) and set(rt.affinity) != everything
    cpus = rt.affinity if pinned else None  # the loop's CPUs, which the recorder keeps off
    with run_recorder(
        cfg,
        layout,
        now_ns=now_ns,
        static_metadata=dict(metadata),
        avoid_cpus=tuple(cpus or ()),
        err=err,
    ) as tap:
        yield tap
