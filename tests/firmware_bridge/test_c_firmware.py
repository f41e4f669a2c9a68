"""C and Python agree on every shared vector, and the MCU code passes its own tests.

The vectors (firmware_bridge/vectors/) are generated from Python; this test checks they are
current, that Python reproduces them both ways, and runs `make -C firmware_bridge/firmware test`,
where C decodes the same bytes to the same fields and encodes the fields to the same bytes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from raas_firmware_bridge import vectors
from raas_firmware_bridge.errors import (
    FrameCRCError,
    FrameEncodingError,
    FrameError,
    FrameLengthError,
    FrameTooLongError,
    FrameTooShortError,
)
from raas_firmware_bridge.framing import FrameDecoder, decode_frame, encode_frame
from raas_firmware_bridge.messages import decode_message, encode_message

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware_bridge" / "firmware"
VECTOR_FILE = ROOT / "firmware_bridge" / "vectors" / "vectors.json"
ERRORS: dict[str, type[FrameError]] = {
    "crc": FrameCRCError,
    "cobs": FrameEncodingError,
    "short": FrameTooShortError,
    "length": FrameLengthError,
    "oversize": FrameTooLongError,
}


def load() -> list[dict[str, object]]:
    doc = json.loads(VECTOR_FILE.read_text())
    result: list[dict[str, object]] = doc["vectors"]
    return result


def test_committed_vectors_are_what_the_python_codec_generates() -> None:
    assert vectors.stale() == [], "run: python -m raas_firmware_bridge.vectors"


def test_vectors_cover_every_message_type_and_the_edge_cases() -> None:
    vs = load()
    kinds = {v["kind"] for v in vs}
    assert kinds == {"message", "frame", "bad"}
    from raas_firmware_bridge.messages import MsgType

    assert {v["msg_type"] for v in vs if v["kind"] == "message"} == {int(t) for t in MsgType}
    assert {v["error"] for v in vs if v["kind"] == "bad"} == set(ERRORS)
    seqs = {v["seq"] for v in vs}
    assert {0, 65535} <= seqs
    assert any(len(str(v["payload_hex"])) == 2 * 512 for v in vs)  # max payload


@pytest.mark.parametrize("v", load(), ids=lambda v: str(v["name"]))
def test_python_reproduces_each_vector_both_ways(v: dict[str, object]) -> None:
    wire = bytes.fromhex(str(v["frame_hex"]))
    if v["kind"] == "bad":
        with pytest.raises(ERRORS[str(v["error"])]):
            decode_frame(wire[:-1])
        assert FrameDecoder().feed(wire) == []
        return
    (frame,) = FrameDecoder().feed(wire)
    assert (frame.msg_type, frame.seq, frame.version) == (v["msg_type"], v["seq"], v["version"])
    assert frame.payload.hex() == v["payload_hex"]
    assert encode_frame(frame.msg_type, frame.seq, frame.payload, frame.version) == wire
    if v["kind"] == "message":
        fields = v["fields"]
        assert isinstance(fields, dict)
        msg = decode_message(frame)
        assert vectors.message_to_fields(msg) == fields
        rebuilt = vectors.message_from_fields(int(str(v["msg_type"])), fields)
        assert encode_message(rebuilt, int(str(v["seq"]))) == wire


def test_c_firmware_builds_and_agrees_with_python_on_every_vector() -> None:
    require("gcc", shutil.which("gcc") is not None, "the MCU code is compiled with gcc")
    require("make", shutil.which("make") is not None, "the firmware tests are run by make")
    build = subprocess.run(
        ["make", "-C", str(FIRMWARE), "test", "FUZZ_ITERATIONS=50000"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    n = len(load())
    messages = sum(1 for v in load() if v["kind"] == "message")
    assert f"vectors: {messages} messages" in build.stdout
    assert "0 failures" in build.stdout
    assert "firmware tests passed" in build.stdout
    assert n > 30
