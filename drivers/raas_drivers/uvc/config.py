"""Settings of the UVC/V4L2 webcam driver, as a cell file gives them:

    [cameras.top]
    driver = "uvc"
    device = "/dev/v4l/by-id/usb-Logitech_C920_1234-video-index0"
    width = 640
    height = 480
    fps = 30
    fourcc = "MJPG"

Unknown keys are refused with their name.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class UvcSettings(BaseModel):
    """A free-running webcam.

    device:     the V4L2 device (/dev/videoN, or better its stable /dev/v4l/by-id/... link); with
                backend "any", any source OpenCV opens (a video file, a GStreamer pipeline)
    backend:    "v4l2" (cv2.CAP_V4L2, the default on Linux) or "any" (OpenCV chooses)
    width, height, fps: asked of the camera (None: its default); the camera may choose the
                nearest mode it has, and the driver reports what it got
    fourcc:     the pixel format asked of the camera (MJPG lets most webcams reach 30 fps at 720p)
    open_timeout_s: how long configure waits for the first frame
    lost_after_s: no frame for this long while active -> DeviceLostError
    realtime_file: with a video file, deliver its frames at its own frame rate (as a camera would)
    """

    model_config = ConfigDict(extra="forbid")

    device: str
    backend: Literal["v4l2", "any"] = "v4l2"
    width: int | None = Field(default=None, gt=0)
    height: int | None = Field(default=None, gt=0)
    fps: float | None = Field(default=None, gt=0.0, le=1000.0)
    fourcc: str | None = Field(default=None, min_length=4, max_length=4)
    open_timeout_s: float = Field(default=5.0, gt=0.0)
    lost_after_s: float = Field(default=1.0, gt=0.0)
    realtime_file: bool = True
