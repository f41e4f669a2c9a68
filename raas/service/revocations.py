"""Push of lease revocations to waiting daemons: the `revocations` channel of the notifier.

Routes that revoke leases call `state.hub.notify()` after their commit; long-polls and event
streams waiting in *every* service process wake at once (raas/service/notify.py: in this
process directly, in the others through PostgreSQL LISTEN/NOTIFY). Waiters also re-read the
database at least every poll interval of the notifier (`FALLBACK_POLL_S` when no listener is
connected: SQLite, or a lost connection), which covers anything a wake-up missed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import TypeVar

from raas.service import notify
from raas.service.notify import FALLBACK_POLL_S, Notifier, Subscription

__all__ = ["FALLBACK_POLL_S", "RevocationHub", "long_poll"]

T = TypeVar("T")


class RevocationHub:
    """One channel of the notifier under the name routes know (`state.hub.notify()`)."""

    def __init__(self, notifier: Notifier, channel: str = "revocations") -> None:
        self.notifier = notifier
        self.channel = channel

    def subscribe(self) -> AbstractContextManager[Subscription]:
        """A waiter woken by every notify; `clear()` it *before* reading the database."""
        return self.notifier.subscribe(self.channel)

    def notify(self) -> None:
        """Wake every waiter of the channel in every service process; safe from any thread."""
        self.notifier.publish(self.channel)


async def long_poll(
    hub: RevocationHub,
    wait_s: float,
    read: Callable[[], T],
    has_news: Callable[[T], bool],
    gone: Callable[[], Awaitable[bool]] | None = None,
) -> T:
    """`notify.long_poll` on the hub's channel: the long-poll of the revocation feed."""
    return await notify.long_poll(hub.notifier, hub.channel, wait_s, read, has_news, gone)
