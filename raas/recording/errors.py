"""What can go wrong while recording or replaying, named by what went wrong."""

from __future__ import annotations

from raas.errors import RaasError


class RecordingError(RaasError):
    """Base of the recording errors."""


class RecorderDidNotStart(RecordingError):  # noqa: N818
    """The recorder process did not come up (or died before it answered)."""


class RecordingDirectoryUnusable(RecordingError):  # noqa: N818
    """The recording directory cannot be created or written."""


class ReplayMismatchedBundle(RecordingError):  # noqa: N818
    """The bundle does not fit the recording (e.g. a different number of actuators)."""


class ReplayNothingToReplay(RecordingError):  # noqa: N818
    """The recording holds no cycles."""
