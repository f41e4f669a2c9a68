"""The `[metrics]` section of the cell configuration."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MetricsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=False, description="write the metrics board and serve it")
    host: str = Field(default="127.0.0.1", description="address the exporter listens on")
    port: int = Field(default=9180, ge=0, le=65535, description="exporter port; 0: any free one")
    thumbnail_px: int = Field(default=96, ge=8, le=640, description="longest thumbnail side")
    slow_hz: float = Field(
        default=2.0,
        gt=0,
        le=100,
        description="refresh rate of thumbnails, device stats and the goal on the board",
    )
    robot: str = Field(default="", description="robot name shown on the dashboard")
    start_timeout_s: float = Field(default=20.0, gt=0, description="wait for the exporter")
