"""A bundle that fails to load on the robot is refused with the loader's reason, naming files
inside the bundle, never the robot's own directories (where it unpacks uploads)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from raas_client.session import RemoteRobot

from tests.transport.harness import LeaseIssuer, start_daemon

pytestmark = [pytest.mark.system, pytest.mark.slow]


def test_a_broken_model_is_refused_without_the_robots_paths(
    tmp_path: Path, issuer: LeaseIssuer
) -> None:
    from raas.policy.examples import ensure_examples

    good = ensure_examples(tmp_path / "bundles", ["small"])["small"]
    bundle = tmp_path / "broken"
    shutil.copytree(good, bundle)
    model = bundle / "model.onnx"
    model.write_bytes(model.read_bytes()[:200])  # truncated, as a failed copy leaves it
    state = tmp_path / "state"
    robot = start_daemon(state, issuer, rate=12.5)
    c = RemoteRobot(robot.control, server_key=robot.key, lease=issuer.issue(), timeout_s=10)
    try:
        c.open("control")
        c.upload(bundle)
        c.run(episodes=1)
        failed: list[dict[str, object]] = []
        deadline = time.monotonic() + 120
        while not failed and time.monotonic() < deadline:
            c.heartbeat()
            failed = [e for e in c.events(0.2) if e["kind"] == "run_failed"]
        assert failed, "no run_failed"
        message = str(failed[0]["message"])
        assert "model.onnx" in message, message
        assert str(state) not in message and str(state.resolve()) not in message, message
        assert c.status()["mode"] == "hold"
    finally:
        c.close()
        robot.stop()
