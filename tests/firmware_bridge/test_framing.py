"""Framing: COBS + CRC-32C frames, the one-shot decoder and the streaming FrameDecoder."""

from __future__ import annotations

import os

import pytest
from cobs import cobs
from raas_firmware_bridge.crc import CHECK_VALUE, crc32c, crc32c_reference
from raas_firmware_bridge.errors import (
    FrameCRCError,
    FrameEncodingError,
    FrameFieldError,
    FrameLengthError,
    FrameTooLongError,
    FrameTooShortError,
)
from raas_firmware_bridge.framing import (
    HEADER,
    MAX_ENCODED,
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    Frame,
    FrameDecoder,
    decode_frame,
    encode_frame,
)


def test_crc32c_matches_the_standard_check_value_and_the_bitwise_reference() -> None:
    assert crc32c(b"123456789") == CHECK_VALUE == crc32c_reference(b"123456789")
    data = os.urandom(600)
    assert crc32c(data) == crc32c_reference(data)
    assert crc32c(data[300:], crc32c(data[:300])) == crc32c(data)


@pytest.mark.parametrize(
    "payload", [b"", b"\x00", b"\x00" * 300, bytes(range(256)) * 2, b"\xff" * MAX_PAYLOAD]
)
def test_a_frame_round_trips_and_has_exactly_one_zero_byte_at_its_end(payload: bytes) -> None:
    wire = encode_frame(0x12, 513, payload)
    assert wire.count(0) == 1 and wire[-1] == 0
    assert len(wire) <= MAX_ENCODED + 1
    assert decode_frame(wire[:-1]) == Frame(0x12, 513, payload, PROTOCOL_VERSION)


def test_seq_wraps_modulo_2_to_the_16() -> None:
    assert decode_frame(encode_frame(1, 65536 + 7, b"x")[:-1]).seq == 7
    assert decode_frame(encode_frame(1, -1, b"x")[:-1]).seq == 65535


def test_encode_refuses_what_the_header_cannot_carry() -> None:
    with pytest.raises(FrameTooLongError):
        encode_frame(1, 0, bytes(MAX_PAYLOAD + 1))
    with pytest.raises(FrameFieldError):
        encode_frame(256, 0, b"")
    with pytest.raises(FrameFieldError):
        encode_frame(1, 0, b"", version=-1)


def test_decode_frame_names_what_is_wrong() -> None:
    wire = bytearray(encode_frame(0x10, 9, b"hello world")[:-1])
    with pytest.raises(FrameTooShortError):
        decode_frame(b"\x03ab")
    with pytest.raises(FrameEncodingError):
        decode_frame(b"\x09ab")  # code byte points past the end
    with pytest.raises(FrameTooLongError):
        decode_frame(b"\x01" * (MAX_ENCODED + 1))
    corrupted = bytearray(wire)
    corrupted[8] ^= 0x01
    with pytest.raises(FrameCRCError):
        decode_frame(bytes(corrupted))
    # a frame whose CRC is right but whose length field lies
    raw = HEADER.pack(1, 0x10, 9, 5) + b"abc"
    bad_len = cobs.encode(raw + crc32c(raw).to_bytes(4, "little"))
    with pytest.raises(FrameLengthError):
        decode_frame(bad_len)


def test_stream_decoder_splits_reassembles_and_ignores_empty_frames() -> None:
    frames = [Frame(0x12, i, os.urandom(i * 7 % 200)) for i in range(20)]
    stream = b"\x00\x00" + b"".join(encode_frame(*f) for f in frames)
    dec = FrameDecoder()
    got: list[Frame] = []
    for i in range(0, len(stream), 13):  # arbitrary chunking
        got += dec.feed(stream[i : i + 13])
    assert got == frames
    assert dec.frames == 20 and dec.resyncs == 0 and dec.garbage_bytes == 0


def test_stream_decoder_resyncs_after_garbage_and_counts_what_it_dropped() -> None:
    good = encode_frame(0x12, 1, b"payload")
    dec = FrameDecoder()
    # garbage ended by a delimiter is one dropped candidate; the next frame decodes
    assert dec.feed(b"\x17\x99garbage\x00" + good) == [Frame(0x12, 1, b"payload")]
    assert dec.bad_frames + dec.crc_errors == 1 and dec.resyncs == 1
    # a corrupted frame is counted as a CRC error and the one after it survives
    bad = bytearray(good)
    bad[5] ^= 0x40
    assert dec.feed(bytes(bad) + good) == [Frame(0x12, 1, b"payload")]
    assert dec.crc_errors >= 1
    assert dec.stats()["frames"] == 2


def test_stream_decoder_drops_an_oversize_run_without_buffering_it() -> None:
    dec = FrameDecoder()
    for _ in range(10):
        assert dec.feed(b"\x01" * 400) == []
    assert dec.oversize == 1 and len(dec._buf) == 0
    good = encode_frame(0x30, 2, b"")
    assert dec.feed(b"\x00" + good) == [Frame(0x30, 2, b"")]
    assert dec.garbage_bytes == 4000 and dec.bytes_in == 4000 + 1 + len(good)


def test_reset_forgets_a_partial_frame() -> None:
    dec = FrameDecoder()
    good = encode_frame(0x30, 2, b"abc")
    dec.feed(good[:4])
    dec.reset()
    assert dec.feed(good) == [Frame(0x30, 2, b"abc")]
