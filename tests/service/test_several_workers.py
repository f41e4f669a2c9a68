"""Two service processes, one PostgreSQL: what happens through process A reaches waiters on
process B through LISTEN/NOTIFY (raas/service/notify.py), not only through B's database poll.

Every test runs two real `raasd serve` processes on one real database. Each asserts that the
news arrives (a wide 5 s margin for a loaded box), prints the measured latency, and proves the
NOTIFY path by B's own counters on /metrics (`raas_notify_received_total`: notifications from
another process; `raas_notify_wakes_total{reason="notify"}`). Tokens are cached for 60 s in
these processes, so a refusal on B within 5 s can only come from A's `tokens` notification.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from raas.cli import build_parser
from raas.service.models import Role
from tests.service.harness import ROLES, Seeded, ServerProcess, seed, settings_for
from tests.service.pg_server import PgServer

WIDE_S = 5.0
TOKEN_TTL_S = "60"
_DB = count(1)


@dataclass
class Pair:
    seeded: Seeded
    a: ServerProcess
    b: ServerProcess

    def h(self, email: str) -> dict[str, str]:
        return self.seeded.headers(email)

    def daemon(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.seeded.robot_tokens['arm-1']}"}

    @property
    def robot_id(self) -> int:
        return self.seeded.robots["arm-1"]

    def metrics(
        self, server: ServerProcess
    ) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        r = httpx.get(f"{server.base_url}/metrics", headers=self.h("staff@lab"), timeout=10)
        assert r.status_code == 200, r.text
        out = {}
        for family in text_string_to_metric_families(r.text):
            if family.name.startswith("raas_notify"):
                for s in family.samples:
                    out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def counter(self, server: ServerProcess, name: str, **labels: str) -> float:
        return self.metrics(server).get((name, tuple(sorted(labels.items()))), 0.0)


def _until(cond: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@pytest.fixture
def pair(pg_server: PgServer, tmp_path: Path) -> Iterator[Pair]:
    url = pg_server.create_database(f"workers_{os.getpid()}_{next(_DB)}")
    seeded = seed(settings_for(url, tmp_path), users=ROLES, robots=("arm-1",), unlimited=True)
    env = {"RAAS_TOKEN_CACHE_TTL_S": TOKEN_TTL_S}
    a = ServerProcess(seeded.settings, tmp_path / "a.log", env=env).start()
    try:
        b = ServerProcess(seeded.settings, tmp_path / "b.log", env=env).start()
        try:
            p = Pair(seeded, a, b)
            for server in (a, b):
                assert _until(lambda s=server: p.counter(s, "raas_notify_listening") == 1)
            yield p
        finally:
            b.stop()
    finally:
        a.stop()


def _leased_booking(p: Pair, hour: int) -> int:
    alice = p.h("alice@lab")
    start = (datetime.now(UTC) + timedelta(hours=hour)).replace(second=0, microsecond=0)
    r = httpx.post(
        f"{p.a.base_url}/reservations",
        json={
            "robot_id": p.robot_id,
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(minutes=30)).isoformat(),
        },
        headers=alice,
    )
    assert r.status_code == 201, r.text
    rid = int(r.json()["id"])
    lease = httpx.post(f"{p.a.base_url}/reservations/{rid}/lease", json={}, headers=alice)
    assert lease.status_code == 201, lease.text
    return rid


class Poll(threading.Thread):
    """One held long-poll on a feed of B; records when it answered and what."""

    def __init__(self, url: str, headers: dict[str, str], params: dict[str, float]) -> None:
        super().__init__(daemon=True)
        self.url, self.headers, self.params = url, headers, params
        self.body: dict[str, object] = {}
        self.at = 0.0

    def run(self) -> None:
        r = httpx.get(self.url, headers=self.headers, params=self.params, timeout=30)
        self.at = time.monotonic()
        r.raise_for_status()
        self.body = r.json()

    def parked(self) -> Poll:
        self.start()
        time.sleep(0.5)  # let it read once and hold (if not, it answers at once: still correct)
        return self


def _revocation_reaches_b(p: Pair, hour: int) -> float:
    """Cancel a leased booking on A while a daemon's long-poll waits on B; the latency."""
    rid = _leased_booking(p, hour)
    head = httpx.get(
        f"{p.b.base_url}/robots/{p.robot_id}/revocations", headers=p.daemon(), timeout=10
    ).json()["cursor"]
    poll = Poll(
        f"{p.b.base_url}/robots/{p.robot_id}/revocations",
        p.daemon(),
        {"since": head, "wait": 20.0},
    ).parked()
    t0 = time.monotonic()
    r = httpx.post(f"{p.a.base_url}/reservations/{rid}/cancel", headers=p.h("alice@lab"))
    assert r.status_code == 200, r.text
    poll.join(timeout=30)
    assert poll.body.get("revocations"), f"the revocation never reached B: {poll.body}"
    return poll.at - t0


