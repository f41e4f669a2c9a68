"""Parameters of the physics world, apart from world.py so that importing them (config, drivers,
launcher) never imports mujoco: the camera process must set MUJOCO_GL before mujoco is imported."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WorldParams:
    """What shapes the world (a subset of RigConfig, so world.py does not depend on it)."""

    timestep: float = 0.002
    camera_distance: float = 0.5
    camera_fovy: float = 35.0
    init_pos_noise: float = 0.005
    motor_ambient_c: float = 25.0
    motor_heating_c: float = 40.0
    motor_tau_s: float = 60.0
