"""The cell's observation keys a policy may read: name, shape, units, meaning and the sources
they come from. This table is the contract between a bundle's manifest and the cell."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ObservationKey:
    name: str
    shape: tuple[int, ...]
    units: str
    meaning: str
    #: Cell sources the key is computed from ("object" means: mocap, or cameras via the
    #: bundle's vision model).
    sources: tuple[str, ...]
    #: "joints" / "actuators": a vector as long as the hand has joints / actuators (`shape` is
    #: the Shadow hand's); checked against the cell's hand when the bundle loads
    hand_sized: str | None = None


KEYS: dict[str, ObservationKey] = {
    k.name: k
    for k in (
        ObservationKey(
            "fingertip_positions",
            (5, 3),
            "m",
            "fingertips ff, mf, rf, lf, th (x, y, z), world frame, from the motion-capture "
            "fingertip markers (an occluded marker keeps its last position)",
            ("mocap",),
        ),
        ObservationKey(
            "object_position",
            (3,),
            "m",
            "block centre (x, y, z), world frame, from the block's mocap markers or the vision "
            "model",
            ("object",),
        ),
        ObservationKey(
            "object_orientation",
            (4,),
            "quaternion",
            "block orientation (w, x, y, z), unit, w >= 0",
            ("object",),
        ),
        ObservationKey(
            "goal_position",
            (3,),
            "m",
            "goal position of the block (x, y, z), world frame (the task's obs.goal[0:3])",
            (),
        ),
        ObservationKey(
            "goal_orientation",
            (4,),
            "quaternion",
            "goal orientation (w, x, y, z) (the task's obs.goal[3:7])",
            (),
        ),
        ObservationKey(
            "relative_goal_orientation",
            (4,),
            "quaternion",
            "rotation from the block's orientation to the goal's: goal * conj(object), w >= 0",
            ("object",),
        ),
        ObservationKey(
            "joint_positions",
            (24,),
            "rad",
            "the hand's joint angles in its joint order (24 on the Shadow hand, JOINT_NAMES)",
            ("hand",),
            "joints",
        ),
        ObservationKey(
            "joint_velocities",
            (24,),
            "rad/s",
            "the hand's joint velocities in its joint order (24 on the Shadow hand)",
            ("hand",),
            "joints",
        ),
        ObservationKey(
            "previous_action",
            (20,),
            "rad",
            "the position targets the policy produced in the previous cycle (after smoothing), "
            "one per actuator of the hand (20 on the Shadow hand); the idle action at the start "
            "of an episode",
            (),
            "actuators",
        ),
    )
}
