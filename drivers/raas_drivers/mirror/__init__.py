"""The mirror hand: a hand of any shape with no hardware (ros2_control's mock hardware)."""

from raas_drivers.mirror.config import MirrorHandSettings, load_shape
from raas_drivers.mirror.driver import MirrorHand

__all__ = ["MirrorHand", "MirrorHandSettings", "load_shape"]
