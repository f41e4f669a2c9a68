"""The daemon's link to the reservation service, against a real service process and a real link
child: revocations and REST e-stops reach the loop's socket within 1 s, heartbeats carry the
loop's wear/safety/health report into the service, the child rides out a service outage, does
not replay old e-stops, and exits when its parent dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import zmq

from raas.service.models import Role
from raas.transport.config import RevocationFeed
from raas.transport.service_link import ClearEstop, Estop, LinkItem, Revoked, ServiceLink
from tests.service import harness
from tests.service.harness import Seeded, ServerProcess, seed, settings_for

pytestmark = [pytest.mark.system, pytest.mark.slow]

ROBOT = "shadow-1"
TOKEN_ENV = "RAAS_TEST_LINK_TOKEN"
DEADLINE_S = 1.0


@dataclass
class Service:
    server: ServerProcess
    seeded: Seeded

    @property
    def url(self) -> str:
        return self.server.base_url

    @property
    def robot_id(self) -> int:
        return self.seeded.robots[ROBOT]

    def call(self, method: str, path: str, who: str, body: Any = None) -> httpx.Response:
        r = httpx.request(
            method, f"{self.url}{path}", json=body, headers=self.seeded.headers(who), timeout=10
        )
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        return r

    def robot(self) -> dict[str, Any]:
        out: dict[str, Any] = self.call("GET", f"/robots/{self.robot_id}", "staff@lab").json()
        return out


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    settings = settings_for(f"sqlite:///{tmp_path / 'raas.db'}", tmp_path)
    seeded = seed(
        settings, users={"staff@lab": Role.staff, "alice@lab": Role.researcher}, robots=(ROBOT,)
    )
    server = ServerProcess(settings, tmp_path / "server.log").start()
    try:
        yield Service(server, seeded)
    finally:
        server.stop()


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    c: zmq.Context[Any] = zmq.Context()
    yield c
    c.term()


@pytest.fixture
def make_link(
    service: Service, ctx: zmq.Context[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., ServiceLink]]:
    monkeypatch.setenv(TOKEN_ENV, service.seeded.robot_tokens[ROBOT])
    links: list[ServiceLink] = []

    def make(heartbeat_s: float = 2.0, wait_s: float = 10.0) -> ServiceLink:
        feed = RevocationFeed(
            service_url=service.url, robot_id=service.robot_id, token_env=TOKEN_ENV, wait_s=wait_s
        )
        links.append(ServiceLink(ctx, feed, tmp_path / "run", heartbeat_s=heartbeat_s))
        return links[-1]

    yield make
    for link in links:
        link.close()


def wait_for(pred: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def wait_item(
    link: ServiceLink, match: Callable[[LinkItem], bool], timeout: float, seen: list[LinkItem]
) -> LinkItem | None:
    """Drain like the loop does (bounded, every few ms) until an item matches."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for item in link.drain(16):
            seen.append(item)
            if match(item):
                return item
        time.sleep(0.005)
    return None


def linked(service: Service, since: datetime) -> bool:
    """The child is up: its first heartbeat (sent at start) reached the service."""
    at = service.robot()["last_heartbeat_at"]
    return at is not None and datetime.fromisoformat(at).replace(tzinfo=UTC) >= since


def leased_booking(service: Service, hour: int) -> tuple[int, str]:
    start = (datetime.now(UTC) + timedelta(hours=hour)).replace(second=0, microsecond=0)
    r = service.call(
        "POST",
        "/reservations",
        "alice@lab",
        {
            "robot_id": service.robot_id,
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(minutes=30)).isoformat(),
        },
    )
    rid = int(r.json()["id"])
    lease = service.call("POST", f"/reservations/{rid}/lease", "alice@lab", {})
    return rid, str(lease.json()["jti"])


