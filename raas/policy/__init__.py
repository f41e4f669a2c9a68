"""Researchers' ONNX policies inside the control loop: bundles, validation, the runner.

runner = load_bundle(Path("my-bundle"), period_s=0.08)   # validated, warmed up, timed
controller = PolicyController(runner)                    # a raas.core Controller
"""

from __future__ import annotations

from raas.policy.cell import CellSpec
from raas.policy.controller import PolicyController
from raas.policy.errors import BundleError
from raas.policy.manifest import BundleManifest, manifest_schema
from raas.policy.runner import PolicyRunner, load_bundle
from raas.policy.session import RuntimeOptions

__all__ = [
    "BundleError",
    "BundleManifest",
    "CellSpec",
    "PolicyController",
    "PolicyRunner",
    "RuntimeOptions",
    "load_bundle",
    "manifest_schema",
]
