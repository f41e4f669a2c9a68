"""`raasd devices` for Basler cameras: enumerate, find the one the settings name, read what it is
(model, serial, firmware, temperature where the camera has a sensor) without grabbing."""

from __future__ import annotations

import contextlib
from typing import Any

from raas_drivers.pylon.config import PylonCameraSettings
from raas_drivers.pylon.driver import _node, find_device, load_pylon
from raas_drivers.registry import ProbeReport


def list_cameras(emulated: bool = False) -> list[dict[str, str]]:
    """Every camera pylon sees: model, serial number, user id, device class."""
    pylon = load_pylon(emulated)
    return [
        {
            "model": str(d.GetModelName()),
            "serial_number": str(d.GetSerialNumber()),
            "user_id": str(d.GetUserDefinedName()),
            "device_class": str(d.GetDeviceClass()),
        }
        for d in pylon.TlFactory.GetInstance().EnumerateDevices()
    ]


def probe_camera(settings: PylonCameraSettings, device: str) -> ProbeReport:
    report = ProbeReport(device=device, driver="pylon", found=False)
    try:
        pylon = load_pylon(settings.emulated)
    except ImportError as exc:
        report.problems.append(f"pypylon is not installed: {exc}")
        return report
    info = find_device(pylon, settings)
    if info is None:
        seen = ", ".join(c["serial_number"] for c in list_cameras(settings.emulated)) or "none"
        want = settings.serial_number or f"user id {settings.user_id}"
        report.problems.append(
            f"no Basler camera {want} (cameras seen: {seen}); check the cable, power and the "
            "udev rules (docs in raas_drivers/pylon/README.md)"
        )
        return report
    report.found = True
    report.model = str(info.GetModelName())
    report.serial_number = str(info.GetSerialNumber())
    report.details["device_class"] = str(info.GetDeviceClass())
    report.details["user_id"] = str(info.GetUserDefinedName())
    cam: Any = None
    try:
        cam = pylon.InstantCamera(pylon.TlFactory.GetInstance().CreateDevice(info))
        cam.Open()
    except Exception as exc:
        report.problems.append(f"found but cannot open it (in use by another program?): {exc}")
        return report
    try:
        fw = _node(cam, "DeviceFirmwareVersion")
        if fw is not None:
            report.firmware = str(fw.Value)
        temp = _node(cam, "DeviceTemperature", "TemperatureAbs")
        if temp is not None:
            report.temperatures_c["device"] = float(temp.Value)
        sources = _node(cam, "TriggerSource")
        if sources is not None:
            report.details["trigger_sources"] = list(sources.Symbolics)
            if settings.trigger_source not in sources.Symbolics:
                report.problems.append(
                    f"trigger_source {settings.trigger_source!r} not offered by this camera"
                )
        formats = _node(cam, "PixelFormat")
        if formats is not None:
            report.details["pixel_formats"] = list(formats.Symbolics)
        report.details["max_resolution"] = [int(cam.Width.Max), int(cam.Height.Max)]
    finally:
        with contextlib.suppress(Exception):
            cam.Close()
        with contextlib.suppress(Exception):
            cam.DestroyDevice()
    return report


def probe_software_trigger(device: str) -> ProbeReport:
    report = ProbeReport(device=device, driver="pylon-software", found=False)
    try:
        load_pylon(False)
    except ImportError as exc:
        report.problems.append(f"pypylon is not installed: {exc}")
        return report
    report.found = True
    report.model = "pylon software trigger"
    return report
