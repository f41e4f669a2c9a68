"""Hardware-triggered cameras: frames with capture time."""

from raas_drivers.cameras.driver import CAMERA_NAMES, CameraDriver, CameraFrame

__all__ = ["CAMERA_NAMES", "CameraDriver", "CameraFrame"]
