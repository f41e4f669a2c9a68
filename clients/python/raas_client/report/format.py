"""The raas recording format: one MCAP file per session, JSON messages with JSON schemas.

Why JSON + JSON Schema (MCAP message encoding `json`, schema encoding `jsonschema`): Foxglove
opens it with no plugin or generated code, plots any numeric field by its path (e.g.
`/raas/timing.lateness_ns`, `/raas/observation.hand.positions[3]`), and every MCAP reader can decode
it with nothing but a JSON parser. Floats are written with Python's shortest round-trip repr, so a
value read back is bit-identical to the value recorded, which `raasd replay` relies on. Camera
frames use Foxglove's own `foxglove.CompressedImage` schema (JPEG or PNG, base64 in JSON), which
Foxglove's Image panel shows directly.

Topics (one message per cycle on the first three, `cycle` joins them):
    /raas/observation     cycle, grid and trigger time, every source's capture/arrival time,
                          staleness and age, the hand state, the mocap markers, goal, episode
    /raas/action          desired and applied action, fallback, clipped, lease holder, the
                          supervisor's state and the conditioning stages that intervened
    /raas/timing          lateness, trigger-to-apply, phase durations, tap drops so far
    /raas/events          discrete events (session start/end, episode end, recording errors)
    /raas/camera/<name>   foxglove.CompressedImage, one per fresh frame

Metadata records: `raas.session` (robot, reservation, user, bundle hash, software version, ...),
`raas.config` (the cell configuration as JSON), `raas.layout` (actuator, joint, marker and source
names, deadlines) and, when the recording ended cleanly, `raas.recording` (counts and status).
"""

from __future__ import annotations

from typing import Any, Final

PROFILE: Final = ""  # no MCAP profile: plain JSON messages
MESSAGE_ENCODING: Final = "json"
SCHEMA_ENCODING: Final = "jsonschema"

TOPIC_OBSERVATION: Final = "/raas/observation"
TOPIC_ACTION: Final = "/raas/action"
TOPIC_TIMING: Final = "/raas/timing"
TOPIC_EVENTS: Final = "/raas/events"
CAMERA_TOPIC_PREFIX: Final = "/raas/camera/"

META_SESSION: Final = "raas.session"
META_CONFIG: Final = "raas.config"
META_LAYOUT: Final = "raas.layout"
META_RECORDING: Final = "raas.recording"

FALLBACK_NAMES: Final = ("none", "repeat", "idle")
PHASES: Final = ("trigger", "collect", "decide", "condition", "apply", "publish")


def camera_topic(name: str) -> str:
    return f"{CAMERA_TOPIC_PREFIX}{name}"


_NS = {"type": "integer", "description": "ns on the loop's clock (CLOCK_MONOTONIC; sim time in "
       "lockstep)"}  # fmt: skip
# NaN and +-inf (a rejected policy output, a sensor fault) are written as null: JSON has none
_FLOATS = {"type": "array", "items": {"type": ["number", "null"]}}

OBSERVATION_SCHEMA: Final[dict[str, Any]] = {
    "title": "raas.Observation",
    "description": "What the loop saw in one cycle (the readings the controller decided on).",
    "type": "object",
    "properties": {
        "cycle": {"type": "integer"},
        "t_k_ns": {**_NS, "description": "the cycle's grid time t_0 + k T"},
        "trigger_ns": {**_NS, "description": "when the trigger was sent"},
        "episode": {"type": "integer"},
        "goal": {**_FLOATS, "description": "x y z (m), qw qx qy qz"},
        "sources": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "capture_ns": _NS,
                    "arrival_ns": _NS,
                    "device_ns": {
                        "type": ["integer", "null"],
                        "description": "the capture on the device's own clock (ns; capture_ns "
                        "is it mapped to the loop's clock); null: the device has no clock",
                    },
                    "stale": {"type": "boolean"},
                    "age_ns": {"type": "integer"},
                    "sample_cycle": {"type": "integer"},
                },
            },
        },
        "hand": {
            "type": ["object", "null"],
            "properties": {
                "positions": _FLOATS,
                "velocities": _FLOATS,
                "efforts": _FLOATS,
                "temperatures": _FLOATS,
                "applied_seq": {"type": "integer"},
            },
        },
        "mocap": {
            "type": ["object", "null"],
            "properties": {
                "positions": {"type": "array", "items": _FLOATS},
                "visible": {"type": "array", "items": {"type": "boolean"}},
            },
        },
    },
}

