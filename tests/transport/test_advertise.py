"""The advertised address: a daemon bound to every interface (0.0.0.0) registers the address
clients reach it at (`raasd robot --advertise HOST|tcp://HOST:PORT`) in the service's robot
directory, never tcp://0.0.0.0:PORT."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from raas.service.models import Role
from raas.transport.config import TransportConfig
from raas.transport.directory_entry import advertised, unreachable
from raas.transport.errors import EndpointError
from tests.service.harness import ServerProcess, seed, settings_for
from tests.transport.harness import LeaseIssuer, start_daemon, wait_for


def test_a_host_keeps_the_bound_ports() -> None:
    assert advertised("tcp://0.0.0.0:5555", "hand1.lab", control=True) == "tcp://hand1.lab:5555"
    assert advertised("tcp://0.0.0.0:5556", "10.0.0.7", control=False) == "tcp://10.0.0.7:5556"
    assert advertised("tcp://[::]:5555", "tcp://hand1.lab", control=True) == "tcp://hand1.lab:5555"


def test_an_endpoint_sets_the_control_port_and_the_stream_keeps_its_own() -> None:
    assert (
        advertised("tcp://0.0.0.0:5555", "tcp://gw.lab:7000", control=True) == "tcp://gw.lab:7000"
    )
    assert (
        advertised("tcp://0.0.0.0:5556", "tcp://gw.lab:7000", control=False) == "tcp://gw.lab:5556"
    )


def test_without_advertise_the_bound_endpoint_is_registered() -> None:
    assert advertised("tcp://127.0.0.1:5555", None, control=True) == "tcp://127.0.0.1:5555"
    assert unreachable("tcp://0.0.0.0:5555") and unreachable("tcp://[::]:5555")
    assert not unreachable("tcp://127.0.0.1:5555") and not unreachable("ipc:///tmp/c.sock")


@pytest.mark.parametrize("bad", ["0.0.0.0", "tcp://*:5555", "udp://h:1", "tcp://", "a/b"])
def test_a_wildcard_or_malformed_address_is_refused_naming_it(bad: str) -> None:
    with pytest.raises(ValidationError, match="advertise"):
        TransportConfig(advertise=bad)


def test_an_ipc_socket_has_nothing_to_advertise() -> None:
    with pytest.raises(EndpointError, match="not tcp"):
        advertised("ipc:///tmp/control.sock", "hand1.lab", control=True)


@pytest.mark.slow
@pytest.mark.system
def test_a_daemon_on_every_interface_registers_the_advertised_address(tmp_path: Path) -> None:
    settings = settings_for(f"sqlite:///{tmp_path / 'raas.db'}", tmp_path)
    seeded = seed(settings, users={"alice@lab": Role.researcher}, robots=("arm-1",))
    server = ServerProcess(settings, tmp_path / "server.log").start()
    try:
        token = seeded.robot_tokens["arm-1"]
        pem = httpx.get(
            f"{server.base_url}/robots/{seeded.robots['arm-1']}/lease-key",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).text
        (tmp_path / "lease.pem.pub").write_text(pem)
        issuer = LeaseIssuer(key=None, pub_path=tmp_path / "lease.pem.pub")  # type: ignore[arg-type]
        daemon = start_daemon(
            tmp_path / "robot",
            issuer,
            rate=12.5,
            extra=(
                "--robot",
                "arm-1",
                "--control",
                "tcp://0.0.0.0:*",
                "--stream",
                "tcp://0.0.0.0:*",
                "--advertise",
                "127.0.0.1",
                "--revocations",
                server.base_url,
                "--robot-id",
                str(seeded.robots["arm-1"]),
            ),
            env={"RAAS_ROBOT_TOKEN": token},
        )
        try:
            assert daemon.control.startswith("tcp://0.0.0.0:")  # bound to every interface
            port = daemon.control.rsplit(":", 1)[1]
            stream_port = daemon.stream.rsplit(":", 1)[1]

            def entry() -> dict[str, str]:
                r = httpx.get(
                    f"{server.base_url}/robots/by-name/arm-1",
                    headers=seeded.headers("alice@lab"),
                    timeout=10,
                )
                return dict(r.json())

            assert wait_for(lambda: entry()["control_endpoint"] != "", 30, 0.2), entry()
            got = entry()
            assert got["control_endpoint"] == f"tcp://127.0.0.1:{port}"
            assert got["stream_endpoint"] == f"tcp://127.0.0.1:{stream_port}"
            assert f"advertised as control tcp://127.0.0.1:{port}" in daemon.output()
            # the advertised address reaches the daemon
            with socket.create_connection(("127.0.0.1", int(port)), timeout=5):
                pass
        finally:
            daemon.stop()
    finally:
        server.stop()
