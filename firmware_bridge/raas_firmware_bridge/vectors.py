"""Shared test vectors: the same bytes checked by the Python codec and by the C firmware.

API:
- `build_vectors() -> list[dict]`: every vector, deterministic. Each has name, kind ("message":
  a frame and the message fields it carries; "frame": a frame of raw payload, no message; "bad":
  stuffed bytes the decoder must drop, with the error it must name), msg_type, seq, version,
  payload_hex, frame_hex (the stuffed bytes and the 0x00 delimiter), fields (wire integers:
  int16 counts, applied_seq as u64) and error.
- `message_to_fields(msg)` / `message_from_fields(msg_type, fields)`: message <-> wire integers.
- `write(out_dir)`: vectors.json (for Python) and vectors.h (compiled into the C tests).
- CLI: `python -m raas_firmware_bridge.vectors [--out DIR] [--check]`; --check exits 1 when the
  files in DIR differ from what this code generates (stale vectors).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
from cobs import cobs

from raas_firmware_bridge.crc import crc32c
from raas_firmware_bridge.framing import HEADER, MAX_PAYLOAD, PROTOCOL_VERSION, encode_frame
from raas_firmware_bridge.messages import (
    INVALID,
    MESSAGE_CLASSES,
    NO_SEQ,
    BoardKind,
    Error,
    ErrorCode,
    Estop,
    EstopReason,
    Fault,
    FaultCode,
    FaultFlag,
    Heartbeat,
    Hello,
    HelloAck,
    Message,
    MsgType,
    Reset,
    ResetAck,
    SetTargets,
    State,
    StateRequest,
    Trigger,
    TriggerAck,
    encode_message,
)

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "vectors"
FieldValue = int | list[int]

#: Frame-level error names shared with the C decoder's status codes.
BAD_ERRORS = ("crc", "cobs", "short", "length", "oversize")


def message_to_fields(msg: Message) -> dict[str, FieldValue]:
    """The message as wire integers: arrays in int16 counts (INVALID for NaN)."""
    out: dict[str, FieldValue] = {}
    for f in fields(msg):  # type: ignore[arg-type]
        value = getattr(msg, f.name)
        scale = msg.SCALES.get(f.name)
        if scale is not None:
            v = np.asarray(value, dtype=np.float64) * scale
            counts = np.where(np.isnan(v), INVALID, np.rint(np.nan_to_num(v)))
            out[f.name] = [int(c) for c in counts]
        elif f.name == "applied_seq" and value == -1:
            out[f.name] = NO_SEQ
        else:
            out[f.name] = int(value)
    return out


def message_from_fields(msg_type: int, values: dict[str, FieldValue]) -> Message:
    """The message whose wire integers are `values` (inverse of message_to_fields)."""
    cls = MESSAGE_CLASSES[msg_type]
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        value = values[f.name]
        scale = cls.SCALES.get(f.name)
        if scale is not None:
            counts = np.asarray(value, dtype=np.float64)
            kwargs[f.name] = np.where(counts == INVALID, np.nan, counts / scale)
        elif f.name == "applied_seq" and value == NO_SEQ:
            kwargs[f.name] = -1
        else:
            kwargs[f.name] = value
    return cls(**kwargs)


def _state(seed: int, **kw: Any) -> State:
    rng = np.random.default_rng(seed)
    args: dict[str, Any] = {
        "cycle": 1000 + seed,
        "fw_time_us": 123_456_789 + seed,
        "applied_seq": 999 + seed,
        "fault_flags": 0,
        "positions": rng.integers(-16000, 16000, 24) / 1e4,
        "velocities": rng.integers(-20000, 20000, 24) / 1e3,
        "efforts": rng.integers(-3000, 3000, 20) / 1e3,
        "temperatures": rng.integers(2000, 9000, 20) / 1e2,
    }
    args.update(kw)
    return State(**args)


def _messages() -> list[tuple[str, Message, int]]:
    rng = np.random.default_rng(7)
    z24, z20 = np.zeros(24), np.zeros(20)
    nan24, lo20, hi20 = np.full(24, np.nan), np.full(20, -32.767), np.full(20, 327.67)
    fault = FaultFlag.WATCHDOG | FaultFlag.BOOTED
    return [
        ("hello", Hello(1, 1), 0),
        ("hello_ack_hand", HelloAck(1, BoardKind.HAND, 1, 1, 0, 3, 258, 50, 1000, 20, 24, 4242), 0),
        ("hello_ack_trigger", HelloAck(1, BoardKind.TRIGGER, 1, 1, 1, 0, 0, 50, 1000, 0, 0, 7), 0),
        ("hello_ack_no_common_version", HelloAck(0, BoardKind.HAND, 2, 3, 2, 0, 0, 50, 1000, 20, 24, 1), 1),  # noqa: E501
        ("set_targets", SetTargets(41, rng.integers(-15000, 15000, 20) / 1e4), 41),
        ("set_targets_extremes", SetTargets(2**64 - 2, np.array([-3.2767, 3.2767] * 10)), 65535),
        ("set_targets_zero", SetTargets(0, z20), 0),
        ("state_request", StateRequest(2**32 + 5), 7),
        ("state", _state(1), 1234),
        ("state_no_targets_yet_faulted", _state(2, applied_seq=-1, fault_flags=int(fault)), 2),
        ("state_all_zero", State(0, 0, 0, 0, z24, z24, z20, z20), 0),
        ("state_invalid_saturated", _state(3, velocities=nan24, efforts=lo20, temperatures=hi20), 3),  # noqa: E501
        ("state_seq_wrap_last", _state(4), 65535),
        ("state_seq_wrap_first", _state(5), 0),
        ("trigger", Trigger(77), 77),
        ("trigger_max_cycle", Trigger(2**64 - 1), 300),
        ("trigger_ack", TriggerAck(77, 1_700_000_000_123_456), 77),
        ("heartbeat_request", Heartbeat(5_000_000), 9),
        ("heartbeat_reply", Heartbeat(5_000_250, 5_000_000), 9),
        ("fault_watchdog", Fault(FaultCode.WATCHDOG, int(FaultFlag.WATCHDOG), 51), 10),
        ("fault_overtemp", Fault(FaultCode.OVERTEMP, int(FaultFlag.OVERTEMP), 17), 11),
        ("estop", Estop(EstopReason.HOST), 12),
        ("reset", Reset(0xCAFEF00D), 13),
        ("reset_ack", ResetAck(0xCAFEF00D, 0), 13),
        ("error_bad_value", Error(ErrorCode.BAD_VALUE, MsgType.SET_TARGETS, 41, 3), 14),
        ("error_bad_frame", Error(ErrorCode.BAD_FRAME), 15),
    ]  # fmt: skip


def _raw_frames() -> list[tuple[str, int, int, bytes]]:
    return [
        ("empty_payload_unknown_type", 0x7E, 1, b""),
        ("max_payload_zeros", 0x7D, 2, bytes(MAX_PAYLOAD)),
        ("max_payload_no_zeros", 0x7D, 3, bytes((i % 255) + 1 for i in range(MAX_PAYLOAD))),
        ("cobs_block_boundary_254", 0x7C, 4, bytes((i % 255) + 1 for i in range(254 - 10))),
        ("cobs_block_boundary_255", 0x7C, 5, bytes((i % 255) + 1 for i in range(255 - 10))),
    ]


def _stuff(raw: bytes) -> bytes:
    stuffed: bytes = cobs.encode(raw)
    return stuffed


def _bad_frames() -> list[tuple[str, bytes, str]]:
    good = encode_frame(MsgType.TRIGGER, 5, bytes(8))[:-1]
    crc_bad = bytearray(good)
    crc_bad[3] ^= 0x10
    header = HEADER.pack(PROTOCOL_VERSION, MsgType.TRIGGER, 5, 9) + bytes(8)  # says 9, has 8
    return [
        ("bad_crc", bytes(crc_bad), "crc"),
        ("bad_cobs_code_past_end", b"\x09\x01\x02", "cobs"),
        ("bad_too_short", _stuff(b"\x01\x10\x00\x00\x00"), "short"),
        ("bad_length_field", _stuff(header + crc32c(header).to_bytes(4, "little")), "length"),
        ("bad_oversize", b"\x01" * 600, "oversize"),
    ]


def build_vectors() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name, msg, seq in _messages():
        frame = encode_message(msg, seq)
        out.append(
            {
                "name": name,
                "kind": "message",
                "msg_type": int(msg.MSG_TYPE),
                "seq": seq,
                "version": PROTOCOL_VERSION,
                "payload_hex": msg.encode().hex(),
                "frame_hex": frame.hex(),
                "fields": message_to_fields(msg),
                "error": None,
            }
        )
    for name, msg_type, seq, payload in _raw_frames():
        out.append(
            {
                "name": name,
                "kind": "frame",
                "msg_type": msg_type,
                "seq": seq,
                "version": PROTOCOL_VERSION,
                "payload_hex": payload.hex(),
                "frame_hex": encode_frame(msg_type, seq, payload).hex(),
                "fields": None,
                "error": None,
            }
        )
    for name, stuffed, error in _bad_frames():
        out.append(
            {
                "name": name,
                "kind": "bad",
                "msg_type": 0,
                "seq": 0,
                "version": PROTOCOL_VERSION,
                "payload_hex": "",
                "frame_hex": (stuffed + b"\x00").hex(),
                "fields": None,
                "error": error,
            }
        )
    return out


# -- C header -----------------------------------------------------------------------------------

_C_UNION_MEMBER = {
    MsgType.HELLO: "hello",
    MsgType.HELLO_ACK: "hello_ack",
    MsgType.SET_TARGETS: "set_targets",
    MsgType.STATE_REQUEST: "state_request",
    MsgType.STATE: "state",
    MsgType.TRIGGER: "trigger",
    MsgType.TRIGGER_ACK: "trigger_ack",
    MsgType.HEARTBEAT: "heartbeat",
    MsgType.FAULT: "fault",
    MsgType.ESTOP: "estop",
    MsgType.RESET: "reset",
    MsgType.RESET_ACK: "reset_ack",
    MsgType.ERROR: "error",
}


def _c_bytes(name: str, data: bytes) -> str:
    if not data:
        return f"static const uint8_t {name}[1] = {{0}};\n"
    rows = [", ".join(f"0x{b:02x}" for b in data[i : i + 16]) for i in range(0, len(data), 16)]
    body = ",\n    ".join(rows)
    return f"static const uint8_t {name}[{len(data)}] = {{\n    {body}\n}};\n"


def _c_value(v: FieldValue) -> str:
    if isinstance(v, list):
        return "{" + ", ".join(str(x) for x in v) + "}"
    if v < 0:
        return str(v)
    return f"{v}ull" if v > 0xFFFFFFFF else f"{v}u"


def render_c_header(vectors: list[dict[str, Any]]) -> str:
    parts = [
        "/* Generated by `python -m raas_firmware_bridge.vectors`: do not edit.\n"
        " * The same vectors as vectors.json; C must decode frame[] to msg and encode msg to\n"
        " * exactly frame[]. */\n",
        "#ifndef FB_VECTORS_H\n#define FB_VECTORS_H\n\n#include <stdint.h>\n",
        '#include "fb_protocol.h"\n\n',
        "typedef struct {\n    const char *name;\n    int kind; /* 0 message, 1 frame, 2 bad */\n"
        "    uint8_t msg_type;\n    uint16_t seq;\n    uint8_t version;\n"
        "    const uint8_t *payload;\n    uint16_t payload_len;\n    const uint8_t *frame;\n"
        "    uint16_t frame_len;\n    int error; /* FB_ERR_* for kind 2 */\n"
        "    fb_msg_t msg;\n} fb_vector_t;\n\n",
    ]
    entries = []
    for i, v in enumerate(vectors):
        payload = bytes.fromhex(v["payload_hex"])
        frame = bytes.fromhex(v["frame_hex"])
        parts.append(_c_bytes(f"v{i}_payload", payload))
        parts.append(_c_bytes(f"v{i}_frame", frame))
        kind = {"message": 0, "frame": 1, "bad": 2}[v["kind"]]
        error = f"FB_ERR_{v['error'].upper()}" if v["error"] else "0"
        msg = "{0}"
        if v["kind"] == "message":
            member = _C_UNION_MEMBER[MsgType(v["msg_type"])]
            inits = ", ".join(f".{k} = {_c_value(x)}" for k, x in v["fields"].items())
            msg = f"{{ .type = {v['msg_type']}u, .u = {{ .{member} = {{ {inits} }} }} }}"
        entries.append(
            f'    {{ "{v["name"]}", {kind}, {v["msg_type"]}u, {v["seq"]}u, {v["version"]}u, '
            f"v{i}_payload, {len(payload)}u, v{i}_frame, {len(frame)}u, {error},\n      {msg} }}"
        )
    parts.append("\nstatic const fb_vector_t fb_vectors[] = {\n" + ",\n".join(entries) + "\n};\n")
    parts.append(f"#define FB_VECTOR_COUNT {len(vectors)}u\n\n#endif /* FB_VECTORS_H */\n")
    return "".join(parts)


def render_json(vectors: list[dict[str, Any]]) -> str:
    doc = {
        "generator": "python -m raas_firmware_bridge.vectors",
        "protocol_version": PROTOCOL_VERSION,
        "vectors": vectors,
    }
    return json.dumps(doc, indent=1) + "\n"


def outputs() -> dict[str, str]:
    vectors = build_vectors()
    return {"vectors.json": render_json(vectors), "vectors.h": render_c_header(vectors)}


def write(out_dir: Path = DEFAULT_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in outputs().items():
        path = out_dir / name
        path.write_text(text)
        written.append(path)
    return written


def stale(out_dir: Path = DEFAULT_DIR) -> list[str]:
    """Names of the files in out_dir that differ from what build_vectors() generates now."""
    return [
        name
        for name, text in outputs().items()
        if not (out_dir / name).exists() or (out_dir / name).read_text() != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--check", action="store_true", help="exit 1 when the files are stale")
    args = parser.parse_args(argv)
    if args.check:
        names = stale(args.out)
        for name in names:
            sys.stderr.write(f"stale: {args.out / name}\n")
        return 1 if names else 0
    for path in write(args.out):
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
