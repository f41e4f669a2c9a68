"""Wake-ups that reach every service process: named channels over PostgreSQL LISTEN/NOTIFY.

The service may run as several uvicorn workers or replicas behind one database. A route that
commits a change others wait for (a revoked lease, an e-stop, a revoked token, a queued job)
calls `state.notify.publish(channel, payload)` *after its commit*; every subscriber of that
channel, in this process and in every other service process, wakes and re-reads the database.
A wake-up carries no data that matters: the database is the truth, a wake says "read again".

Channels (`CHANNELS`): `revocations` (lease revocation feed), `commands` (e-stop command feed),
`tokens` (a commit changed tokens or users: other processes empty their token cache), `jobs`
(a job was submitted, requeued or cancelled: idle claimers look again).

How a publish travels:
- in this process, at once: every waiter of the channel is woken (thread-safe, any loop);
- on PostgreSQL, to the other processes: a publisher thread sends `pg_notify('raas_<channel>',
  payload)` on its own connection (publish never blocks the caller); in every process a
  listener thread holds a dedicated connection that LISTENs on every channel and wakes that
  process's waiters when a notification arrives (and calls the channel's handlers, e.g. the
  token cache's invalidation). Both connections reconnect with a growing backoff (0.1 s up to
  `MAX_BACKOFF_S`). While the listener is not connected, waiters fall back to polling the
  database every `FALLBACK_POLL_S`; when it (re)connects every channel is woken and every
  handler called once, so whatever was published in the gap is read then: nothing is missed.
  While it listens, waiters still re-read every `SAFETY_POLL_S` (a belt to the braces);
- on SQLite there is no NOTIFY: waiters in this process wake at once, other processes (several
  workers on one SQLite file) see the change within `FALLBACK_POLL_S`.

API (the jobs claim long-poll uses exactly this):

    with state.notify.subscribe("jobs") as sub:   # a Subscription, for this event loop
        while True:
            sub.clear()                       # before reading: a publish meanwhile wakes the wait
            found = read_the_database()
            if found or out_of_time:
                break
            await sub.wait(remaining_seconds)  # True: woken by a publish; False: poll interval

or, the same loop as one call: `await long_poll(state.notify, "jobs", wait_s, read, has_news,
request.is_disconnected)` (`read` runs in the thread pool). Publishing, from any thread or the
event loop (it never blocks), after the commit: `state.notify.publish("jobs", str(job.id))`
(payload: text under 8000 bytes, or none). Code that must act on another process's publish
outside a request registers `state.notify.on_message(channel, handler)` (called in the
listener thread; the token cache does).

`start()` (the app's lifespan does it) begins listening; without it (an app used in-process
without its lifespan, a script) the notifier wakes only its own process and waiters poll at
`FALLBACK_POLL_S`. Counters for /metrics: `stats()` (docs/metrics.md, `raas_notify_*`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import select
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
from sqlalchemy.engine import make_url
from starlette.concurrency import run_in_threadpool

log = logging.getLogger("raas.service.notify")

T = TypeVar("T")

CHANNELS = ("revocations", "commands", "tokens", "jobs")
#: Prefix of the PostgreSQL channel names (`raas_revocations`, ...).
PG_PREFIX = "raas_"
#: How often waiters re-read the database when no listener is connected (SQLite, a lost
#: connection, an app without its lifespan).
FALLBACK_POLL_S = 0.25
#: How often waiters re-read the database while the listener is connected.
SAFETY_POLL_S = 2.0
#: Longest wait between two reconnection attempts.
MAX_BACKOFF_S = 5.0
#: Longest the listener waits on its socket before looking around (stop wakes it at once).
IDLE_S = 5.0
#: What `stop()` puts in the publisher's queue.
_STOP = ("", "")
#: PostgreSQL refuses payloads of 8000 bytes or more.
MAX_PAYLOAD = 7999
#: application_name of the two connections (find them in pg_stat_activity).
LISTENER_NAME = "raas-notify-listener"
PUBLISHER_NAME = "raas-notify-publisher"


def _check(channel: str) -> str:
    """The channel, or ValueError naming it (a typo in code, not bad input)."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown notify channel {channel!r} (one of {', '.join(CHANNELS)})")
    return channel


@dataclass(eq=False)  # hashed by identity: the notifier keeps a set of them
class Subscription:
    """One waiter on one channel (made by `Notifier.subscribe`)."""

    notifier: Notifier
    channel: str
    loop: asyncio.AbstractEventLoop
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def clear(self) -> None:
        """Call before reading the database: a publish during the read wakes the next wait."""
        self.event.clear()

    async def wait(self, timeout: float) -> bool:
        """Until a publish on the channel (True) or `timeout`, capped at the notifier's poll
        interval, passes (False: read again anyway)."""
        cap = max(0.0, min(timeout, self.notifier.poll_interval()))
        woken = False
        with suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout=cap)
            woken = True
        self.notifier.count_wake(self.channel, "notify" if woken else "poll")
        return woken


