"""The simulated rig: a MuJoCo Shadow-hand cell behind the same kinds of links as the real one.

    from raas_drivers.sim import RigConfig, SimRig
    with SimRig(RigConfig(clock="lockstep", cameras=0, seed=0)) as rig:
        devs = rig.devices()

Importing this package does not import mujoco (the camera process must choose MUJOCO_GL first);
world.py, rig.py and render.py do. See README.md here and docs/simulated-rig.md.
"""

from raas_drivers.sim.config import RigConfig
from raas_drivers.sim.drivers import (
    SimCameraDriver,
    SimCameraSource,
    SimMocapDriver,
)
from raas_drivers.sim.launcher import SimDevices, SimRig

__all__ = [
    "RigConfig",
    "SimCameraDriver",
    "SimCameraSource",
    "SimDevices",
    "SimMocapDriver",
    "SimRig",
]
