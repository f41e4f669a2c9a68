"""Shared test plumbing.

`require(component, available, why)` is the one way a test may skip for a missing component
(PostgreSQL, Chromium, an offscreen GL). Under RAAS_REQUIRE_ALL=1 (CI) it fails instead:
in CI a missing component is a broken set-up, never a reason to skip.
"""

from __future__ import annotations

import os

import pytest


def require_all() -> bool:
    return os.environ.get("RAAS_REQUIRE_ALL", "") not in ("", "0", "false", "no")


def require(component: str, available: bool, why: str = "") -> None:
    """Skip (locally) or fail (RAAS_REQUIRE_ALL=1) when `component` is not available."""
    if available:
        return
    message = f"{component} is not available" + (f": {why}" if why else "")
    if require_all():
        pytest.fail(f"RAAS_REQUIRE_ALL=1 and {message}", pytrace=False)
    pytest.skip(message)
