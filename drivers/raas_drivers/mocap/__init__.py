"""Motion capture: marker positions with visibility and capture time."""

from raas_drivers.mocap.driver import MocapDriver, MocapFrame

__all__ = ["MocapDriver", "MocapFrame"]
