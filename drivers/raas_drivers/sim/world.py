"""The simulated cell's physics: gymnasium-robotics' Shadow hand with a block, in MuJoCo.

The model file is found without importing gymnasium_robotics (its import prints warnings and pulls
in gymnasium). On top of it we add, with MjSpec:
  - PhaseSpace-style LED marker sites on the block's 8 corners,
  - the cell's three cameras `left`, `right`, `top`, about 50 cm from the block, looking at it,
  - the `target` body turned into a mocap body (in the shipped model it is a free body that the
    gym env re-places every step; left free, it would fall through the floor).

Vectors come out in the orders of raas_drivers.hand.config (JOINT_NAMES, ACTUATOR_NAMES), so the
rig's wire format needs no name lookup. This module imports mujoco but never creates a GL context:
rendering lives in render.py, in its own process.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import mujoco
import numpy as np

from raas_drivers.hand.config import ACTUATOR_NAMES, JOINT_NAMES
from raas_drivers.sim.params import WorldParams

PREFIX = "robot0:"

#: Fingertip sites tracked by the motion capture, in marker order.
FINGERTIP_SITES: tuple[str, ...] = (
    "robot0:S_fftip",
    "robot0:S_mftip",
    "robot0:S_rftip",
    "robot0:S_lftip",
    "robot0:S_thtip",
)

#: Block marker offsets in the block frame (m): the 8 corners, 1 mm inside the 25 mm half-size.
BLOCK_MARKER_OFFSETS: tuple[tuple[float, float, float], ...] = tuple(
    (sx * 0.024, sy * 0.024, sz * 0.024) for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)
)

#: Marker names in the order of MocapFrame rows: 5 fingertips, then the block's LEDs.
MARKER_NAMES: tuple[str, ...] = (
    "fftip",
    "mftip",
    "rftip",
    "lftip",
    "thtip",
    *(f"block:m{i}" for i in range(len(BLOCK_MARKER_OFFSETS))),
)

#: Where the cameras look from, as (azimuth deg, elevation deg) around the block's start position.
CAMERA_VIEWS: dict[str, tuple[float, float]] = {
    "left": (150.0, 35.0),
    "right": (30.0, 35.0),
    "top": (-90.0, 80.0),
}


def model_path() -> Path:
    """Path of gymnasium-robotics' manipulate_block.xml, found without importing the package."""
    spec = importlib.util.find_spec("gymnasium_robotics")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("gymnasium_robotics is not installed (needed for the hand model)")
    root = Path(next(iter(spec.submodule_search_locations)))
    return root / "envs" / "assets" / "hand" / "manipulate_block.xml"


