"""E-stop: anyone with a lease for this robot (observers too, and staff, whose leases on others'
bookings are observe leases) may stop it; it latches until the controller clears it."""

from __future__ import annotations

import numpy as np
import pytest
from raas_client.errors import RemoteError
from raas_client.session import RemoteRobot

from tests.transport.harness import LeaseIssuer, RobotDaemon

pytestmark = pytest.mark.system


def test_observer_estop_latches_and_controller_clears(
    daemon: RobotDaemon, issuer: LeaseIssuer
) -> None:
    ctl = RemoteRobot(daemon.control, server_key=daemon.key, lease=issuer.issue())
    staff = RemoteRobot(
        daemon.control, server_key=daemon.key, lease=issuer.issue(scope="observe", sub="staff")
    )
    try:
        ctl.open("control")
        ctl.arm()
        obs = ctl.observation()
        staff.open("observe")
        assert staff.estop()["mode"] == "estop"
        events = [e["kind"] for e in ctl.events(timeout_s=0.2)]  # < liveness
        assert "estop" in events
        st = ctl.status()
        assert st["mode"] == "estop"
        with pytest.raises(RemoteError) as err:
            ctl.arm()
        assert err.value.code == "estopped"
        with pytest.raises(RemoteError) as err:
            staff.clear_estop()  # an observer cannot release it
        assert err.value.code == "not_controller"
        assert ctl.clear_estop()["mode"] == "hold"
        ctl.arm()
        obs = ctl.observation()
        ctl.act(obs.cycle, np.array(ctl.info["spaces"]["action"]["idle"]))
        assert ctl.observation(after=obs.cycle).report is not None
    finally:
        ctl.close()
        staff.close()


def test_estop_without_a_session_needs_a_lease_for_this_robot(
    daemon: RobotDaemon, issuer: LeaseIssuer
) -> None:
    passer = RemoteRobot(daemon.control, server_key=daemon.key)
    ctl = RemoteRobot(daemon.control, server_key=daemon.key, lease=issuer.issue())
    try:
        with pytest.raises(RemoteError) as err:
            passer.estop(lease=issuer.issue(robot="shadow-2", scope="observe"))
        assert err.value.code == "lease_wrong_robot"
        assert passer.estop(lease=issuer.issue(scope="observe", sub="passer"))["mode"] == "estop"
        ctl.open("control")
        assert ctl.clear_estop()["mode"] == "hold"
    finally:
        passer.close()
        ctl.close()