@pytest.mark.system
def test_a_lease_revoked_on_a_wakes_a_long_poll_on_b(pair: Pair) -> None:
    before = pair.counter(pair.b, "raas_notify_received_total", channel="revocations")
    latency = _revocation_reaches_b(pair, hour=1)
    print(f"\nrevocation A -> long-poll on B: {latency * 1000:.1f} ms")
    assert latency < WIDE_S
    after = pair.metrics(pair.b)
    received = after[("raas_notify_received_total", (("channel", "revocations"),))]
    assert received > before, "B was not told by NOTIFY (it found the revocation by polling)"
    woken = (("channel", "revocations"), ("reason", "notify"))
    assert after[("raas_notify_wakes_total", woken)] >= 1


@pytest.mark.system
def test_a_lease_revoked_on_a_reaches_an_event_stream_on_b(pair: Pair) -> None:
    rid = _leased_booking(pair, hour=2)
    url = f"{pair.b.base_url}/robots/{pair.robot_id}/revocations/stream"
    head = httpx.get(
        f"{pair.b.base_url}/robots/{pair.robot_id}/revocations", headers=pair.daemon()
    ).json()["cursor"]
    arrived: list[float] = []
    connected = threading.Event()

    def listen() -> None:
        with httpx.stream(
            "GET", url, headers=pair.daemon(), params={"since": head}, timeout=30.0
        ) as r:
            for line in r.iter_lines():
                if line.startswith(": connected"):
                    connected.set()
                if line.startswith("data: ") and json.loads(line[6:])["jti"]:
                    arrived.append(time.monotonic())
                    return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert connected.wait(timeout=20)
    time.sleep(0.3)
    t0 = time.monotonic()
    r = httpx.post(f"{pair.a.base_url}/reservations/{rid}/cancel", headers=pair.h("staff@lab"))
    assert r.status_code == 200
    thread.join(timeout=30)
    assert arrived, "no event reached the stream on B"
    print(f"\nrevocation A -> event stream on B: {(arrived[0] - t0) * 1000:.1f} ms")
    assert arrived[0] - t0 < WIDE_S
    assert pair.counter(pair.b, "raas_notify_received_total", channel="revocations") >= 1


@pytest.mark.system
def test_a_token_revoked_on_a_is_refused_on_b(pair: Pair) -> None:
    alice = pair.h("alice@lab")
    made = httpx.post(f"{pair.a.base_url}/auth/tokens", json={"name": "script"}, headers=alice)
    assert made.status_code == 201, made.text
    script = {"Authorization": f"Bearer {made.json()['token']}"}
    for _ in range(3):  # B caches it (for 60 s in these processes)
        assert httpx.get(f"{pair.b.base_url}/auth/me", headers=script).status_code == 200
    t0 = time.monotonic()
    r = httpx.delete(f"{pair.a.base_url}/auth/tokens/{made.json()['id']}", headers=alice)
    assert r.status_code == 200, r.text
    refused: list[httpx.Response] = []

    def b_refuses() -> bool:
        r = httpx.get(f"{pair.b.base_url}/auth/me", headers=script)
        if r.status_code == 401:
            refused.append(r)
        return bool(refused)

    assert _until(b_refuses, WIDE_S), "B still accepts the revoked token"
    print(f"\ntoken revoked on A, refused on B after {(time.monotonic() - t0) * 1000:.1f} ms")
    assert refused[0].json()["error"] == "token_revoked"
    assert pair.counter(pair.b, "raas_notify_received_total", channel="tokens") >= 1


