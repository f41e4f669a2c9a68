"""The X-series control table (Protocol 2.0) as this driver and the emulator use it.

Addresses and sizes are those of the ROBOTIS e-Manual for the X series (XC330, XL330, XM430, ...):
one table per servo, EEPROM area below 64 (writable only with torque off), RAM from 64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MODEL_NUMBER = 0  # 2 bytes, read-only
FIRMWARE_VERSION = 6  # 1
ID = 7  # 1
BAUD_RATE = 8  # 1: 0=9600 1=57600 2=115200 3=1M 4=2M 5=3M 6=4M
RETURN_DELAY_TIME = 9  # 1, units of 2 us
OPERATING_MODE = 11  # 1: 3 position, 5 current-based position
TEMPERATURE_LIMIT = 31  # 1, degC
CURRENT_LIMIT = 38  # 2, current units
VELOCITY_LIMIT = 44  # 4, 0.229 rpm
MAX_POSITION_LIMIT = 48  # 4, position units
MIN_POSITION_LIMIT = 52  # 4
SHUTDOWN = 63  # 1: the hardware errors that switch torque off
EEPROM_END = 64
TORQUE_ENABLE = 64  # 1
HARDWARE_ERROR_STATUS = 70  # 1, read-only
POSITION_D_GAIN = 80  # 2
POSITION_I_GAIN = 82  # 2
POSITION_P_GAIN = 84  # 2
GOAL_CURRENT = 102  # 2
GOAL_POSITION = 116  # 4
REALTIME_TICK = 120  # 2, ms, wraps at 32768
PRESENT_CURRENT = 126  # 2, signed
PRESENT_VELOCITY = 128  # 4, signed, 0.229 rpm
PRESENT_POSITION = 132  # 4, signed
PRESENT_TEMPERATURE = 146  # 1, degC
TABLE_SIZE = 256

#: The block read every cycle: Realtime Tick (120) .. Present Position (132..135).
STATE_BLOCK_START = REALTIME_TICK
STATE_BLOCK_LEN = PRESENT_POSITION + 4 - REALTIME_TICK  # 16 bytes
#: The longer block read every few cycles: the same, up to Present Temperature (146).
STATE_TEMP_BLOCK_LEN = PRESENT_TEMPERATURE + 1 - REALTIME_TICK  # 27 bytes

TICK_WRAP = 32768  # Realtime Tick counts 0..32767 ms
POSITION_UNITS_PER_REV = 4096
RAD_PER_POSITION_UNIT = 2 * math.pi / POSITION_UNITS_PER_REV
RAD_S_PER_VELOCITY_UNIT = 0.229 * 2 * math.pi / 60  # 0.229 rpm

OPERATING_MODES = {"position": 3, "current_based_position": 5}

BAUD_RATE_CODES = {
    9600: 0,
    57600: 1,
    115200: 2,
    1_000_000: 3,
    2_000_000: 4,
    3_000_000: 5,
    4_000_000: 6,
    4_500_000: 7,
}

#: Hardware Error Status (70) bits, as the e-Manual names them.
HARDWARE_ERROR_BITS = {
    0: "input voltage error",
    2: "overheating",
    3: "motor encoder error",
    4: "electrical shock",
    5: "overload",
}

#: Status packet error byte: bit 7 (alert) says the Hardware Error Status is non-zero.
ERRBIT_ALERT = 0x80
#: Status packet error numbers (low 7 bits).
ERROR_NUMBERS = {
    1: "result fail",
    2: "instruction error",
    3: "CRC error",
    4: "data range error",
    5: "data length error",
    6: "data limit error",
    7: "access error",
}


@dataclass(frozen=True, slots=True)
class ServoModel:
    name: str
    #: Present Current / Goal Current / Current Limit unit in mA
    current_unit_ma: float


#: Model numbers the driver knows (e-Manual; the same numbers dynamixel-sdk's control tables use).
MODELS: dict[int, ServoModel] = {
    1190: ServoModel("XL330-M077", 1.0),
    1200: ServoModel("XL330-M288", 1.0),
    1210: ServoModel("XC330-T181", 1.0),
    1220: ServoModel("XC330-T288", 1.0),
    1230: ServoModel("XC330-M181", 1.0),
    1240: ServoModel("XC330-M288", 1.0),
    1020: ServoModel("XM430-W350", 2.69),
    1030: ServoModel("XM430-W210", 2.69),
}


def describe_hardware_error(bits: int) -> str:
    """The set bits of Hardware Error Status in words: "overheating, overload"."""
    names = [name for bit, name in HARDWARE_ERROR_BITS.items() if bits & (1 << bit)]
    unknown = bits & ~sum(1 << b for b in HARDWARE_ERROR_BITS)
    if unknown:
        names.append(f"unknown bits 0x{unknown:02x}")
    return ", ".join(names) or "none"


def describe_status_error(error: int) -> str:
    """A status packet's error byte in words."""
    parts = []
    if error & ERRBIT_ALERT:
        parts.append("hardware alert")
    num = error & 0x7F
    if num:
        parts.append(ERROR_NUMBERS.get(num, f"error {num}"))
    return ", ".join(parts) or "none"
