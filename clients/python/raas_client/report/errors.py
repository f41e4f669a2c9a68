"""What can go wrong with a recording file, named by what went wrong."""

from __future__ import annotations


class RecordingError(Exception):
    """Base of the recording errors."""


class RecordingUnreadable(RecordingError):  # noqa: N818 (named by what went wrong)
    """The file is not an MCAP recording at all (missing, empty, wrong magic)."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path}: not a readable raas recording: {why}")
        self.path = path
        self.why = why
