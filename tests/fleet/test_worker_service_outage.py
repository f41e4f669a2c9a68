"""The service goes away in the middle of a job and comes back (a restart, a replica lost):
nothing is lost. The worker keeps running its episode, retries its posts until the service
answers, and the job ends `succeeded` with every episode recorded exactly once. Real service
(stopped and started again on the same port and database; in the second test a `raasd serve`
process SIGKILLed mid-job), real daemon, real worker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fleet.service_harness import Service, linked_daemon, start_worker, wait_until
from tests.service.harness import ServerProcess
from tests.transport.harness import RobotDaemon

pytestmark = [pytest.mark.system, pytest.mark.slow]

#: Longer than the outage, so the attempt survives it; read by conftest's `service` fixture (a
#: longer outage requeues the job: see test_worker_jobs.py for the requeue and stale attempt).
CLAIM_TIMEOUT_S = 30.0
OUTAGE_S = 6.0


class ProcessService(Service):
    """The same service as `raasd serve` in its own process, so that it can be SIGKILLed."""

    server_process: ServerProcess

    def start(self) -> None:
        env = {
            "RAAS_BLOB_DIR": str(self.settings.blobs),
            "RAAS_JOB_CLAIM_TIMEOUT_S": str(CLAIM_TIMEOUT_S),
        }
        log = self.settings.blobs.parent / "serve.log"
        self.server_process = ServerProcess(self.settings, log, env=env)
        self.server_process.start(port=self.port)

    def stop(self) -> None:
        self.server_process.stop()

    def kill(self) -> None:
        self.server_process.kill()


def test_a_service_outage_mid_job_loses_no_episode(
    service: Service, linked_robot: RobotDaemon, small_bundle: Path, tmp_path: Path
) -> None:
    sha = service.upload(small_bundle.read_bytes())
    job = service.submit(sha, episodes=3, seed=2)
    jid = job["id"]
    worker = start_worker(service, tmp_path / "w", "--once", "--idle-exit", "120")
    try:
        wait_until(lambda: service.job(jid)["status"] == "running", 120, "the claim")
        service.stop()  # every route gone: heartbeats, episode posts, the daemon's link
        time.sleep(OUTAGE_S)
        service.start()
        assert worker.wait(300) == 0, worker.output()
    finally:
        worker.stop()
    out = worker.output()
    got = service.job(jid)
    assert got["status"] == "succeeded", (got, out)
    indices = sorted(r["index"] for r in got["results"])
    assert indices == [0, 1, 2], got["results"]  # each episode once, none lost
    assert got["attempt"] == 1  # the outage was shorter than the claim timeout
    assert "the service does not answer" in out or "again in" in out or "retry" in out, out
    assert linked_robot.alive()


def test_a_service_process_sigkilled_mid_job_loses_no_episode(
    small_bundle: Path, tmp_path: Path
) -> None:
    (tmp_path / "service").mkdir()
    service = ProcessService(tmp_path / "service", job_claim_timeout_s=CLAIM_TIMEOUT_S)
    robot: RobotDaemon | None = None
    try:
        robot = linked_daemon(service, tmp_path / "cell")
        sha = service.upload(small_bundle.read_bytes())
        jid = service.submit(sha, episodes=3, seed=3)["id"]
        worker = start_worker(service, tmp_path / "w", "--once", "--idle-exit", "120")
        try:
            wait_until(lambda: service.job(jid)["episodes_done"] >= 1, 180, "a first episode")
            service.kill()  # no shutdown: requests in flight are cut
            time.sleep(OUTAGE_S / 2)
            service.start()
            assert worker.wait(300) == 0, worker.output()
        finally:
            worker.stop()
        got = service.job(jid)
        assert got["status"] == "succeeded", (got, worker.output())
        assert sorted(r["index"] for r in got["results"]) == [0, 1, 2], got["results"]
        assert got["attempt"] == 1
        assert robot.alive()
    finally:
        if robot is not None:
            robot.stop()
        service.stop()
