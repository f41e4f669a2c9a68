"""CurveZMQ on tcp by default: the server keypair is made once and reused; a client without
the right server key gets nothing; plain tcp only when configured."""

from __future__ import annotations

from pathlib import Path

import pytest
from raas_client.errors import ConfigurationError, RobotTimeoutError
from raas_client.session import RemoteRobot
from raas_client.wire import PROTOCOL_VERSION

from tests.transport.harness import LeaseIssuer, RobotDaemon, start_daemon

pytestmark = pytest.mark.system


def test_wrong_or_missing_server_key_gets_no_answer(daemon: RobotDaemon) -> None:
    assert daemon.server_key is not None and len(daemon.server_key) == 40
    with pytest.raises(ConfigurationError):
        RemoteRobot(daemon.control, server_key="")
    other = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"  # the ZeroMQ test-vector public key
    for key in (other, "plain"):
        robot = RemoteRobot(daemon.control, server_key=key, timeout_s=1.0)
        with pytest.raises(RobotTimeoutError):
            robot.hello()
        robot.close()
    good = RemoteRobot(daemon.control, server_key=daemon.key)
    assert good.hello()["robot"] == "shadow-1"
    good.close()


def test_keypair_is_kept_and_plain_is_explicit(tmp_path: Path, issuer: LeaseIssuer) -> None:
    first = start_daemon(tmp_path / "r", issuer)
    first.stop()
    again = start_daemon(tmp_path / "r", issuer)
    again.stop()
    assert first.server_key == again.server_key
    assert (tmp_path / "r" / "transport" / "server.secret").stat().st_mode & 0o077 == 0
    plain = start_daemon(tmp_path / "p", issuer, plain=True)
    try:
        assert plain.server_key is None
        robot = RemoteRobot(plain.control, server_key="plain")
        assert robot.hello()["protocol"] == PROTOCOL_VERSION
        robot.close()
    finally:
        plain.stop()
