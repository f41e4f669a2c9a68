"""The service goes away in the middle of a job and comes back (a restart, a replica lost):
nothing is lost. The worker keeps running its episode, retries its posts until the service
answers, and the job ends `succeeded` with every episode recorded exactly once. Real service
(stopped and started again on the same port and database), real daemon, real worker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet.service_harness import Service, linked_daemon, start_worker, wait_until
from tests.transport.harness import RobotDaemon

pytestmark = [pytest.mark.system, pytest.mark.slow]

#: Longer than the outage, so the attempt survives it (a longer outage requeues the job: see
#: test_worker_jobs.py for the requeue and the stale attempt).
CLAIM_TIMEOUT_S = 30.0
OUTAGE_S = 6.0


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    s = Service(
        Path(tmp_path_factory.mktemp("service")),
        job_claim_timeout_s=CLAIM_TIMEOUT_S,
        job_sweep_interval_s=0.5,
    )
    yield s
    s.stop()


@pytest.fixture(scope="module")
def linked_robot(
    service: Service, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RobotDaemon]:
    d = linked_daemon(service, Path(tmp_path_factory.mktemp("cell")))
    yield d
    d.stop()


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
