"""The dexterous hand: position targets in, joint state out."""

from raas_drivers.hand.config import ACTUATOR_NAMES, JOINT_NAMES, HandConfig
from raas_drivers.hand.driver import HandDriver, HandState

__all__ = ["ACTUATOR_NAMES", "JOINT_NAMES", "HandConfig", "HandDriver", "HandState"]
