"""The hand contract: what the loop may ask of any hand, real or simulated."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np

from raas_drivers.hand.config import (
    ACTUATOR_JOINT_INDEX,
    ACTUATOR_LIMITS,
    ACTUATOR_NAMES,
    EFFORT_LIMITS,
    JOINT_NAMES,
)
from raas_drivers.lifecycle import Device
from raas_drivers.source import Sample


@dataclass(slots=True)
class HandState(Sample):
    """Joint state of the hand. Vectors in JOINT_NAMES / ACTUATOR_NAMES order, SI units.

    positions, velocities: (24,) rad, rad/s
    efforts:               (20,) actuator force/torque as the device reports it
    temperatures:          (20,) motor temperatures in degC
    applied_seq:           sequence number of the last targets the device applied (-1: none yet)
    """

    positions: np.ndarray = field(default_factory=lambda: np.zeros(len(JOINT_NAMES)))
    velocities: np.ndarray = field(default_factory=lambda: np.zeros(len(JOINT_NAMES)))
    efforts: np.ndarray = field(default_factory=lambda: np.zeros(len(ACTUATOR_NAMES)))
    temperatures: np.ndarray = field(default_factory=lambda: np.zeros(len(ACTUATOR_NAMES)))
    applied_seq: int = -1


class HandDriver(Device, abc.ABC):
    """A hand is a Source of HandState and a sink of position targets.

    request_state(k) is part of the trigger phase (it asks for the state belonging to cycle k);
    poll(k) returns it once it arrived. apply() sends targets and returns what the device will
    actually apply (after its own clamping), which the loop records as the applied action.
    """

    #: What the hand is, as policy bundles name it (`hand.model` in a manifest).
    model: str = "shadow-dexterous"
    #: The hand's shape. Class defaults are the Shadow-type hand's; a driver for another hand
    #: (e.g. a 16-servo LEAP hand) sets them per instance from its calibration.
    actuator_names: tuple[str, ...] = ACTUATOR_NAMES
    joint_names: tuple[str, ...] = JOINT_NAMES
    #: (n_actuators, 2) position range in rad per actuator
    limits: np.ndarray = ACTUATOR_LIMITS
    #: (n_actuators,) largest force/torque each actuator exerts, in the units `efforts` uses
    effort_limits: np.ndarray = EFFORT_LIMITS
    #: the joint each actuator drives: positions[actuator_joint_index] is the actuator position
    actuator_joint_index: tuple[int, ...] = ACTUATOR_JOINT_INDEX

    @property
    def source_name(self) -> str:
        return self.name

    @property
    @abc.abstractmethod
    def idle_action(self) -> np.ndarray:
        """The declared action the hand takes when nobody commands it, (20,) rad."""

    @abc.abstractmethod
    def request_state(self, cycle: int) -> None:
        """Ask for the state of cycle `cycle`. Non-blocking."""

    @abc.abstractmethod
    def poll(self, cycle: int) -> HandState | None:
        """Non-blocking: the state for `cycle` if it arrived. Raises DeviceLostError."""

    @abc.abstractmethod
    def fileno(self) -> int: ...

    def emergency_stop(self) -> None:
        """Stop at the hand's own level, now: the hand holds where it is (a board's e-stop
        latch: its motors hold their current position until released), on top of the hold
        targets the loop keeps sending. Never blocks, never raises for the link's state; called
        in the cycle an e-stop arrives, in every mode. Default: nothing (a hand without its own
        e-stop relies on the hold targets)."""
        return None

    def clear_emergency_stop(self) -> None:
        """The e-stop was cleared: release the hand's own latch (never blocks). Default: nothing."""
        return None

    @abc.abstractmethod
    def apply(self, targets: np.ndarray, cycle: int) -> np.ndarray:
        """Send position targets (20,) rad for `cycle`; return the targets the device applies.

        Raises TargetShapeError for a wrong shape or a non-finite value (nothing is sent),
        DeviceLostError when the link is gone."""
