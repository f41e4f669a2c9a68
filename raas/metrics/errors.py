"""Errors of the metrics board and its exporter, named by what went wrong."""

from __future__ import annotations

from raas.errors import RaasError


class MetricsError(RaasError):
    """Base class of every metrics error."""


class BoardNotFound(MetricsError):  # noqa: N818 - names the missing thing
    """No metrics board at the given path (the cell is not running, or metrics are off)."""


class BoardFormatError(MetricsError):
    """The file is not a metrics board of this version (wrong magic, size or layout)."""


class ExporterStartError(MetricsError):
    """The exporter process did not come up (port taken, crashed, or timed out)."""