ACTION_SCHEMA: Final[dict[str, Any]] = {
    "title": "raas.Action",
    "description": "Desired (after the fallback) and applied action of one cycle, rad.",
    "type": "object",
    "properties": {
        "cycle": {"type": "integer"},
        "desired": _FLOATS,
        "applied": _FLOATS,
        "fallback": {"type": "string", "enum": list(FALLBACK_NAMES)},
        "clipped": {"type": "boolean", "description": "desired was outside the hand's limits"},
        "lease_holder": {"type": ["string", "null"]},
        "safety": {
            "type": "string",
            "description": "the supervisor's state in this cycle (idle, armed, running, hold, "
            "ramp_down, fault)",
        },
        "interventions": {
            "type": "array",
            "items": {"type": "string", "enum": ["nonfinite", "limits", "rate", "derate"]},
            "description": "the conditioning stages that changed the desired action",
        },
    },
}

TIMING_SCHEMA: Final[dict[str, Any]] = {
    "title": "raas.Timing",
    "description": "How late and how long one cycle was.",
    "type": "object",
    "properties": {
        "cycle": {"type": "integer"},
        "lateness_ns": {"type": "integer", "description": "trigger sent minus t_k"},
        "trigger_to_apply_ns": {"type": "integer"},
        "apply_ns": _NS,
        "decide_ns": {"type": "integer"},
        "phases_ns": {
            "type": "object",
            "properties": {p: {"type": "integer"} for p in PHASES},
        },
        "dropped_before": {
            "type": "integer",
            "description": "cycles the recorder tap dropped (queue full) before this one",
        },
    },
}

EVENT_SCHEMA: Final[dict[str, Any]] = {
    "title": "raas.Event",
    "type": "object",
    "properties": {
        "kind": {"type": "string"},
        "cycle": {"type": "integer", "description": "the last cycle published before it"},
        "data": {"type": "object"},
    },
}

# Foxglove's own schema (foxglove-sdk, schemas/jsonschema/CompressedImage.json), verbatim in shape.
COMPRESSED_IMAGE_SCHEMA_NAME: Final = "foxglove.CompressedImage"
COMPRESSED_IMAGE_SCHEMA: Final[dict[str, Any]] = {
    "title": "foxglove.CompressedImage",
    "description": "A compressed image",
    "$comment": "Generated by https://github.com/foxglove/foxglove-sdk",
    "type": "object",
    "properties": {
        "timestamp": {
            "type": "object",
            "title": "time",
            "properties": {
                "sec": {"type": "integer", "minimum": 0},
                "nsec": {"type": "integer", "minimum": 0, "maximum": 999999999},
            },
            "description": "Timestamp of image",
        },
        "frame_id": {"type": "string", "description": "Frame of reference for the image."},
        "data": {
            "type": "string",
            "contentEncoding": "base64",
            "description": "Compressed image data",
        },
        "format": {"type": "string", "description": "Image format: jpeg, png or webp"},
    },
}

SCHEMAS: Final[dict[str, tuple[str, dict[str, Any]]]] = {
    TOPIC_OBSERVATION: ("raas.Observation", OBSERVATION_SCHEMA),
    TOPIC_ACTION: ("raas.Action", ACTION_SCHEMA),
    TOPIC_TIMING: ("raas.Timing", TIMING_SCHEMA),
    TOPIC_EVENTS: ("raas.Event", EVENT_SCHEMA),
}
