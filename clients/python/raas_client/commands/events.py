"""Robot events as one line in words, for the CLI (`raas run`, `raas watch`; `--json` prints
the events as they arrive instead, one JSON object per line).

Every event kind docs/protocol.md lists has its sentence; an unknown kind (a newer daemon) is
printed as `kind: key=value, ...` so nothing is hidden."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

Event = Mapping[str, Any]
_ENVELOPE = ("v", "t", "kind")


def fields(ev: Event) -> dict[str, Any]:
    """The event without its envelope (protocol version, type, kind)."""
    return {k: v for k, v in ev.items() if k not in _ENVELOPE}


def as_json(ev: Event) -> str:
    return json.dumps({"kind": ev.get("kind"), **fields(ev)}, default=str, sort_keys=True)


def _episode(e: Event) -> str:
    return f"episode {int(e.get('episode', 0)) + 1}"


#: How an episode of the reorientation task ends (raas/task/reorientation.py), in words.
END_REASONS = {
    "dropped": "the block was dropped",
    "timeout": "a goal timeout",
    "max_successes": "the last success",
}


def _episode_end(e: Event) -> str:
    reason = str(e.get("reason"))
    if reason == "held":
        reason = f"a safety stop ({e.get('safety_reason')})"
    else:
        reason = END_REASONS.get(reason, reason)
    return (
        f"{_episode(e)} ended by {reason}: {e.get('successes')} successes in "
        f"{float(e.get('seconds', 0)):.1f} s"
    )


def _safety(e: Event) -> str:
    detail = f" ({e['detail']})" if e.get("detail") else ""
    return (
        f"safety: {e.get('from')} -> {e.get('to')}, {e.get('reason')}{detail} by {e.get('cause')}"
    )


def _health(e: Event) -> str:
    checks = e.get("checks") or []
    failed = [c.get("name") for c in checks if not c.get("ok")]
    if e.get("ok"):
        return f"health check passed ({len(checks)} checks)"
    return f"health check FAILED: {', '.join(str(f) for f in failed) or 'see --json'}"


def _run_done(e: Event) -> str:
    s = e.get("summary") or {}
    how = "finished" if s.get("reason") == "done" else f"ended ({s.get('reason', '?')})"
    return (
        f"run {how}: {s.get('episodes_run', '?')} episode(s), successes per episode "
        f"{s.get('successes', [])}"
    )


def _closed(e: Event) -> str:
    return f"session {e.get('session')} closed: {e.get('reason')}"


_SENTENCES: dict[str, Callable[[Event], str]] = {
    "episode_start": lambda e: f"{_episode(e)} started",
    "success": lambda e: (
        f"{_episode(e)}: success {e.get('successes')} ({float(e.get('seconds', 0)):.1f} s)"
    ),
    "episode_end": _episode_end,
    "run_started": lambda e: (
        f"run started: bundle {str(e.get('sha256'))[:12]} loaded in "
        f"{float(e.get('load_s', 0)):.2f} s, {e.get('episodes')} episode(s)"
    ),
    "run_done": _run_done,
    "run_failed": lambda e: f"run failed: {e.get('message')}",
    "safety": _safety,
    "estop": lambda e: f"E-STOP by {e.get('by')}" + (f" via {e['via']}" if e.get("via") else ""),
    "estop_cleared": lambda e: f"e-stop cleared by {e.get('by')} via {e.get('via')}",
    "session_opened": lambda e: (
        f"session {e.get('session')} opened ({e.get('role')}, {e.get('sub')})"
    ),
    "session_closed": _closed,
    "health_started": lambda e: "health check started (the hand moves through its range)",
    "health": _health,
    "bundle": lambda e: f"bundle {str(e.get('sha256'))[:12]}",
}


def describe(ev: Event) -> str:
    """One line in words."""
    kind = str(ev.get("kind"))
    data = fields(ev)
    say = _SENTENCES.get(kind)
    if say is not None:
        try:
            return say(data)
        except (TypeError, ValueError):
            pass  # a field of an unexpected type: fall back to the plain listing
    rest = ", ".join(f"{k}={v}" for k, v in data.items())
    return f"{kind}: {rest}" if rest else kind
