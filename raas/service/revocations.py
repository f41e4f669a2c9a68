"""In-process push of lease revocations to waiting daemons.

Routes that revoke leases call `RevocationHub.notify()` after their commit; long-polls and
event streams waiting in this process wake at once. Waiters also re-read the database at least
every `FALLBACK_POLL_S`, which covers revocations committed by another service process.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")

FALLBACK_POLL_S = 0.25


class RevocationHub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    @contextmanager
    def subscribe(self) -> Iterator[asyncio.Event]:
        """An event set on every notify; clear it *before* reading the database."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.add(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                self._waiters.discard(entry)

    def notify(self) -> None:
        """Wake every waiter; safe to call from any thread."""
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)


async def wait_for(event: asyncio.Event, timeout: float) -> None:
    """Wait until `event` is set or `timeout` (capped at the fallback poll interval) passes."""
    with suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=max(0.0, min(timeout, FALLBACK_POLL_S)))


async def long_poll(
    hub: RevocationHub,
    wait_s: float,
    read: Callable[[], T],
    has_news: Callable[[T], bool],
    gone: Callable[[], Awaitable[bool]] | None = None,
) -> T:
    """Read (in the thread pool) until `has_news(result)` or `wait_s` passes, waking at once on
    every notify: the long-poll of the revocation and command feeds. `gone` (the request's
    is_disconnected) ends the wait within a fallback poll once the client left: a held poll of
    a stopped daemon would otherwise outlive it and be cancelled when the service stops."""
    deadline = time.monotonic() + wait_s
    with hub.subscribe() as event:
        while True:
            event.clear()  # before reading: a notify during the read wakes the next wait
            found = await run_in_threadpool(read)
            remaining = deadline - time.monotonic()
            if has_news(found) or remaining <= 0:
                return found
            await wait_for(event, remaining)
            if gone is not None and await gone():
                return found
