"""UVC/V4L2 webcams on OpenCV ("uvc"): free-running, stamped on arrival, not triggered.

OpenCV is imported inside build/probe only, so the driver is listed and its settings checked on a
machine without it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from raas_drivers.registry import BuildContext, DriverSpec, ProbeReport, register
from raas_drivers.uvc.config import UvcSettings


def _build(settings: UvcSettings, ctx: BuildContext) -> Any:
    from raas_drivers.uvc.driver import UvcCamera  # noqa: PLC0415

    return UvcCamera(ctx.device, settings, period_ns=ctx.period_ns)


def _probe(settings: UvcSettings, ctx: BuildContext) -> ProbeReport:
    """Open the device, read its mode (and, for V4L2, its card name from sysfs), grab one frame."""
    from raas_drivers.uvc.driver import load_cv2, open_capture  # noqa: PLC0415

    report = ProbeReport(device=ctx.device, driver="uvc", found=False)
    dev = settings.device
    if settings.backend == "v4l2" and not Path(dev).exists():
        report.problems.append(f"no device {dev}: is the webcam plugged in? (ls /dev/v4l/by-id)")
        return report
    if settings.backend == "v4l2" and not os.access(dev, os.R_OK | os.W_OK):
        report.found = True
        report.problems.append(f"{dev} is not readable and writable: add the user to 'video'")
        return report
    try:
        cv2 = load_cv2()
    except ImportError as exc:
        report.problems.append(f"OpenCV is not installed: {exc}")
        return report
    cap = open_capture(cv2, settings)
    if cap is None:
        report.problems.append(f"OpenCV cannot open {dev} (in use by another program?)")
        return report
    try:
        report.found = True
        sys_name = Path("/sys/class/video4linux") / Path(dev).resolve().name / "name"
        if sys_name.exists():
            report.model = sys_name.read_text().strip() or None
        ok, img = cap.read()
        report.details["backend"] = cap.getBackendName()
        report.details["fps"] = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if ok and img is not None:
            report.details["resolution"] = [int(img.shape[1]), int(img.shape[0])]
        else:
            report.problems.append(f"{dev} opened but sent no frame")
    except OSError:
        pass
    finally:
        cap.release()
    return report


register(
    DriverSpec(
        family="cameras",
        name="uvc",
        settings=UvcSettings,
        build=_build,
        probe=_probe,
        summary="UVC/V4L2 webcam on OpenCV: free-running, stamped on arrival, not triggered",
    )
)
