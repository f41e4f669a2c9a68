"""The reorientation task's settings (pure data: the transport's config section imports it
without loading the policy runtime)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TaskConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    success_threshold_rad: float = Field(default=0.4, gt=0, le=math.pi)
    hold_cycles: int = Field(default=1, ge=1, description="cycles the error must stay under it")
    max_successes: int = Field(default=50, ge=1, description="an episode ends after this many")
    goal_timeout_s: float = Field(
        default=80.0, gt=0, description="a goal not reached within this ends the episode"
    )
    drop_height_m: float = Field(
        default=0.1, description="block centre below this height (world z) = dropped"
    )
    goal_mode: Literal["xyz", "z"] = Field(
        default="xyz",
        description="xyz: uniformly random orientations; z: the current goal turned about the "
        "vertical axis by a random angle",
    )
    success_reward: float = Field(
        default=5.0, description="remote stepping: reward for a success (Dactyl's +5)"
    )
    drop_reward: float = Field(
        default=-20.0, description="remote stepping: reward for a drop (Dactyl's -20)"
    )
