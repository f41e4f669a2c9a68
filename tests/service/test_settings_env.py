"""Settings an operator sets through the environment (docs/service.md, Settings)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from raas.service.settings import Settings


def test_job_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RAAS_JOB_CLAIM_TIMEOUT_S", "3.5")
    monkeypatch.setenv("RAAS_BLOB_DIR", str(tmp_path / "blobs"))
    s = Settings.from_env()
    assert s.job_claim_timeout_s == 3.5
    assert s.blobs == tmp_path / "blobs"


def test_a_bad_claim_timeout_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAAS_JOB_CLAIM_TIMEOUT_S", "-1")
    with pytest.raises(ValidationError, match="job_claim_timeout_s"):
        Settings.from_env()
