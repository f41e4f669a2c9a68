"""Errors of policy bundles and their runner, named by what went wrong.

Every error raised while loading a bundle is a BundleError whose `field` names the manifest
field (or ONNX input/output) that is wrong, so a researcher sees what to fix."""

from __future__ import annotations

from raas.errors import RaasError


class BundleError(RaasError):
    """A policy bundle cannot be used; `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message


class BundleNotFoundError(BundleError):
    """The bundle path does not exist or holds no model/manifest."""


class BundleArchiveError(BundleError):
    """A .zip/.tar bundle cannot be read or holds unsafe paths."""


class ManifestError(BundleError):
    """The manifest is not valid TOML/JSON or does not match the manifest schema."""


class ModelLoadError(BundleError):
    """onnxruntime could not load an ONNX model of the bundle."""


class ModelMismatchError(BundleError):
    """The ONNX model's inputs/outputs (names, shapes, dtypes) disagree with the manifest."""


class CellMismatchError(BundleError):
    """The manifest asks for something the cell does not have (actuator, camera, resolution,
    control period)."""


class OverBudgetError(BundleError):
    """The bundle's measured inference latency (p99) exceeds the inference budget."""

    def __init__(self, field: str, message: str, p99_ms: float, budget_ms: float) -> None:
        super().__init__(field, message)
        self.p99_ms = p99_ms
        self.budget_ms = budget_ms
