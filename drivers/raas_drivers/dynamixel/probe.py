"""`raasd devices` for a Dynamixel hand: which servos answer, what they are, what is wrong."""

from __future__ import annotations

import os
import struct

import serial
from dynamixel_sdk import COMM_SUCCESS
from serial.tools import list_ports

from raas_drivers.dynamixel import control_table as ct
from raas_drivers.dynamixel.bus import close_port, open_port, port_problem
from raas_drivers.dynamixel.calibration import Calibration
from raas_drivers.dynamixel.config import DynamixelHandSettings
from raas_drivers.dynamixel.driver import latency_timer_ms
from raas_drivers.registry import ProbeReport


def usb_serial_number(port: str) -> str | None:
    """The USB adapter's serial number (a U2D2's FTDI serial), None for other ports."""
    real = os.path.realpath(port)
    for info in list_ports.comports():
        if os.path.realpath(info.device) == real:
            return info.serial_number
    return None


def probe(device: str, settings: DynamixelHandSettings, calibration: Calibration) -> ProbeReport:
    """Ping every servo of the calibration; read model, firmware, temperature, hardware error.

    Drives nothing: no write, no torque. Problems are said in words for lab staff."""
    report = ProbeReport(device=device, driver="dynamixel", found=False)
    report.serial_number = usb_serial_number(settings.port)
    try:
        port, ph = open_port(settings.port, settings.baudrate)
    except (OSError, serial.SerialException) as exc:
        report.problems.append(port_problem(settings.port, exc))
        return report
    models: dict[str, int] = {}
    firmwares: set[int] = set()
    answered: list[int] = []
    try:
        for sid in calibration.ids:
            name = calibration.name(sid)
            model, result, _ = ph.ping(port, sid)
            if result != COMM_SUCCESS:
                report.problems.append(f"{name} does not answer a ping")
                continue
            answered.append(sid)
            known = ct.MODELS.get(model)
            label = known.name if known else f"model number {model}"
            models[label] = models.get(label, 0) + 1
            if known is None:
                report.problems.append(f"{name} is an unsupported servo ({label})")
            data, result, _ = ph.readTxRx(port, sid, 0, ct.PRESENT_TEMPERATURE + 1)
            if result != COMM_SUCCESS or len(data) < ct.PRESENT_TEMPERATURE + 1:
                report.problems.append(f"{name} answered a ping but not a read of its table")
                continue
            table = bytes(data)
            firmwares.add(table[ct.FIRMWARE_VERSION])
            temp = table[ct.PRESENT_TEMPERATURE]
            report.temperatures_c[calibration.joint_of(sid)] = float(temp)
            if temp >= table[ct.TEMPERATURE_LIMIT] - 5:
                report.problems.append(
                    f"{name} is at {temp} degC, near its limit of {table[ct.TEMPERATURE_LIMIT]}"
                )
            bits = table[ct.HARDWARE_ERROR_STATUS]
            if bits:
                report.problems.append(
                    f"{name} has a hardware error: {ct.describe_hardware_error(bits)} "
                    "(fix the cause, then power-cycle or reboot it)"
                )
            delay_us = table[ct.RETURN_DELAY_TIME] * 2
            if delay_us != settings.return_delay_us:
                report.details.setdefault("return_delay_us", {})[sid] = delay_us
            volts = struct.unpack_from("<H", table, 144)[0] / 10
            report.details.setdefault("input_voltage_v", {})[sid] = volts
    finally:
        close_port(port)
    report.found = bool(answered)
    report.model = ", ".join(f"{n} x {m}" for m, n in sorted(models.items())) or None
    report.firmware = ", ".join(str(f) for f in sorted(firmwares)) or None
    report.details["servos_answering"] = f"{len(answered)}/{len(calibration.ids)}"
    report.details["baudrate"] = settings.baudrate
    report.details["calibration"] = str(calibration.source)
    timer = latency_timer_ms(settings.port)
    report.details["latency_timer_ms"] = timer
    if timer is not None and timer > settings.latency_timer_ms:
        report.problems.append(
            f"USB latency timer is {timer} ms (want {settings.latency_timer_ms}): install the "
            "udev rule from the Dynamixel driver's README, then replug the U2D2"
        )
    if not answered and calibration.ids:
        report.problems.append(
            f"no servo answers at {settings.baudrate} baud: check the 5 V supply, the cable and "
            "the baud rate (Dynamixel Wizard's scan finds it)"
        )
    return report
