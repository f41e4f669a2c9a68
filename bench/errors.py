"""Errors of the benchmark tooling."""

from __future__ import annotations


class NotMeasuredError(Exception):
    """A target's figure has no value in its report (missing, empty sample, not a number)."""
