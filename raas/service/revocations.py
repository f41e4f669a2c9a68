"""In-process push of lease revocations to waiting daemons.

Routes that revoke leases call `RevocationHub.notify()` after their commit; long-polls and
event streams waiting in this process wake at once. Waiters also re-read the database at least
every `FALLBACK_POLL_S`, which covers revocations committed by another service process.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

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
