"""CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, init and xorout 0xFFFFFFFF).

API: `crc32c(data, value=0) -> int` (the `crc32c` package's C implementation, SSE4.2/ARMv8
instructions where the CPU has them, a table otherwise) and `crc32c_reference(data) -> int` (a
bitwise pure-Python version, used by the tests to check the fast one and the C firmware's table).
Check value: crc32c(b"123456789") == 0xE3069283. Why CRC-32C: docs/protocol-serial.md.
"""

from __future__ import annotations

from crc32c import crc32c as _crc32c

CRC_BYTES = 4
CHECK_VALUE = 0xE3069283
_POLY_REFLECTED = 0x82F63B78


def crc32c(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """CRC-32C of `data`; pass a previous result as `value` to continue over more bytes."""
    return int(_crc32c(data, value))


def crc32c_reference(data: bytes | bytearray | memoryview) -> int:
    """Bit-by-bit CRC-32C, slow and obviously right: the yardstick for the fast ones."""
    crc = 0xFFFFFFFF
    for byte in bytes(data):
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (_POLY_REFLECTED if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF
