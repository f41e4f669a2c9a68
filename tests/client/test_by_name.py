"""A robot by name, end to end: a real reservation service (`raasd serve`, SQLite) and a real
robot daemon (`raasd robot --sim` with its service link). The daemon registers its endpoints
and server key; `raas status NAME`, `raas run BUNDLE --robot NAME` and
`RemoteRobot.connect(NAME)` find it through the service with no key or lease pasted; each
refusal says what is wrong (unknown name, no booking now, service unreachable, robot offline).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from raas.service.models import Role
from tests.service.harness import Seeded, ServerProcess, free_port, seed, settings_for
from tests.transport.harness import ROOT, LeaseIssuer, RobotDaemon, start_daemon, wait_for

pytestmark = [pytest.mark.system, pytest.mark.slow]

ROBOT = "shadow-1"
USERS = {"staff@lab": Role.staff, "alice@lab": Role.researcher, "bob@lab": Role.researcher}


@dataclass
class Fleet:
    server: ServerProcess
    seeded: Seeded
    daemon: RobotDaemon
    reservation_id: int

    @property
    def url(self) -> str:
        return self.server.base_url

    def env(self, who: str = "alice@lab", url: str | None = None) -> dict[str, str]:
        out = {k: v for k, v in os.environ.items() if not k.startswith("RAAS_")}
        out.update(
            RAAS_SERVICE_URL=url or self.url,
            RAAS_TOKEN=self.seeded.token(who),
            RAAS_CONFIG=str(Path(os.devnull)),
        )
        return out

    def entry(self) -> dict[str, Any]:
        r = httpx.get(
            f"{self.url}/robots/by-name/{ROBOT}",
            headers=self.seeded.headers("alice@lab"),
            timeout=10,
        )
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = Path(tmp_path_factory.mktemp("fleet"))
    settings = settings_for(f"sqlite:///{tmp / 'raas.db'}", tmp)
    seeded = seed(settings, users=USERS, robots=(ROBOT,), unlimited=True)
    server = ServerProcess(settings, tmp / "server.log").start()
    robot_id, daemon_token = seeded.robots[ROBOT], seeded.robot_tokens[ROBOT]
    try:
        pem = httpx.get(
            f"{server.base_url}/robots/{robot_id}/lease-key",
            headers={"Authorization": f"Bearer {daemon_token}"},
            timeout=10,
        ).text
        (tmp / "lease.pem.pub").write_text(pem)
        issuer = LeaseIssuer(key=None, pub_path=tmp / "lease.pem.pub")  # type: ignore[arg-type]
        # alice's booking runs from the minute that has begun, for an hour
        start = datetime.now(UTC).replace(second=0, microsecond=0)
        r = httpx.post(
            f"{server.base_url}/reservations",
            json={
                "robot_id": robot_id,
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(hours=1)).isoformat(),
            },
            headers=seeded.headers("alice@lab"),
            timeout=10,
        )
        assert r.status_code == 201, r.text
        (tmp / "cell.toml").write_text(f'[recording]\nenabled = true\ndirectory = "{tmp}/rec"\n')
        daemon = start_daemon(
            tmp / "robot",
            issuer,
            rate=12.5,
            extra=(
                "--config",
                str(tmp / "cell.toml"),
                "--revocations",
                server.base_url,
                "--robot-id",
                str(robot_id),
            ),
            env={"RAAS_ROBOT_TOKEN": daemon_token},
        )
        try:
            yield Fleet(server, seeded, daemon, int(r.json()["id"]))
        finally:
            daemon.stop()
    finally:
        server.stop()


def raas(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raas_client.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
        check=False,
    )


def test_the_daemon_registers_itself(fleet: Fleet) -> None:
    assert wait_for(lambda: fleet.entry()["control_endpoint"] == fleet.daemon.control, 30, 0.2)
    got = fleet.entry()
    assert got["online"] is True
    assert got["stream_endpoint"] == fleet.daemon.stream
    assert got["server_public_key"] == fleet.daemon.server_key  # the daemon's Curve key
    assert got["hand_model"]
    assert {"key": "hand", "driver": "sim"} in got["devices"]
    assert {"observe", "remote_step", "run_bundle", "lockstep"} <= set(got["capabilities"])


def test_status_and_run_by_name(fleet: Fleet, tmp_path: Path) -> None:
    from raas_client.report import format as fmt
    from raas_client.report.reader import RecordingFile

    from raas.policy.examples import ensure_examples

    assert wait_for(lambda: fleet.entry()["control_endpoint"] == fleet.daemon.control, 30, 0.2)
    r = raas("status", ROBOT, env=fleet.env())
    assert r.returncode == 0, r.stderr
    assert f"{ROBOT}: hold, free" in r.stdout
    r = raas("watch", ROBOT, "--seconds", "2.5", env=fleet.env())
    assert r.returncode == 0, r.stderr
    assert "cycle" in r.stdout
    bundle = ensure_examples(tmp_path / "bundles", ["small"])["small"]
    r = raas(
        "run",
        str(bundle),
        "--robot",
        ROBOT,
        "--episodes",
        "1",
        "--out",
        str(tmp_path / "out"),
        env=fleet.env(),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "results: 1 episode(s)" in r.stdout
    fetched = list((tmp_path / "out").glob("*.mcap"))
    assert len(fetched) == 1
    session = RecordingFile(fetched[0]).scan_metadata()[fmt.META_SESSION]
    # the lease came from the service, for alice's booking running now
    assert session["robot"] == ROBOT and session["user"] == "alice@lab"
    assert session["reservation"] == str(fleet.reservation_id)


def test_remote_robot_connect_by_name(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    from raas_client.session import RemoteRobot

    assert wait_for(lambda: fleet.entry()["control_endpoint"] == fleet.daemon.control, 30, 0.2)
    for key, value in fleet.env().items():
        if key.startswith("RAAS_"):
            monkeypatch.setenv(key, value)
    with RemoteRobot.connect(ROBOT, timeout_s=20) as robot:
        assert robot.server_key == fleet.daemon.server_key
        assert robot.hello()["robot"] == ROBOT
        session = robot.open("control")
        assert session["session"]


def test_refusals_say_what_is_wrong(fleet: Fleet, tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    bundle.mkdir()
    r = raas("run", str(bundle), "--robot", "shadow-9", env=fleet.env())
    assert r.returncode != 0
    assert "no robot named 'shadow-9'; robots: shadow-1" in r.stderr + r.stdout
    r = raas("run", str(bundle), "--robot", ROBOT, env=fleet.env("bob@lab"))
    assert r.returncode != 0
    assert "no booking of shadow-1 running now" in r.stderr + r.stdout
    dead = f"http://127.0.0.1:{free_port()}"
    r = raas("status", ROBOT, env=fleet.env(url=dead))
    assert r.returncode != 0
    assert f"the reservation service at {dead} is unreachable" in r.stderr
    # an endpoint still works as before, with the key given by hand
    r = raas(
        "status", fleet.daemon.control, "--server-key", fleet.daemon.key, env=fleet.env(url=dead)
    )
    assert r.returncode == 0, r.stderr


def test_offline_robot_is_named_with_its_last_heartbeat(fleet: Fleet, tmp_path: Path) -> None:
    """Last: stops the daemon (its link posts a last "offline" heartbeat)."""
    assert fleet.daemon.stop() == 0
    bundle = tmp_path / "b"
    bundle.mkdir()
    r = raas("run", str(bundle), "--robot", ROBOT, env=fleet.env())
    assert r.returncode != 0
    assert "robot shadow-1 is offline" in r.stderr + r.stdout
