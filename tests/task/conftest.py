"""A small torch-exported bundle, loaded once, for the task tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from raas.policy import examples


@pytest.fixture(scope="session")
def small_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return examples.make_small(tmp_path_factory.mktemp("task-bundles") / "small")
