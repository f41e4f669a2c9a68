"""How a job on the robot ends early, with the real service, a linked simulated robot and
`raasd worker` processes: a bundle the robot cannot load fails the job; a cancel stops it (the
worker posts nothing more and goes on); a booking made meanwhile shrinks the hold and the job
is stopped safely before it and requeued with its finished episodes kept; an e-stop, SIGTERM
and a dead daemon interrupt it (requeued, episodes kept). The dead daemon comes last: it kills the
module's robot."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from raas_client.session import RemoteRobot

from tests.fleet.service_harness import (
    Service,
    descendants,
    kill_left,
    start_worker,
    wait_until,
)
from tests.transport.harness import RobotDaemon, wait_for

pytestmark = [pytest.mark.system, pytest.mark.slow]


def _events(service: Service, jid: int) -> list[str]:
    return [e["kind"] for e in service.call("GET", f"/jobs/{jid}/logs").json()]


def _controlled(robot: RobotDaemon) -> bool:
    r = RemoteRobot(robot.control, server_key=robot.key)
    try:
        return bool(r.status()["controlled"])
    finally:
        r.close()


def test_a_bundle_the_robot_cannot_load_fails_the_job(
    service: Service, linked_robot: RobotDaemon, tmp_path: Path
) -> None:
    sha = service.upload(b"not a policy bundle")
    jid = service.submit(sha, episodes=2)["id"]
    worker = start_worker(service, tmp_path / "w", "--once", "--idle-exit", "60")
    try:
        assert worker.wait(120) == 0, worker.output()
    finally:
        worker.stop()
    got = service.job(jid)
    assert got["status"] == "failed" and got["episodes_done"] == 0, got
    assert "the robot refused the bundle" in got["message"]
    assert f"job {jid} failed: the robot refused the bundle" in worker.output()


def test_cancel_stops_the_job_and_the_worker_goes_on(
    service: Service, linked_robot: RobotDaemon, small_bundle: Path, tmp_path: Path
) -> None:
    jid = service.submit(service.upload(small_bundle.read_bytes()), episodes=20)["id"]
    worker = start_worker(service, tmp_path / "w")
    try:
        wait_until(lambda: service.job(jid)["episodes_done"] >= 1, 180, "a first episode")
        assert service.call("POST", f"/jobs/{jid}/cancel").status_code == 200
        wait_until(lambda: "nothing more is posted" in worker.output(), 60, "a stop", worker.output)
        assert worker.proc.poll() is None  # it goes on, waiting for the next job
        got = service.job(jid)
        assert got["status"] == "cancelled" and got["episodes_done"] < 20, got
        assert f"job {jid}: the job was cancelled" in worker.output() or (
            f"job {jid}: " in worker.output()
        )
        assert wait_for(lambda: not _controlled(linked_robot), 10, 0.2)  # the hand is free
        worker.proc.send_signal(signal.SIGTERM)  # idle: it leaves at once
        assert worker.wait(30) == 0, worker.output()
        assert "stopped after 1 job(s)" in worker.output()
    finally:
        worker.stop()


def test_a_booking_ahead_stops_the_job_safely_and_requeues_it(
    service: Service, linked_robot: RobotDaemon, small_bundle: Path, tmp_path: Path
) -> None:
    jid = service.submit(service.upload(small_bundle.read_bytes()), episodes=3)["id"]
    # the claim holds the robot for 3 x 60 s + 30 s; a margin of 150 s runs episodes until a
    # booking brings the hold's end closer than that
    worker = start_worker(service, tmp_path / "w", "--once", "--hold-margin", "150")
    booking = None
    try:
        wait_until(lambda: service.job(jid)["status"] == "running", 60, "the claim")
        start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
        r = service.call(
            "POST",
            "/reservations",
            who="staff@lab",
            json={
                "robot_id": service.robot_id,
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(hours=1)).isoformat(),
            },
        )
        assert r.status_code == 201, r.text
        booking = r.json()["id"]
        assert worker.wait(120) == 0, worker.output()
        out = worker.output()
        assert "the robot's hold for this job ends at" in out
        assert f"job {jid} interrupted" in out
        got = service.job(jid)
        assert got["status"] == "queued" and got["claimed_by"] is None, got
        assert "interrupted" in _events(service, jid) or "requeued" in _events(service, jid)
        assert wait_for(lambda: not _controlled(linked_robot), 10, 0.2)
    finally:
        worker.stop()
        if booking is not None:
            service.call("POST", f"/reservations/{booking}/cancel", who="staff@lab")
        service.call("POST", f"/jobs/{jid}/cancel")


def test_an_estop_interrupts_the_job_and_keeps_its_episodes(
    service: Service, linked_robot: RobotDaemon, small_bundle: Path, tmp_path: Path
) -> None:
    jid = service.submit(service.upload(small_bundle.read_bytes()), episodes=4)["id"]
    worker = start_worker(service, tmp_path / "w", "--once")
    try:
        wait_until(lambda: service.job(jid)["episodes_done"] >= 1, 180, "a first episode")
        r = service.call(
            "POST", f"/robots/{service.robot_id}/estop", who="staff@lab", json={"note": "test"}
        )
        assert r.status_code == 202, r.text
        assert worker.wait(120) == 0, worker.output()
        out = worker.output()
        assert f"job {jid} interrupted: episode " in out and "e-stop" in out, out
        got = service.job(jid)
        assert got["status"] == "queued" and 1 <= got["episodes_done"] < 4, got
    finally:
        worker.stop()
        service.call(
            "POST", f"/robots/{service.robot_id}/clear-estop", who="staff@lab", json={"note": ""}
        )
        service.call("POST", f"/jobs/{jid}/cancel")


def test_sigterm_stops_the_running_episode_safely_and_requeues_the_job(
    service: Service, linked_robot: RobotDaemon, small_bundle: Path, tmp_path: Path
) -> None:
    jid = service.submit(service.upload(small_bundle.read_bytes()), episodes=4)["id"]
    worker = start_worker(service, tmp_path / "w")
    try:
        wait_until(lambda: service.job(jid)["episodes_done"] >= 1, 180, "a first episode")
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, worker.output()
        out = worker.output()
        assert "SIGTERM: stopping" in out
        assert f"job {jid} interrupted: the worker is stopping" in out, out
        got = service.job(jid)
        assert got["status"] == "queued" and 1 <= got["episodes_done"] < 4, got
        assert wait_for(lambda: not _controlled(linked_robot), 10, 0.2)  # the hand is free
    finally:
        worker.stop()
        service.call("POST", f"/jobs/{jid}/cancel")


def test_a_dead_daemon_interrupts_the_job(
    service: Service, linked_robot: RobotDaemon, small_bundle: Path, tmp_path: Path
) -> None:
    """Last: the robot's daemon is killed."""
    jid = service.submit(service.upload(small_bundle.read_bytes()), episodes=4)["id"]
    worker = start_worker(service, tmp_path / "w", "--once")
    children: list[int] = []
    try:
        wait_until(lambda: service.job(jid)["episodes_done"] >= 1, 180, "a first episode")
        children = descendants(linked_robot.proc.pid)  # its rig and recorder processes
        linked_robot.proc.send_signal(signal.SIGKILL)
        linked_robot.proc.wait(30)
        assert worker.wait(120) == 0, worker.output()
        out = worker.output()
        assert f"job {jid} interrupted: episode " in out, out
        assert "does not answer" in out
        got = service.job(jid)
        assert got["status"] == "queued" and got["episodes_done"] >= 1, got
    finally:
        worker.stop()
        service.call("POST", f"/jobs/{jid}/cancel")
        kill_left(children)  # the recorder process does not die with a SIGKILLed daemon
