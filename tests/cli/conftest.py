from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def raasd(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real `raasd` entry point in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "raas.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=dict(os.environ),
        check=False,
    )


@pytest.fixture
def run_raasd():  # type: ignore[no-untyped-def]
    return raasd
