"""The `[transport]` section: where the robot listens and how it guards its sessions."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from raas.task.config import TaskConfig
from raas.transport.directory_entry import advertised
from raas.transport.errors import EndpointError


class RevocationFeed(BaseModel):
    """The reservation service's revocation feed (raas.leases.follow); unset: no feed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service_url: str = Field(description="base URL of the reservation service")
    robot_id: int = Field(description="the robot's id in the service")
    token_env: str = Field(
        default="RAAS_ROBOT_TOKEN", description="environment variable holding the daemon token"
    )
    wait_s: float = Field(default=25.0, gt=0, le=60, description="long-poll wait")


class TransportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    robot: str = Field(default="shadow-1", description="the robot's name (leases must name it)")
    control_endpoint: str = Field(
        default="tcp://127.0.0.1:5555", description="ROUTER control socket (bind address)"
    )
    stream_endpoint: str = Field(
        default="tcp://127.0.0.1:5556", description="PUB observation stream (bind address)"
    )
    advertise: str | None = Field(
        default=None,
        description="the address clients reach this robot at, registered in the service's "
        "robot directory instead of the bind address: a host (the bound ports are kept) or "
        "tcp://HOST:PORT (the control port, e.g. behind a port mapping; the stream keeps its "
        "port); needed when binding 0.0.0.0",
    )
    plain: bool = Field(
        default=False,
        description="tcp without CurveZMQ; only when explicitly wanted (ipc is always plain)",
    )
    key_dir: Path = Field(
        default=Path("var/transport"), description="server Curve keypair, made on first start"
    )
    lease_public_key: Path | None = Field(
        default=None, description="PEM of the Ed25519 key leases verify with; None: refuse all"
    )
    action_wait_ms: float | None = Field(
        default=None,
        gt=0,
        description="remote step: wait this long in decide for the action (default 80%% of "
        "the decide budget); later actions are not applied",
    )
    lockstep_action_timeout_s: float = Field(
        default=5.0, gt=0, description="lockstep rig: wall-time wait for a remote action"
    )
    liveness_timeout_s: float = Field(
        default=1.0, gt=0, description="no message from the controller for this long -> hold"
    )
    max_messages_per_cycle: int = Field(default=16, ge=1, le=10_000)
    max_upload_bytes: int = Field(default=256 * 1024 * 1024, ge=1)
    max_chunk_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="largest upload or fetch chunk (bytes)"
    )
    max_frame_bytes: int = Field(
        default=64 * 1024 * 1024,
        description="largest frame the control socket takes (ZMQ_MAXMSGSIZE): a bigger one "
        "drops the sender's connection in ZeroMQ's I/O thread; at least max_chunk_bytes + 64 KiB",
    )
    upload_dir: Path = Field(default=Path("var/uploads"))
    recordings_dir: Path = Field(default=Path("var/recordings"))
    wear_dir: Path = Field(
        default=Path("var/wear"), description="wear counters, one JSON file per robot"
    )
    image_every: int = Field(
        default=1, ge=0, description="stream camera images every N cycles (0: never)"
    )
    revocations: RevocationFeed | None = None

    @field_validator("advertise")
    @classmethod
    def _advertise_is_a_host(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:  # the same rules as at start-up, on a sample tcp bind
            advertised("tcp://0.0.0.0:1", value, control=True)
        except EndpointError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _frame_fits_a_chunk(self) -> TransportConfig:
        least = self.max_chunk_bytes + 64 * 1024
        if self.max_frame_bytes < least:
            raise ValueError(
                f"max_frame_bytes ({self.max_frame_bytes}) must be at least max_chunk_bytes "
                f"+ 64 KiB ({least}): an upload chunk must fit in a frame"
            )
        return self

    task: TaskConfig = Field(
        default_factory=TaskConfig,
        description="the task bundle runs, remote steppers (their observations carry `task`) "
        "and policy servers are judged on: block reorientation, raas/task/reorientation.py",
    )
