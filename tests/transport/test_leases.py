"""Every lease that must not control the robot is refused, with the code that names why; one
controller at a time, any number of observers."""

from __future__ import annotations

import contextlib
import time

import pytest
from raas_client.errors import RemoteError
from raas_client.session import RemoteRobot

from raas.leases import generate_private_key
from tests.transport.harness import LeaseIssuer, RobotDaemon

pytestmark = pytest.mark.system


def _open(daemon: RobotDaemon, token: str, role: str = "control") -> RemoteRobot:
    robot = RemoteRobot(daemon.control, server_key=daemon.key, lease=token)
    robot.open(role)
    return robot


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("expired", "lease_expired"),
        ("not_yet_valid", "lease_not_yet_valid"),
        ("other_robot", "lease_wrong_robot"),
        ("wrongly_signed", "lease_signature_invalid"),
        ("observe_only", "lease_wrong_scope"),
        ("garbage", "lease_malformed"),
    ],
)
def test_bad_leases_are_refused_for_control(
    daemon: RobotDaemon, issuer: LeaseIssuer, kind: str, code: str
) -> None:
    now = time.time()
    token = {
        "expired": lambda: issuer.issue(nbf=now - 3600, exp=now - 60),
        "not_yet_valid": lambda: issuer.issue(nbf=now + 600, exp=now + 3600),
        "other_robot": lambda: issuer.issue(robot="shadow-2"),
        "wrongly_signed": lambda: issuer.issue(key=generate_private_key()),
        "observe_only": lambda: issuer.issue(scope="observe"),
        "garbage": lambda: "not.a.jwt",
    }[kind]()
    robot = RemoteRobot(daemon.control, server_key=daemon.key, lease=token)
    try:
        with pytest.raises(RemoteError) as err:
            robot.open("control")
        assert err.value.code == code
        # Refused means no session: control commands are refused too.
        with pytest.raises(RemoteError) as err2:
            robot.arm()
        assert err2.value.code == "no_session"
        assert robot.status()["controlled"] is False
    finally:
        robot.close()


def test_one_controller_many_observers(daemon: RobotDaemon, issuer: LeaseIssuer) -> None:
    first = _open(daemon, issuer.issue(sub="alice"))
    observers = [
        _open(daemon, issuer.issue(scope="observe", sub=f"o{i}"), "observe") for i in range(3)
    ]
    second = RemoteRobot(daemon.control, server_key=daemon.key, lease=issuer.issue(sub="bob"))
    try:
        with pytest.raises(RemoteError) as err:
            second.open("control")
        assert err.value.code == "controller_busy"
        st = first.status()
        assert st["controlled"] is True and st["controller"] == "alice"
        assert st["observers"] == 3
        # An observer may not drive.
        with pytest.raises(RemoteError) as err:
            observers[0].arm()
        assert err.value.code == "not_controller"
        # Once the controller leaves, the next one gets the robot.
        first.close()
        second.open("control")
        assert second.status()["controller"] == "bob"
    finally:
        for r in (first, second, *observers):
            r.close()


def test_lease_end_closes_the_session_and_holds(daemon: RobotDaemon, issuer: LeaseIssuer) -> None:
    # JWT times are whole seconds: a lease that ends 2 s from now.
    robot = _open(daemon, issuer.issue(exp=int(time.time()) + 2))
    try:
        robot.arm()
        obs = robot.observation()
        deadline = time.monotonic() + 10
        reason = None
        while time.monotonic() < deadline and reason is None:
            robot.act(obs.cycle, obs["hand_pos"][:20] * 0)
            with contextlib.suppress(Exception):
                obs = robot.observation(after=obs.cycle, timeout_s=1.0)
            reason = robot.closed_reason
        assert reason == "lease_expired"
        st = robot.status()
        assert st["mode"] == "hold" and st["controlled"] is False
    finally:
        robot.close()