class Notifier:
    """Named channels whose publishes wake subscribers in every service process.

    `database_url` None or SQLite: this process only (others poll). PostgreSQL: LISTEN/NOTIFY
    once `start()` ran."""

    def __init__(self, database_url: str | None = None) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[Subscription]] = {c: set() for c in CHANNELS}
        self._handlers: dict[str, list[Callable[[str], None]]] = {c: [] for c in CHANNELS}
        self._counts: Counter[tuple[str, ...]] = Counter()
        self._pg_url = _pg_url(database_url)
        self._outbox: queue.Queue[tuple[str, str]] = queue.Queue()
        self._stop = threading.Event()
        self._stop_pipe: tuple[int, int] | None = None  # wakes the listener's select()
        self._threads: list[threading.Thread] = []
        self._listening = threading.Event()
        self._listener_pid: int | None = None
        self._publisher_pid: int | None = None

    # -- subscribing and publishing --------------------------------------------------------

    @property
    def backend(self) -> str:
        """`postgresql` when publishes cross processes through the database, else `local`."""
        return "postgresql" if self._pg_url is not None else "local"

    @property
    def listening(self) -> bool:
        """The listener's connection is up and LISTENs on every channel."""
        return self._listening.is_set()

    @property
    def listener_pid(self) -> int | None:
        """The backend pid of the listener's connection (for tests and operators)."""
        return self._listener_pid if self.listening else None

    def poll_interval(self) -> float:
        return SAFETY_POLL_S if self.listening else FALLBACK_POLL_S

    @contextmanager
    def subscribe(self, channel: str) -> Iterator[Subscription]:
        """A waiter on `channel` for the running event loop, until the block ends."""
        sub = Subscription(self, _check(channel), asyncio.get_running_loop())
        with self._lock:
            self._waiters[channel].add(sub)
        try:
            yield sub
        finally:
            with self._lock:
                self._waiters[channel].discard(sub)

    def on_message(self, channel: str, handler: Callable[[str], None]) -> None:
        """Call `handler(payload)` (in the listener thread) for every publish on `channel`
        from *another* process, and once (payload "") whenever the listener (re)connects."""
        with self._lock:
            self._handlers[_check(channel)].append(handler)

    def publish(self, channel: str, payload: str = "") -> None:
        """Wake every subscriber of `channel` everywhere. Call after the commit; never blocks."""
        _check(channel)
        if len(payload.encode()) > MAX_PAYLOAD:
            raise ValueError(f"notify payload of {len(payload.encode())} bytes (limit 7999)")
        self._count("published", channel)
        self.wake(channel)
        if self._pg_url is not None and self._threads:
            self._outbox.put((channel, payload))

    def wake(self, channel: str) -> None:
        """Wake this process's subscribers of `channel`; safe from any thread."""
        with self._lock:
            waiters = list(self._waiters[channel])
        for sub in waiters:
            if not sub.loop.is_closed():
                with suppress(RuntimeError):  # the loop closed meanwhile
                    sub.loop.call_soon_threadsafe(sub.event.set)

    # -- counters --------------------------------------------------------------------------

    def _count(self, *key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def count_wake(self, channel: str, reason: str) -> None:
        self._count("wakes", channel, reason)

    def stats(self) -> dict[tuple[str, ...], int]:
        """Counters: ("published", ch), ("received", ch), ("wakes", ch, "notify"|"poll"),
        ("reconnects",), ("publish_errors",)."""
        with self._lock:
            return dict(self._counts)

    # -- the PostgreSQL side ---------------------------------------------------------------

    def start(self) -> None:
        """Begin listening and publishing through the database (no-op on SQLite or twice)."""
        if self._pg_url is None or self._threads:
            return
        self._stop.clear()
        self._stop_pipe = os.pipe()
        for target, name in ((self._listen, "listener"), (self._publish, "publisher")):
            thread = threading.Thread(target=target, name=f"raas-notify-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        """End both threads (at once: they are woken, not waited for) and their connections."""
        if not self._threads:
            return
        self._stop.set()
        self._outbox.put(_STOP)
        assert self._stop_pipe is not None
        os.write(self._stop_pipe[1], b"x")
        for thread in self._threads:
            thread.join(timeout=10.0)
        self._threads.clear()
        self._listening.clear()
        for fd in self._stop_pipe:
            os.close(fd)
        self._stop_pipe = None

    def _connect(self, name: str) -> Any:
        assert self._pg_url is not None
        return psycopg.connect(
            self._pg_url, autocommit=True, application_name=name, connect_timeout=5
        )

    def _backoff(self, delay: float) -> float:
        self._stop.wait(delay)
        return min(MAX_BACKOFF_S, delay * 2)

    def _listen(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            try:
                with self._connect(LISTENER_NAME) as conn:
                    for channel in CHANNELS:
                        conn.execute(f"LISTEN {PG_PREFIX}{channel}")
                    self._listener_pid = int(conn.info.backend_pid)
                    self._listening.set()
                    log.info("listening for notifications (backend pid %s)", conn.info.backend_pid)
                    self._caught_up()
                    delay = 0.1
                    assert self._stop_pipe is not None
                    watched = [conn.fileno(), self._stop_pipe[0]]
                    while not self._stop.is_set():
                        select.select(watched, [], [], IDLE_S)
                        if self._stop.is_set():
                            break
                        for note in conn.notifies(timeout=0):  # what has arrived, no wait
                            if note.pid != self._publisher_pid:  # ours woke us already
                                self._received(note.channel.removeprefix(PG_PREFIX), note.payload)
            except Exception as exc:  # any failure: poll, then reconnect
                if self._stop.is_set():
                    break
                was_listening = self._listening.is_set()
                self._listening.clear()
                if was_listening:
                    self._count("reconnects")
                    log.warning("notification listener lost its connection (%s); polling", exc)
                    for channel in CHANNELS:  # waiters in a long wait switch to fast polling
                        self.wake(channel)
                delay = self._backoff(delay)
        self._listening.clear()

    def _caught_up(self) -> None:
        """After (re)connecting: wake every channel and call every handler once, so whatever
        was published while nobody listened is read now."""
        for channel in CHANNELS:
            self.wake(channel)
            self._run_handlers(channel, "")

    def _received(self, channel: str, payload: str) -> None:
        """A publish of another process (this process's own were handled when published)."""
        if channel not in CHANNELS:
            return
        self._count("received", channel)
        self.wake(channel)
        self._run_handlers(channel, payload)

    def _run_handlers(self, channel: str, payload: str) -> None:
        with self._lock:
            handlers = list(self._handlers[channel])
        for handler in handlers:
            try:
                handler(payload)
            except Exception:  # one handler's bug must not stop the listener
                log.exception("notify handler for %r failed", channel)

    def _publish(self) -> None:
        pending: dict[tuple[str, str], None] = {}  # ordered, identical publishes sent once
        conn: Any = None
        delay = 0.1
        while not self._stop.is_set():
            if not pending:
                pending[self._outbox.get()] = None
            with suppress(queue.Empty):
                while len(pending) < 1000:
                    pending[self._outbox.get_nowait()] = None
            pending.pop(_STOP, None)
            if self._stop.is_set():
                break
            try:
                if conn is None:
                    conn = self._connect(PUBLISHER_NAME)
                    self._publisher_pid = int(conn.info.backend_pid)
                with conn.transaction():  # one commit: PostgreSQL delivers them together
                    for channel, payload in pending:
                        conn.execute("SELECT pg_notify(%s, %s)", (PG_PREFIX + channel, payload))
                pending.clear()
                delay = 0.1
            except Exception as exc:  # keep what is pending, reconnect
                self._count("publish_errors")
                log.warning("could not publish notifications (%s); retrying", exc)
                if conn is not None:
                    with suppress(Exception):
                        conn.close()
                conn = None
                delay = self._backoff(delay)
        if conn is not None:
            with suppress(Exception):
                conn.close()


def _pg_url(database_url: str | None) -> str | None:
    """A libpq URL for psycopg from a SQLAlchemy PostgreSQL URL; None for anything else."""
    if database_url is None:
        return None
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def long_poll(
    notifier: Notifier,
    channel: str,
    wait_s: float,
    read: Callable[[], T],
    has_news: Callable[[T], bool],
    gone: Callable[[], Awaitable[bool]] | None = None,
) -> T:
    """Read (in the thread pool) until `has_news(result)` or `wait_s` passes, reading again at
    once on every publish on `channel` (from any process). `gone` (the request's
    is_disconnected) ends the wait within a poll interval once the client left: a held poll of
    a stopped client would otherwise outlive it and be cancelled when the service stops."""
    deadline = time.monotonic() + wait_s
    with notifier.subscribe(channel) as sub:
        while True:
            sub.clear()
            found = await run_in_threadpool(read)
            remaining = deadline - time.monotonic()
            if has_news(found) or remaining <= 0:
                return found
            await sub.wait(remaining)
            if gone is not None and await gone():
                return found
