"""The policy server's pieces a researcher configures: the simulated latency (seeded, stalls) and
`module:fn` loading, with errors naming what is wrong. (Serving over sockets:
tests/transport/test_policy_serve.py.)"""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest
from raas_client.cli import main
from raas_client.policy_server import SimulatedLatency, load_or_create_keypair, load_policy


def test_latency_is_drawn_from_the_distribution_and_seeded() -> None:
    lat = SimulatedLatency(150, 50, seed=3)
    draws = np.array([lat.draw_s() for _ in range(5000)]) * 1000
    assert 145 < draws.mean() < 155 and 45 < draws.std() < 55
    assert (draws >= 0).all()
    again = SimulatedLatency(150, 50, seed=3)
    assert [again.draw_s() for _ in range(5)] == pytest.approx(list(draws[:5] / 1000))


def test_stalls_come_with_their_probability() -> None:
    lat = SimulatedLatency(10, 0, stall_prob=0.1, stall_ms=900, seed=1)
    draws = [lat.draw_s() for _ in range(5000)]
    stalls = sum(1 for d in draws if d == pytest.approx(0.9))
    assert 400 < stalls < 600
    assert SimulatedLatency(10, stall_prob=1.0, stall_ms=250).draw_s() == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"mean_ms": -1}, "latency"), ({"mean_ms": 1, "stall_prob": 2}, "stall_prob")],
)
def test_bad_latency_settings_are_named(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SimulatedLatency(**kwargs)  # type: ignore[arg-type]


def test_load_policy_finds_a_function_and_names_a_bad_spec() -> None:
    assert load_policy("numpy:zeros") is np.zeros  # type: ignore[comparison-overlap]
    with pytest.raises(ValueError, match="module:function"):
        load_policy("numpy.zeros")
    with pytest.raises(ValueError, match="not a function"):
        load_policy("numpy:pi")


def test_serve_policy_cli_refuses_a_bad_policy_and_bad_latency(
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ["serve-policy", "--robot", "tcp://127.0.0.1:1", "--lease", "x"]
    assert main([*base, "nope"]) == 1
    assert "module:function" in capsys.readouterr().err
    assert main([*base, "numpy:zeros", "--simulate-latency", "fast"]) == 1
    assert "--simulate-latency" in capsys.readouterr().err


def test_a_bound_servers_keypair_survives_restarts(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    public, secret = load_or_create_keypair(keys)
    assert len(public) == 40 and len(secret) == 40
    assert load_or_create_keypair(keys) == (public, secret)  # the same key after a restart
    assert stat.S_IMODE((keys / "server.secret").stat().st_mode) == 0o600
    (keys / "server.public").write_bytes(b"0" * 40)
    with pytest.raises(ValueError, match="does not belong"):
        load_or_create_keypair(keys)
    (keys / "server.secret").write_bytes(b"~" * 40)
    with pytest.raises(ValueError, match="not a Curve secret key"):
        load_or_create_keypair(keys)


def test_a_bound_server_admits_each_robot_key_it_was_given() -> None:
    """`--robot-key` more than once: any of those robots may dial (a job may run on any robot
    that qualifies); another robot is refused in the handshake and counted. Real sockets."""
    import zmq
    from raas_client.cli import build_parser
    from raas_client.policy_server import PolicyListener

    robots = [zmq.curve_keypair() for _ in range(3)]
    admitted = [pub.decode("ascii") for pub, _ in robots[:2]]
    args = build_parser().parse_args(
        ["serve-policy", "m:f", "--bind", "tcp://127.0.0.1:*"]
        + [x for k in admitted for x in ("--robot-key", k)]
    )
    assert args.robot_key == admitted
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    dealers = []
    with PolicyListener("tcp://127.0.0.1:*", admitted) as listener:
        try:
            for i, (pub, sec) in enumerate(robots):
                d = ctx.socket(zmq.DEALER)
                d.linger = 0
                d.curve_publickey, d.curve_secretkey = pub, sec
                d.curve_serverkey = listener.public_key
                d.connect(listener.endpoint)
                d.send(b"robot %d" % i)
                dealers.append(d)
            got = set()
            while listener.sock.poll(3000):
                got.add(listener.sock.recv())
            assert got == {b"robot 0", b"robot 1"}  # the third never got in
            assert listener.pin.refused >= 1
        finally:
            for d in dealers:
                d.close(0)
            ctx.term()
    with pytest.raises(ValueError, match="robot_key"):
        PolicyListener("tcp://127.0.0.1:*", [admitted[0], "short"])