def _look_at_quat(pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Quaternion of a MuJoCo camera at `pos` looking at `target` (camera looks along -z)."""
    forward = target - pos
    forward /= np.linalg.norm(forward)
    up = np.array([0.0, 0.0, 1.0])
    if abs(float(forward @ up)) > 0.99:
        up = np.array([0.0, 1.0, 0.0])
    x = np.cross(forward, up)
    x /= np.linalg.norm(x)
    y = np.cross(x, forward)
    rot = np.column_stack([x, y, -forward])
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, rot.reshape(-1))
    return quat


def build_spec(params: WorldParams) -> mujoco.MjSpec:
    """The shipped model plus markers, cameras and a mocap target."""
    spec = mujoco.MjSpec.from_file(str(model_path()))
    spec.option.timestep = params.timestep
    block = spec.body("object")
    for i, offset in enumerate(BLOCK_MARKER_OFFSETS):
        block.add_site(
            name=f"block:m{i}",
            pos=list(offset),
            size=[0.003, 0.003, 0.003],
            rgba=[0.2, 1.0, 0.2, 1.0],
        )
    target = spec.body("target")
    spec.delete(spec.joint("target:joint"))
    target.mocap = True
    center = np.array(block.pos, dtype=np.float64)
    for name, (az_deg, el_deg) in CAMERA_VIEWS.items():
        az, el = math.radians(az_deg), math.radians(el_deg)
        direction = np.array(
            [math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)]
        )
        pos = center + params.camera_distance * direction
        spec.worldbody.add_camera(
            name=name,
            pos=pos.tolist(),
            quat=_look_at_quat(pos, center).tolist(),
            fovy=params.camera_fovy,
        )
    return spec


def build_model(params: WorldParams | None = None) -> mujoco.MjModel:
    return build_spec(params or WorldParams()).compile()


def _quat_from_angle_axis(angle: float, axis: np.ndarray) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    return np.concatenate([[math.cos(angle / 2)], math.sin(angle / 2) * axis])


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros(4)
    mujoco.mju_mulQuat(out, a, b)
    return out


class World:
    """The hand, the block and the target; stepped under position targets.

    Every read returns views of preallocated buffers (copy to keep): the rig process serialises
    them straight away.
    """

    def __init__(self, params: WorldParams | None = None) -> None:
        self.params = params or WorldParams()
        self.model = build_model(self.params)
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.joint_qpos_idx = np.array(
            [m.jnt_qposadr[m.joint(PREFIX + n).id] for n in JOINT_NAMES], dtype=np.intp
        )
        self.joint_dof_idx = np.array(
            [m.jnt_dofadr[m.joint(PREFIX + n).id] for n in JOINT_NAMES], dtype=np.intp
        )
        self.actuator_idx = np.array(
            [m.actuator(PREFIX + n).id for n in ACTUATOR_NAMES], dtype=np.intp
        )
        self.ctrlrange = np.ascontiguousarray(m.actuator_ctrlrange[self.actuator_idx])
        self.force_scale = np.maximum(
            np.abs(m.actuator_forcerange[self.actuator_idx]).max(axis=1), 1e-6
        )
        self.marker_site_idx = np.array(
            [m.site(n).id for n in FINGERTIP_SITES]
            + [m.site(f"block:m{i}").id for i in range(len(BLOCK_MARKER_OFFSETS))],
            dtype=np.intp,
        )
        self.object_qpos_adr = int(m.jnt_qposadr[m.joint("object:joint").id])
        self.camera_names = tuple(n for n in CAMERA_VIEWS if m.camera(n).id >= 0)
        self.timestep_ns: int = round(float(m.opt.timestep) * 1e9)
        # preallocated outputs
        self.targets = np.zeros(len(ACTUATOR_NAMES))
        self.temperatures = np.full(len(ACTUATOR_NAMES), self.params.motor_ambient_c)
        self._heat = np.zeros(len(ACTUATOR_NAMES))
        self._positions = np.zeros(len(JOINT_NAMES))
        self._velocities = np.zeros(len(JOINT_NAMES))
        self._efforts = np.zeros(len(ACTUATOR_NAMES))
        self._markers = np.zeros((len(MARKER_NAMES), 3))
        self._pose = np.zeros(7)
        self.steps = 0
        self.reset(0)

    # ----------------------------------------------------------------------- set-up
    def reset(self, seed: int) -> None:
        """Place the block in the palm as gymnasium's HandManipulateBlock does.

        Random orientation (angle uniform in [-pi, pi] about a random axis), position noise
        N(0, 5 mm); then 10 x 20 substeps with the hand at mid-range targets to settle.
        """
        rng = np.random.default_rng(seed)
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        adr = self.object_qpos_adr
        pos = d.qpos[adr : adr + 3].copy()
        quat = d.qpos[adr + 3 : adr + 7].copy()
        angle = rng.uniform(-math.pi, math.pi)
        axis = rng.uniform(-1.0, 1.0, size=3)
        quat = _quat_mul(quat, _quat_from_angle_axis(angle, axis))
        quat /= np.linalg.norm(quat)
        pos += rng.normal(size=3, scale=self.params.init_pos_noise)
        d.qpos[adr : adr + 3] = pos
        d.qpos[adr + 3 : adr + 7] = quat
        # the target shows the block's start orientation until someone sets a goal
        d.mocap_pos[0] = pos
        d.mocap_quat[0] = quat
        self.targets[:] = self.ctrlrange.mean(axis=1)
        d.ctrl[self.actuator_idx] = self.targets
        mujoco.mj_forward(m, d)
        mujoco.mj_step(m, d, nstep=200)
        d.time = 0.0
        self.temperatures[:] = self.params.motor_ambient_c
        self.steps = 0
        mujoco.mj_forward(m, d)

    def place_block(self, seed: int) -> None:
        """Back to the start of an episode (reset(seed): the hand settled at mid-range, the block
        in the palm) without turning the world's clock back: steps and time go on (the boards'
        clocks and a lockstep run count them) and the motors stay as warm as they were."""
        steps, time_s, temps = self.steps, float(self.data.time), self.temperatures.copy()
        self.reset(seed)
        self.steps = steps
        self.data.time = time_s
        self.temperatures[:] = temps
        mujoco.mj_forward(self.model, self.data)

    # ----------------------------------------------------------------------- stepping
    def set_targets(self, targets: np.ndarray) -> np.ndarray:
        """Clamp to ctrlrange, apply, return the applied targets (a view, copy to keep)."""
        np.clip(targets, self.ctrlrange[:, 0], self.ctrlrange[:, 1], out=self.targets)
        self.data.ctrl[self.actuator_idx] = self.targets
        return self.targets

    def step(self, duration: float) -> int:
        """Advance by `duration` seconds (rounded to whole physics steps); return the steps run."""
        n = round(duration / float(self.model.opt.timestep))
        self.step_n(n)
        return n

    def step_n(self, n: int) -> None:
        if n <= 0:
            return
        mujoco.mj_step(self.model, self.data, nstep=n)
        self.steps += n
        self._update_thermal(n * self.model.opt.timestep)

    def _update_thermal(self, dt: float) -> None:
        """First-order motor thermal model driven by effort (the actuator force):

        tau dT/dt = T_ambient + heating * (force / max_force)^2 - T
        """
        p = self.params
        np.divide(self.data.actuator_force[self.actuator_idx], self.force_scale, out=self._heat)
        np.square(self._heat, out=self._heat)
        self._heat *= p.motor_heating_c
        self._heat += p.motor_ambient_c
        self._heat -= self.temperatures
        self._heat *= 1.0 - math.exp(-dt / p.motor_tau_s)
        self.temperatures += self._heat

    # ----------------------------------------------------------------------- reading
    @property
    def time_ns(self) -> int:
        return self.steps * self.timestep_ns

    def hand_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(positions 24, velocities 24, efforts 20, temperatures 20), views of buffers."""
        d = self.data
        np.take(d.qpos, self.joint_qpos_idx, out=self._positions)
        np.take(d.qvel, self.joint_dof_idx, out=self._velocities)
        np.take(d.actuator_force, self.actuator_idx, out=self._efforts)
        return self._positions, self._velocities, self._efforts, self.temperatures

    def marker_positions(self) -> np.ndarray:
        """(13, 3): 5 fingertips then the block's 8 LEDs, world frame, m.

        Runs kinematics first: after mj_step, site_xpos still belongs to the previous qpos."""
        mujoco.mj_kinematics(self.model, self.data)
        np.take(self.data.site_xpos, self.marker_site_idx, axis=0, out=self._markers)
        return self._markers

    def object_pose(self) -> np.ndarray:
        """(7,) block position (m) and quaternion (w, x, y, z)."""
        adr = self.object_qpos_adr
        self._pose[:] = self.data.qpos[adr : adr + 7]
        return self._pose

    def render_state(self) -> np.ndarray:
        """Everything a renderer needs to redraw the scene: qpos then mocap pos and quat."""
        d = self.data
        return np.concatenate([d.qpos, d.mocap_pos.reshape(-1), d.mocap_quat.reshape(-1)])


def apply_render_state(model: mujoco.MjModel, data: mujoco.MjData, state: np.ndarray) -> None:
    """Inverse of World.render_state on another MjData (the renderer's), then kinematics."""
    nq, nm = model.nq, model.nmocap
    data.qpos[:] = state[:nq]
    data.mocap_pos[:] = state[nq : nq + 3 * nm].reshape(nm, 3)
    data.mocap_quat[:] = state[nq + 3 * nm : nq + 7 * nm].reshape(nm, 4)
    mujoco.mj_kinematics(model, data)
