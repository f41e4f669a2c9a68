"""Robot events in words (raas_client.commands.events): every kind the daemon sends reads as one
line without raw dicts; an unknown kind still shows its fields."""

from __future__ import annotations

import json

from raas_client.commands.events import as_json, describe

EVENTS = [
    ({"kind": "episode_start", "episode": 0, "goal": [1, 0, 0, 0]}, "episode 1 started"),
    ({"kind": "success", "episode": 1, "successes": 3, "seconds": 2.0}, "episode 2: success 3"),
    (
        {"kind": "episode_end", "episode": 0, "successes": 0, "reason": "dropped", "seconds": 14.4},
        "episode 1 ended by the block was dropped: 0 successes in 14.4 s",
    ),
    (
        {"kind": "episode_end", "episode": 0, "successes": 0, "reason": "held", "seconds": 0.2,
         "safety_reason": "nonfinite_action", "safety_detail": ""},
        "episode 1 ended by a safety stop (nonfinite_action): 0 successes in 0.2 s",
    ),
    (
        {"kind": "safety", "from": "running", "to": "hold", "reason": "stale_sensor",
         "cause": "watchdog", "detail": "mocap", "cycle": 5},
        "safety: running -> hold, stale_sensor (mocap) by watchdog",
    ),
    ({"kind": "run_failed", "message": "ManifestError: x"}, "run failed: ManifestError: x"),
    (
        {"kind": "run_done", "summary": {"reason": "done", "episodes_run": 2, "successes": [0, 1]}},
        "run finished: 2 episode(s), successes per episode [0, 1]",
    ),
    ({"kind": "estop", "by": "alice", "via": "rest"}, "E-STOP by alice via rest"),
    (
        {"kind": "health", "ok": False, "checks": [{"name": "range", "ok": False}]},
        "health check FAILED: range",
    ),
    ({"kind": "session_closed", "session": "ab", "reason": "lease ended"}, "session ab closed"),
]  # fmt: skip


def test_each_event_kind_reads_as_words() -> None:
    for ev, words in EVENTS:
        line = describe({"v": 1, "t": "event", **ev})
        assert line.startswith(words), (line, words)
        assert "{" not in line and "\n" not in line


def test_an_unknown_kind_shows_its_fields_and_json_keeps_them() -> None:
    ev = {"v": 1, "t": "event", "kind": "new_thing", "a": 1, "b": "x"}
    assert describe(ev) == "new_thing: a=1, b=x"
    assert json.loads(as_json(ev)) == {"kind": "new_thing", "a": 1, "b": "x"}
