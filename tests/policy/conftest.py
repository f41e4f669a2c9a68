"""Bundles for the policy tests, built once per session with the tools a researcher uses
(torch.onnx.export via raas.policy.examples) or, for deliberately broken models, onnx.helper."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_bundles import dense_model, write_manifest

from raas.policy import examples


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return examples.make_small(tmp_path_factory.mktemp("bundles") / "small")


@pytest.fixture(scope="session")
def dense_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("dense") / "dense"
    d.mkdir()
    dense_model(d / "model.onnx", 22, 20)
    write_manifest(d)
    return d


@pytest.fixture(scope="session")
def nan_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("nan") / "nan"
    d.mkdir()
    dense_model(d / "model.onnx", 22, 20, bias=float("nan"))
    write_manifest(d)
    return d
