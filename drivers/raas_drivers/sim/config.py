"""RigConfig: everything the simulated rig can be told, faults included.

Unknown fields are refused (extra="forbid"), so a typo or a bad value names its field.
The config travels to the rig and renderer processes as JSON on their command line.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from raas_firmware_bridge.emulator.config import LinkConfig

from raas_drivers.sim.clocks import RigClocks
from raas_drivers.sim.params import WorldParams

CameraName = Literal["left", "right", "top"]


class RigFaults(BaseModel):
    """Faults of the rig's sensors and of its life, for the fault matrix (tests/safety).

    Every `*_at_s` counts seconds on the rig's fault clock, which starts at the first trigger
    pulse, or, with `start_file`, when that file exists (looked for on every trigger, so within
    one period of its creation). With `start_file`, the serial faults of [rig.link] follow the
    same clock: `reset_at_s` / `vanish_at_s` count from it and the byte faults (bit errors, ...)
    start with it. Each fault that happens is written to the event record (`fault` events with
    `kind`) when [rig.link] record_events is on.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_file: str | None = Field(
        default=None,
        description="the fault clock starts when this file exists (None: at the first trigger)",
    )
    mocap_lost_at_s: float | None = Field(
        default=None, ge=0, description="motion capture stops delivering frames from then on"
    )
    camera_lost_at_s: float | None = Field(
        default=None, ge=0, description="the camera `camera_lost` stops delivering frames"
    )
    camera_lost: CameraName | None = Field(
        default=None, description="which camera is lost (None: every camera)"
    )
    camera_black_at_s: float | None = Field(
        default=None, ge=0, description="every camera's frames are all zero from then on"
    )
    action_delay_cycles: int = Field(
        default=0, ge=0, le=50, description="targets reach the motors this many cycles late"
    )
    action_delay_prob: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="per actuator and target set: probability of one more cycle of delay "
        "(Dactyl: 0.5)",
    )
    timestep_stretch_lambda_hz: float | None = Field(
        default=None,
        gt=0,
        description="timestep stretch: each sub-step of a cycle lasts Exp(lambda) longer for the "
        "plant (Dactyl: lambda in [1250, 10000] per s); None: off",
    )
    timestep_substep_s: float = Field(
        default=0.008, gt=0, le=1, description="the sub-step a stretch is drawn for (Dactyl: 8 ms)"
    )
    outlive_parent_s: float = Field(
        default=0.0,
        ge=0,
        le=60,
        description="when the launching process dies, the rig (the hand and its firmware) keeps "
        "running this long before it exits, as real hardware would (the firmware watchdog's "
        "hold can then be seen in the event record); 0: it exits with its parent",
    )
    record_path: str | None = Field(
        default=None,
        description="write the event record here instead of <rig dir>/events.jsonl (kept "
        "after the rig exits)",
    )

    def active(self, at_s: float | None, elapsed_s: float | None) -> bool:
        """Has the fault scheduled at `at_s` happened when the fault clock reads `elapsed_s`?"""
        return at_s is not None and elapsed_s is not None and elapsed_s >= at_s


