"""Frames on the serial line: COBS-stuffed [header | payload | CRC-32C], ended by one 0x00.

API:
- `encode_frame(msg_type, seq, payload, version=PROTOCOL_VERSION) -> bytes`: one complete frame,
  delimiter included, ready to write. `seq` is taken modulo 2**16 (it wraps).
- `decode_frame(segment) -> Frame`: the bytes between two delimiters (no 0x00 inside) to a
  `Frame`; raises a `FrameError` subclass (errors.py) when they are not a good frame.
- `FrameDecoder().feed(data) -> list[Frame]`: a streaming decoder for whatever the port returned.
  It never raises on bad input: it counts (crc_errors, bad_frames, oversize, resyncs,
  garbage_bytes) and resynchronises on the next 0x00. `stats()` returns the counters.
- `Frame(msg_type, seq, payload, version)`: a NamedTuple, compared by value.

Unstuffed frame layout (little-endian), see docs/protocol-serial.md:
    version u8 | msg_type u8 | seq u16 | length u16 | payload[length] | crc32c u32
The CRC covers header and payload. COBS comes from the `cobs` package (C extension), CRC-32C
from the `crc32c` package (crc.py).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from cobs import cobs

from raas_firmware_bridge.crc import CRC_BYTES, crc32c
from raas_firmware_bridge.errors import (
    FrameCRCError,
    FrameEncodingError,
    FrameError,
    FrameFieldError,
    FrameLengthError,
    FrameTooLongError,
    FrameTooShortError,
)

#: The protocol version this side speaks (header byte 0). See messages.py for negotiation.
PROTOCOL_VERSION = 1
#: Largest payload a frame may carry. Keeps every unstuffed frame at 522 bytes (4176 bits),
#: inside the length where CRC-32C still has Hamming distance 6 (5243 data bits).
MAX_PAYLOAD = 512
DELIMITER = 0x00

HEADER = struct.Struct("<BBHH")
HEADER_BYTES = HEADER.size  # 6
OVERHEAD = HEADER_BYTES + CRC_BYTES  # 10 bytes around every payload
MAX_RAW = OVERHEAD + MAX_PAYLOAD  # 522: header + payload + crc, before stuffing
#: COBS adds one byte per started 254-byte block (+1 for the leading code byte).
MAX_ENCODED = MAX_RAW + (MAX_RAW + 253) // 254  # 525, without the delimiter

_CRC = struct.Struct("<I")
_unpack_header = HEADER.unpack_from
_cobs_encode = cobs.encode
_cobs_decode = cobs.decode
_DecodeError = cobs.DecodeError


class Frame(NamedTuple):
    """One good frame: its type byte, sequence number, payload bytes and protocol version."""

    msg_type: int
    seq: int
    payload: bytes
    version: int = PROTOCOL_VERSION


def encode_frame(msg_type: int, seq: int, payload: bytes, version: int = PROTOCOL_VERSION) -> bytes:
    """Header, payload and CRC, COBS-stuffed, with the trailing 0x00 delimiter."""
    length = len(payload)
    if length > MAX_PAYLOAD:
        raise FrameTooLongError(f"payload of {length} bytes, at most {MAX_PAYLOAD}")
    if not (0 <= msg_type <= 0xFF and 0 <= version <= 0xFF):
        raise FrameFieldError(f"msg_type {msg_type} and version {version} must be in 0..255")
    raw = HEADER.pack(version, msg_type, seq & 0xFFFF, length) + payload
    stuffed: bytes = _cobs_encode(raw + _CRC.pack(crc32c(raw)))
    return stuffed + b"\x00"


def decode_frame(segment: bytes | bytearray) -> Frame:
    """The stuffed bytes of one frame (without its delimiter) to a Frame.

    Raises FrameTooLongError, FrameEncodingError, FrameTooShortError, FrameCRCError or
    FrameLengthError, in the order they are checked."""
    if len(segment) > MAX_ENCODED:
        raise FrameTooLongError(f"{len(segment)} stuffed bytes, at most {MAX_ENCODED}")
    try:
        raw = _cobs_decode(segment)
    except _DecodeError as exc:
        raise FrameEncodingError(f"not valid COBS: {exc}") from None
    n = len(raw)
    if n > MAX_RAW:
        raise FrameTooLongError(f"{n} unstuffed bytes, at most {MAX_RAW}")
    if n < OVERHEAD:
        raise FrameTooShortError(f"{n} bytes, a frame has at least {OVERHEAD}")
    body = n - CRC_BYTES
    if crc32c(memoryview(raw)[:body]) != int.from_bytes(raw[body:], "little"):
        raise FrameCRCError("CRC-32C mismatch")
    version, msg_type, seq, length = _unpack_header(raw)
    if length != body - HEADER_BYTES:
        raise FrameLengthError(
            f"header says {length} payload bytes, frame has {body - HEADER_BYTES}"
        )
    return Frame(msg_type, seq, raw[HEADER_BYTES:body], version)


class FrameDecoder:
    """Streaming decoder: feed it the bytes the port returned, get the good frames back.

    Between two 0x00 delimiters lies one candidate frame. Empty candidates (back-to-back
    delimiters, which a sender may use to flush the line) are ignored. A bad candidate is counted
    and dropped, and decoding resumes after the next delimiter: that is the resynchronisation.
    A candidate that grows past MAX_ENCODED bytes without a delimiter is dropped as oversize and
    everything up to the next delimiter is discarded without being buffered.

    Counters (all monotonic): frames, crc_errors, bad_frames (bad COBS, too short, length field
    wrong), oversize, resyncs (= every dropped candidate), garbage_bytes (bytes dropped),
    bytes_in. Allocation per frame: the decoded bytes and the Frame tuple.
    """

    __slots__ = (
        "_buf",
        "_discarding",
        "bad_frames",
        "bytes_in",
        "crc_errors",
        "frames",
        "garbage_bytes",
        "oversize",
        "resyncs",
    )

    def __init__(self) -> None:
        self._buf = bytearray()
        self._discarding = False
        self.frames = 0
        self.crc_errors = 0
        self.bad_frames = 0
        self.oversize = 0
        self.resyncs = 0
        self.garbage_bytes = 0
        self.bytes_in = 0

    def feed(self, data: bytes | bytearray) -> list[Frame]:
        """Consume `data`; return the frames it completed, in order. Never raises on bad bytes."""
        out: list[Frame] = []
        n = len(data)
        self.bytes_in += n
        buf = self._buf
        start = 0
        while start < n:
            end = data.find(DELIMITER, start)
            if end < 0:
                self._hold(data, start, n)
                break
            if self._discarding:
                self.garbage_bytes += end - start
                self._discarding = False
            elif buf:
                buf += data[start:end]
                segment = bytes(buf)
                buf.clear()
                self._candidate(segment, out)
            elif end > start:
                self._candidate(data[start:end], out)
            start = end + 1
        return out

    def reset(self) -> None:
        """Forget a partial frame (e.g. after reopening the port); counters are kept."""
        self._buf.clear()
        self._discarding = False

    def stats(self) -> dict[str, int]:
        return {
            "frames": self.frames,
            "crc_errors": self.crc_errors,
            "bad_frames": self.bad_frames,
            "oversize": self.oversize,
            "resyncs": self.resyncs,
            "garbage_bytes": self.garbage_bytes,
            "bytes_in": self.bytes_in,
        }

    def _hold(self, data: bytes | bytearray, start: int, n: int) -> None:
        """Keep an unfinished candidate, or drop it once it is too long to be a frame."""
        if self._discarding:
            self.garbage_bytes += n - start
            return
        self._buf += data[start:n]
        if len(self._buf) > MAX_ENCODED:
            self.oversize += 1
            self.resyncs += 1
            self.garbage_bytes += len(self._buf)
            self._buf.clear()
            self._discarding = True

    def _candidate(self, segment: bytes | bytearray, out: list[Frame]) -> None:
        try:
            out.append(decode_frame(segment))
        except FrameError as exc:
            self.resyncs += 1
            self.garbage_bytes += len(segment)
            if isinstance(exc, FrameCRCError):
                self.crc_errors += 1
            elif isinstance(exc, FrameTooLongError):
                self.oversize += 1
            else:
                self.bad_frames += 1
            return
        self.frames += 1
