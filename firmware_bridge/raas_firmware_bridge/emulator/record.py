"""The emulator's own record of what it did: one JSON object per line, for tests and post-mortems.

Each line has `t_ns` (the emulator's clock: CLOCK_MONOTONIC in realtime, sim time in lockstep),
`mono_ns` (CLOCK_MONOTONIC always), `board` and `event`, plus the event's fields:
  hello, applied {seq, targets}, watchdog {last_command_ns, held}, fault {code}, reset,
  unplugged, plugged, bad_frame, capture {cycle} and hand_first_timeout {cycle} (rig), ...
Off by default (RigConfig.link.record_events): the hand writes one line per applied target.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO, Any


class EventRecord:
    def __init__(self, path: str | Path | None) -> None:
        self._f: IO[str] | None = Path(path).open("a", buffering=1) if path else None  # noqa: SIM115 (lives with the emulator)

    @property
    def enabled(self) -> bool:
        return self._f is not None

    def write(self, board: str, event: str, t_ns: int, **fields: Any) -> None:
        if self._f is None:
            return
        line = {"t_ns": t_ns, "mono_ns": time.monotonic_ns(), "board": board, "event": event}
        line.update(fields)
        self._f.write(json.dumps(line) + "\n")

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """All events of a record file (a missing file: none)."""
    p = Path(path)
    if not p.exists():
        return []
    out: list[dict[str, Any]] = []
    for line in p.read_text().splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out
