"""The notifier (raas/service/notify.py): a publish wakes subscribers in this process at once,
and, on PostgreSQL, in every other notifier on the same database through LISTEN/NOTIFY (two
notifiers here, each with its own connections, stand for two service processes). A listener
whose connection is killed polls, reconnects and misses nothing; a killed publisher connection
loses nothing either."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from itertools import count

import pytest

from raas.service.notify import FALLBACK_POLL_S, SAFETY_POLL_S, Notifier
from tests.service.pg_server import PgServer

WIDE_S = 5.0  # a wide margin for a loaded 2-core box; the NOTIFY path takes milliseconds
_DB = count(1)


def _until(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


async def _woken_after(notifier: Notifier, channel: str, trigger: Callable[[], None]) -> float:
    """Subscribe, run `trigger`, answer how long until the subscription was woken."""
    with notifier.subscribe(channel) as sub:
        sub.clear()
        t0 = time.monotonic()
        trigger()
        while time.monotonic() - t0 < WIDE_S:
            if await sub.wait(WIDE_S):
                return time.monotonic() - t0
    raise AssertionError(f"no wake on {channel!r} within {WIDE_S} s")


# -- this process only (SQLite, or no listener) ------------------------------------------------


def test_a_publish_wakes_a_subscriber_of_its_channel_only() -> None:
    notifier = Notifier(None)

    async def run() -> tuple[bool, bool]:
        with notifier.subscribe("commands") as commands, notifier.subscribe("jobs") as jobs:
            notifier.publish("jobs", "7")
            return await jobs.wait(WIDE_S), await commands.wait(0.01)

    jobs_woken, commands_woken = asyncio.run(run())
    assert jobs_woken and not commands_woken
    stats = notifier.stats()
    assert stats[("published", "jobs")] == 1
    assert stats[("wakes", "jobs", "notify")] == 1
    assert stats[("wakes", "commands", "poll")] == 1


def test_a_publish_from_another_thread_wakes_the_loop() -> None:
    notifier = Notifier("sqlite:///x.db")

    async def run() -> float:
        def later() -> None:
            threading.Timer(0.05, notifier.publish, ("revocations",)).start()

        return await _woken_after(notifier, "revocations", later)

    assert asyncio.run(run()) < WIDE_S


def test_without_a_listener_waiters_poll_at_the_fallback_interval() -> None:
    notifier = Notifier("sqlite:///x.db")
    notifier.start()  # nothing to start on SQLite
    assert notifier.backend == "local" and not notifier.listening
    assert notifier.poll_interval() == FALLBACK_POLL_S

    async def run() -> tuple[bool, float]:
        with notifier.subscribe("tokens") as sub:
            t0 = time.monotonic()
            woken = await sub.wait(60.0)  # capped at the poll interval
            return woken, time.monotonic() - t0

    woken, waited = asyncio.run(run())
    assert not woken and waited < WIDE_S


def test_an_unknown_channel_or_an_oversized_payload_is_refused() -> None:
    notifier = Notifier(None)
    with pytest.raises(ValueError, match="unknown notify channel 'job'"):
        notifier.publish("job")
    with pytest.raises(ValueError, match="8000 bytes"):
        notifier.publish("jobs", "x" * 8000)


# -- two notifiers on one PostgreSQL database ---------------------------------------------------


@pytest.fixture
def pair(pg_server: PgServer) -> Iterator[tuple[Notifier, Notifier]]:
    url = pg_server.create_database(f"notify_{os.getpid()}_{next(_DB)}")
    a, b = Notifier(url), Notifier(url)
    a.start()
    b.start()
    try:
        assert _until(lambda: a.listening and b.listening), "the listeners did not connect"
        yield a, b
    finally:
        a.stop()
        b.stop()


def test_a_publish_reaches_the_other_process_through_notify(
    pair: tuple[Notifier, Notifier],
) -> None:
    a, b = pair
    assert b.backend == "postgresql" and b.poll_interval() == SAFETY_POLL_S
    payloads: list[str] = []
    b.on_message("jobs", payloads.append)
    latency = asyncio.run(_woken_after(b, "jobs", lambda: a.publish("jobs", "42")))
    print(f"\nNOTIFY wake across notifiers: {latency * 1000:.1f} ms")
    assert _until(lambda: "42" in payloads)
    assert b.stats()[("received", "jobs")] == 1
    # A's own publish woke A directly; its listener does not count it again.
    assert a.stats().get(("received", "jobs"), 0) == 0


def test_a_killed_listener_polls_reconnects_and_misses_nothing(
    pair: tuple[Notifier, Notifier], pg_server: PgServer
) -> None:
    a, b = pair
    calls: list[str] = []
    b.on_message("tokens", calls.append)
    old = b.listener_pid
    assert old is not None
    pg_server.psql(f"SELECT pg_terminate_backend({old})")
    # Published while B's listener is gone: B reads it when it reconnects (handlers called).
    a.publish("tokens", "while-down")
    assert _until(lambda: b.stats().get(("reconnects",), 0) == 1), "no reconnect seen"
    assert _until(lambda: b.listening and b.listener_pid not in (None, old))
    assert _until(lambda: len(calls) >= 1), "the reconnect did not call the handlers"
    # And NOTIFY works again on the new connection.
    latency = asyncio.run(_woken_after(b, "revocations", lambda: a.publish("revocations")))
    print(f"\nafter reconnect: {latency * 1000:.1f} ms")
    assert _until(lambda: b.stats().get(("received", "revocations"), 0) >= 1)


def test_a_killed_publisher_connection_loses_no_publish(
    pair: tuple[Notifier, Notifier], pg_server: PgServer
) -> None:
    a, b = pair
    payloads: list[str] = []
    b.on_message("commands", payloads.append)
    a.publish("commands", "first")  # opens A's publisher connection
    assert _until(lambda: "first" in payloads)
    pg_server.psql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'raas-notify-publisher'"
    )
    a.publish("commands", "second")
    assert _until(lambda: "second" in payloads), "the publish after a lost connection was lost"
    assert a.stats().get(("publish_errors",), 0) >= 1
