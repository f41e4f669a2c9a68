"""Shared fixtures of the job worker tests: a real `raasd robot --sim` daemon (lockstep, tcp +
Curve) with a temp lease issuer, and a small policy bundle."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet.service_harness import Service, linked_daemon
from tests.transport.harness import LeaseIssuer, RobotDaemon, start_daemon

#: The service requeues a job whose worker sent no heartbeat for this long (20 s by default).
CLAIM_TIMEOUT_S = 3.0


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> LeaseIssuer:
    return LeaseIssuer.create(tmp_path_factory.mktemp("lease"))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, issuer: LeaseIssuer) -> Iterator[RobotDaemon]:
    tmp = Path(tmp_path_factory.mktemp("robot"))
    # the example bundles are trained for the cell's 12.5 Hz; the recorder is on
    (tmp / "cell.toml").write_text(f'[recording]\nenabled = true\ndirectory = "{tmp}/rec"\n')
    extra = ("--config", str(tmp / "cell.toml"), "--liveness", "2")  # see service_harness
    d = start_daemon(tmp, issuer, rate=12.5, extra=extra)
    yield d
    d.stop()


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small example bundle as one file (what the bundle store hands a worker)."""
    from raas_client.bundles import pack

    from raas.policy.examples import ensure_examples

    d = ensure_examples(tmp_path_factory.mktemp("bundles"), ["small"])["small"]
    f = d.parent / "small.tar"
    f.write_bytes(pack(d))
    return f


@pytest.fixture(scope="module")
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """The real service (jobs API) with a short claim timeout (a test module may set its own
    `CLAIM_TIMEOUT_S`), one robot shadow-1."""
    s = Service(
        Path(tmp_path_factory.mktemp("service")),
        job_claim_timeout_s=getattr(request.module, "CLAIM_TIMEOUT_S", CLAIM_TIMEOUT_S),
        job_sweep_interval_s=0.5,
    )
    yield s
    s.stop()


@pytest.fixture(scope="module")
def linked_robot(
    service: Service, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RobotDaemon]:
    """shadow-1: a simulated robot daemon linked to `service` (directory entry, revocations)."""
    d = linked_daemon(service, Path(tmp_path_factory.mktemp("cell")))
    yield d
    d.stop()
