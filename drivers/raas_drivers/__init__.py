"""raas_drivers: device contracts (hand, trigger, motion capture, cameras) and the simulated rig.

Arrows point down: the control loop imports these contracts; nothing here imports the loop.
"""

from raas_drivers.errors import (
    DeviceLostError,
    DeviceNotReadyError,
    DriverConfigError,
    DriverError,
    LifecycleTransitionError,
    TargetShapeError,
)
from raas_drivers.lifecycle import Device, LifecycleState
from raas_drivers.source import Sample, Source

__all__ = [
    "Device",
    "DeviceLostError",
    "DeviceNotReadyError",
    "DriverConfigError",
    "DriverError",
    "LifecycleState",
    "LifecycleTransitionError",
    "Sample",
    "Source",
    "TargetShapeError",
]
