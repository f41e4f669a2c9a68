"""A bundle run over the network warms its inference up before each trigger, as a local
`raasd run` does (`[loop] prepare`), and while the loop waits for the devices (`[loop]
warm_during_collect`): the run's summary counts both kinds of warm-up."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from raas_client.session import RemoteRobot

from tests.transport.harness import LeaseIssuer, start_daemon, wait_for

pytestmark = [pytest.mark.system, pytest.mark.slow]


def test_a_remote_bundle_run_is_warmed_up_before_each_trigger(
    tmp_path: Path, issuer: LeaseIssuer
) -> None:
    from raas.policy.examples import ensure_examples

    bundle = ensure_examples(tmp_path / "bundles", ["small"])["small"]
    d = start_daemon(tmp_path / "robot", issuer, rate=12.5, clock="realtime")
    ctl = RemoteRobot(d.control, server_key=d.key, lease=issuer.issue())
    try:
        ctl.open("control")
        ctl.upload(bundle)
        ctl.run(episodes=50)
        assert wait_for(lambda: "run_started" in [e["kind"] for e in ctl.events(0.05)], 120.0)
        end = time.monotonic() + 3.0  # ~37 cycles at 12.5 Hz; the session kept alive
        while time.monotonic() < end:
            ctl.heartbeat()
            list(ctl.events(0.3))
        summary = ctl.stop()["summary"]
        policy = summary["policy"]
        assert policy["warmup_runs"] >= 1
        # one prepare() per cycle that ran inference, give or take the cycle the run stopped in
        assert policy["warmups"] >= 20, policy
        assert abs(policy["warmups"] - policy["cycles"]) <= 3, policy
        # and again while the loop waited for the devices, on the loop's helper thread (at
        # SCHED_IDLE: on a busy machine it may get few turns, but some in 3 s)
        assert policy["background_warmups"] >= 1, policy
    finally:
        ctl.close()
        d.stop()
