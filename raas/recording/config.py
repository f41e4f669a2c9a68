"""The `[recording]` section of the cell configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RecordingConfig(BaseModel):
    """Record every cycle (and the camera frames) to one MCAP file per session."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=False, description="start the recorder with the cell")
    directory: Path = Field(
        default=Path("var/recordings"), description="where <session_id>.mcap files go"
    )
    cameras: bool = Field(default=True, description="record camera frames")
    camera_format: Literal["jpeg", "png"] = Field(
        default="jpeg",
        description="jpeg: small, lossy; png: lossless (exact replay of a vision policy), slower",
    )
    jpeg_quality: int = Field(default=85, ge=1, le=95)
    chunk_kib: int = Field(
        default=256,
        ge=16,
        le=65536,
        description="MCAP chunk size (uncompressed); a killed recorder loses at most one chunk",
    )
    flush_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="close and write the open chunk at least this often, however small",
    )
    max_bytes: int | None = Field(
        default=None,
        ge=4096,
        description="stop the recording (as on a full disk) when the file would grow past this",
    )
    queue_cycles: int = Field(
        default=20_000,
        ge=16,
        description="cycles the loop may run ahead of the recorder before cycles are dropped",
    )
    queue_frames: int = Field(
        default=32, ge=2, description="camera frames in flight before frames are dropped"
    )