def settle(link: ServiceLink, seconds: float, seen: list[LinkItem]) -> None:
    """Give the child's followers time to park their long-polls, draining meanwhile."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        seen += link.drain(16)
        time.sleep(0.02)


def test_revocation_reaches_the_loop_within_1s(
    service: Service, make_link: Callable[..., ServiceLink]
) -> None:
    rid, jti = leased_booking(service, hour=1)
    t_start = datetime.now(UTC) - timedelta(seconds=1)
    link = make_link()
    assert wait_for(lambda: linked(service, t_start), 30), "the link never sent a heartbeat"
    seen: list[LinkItem] = []
    settle(link, 1.0, seen)
    t0 = time.monotonic()
    service.call("POST", f"/reservations/{rid}/cancel", "alice@lab")
    item = wait_item(link, lambda i: isinstance(i, Revoked) and i.jti == jti, 15, seen)
    took = time.monotonic() - t0
    assert item is not None, f"no revocation arrived; got {seen}"
    assert isinstance(item, Revoked) and item.expires > time.time()
    print(f"\nrevocation reached the loop's socket {took * 1000:.0f} ms after the cancel")
    assert took < DEADLINE_S


def test_rest_estop_reaches_the_loop_within_1s_and_old_ones_are_not_replayed(
    service: Service, make_link: Callable[..., ServiceLink]
) -> None:
    path = f"/robots/{service.robot_id}"
    old = service.call("POST", f"{path}/estop", "staff@lab", {"note": "before the daemon"})
    old_seq = int(old.json()["seq"])
    service.call("POST", f"{path}/clear-estop", "staff@lab", {"note": "fine again"})
    t_start = datetime.now(UTC) - timedelta(seconds=1)
    link = make_link()
    assert wait_for(lambda: linked(service, t_start), 30)
    seen: list[LinkItem] = []
    settle(link, 1.5, seen)

    t0 = time.monotonic()
    r = service.call("POST", f"{path}/estop", "staff@lab", {"note": "finger loose"})
    seq = int(r.json()["seq"])
    item = wait_item(link, lambda i: isinstance(i, Estop) and i.seq == seq, 15, seen)
    took = time.monotonic() - t0
    assert item == Estop(seq=seq, by="staff@lab", note="finger loose"), seen
    print(f"\nREST e-stop reached the loop's socket {took * 1000:.0f} ms after the POST")
    assert took < DEADLINE_S

    r = service.call("POST", f"{path}/clear-estop", "staff@lab", {"note": "fixed"})
    clear_seq = int(r.json()["seq"])
    item = wait_item(link, lambda i: isinstance(i, ClearEstop), 15, seen)
    assert item == ClearEstop(seq=clear_seq, by="staff@lab", note="fixed")
    # Commands from before the child started were never delivered.
    assert all(i.seq > old_seq + 1 for i in seen if isinstance(i, Estop | ClearEstop)), seen


def test_heartbeat_carries_wear_safety_and_health_at_once(
    service: Service, make_link: Callable[..., ServiceLink]
) -> None:
    from raas.safety.wear import WearMeter

    t_start = datetime.now(UTC) - timedelta(seconds=1)
    # A long period: only the "health changed -> post at once" path can deliver in time.
    link = make_link(heartbeat_s=60.0)
    assert wait_for(lambda: linked(service, t_start), 30)
    meter = WearMeter(("A_FFJ1", "A_FFJ2"), np.array([0.7245, 0.9]), 0.08)
    meter.update(np.zeros(2), np.zeros(2), running=True)
    meter.update(np.array([0.5, 0.25]), np.array([0.5, 0.1]), running=True)
    health = {
        "ok": False,
        "at": datetime.now(UTC).isoformat(),
        "checks": [
            {"name": "reach", "ok": True, "detail": ""},
            {"name": "camera.front", "ok": False, "detail": "black (mean 0.0)"},
        ],
    }
    payload = {
        "status": "available",
        "safety": {"state": "idle", "reason": "home_reached"},
        "wear": meter.totals(),
        "health": health,
    }
    time.sleep(0.5)  # the child's report socket is connected by now (it sent a heartbeat)
    t0 = time.monotonic()
    link.report(payload)
    assert wait_for(lambda: service.robot()["health_blocked"], 10), service.robot()
    took = time.monotonic() - t0
    robot = service.robot()
    print(f"\nhealth report in the service {took * 1000:.0f} ms after report()")
    assert took < 5.0  # not the 60 s period
    assert robot["safety_state"] == "idle" and robot["safety_reason"] == "home_reached"
    assert "camera.front" in robot["health_note"]
    assert robot["health_report"]["ok"] is False
    wear = service.call("GET", f"/robots/{service.robot_id}/wear", "alice@lab").json()
    assert wear["actuators"]["A_FFJ1"]["travel_rad"] == pytest.approx(0.5)
    assert wear["actuators"]["A_FFJ2"]["travel_rad"] == pytest.approx(0.25)
    assert wear["actuators"]["A_FFJ1"]["peak_effort"] == pytest.approx(0.5 / 0.7245)

    # Stopping the link says goodbye: the robot is reported offline at once.
    link.close()
    assert service.robot()["status"] == "offline"


def test_report_never_blocks_or_raises(
    service: Service, make_link: Callable[..., ServiceLink]
) -> None:
    link = make_link()
    link.proc.send_signal(signal.SIGSTOP)  # a child that reads nothing
    try:
        t0 = time.monotonic()
        for i in range(20_000):
            link.report({"status": "available", "n": i, "a": np.arange(3)})
        assert time.monotonic() - t0 < 10.0
        assert link.drain(16) == []
    finally:
        link.proc.send_signal(signal.SIGCONT)
    with pytest.raises(TypeError):
        link.report({"x": object()})


def test_the_link_rides_out_a_service_outage(
    service: Service,
    make_link: Callable[..., ServiceLink],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    t_start = datetime.now(UTC) - timedelta(seconds=1)
    link = make_link(heartbeat_s=0.5, wait_s=5.0)
    assert wait_for(lambda: linked(service, t_start), 30)
    link.report({"status": "available"})
    service.server.kill()
    time.sleep(8.0)  # several heartbeats and follower retries fail
    assert link.alive, "the child died with the service"
    err = capfd.readouterr().err
    failures = [line for line in err.splitlines() if line.startswith("raasd service link:")]
    with capfd.disabled():
        print("\nthe child's lines while the service was down:\n" + "\n".join(failures))
    # one line per kind of failure, not one per retry
    assert any("heartbeat:" in line for line in failures), err
    assert len(failures) == len(set(failures)), failures
    assert len(failures) <= 8, failures

    port = service.server.port
    monkeypatch.setattr(harness, "free_port", lambda: port)
    t_up = datetime.now(UTC) - timedelta(seconds=1)
    service.server.start()
    assert wait_for(lambda: linked(service, t_up), 30), "heartbeats did not resume"
    seen: list[LinkItem] = []
    r = service.call("POST", f"/robots/{service.robot_id}/estop", "staff@lab", {"note": "x"})
    seq = int(r.json()["seq"])
    # the follower may be in a back-off pause (at most 5 s): generous bound
    assert wait_item(link, lambda i: isinstance(i, Estop) and i.seq == seq, 30, seen), seen
    assert "recovered" in capfd.readouterr().err


PARENT = """
import sys, time, zmq
from pathlib import Path
from raas.transport.config import RevocationFeed
from raas.transport.service_link import ServiceLink
feed = RevocationFeed(service_url=sys.argv[1], robot_id=int(sys.argv[2]), token_env=sys.argv[3])
link = ServiceLink(zmq.Context(), feed, Path(sys.argv[4]))
print(link.proc.pid, flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def test_the_child_exits_when_its_parent_dies(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, service.seeded.robot_tokens[ROBOT])
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            PARENT,
            service.url,
            str(service.robot_id),
            TOKEN_ENV,
            str(tmp_path / "run"),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=harness.REPO,
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        t_start = datetime.now(UTC) - timedelta(seconds=1)
        assert wait_for(lambda: linked(service, t_start), 30)
        assert not _gone(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert wait_for(lambda: _gone(child), 10), "the link child outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in (child,) if "child" in locals() else ():
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
