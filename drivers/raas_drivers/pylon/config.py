"""Settings of the Basler (pylon) camera driver and of its software trigger, as a cell file
gives them:

    [cameras.left]
    driver = "pylon"
    serial_number = "40123456"
    trigger_source = "Line1"
    exposure_us = 4000
    pixel_format = "BayerRG8"
    width = 640
    height = 480

Every model forbids unknown keys, so a typo is refused with its name.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: GenICam trigger sources a Basler camera's FrameStart trigger can take (SFNC names).
TriggerSourceName = Literal["Line1", "Line2", "Line3", "Line4", "Software"]
TriggerActivationName = Literal["RisingEdge", "FallingEdge"]


class PylonCameraSettings(BaseModel):
    """One Basler camera (one `[cameras.NAME]` section).

    serial_number:    the camera's serial number (sticker, `raasd devices`); or
    user_id:          the DeviceUserID written into the camera (pylon Viewer), instead of the serial
    emulated:         open pylon's camera emulation (PYLON_CAMEMU) instead of a real camera; the
                      emulated cameras' serial numbers are 0815-0000, 0815-0001, ...
    trigger_source:   the input that starts each exposure: Line1 (the opto-isolated input, wired to
                      the trigger board) or Software (the `pylon-software` trigger driver)
    trigger_activation: the edge of the trigger pulse that starts the exposure
    trigger_delay_us: delay from the edge to the exposure start, in the camera
    exposure_us:      exposure time in microseconds
    gain_db:          analog gain in dB (None: leave the camera's setting)
    pixel_format:     the camera's PixelFormat (Mono8, RGB8, BGR8, BayerRG8, ...); frames are
                      converted to RGB8 for the loop
    width, height:    region of interest in pixels (None: the camera's maximum)
    offset_x, offset_y: the ROI's top-left corner
    buffers:          grab buffers pylon queues (MaxNumBuffer)
    open_timeout_s:   how long configure waits for the camera to appear and open
    stale_after_s:    how long without a frame while triggered before poll() checks that the camera
                      is still attached and grabbing (a removed camera -> DeviceLostError)
    clock_sync_interval_s: how often the camera's timestamp counter is latched against the host
                      clock (0: never; frames are then stamped on arrival)
    """

    model_config = ConfigDict(extra="forbid")

    serial_number: str | None = None
    user_id: str | None = None
    emulated: bool = False
    trigger_source: TriggerSourceName = "Line1"
    trigger_activation: TriggerActivationName = "RisingEdge"
    trigger_delay_us: float = Field(default=0.0, ge=0.0)
    exposure_us: float = Field(default=5000.0, gt=0.0, le=1_000_000.0)
    gain_db: float | None = Field(default=None, ge=0.0, le=48.0)
    pixel_format: str = "RGB8"
    width: int | None = Field(default=None, gt=0)
    height: int | None = Field(default=None, gt=0)
    offset_x: int = Field(default=0, ge=0)
    offset_y: int = Field(default=0, ge=0)
    buffers: int = Field(default=8, ge=2, le=256)
    open_timeout_s: float = Field(default=5.0, gt=0.0)
    stale_after_s: float = Field(default=1.0, gt=0.0)
    clock_sync_interval_s: float = Field(default=1.0, ge=0.0)

    @model_validator(mode="after")
    def _one_identity(self) -> PylonCameraSettings:
        if (self.serial_number is None) == (self.user_id is None):
            raise ValueError("give exactly one of serial_number or user_id")
        if self.emulated and self.serial_number is None:
            raise ValueError("an emulated camera is chosen by serial_number (0815-0000, ...)")
        return self


class PylonSoftwareTriggerSettings(BaseModel):
    """The `pylon-software` trigger: fire(k) executes TriggerSoftware on every pylon camera of the
    cell whose trigger_source is Software (for emulated cameras, or a bench without a board).

    wait_ready_ms: how long fire() may wait for a camera to be ready for the next trigger
                   (WaitForFrameTriggerReady; a camera still not ready skips the trigger,
                   counted as trigger_not_ready); 0 (default) fires without asking, since
                   asking costs about 1 ms; a trigger the camera was not ready for is then
                   dropped by the camera and its cycle counted as missing_cycles
    """

    model_config = ConfigDict(extra="forbid")

    wait_ready_ms: int = Field(default=0, ge=0, le=1000)