class RigConfig(BaseModel):
    """The simulated cell. Defaults are the real cell's where it has one (docs/simulated-rig.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clock: Literal["lockstep", "realtime"] = Field(
        default="lockstep",
        description="lockstep: each trigger advances the world one period, sim-time stamps, "
        "deterministic; realtime: the world follows CLOCK_MONOTONIC",
    )
    rate_hz: float = Field(default=12.5, gt=0, le=2000, description="trigger rate the loop runs at")
    seed: int = Field(default=0, ge=0, description="seeds the block's start pose and every fault")

    # physics
    timestep_s: float = Field(default=0.002, gt=0, le=0.01, description="physics step")
    init_pos_noise_m: float = Field(default=0.005, ge=0, description="block start position noise")
    motor_ambient_c: float = Field(default=25.0, description="motor temperature at rest")
    motor_heating_c: float = Field(
        default=40.0, ge=0, description="steady temperature rise at sustained full actuator force"
    )
    motor_tau_s: float = Field(default=60.0, gt=0, description="motor thermal time constant")

    # cameras
    cameras: int = Field(default=3, ge=0, le=3, description="how many of left, right, top")
    camera_width: int = Field(default=200, ge=16, le=1920, description="pixels")
    camera_height: int = Field(default=200, ge=16, le=1440, description="pixels")
    camera_slots: int = Field(
        default=3, ge=2, le=16, description="shared-memory frames per camera (ring)"
    )
    render_threads: int = Field(
        default=1,
        ge=0,
        le=16,
        description="LP_NUM_THREADS for Mesa llvmpipe in the camera process (0: Mesa's default, "
        "one per core); 1 leaves the other core to the physics and the loop",
    )
    render_nice: int = Field(
        default=5, ge=-20, le=19, description="niceness of the camera process (below the physics)"
    )
    render_samples: int = Field(
        default=0,
        ge=0,
        le=16,
        description="multisample anti-aliasing samples of the offscreen frame buffer (MuJoCo's "
        "model default is 4, which makes llvmpipe take about 2.5x as long per frame)",
    )
    render_priority: int = Field(
        default=0,
        ge=0,
        le=99,
        description="realtime rig with a real-time loop: SCHED_FIFO priority of the camera "
        "process (below the physics and the loop), so that its frames meet their deadline "
        "whatever else the machine runs; 0 (default): normal scheduling at render_nice. Its "
        "34 ms of FIFO time per cycle can starve the rig's link traffic and push a shared "
        "machine into RT throttling (docs/performance.md)",
    )
    camera_distance_m: float = Field(default=0.5, gt=0.1, le=3.0)
    camera_fovy_deg: float = Field(default=35.0, gt=5, lt=170)
    camera_offset_us: float = Field(
        default=0.0, ge=0, description="capture time of a frame after the trigger pulse"
    )

    # motion capture
    mocap_noise_m: float = Field(default=0.0005, ge=0, description="gaussian noise std per axis")
    mocap_dropout_rate_hz: float = Field(
        default=0.2, ge=0, description="Poisson rate at which a visible marker vanishes"
    )
    mocap_dropout_s: float = Field(default=1.0, ge=0, description="mean time a marker stays frozen")
    mocap_dropout_jitter_s: float = Field(
        default=0.2, ge=0, description="frozen time is uniform in mean +- jitter"
    )
    mocap_offset_us: float = Field(
        default=0.0, ge=0, description="capture time of a mocap frame after the trigger pulse"
    )
    hand_offset_us: float = Field(
        default=0.0, ge=0, description="lockstep: capture time of the hand state after the trigger"
    )

    # the hand's and the trigger board's serial links (firmware emulator, faults)
    link: LinkConfig = Field(
        default_factory=LinkConfig,
        description="serial links of the boards: watchdog, pacing, fault injection "
        "(docs/protocol-serial.md, Link behaviour)",
    )

    # sensor and process faults (the fault matrix)
    faults: RigFaults = Field(
        default_factory=RigFaults,
        description="motion capture / camera loss, black frames, the rig outliving its parent",
    )

    # each device's own clock (docs/clocks.md)
    clocks: RigClocks = Field(
        default_factory=RigClocks,
        description="offset and drift of each device domain's clock (hand, trigger, mocap, "
        "cameras) against the host's",
    )

    # processes
    ready_timeout_s: float = Field(default=20.0, gt=0, description="start-up handshake deadline")

    @property
    def period_ns(self) -> int:
        return round(1e9 / self.rate_hz)

    def world_params(self) -> WorldParams:
        return WorldParams(
            timestep=self.timestep_s,
            camera_distance=self.camera_distance_m,
            camera_fovy=self.camera_fovy_deg,
            init_pos_noise=self.init_pos_noise_m,
            motor_ambient_c=self.motor_ambient_c,
            motor_heating_c=self.motor_heating_c,
            motor_tau_s=self.motor_tau_s,
        )
