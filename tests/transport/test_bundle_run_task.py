"""A bundle run on a robot is judged on the robot's own task settings (`[transport.task]`), the
same ones remote stepping and policy servers are judged on: an evaluation job's score does not
depend on whether it named a bundle or a policy server. Real sockets, the lockstep rig."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from raas_client.session import RemoteRobot

from tests.transport.harness import LeaseIssuer, start_daemon, wait_for

pytestmark = [pytest.mark.system, pytest.mark.slow]

#: a threshold of pi: every judged cycle is a success; the episode ends at the 5th
MAX_SUCCESSES = 5


def test_a_bundle_run_is_judged_on_the_robots_task_settings(
    tmp_path: Path, issuer: LeaseIssuer
) -> None:
    from raas.policy.examples import ensure_examples

    bundle = ensure_examples(tmp_path / "bundles", ["small"])["small"]
    cell = tmp_path / "cell.toml"
    cell.write_text(
        f"[transport.task]\nsuccess_threshold_rad = 3.14159\nmax_successes = {MAX_SUCCESSES}\n"
    )
    d = start_daemon(tmp_path / "robot", issuer, rate=12.5, extra=("--config", str(cell)))
    ctl = RemoteRobot(d.control, server_key=d.key, lease=issuer.issue())
    done: list[dict[str, Any]] = []
    seen: list[str] = []
    try:
        ctl.open("control")
        ctl.upload(bundle)
        ctl.run(episodes=2, seed=3)

        def finished() -> bool:
            ctl.heartbeat()
            evs = list(ctl.events(0.1))
            seen.extend(f"{e['kind']}: {e.get('message', '')}" for e in evs)
            done.extend(e for e in evs if e["kind"] in ("run_done", "run_failed"))
            return bool(done)

        assert wait_for(finished, 120.0), (seen[-20:], ctl.status())
    finally:
        ctl.close()
        d.stop()
    assert done[0]["kind"] == "run_done", done[0]
    summary = done[0]["summary"]
    assert summary["protocol"]["max_successes"] == MAX_SUCCESSES
    assert summary["protocol"]["success_threshold_rad"] == pytest.approx(3.14159)
    assert summary["end_reasons"] == {"max_successes": 2}
    assert summary["successes"] == [MAX_SUCCESSES, MAX_SUCCESSES]