@pytest.mark.system
def test_an_estop_posted_on_a_reaches_the_command_feed_on_b(pair: Pair) -> None:
    feed = f"{pair.b.base_url}/robots/{pair.robot_id}/commands"
    head = httpx.get(feed, headers=pair.daemon()).json()["head"]
    poll = Poll(feed, pair.daemon(), {"since": head, "wait": 20.0}).parked()
    t0 = time.monotonic()
    r = httpx.post(
        f"{pair.a.base_url}/robots/{pair.robot_id}/estop",
        json={"note": "two workers"},
        headers=pair.h("staff@lab"),
    )
    assert r.status_code == 202, r.text
    poll.join(timeout=30)
    commands = poll.body.get("commands")
    assert isinstance(commands, list) and commands, f"no command reached B: {poll.body}"
    assert commands[0]["kind"] == "estop" and poll.body["latched"] is True
    latency = poll.at - t0
    print(f"\ne-stop A -> command feed on B: {latency * 1000:.1f} ms")
    assert latency < WIDE_S
    assert pair.counter(pair.b, "raas_notify_received_total", channel="commands") >= 1
    woken = {"channel": "commands", "reason": "notify"}
    assert pair.counter(pair.b, "raas_notify_wakes_total", **woken) >= 1


@pytest.mark.system
def test_killed_notify_connections_reconnect_and_miss_nothing(
    pair: Pair, pg_server: PgServer
) -> None:
    killed = pg_server.psql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name "
        "IN ('raas-notify-listener', 'raas-notify-publisher')"
    )
    assert int(killed) >= 2, killed  # both listeners (publishers connect at their first use)
    # At once, before the listeners are back: a revocation on A still reaches B (B polls the
    # database while its listener is away, and reads everything when it is back).
    latency = _revocation_reaches_b(pair, hour=3)
    print(f"\nwhile reconnecting: revocation A -> B in {latency * 1000:.1f} ms")
    assert latency < WIDE_S
    for server in (pair.a, pair.b):
        assert _until(
            lambda s=server: (
                pair.counter(s, "raas_notify_listening") == 1
                and pair.counter(s, "raas_notify_reconnects_total") >= 1
            )
        ), "a listener did not come back"
    # NOTIFY works again: the next revocation on A reaches B by notification.
    before = pair.counter(pair.b, "raas_notify_received_total", channel="revocations")
    latency = _revocation_reaches_b(pair, hour=4)
    print(f"after reconnecting: revocation A -> B in {latency * 1000:.1f} ms")
    assert latency < WIDE_S
    after = pair.counter(pair.b, "raas_notify_received_total", channel="revocations")
    assert after > before


@pytest.mark.system
def test_two_workers_on_sqlite_still_see_each_other_by_polling(tmp_path: Path) -> None:
    """No NOTIFY on SQLite: B finds A's e-stop by its database poll (FALLBACK_POLL_S)."""
    users = {"staff@lab": Role.staff}
    seeded = seed(settings_for(f"sqlite:///{tmp_path / 'raas.db'}", tmp_path), users=users)
    a = ServerProcess(seeded.settings, tmp_path / "a.log").start()
    b = ServerProcess(seeded.settings, tmp_path / "b.log").start()
    try:
        p = Pair(seeded, a, b)
        assert p.counter(b, "raas_notify_listening") == 0
        feed = f"{b.base_url}/robots/{p.robot_id}/commands"
        poll = Poll(feed, p.daemon(), {"since": 0, "wait": 20.0}).parked()
        t0 = time.monotonic()
        r = httpx.post(f"{a.base_url}/robots/{p.robot_id}/estop", json={}, headers=p.h("staff@lab"))
        assert r.status_code == 202, r.text
        poll.join(timeout=30)
        assert poll.body.get("commands"), poll.body
        print(f"\nSQLite, e-stop A -> feed on B (poll): {(poll.at - t0) * 1000:.1f} ms")
        assert poll.at - t0 < WIDE_S
        assert p.counter(b, "raas_notify_wakes_total", channel="commands", reason="poll") >= 1
    finally:
        b.stop()
        a.stop()


@pytest.mark.parametrize("bad", ["0", "65", "two", "1.5"])
def test_raasd_serve_refuses_a_bad_worker_count(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["serve", "--workers", bad])
    assert exit_.value.code == 2
    assert f"--workers must be a whole number 1..64, not {bad!r}" in capsys.readouterr().err


def test_raasd_serve_takes_a_worker_count() -> None:
    assert build_parser().parse_args(["serve", "--workers", "3"]).workers == 3
    assert build_parser().parse_args(["serve"]).workers == 1
