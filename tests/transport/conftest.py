"""Shared fixtures: a temp lease issuer and a `raasd robot --sim` daemon (lockstep, tcp+Curve)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.transport.harness import LeaseIssuer, RobotDaemon, start_daemon


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> LeaseIssuer:
    return LeaseIssuer.create(tmp_path_factory.mktemp("lease"))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, issuer: LeaseIssuer) -> Iterator[RobotDaemon]:
    """One lockstep robot on loopback tcp with CurveZMQ, shared by a test module."""
    d = start_daemon(Path(tmp_path_factory.mktemp("robot")), issuer)
    yield d
    d.stop()
