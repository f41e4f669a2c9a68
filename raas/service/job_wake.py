"""Wake-ups of job workers waiting in `POST /robots/{id}/jobs/claim?wait=S`.

`announce_jobs` is called after every commit that may give a waiting worker something to
claim (a submit, a requeue, a hold or booking change); `wait_for_jobs` is the claim's
long-poll. Both use the notifier's `jobs` channel (raas/service/notify.py): waiters of this
process wake at once, waiters of every other service process through PostgreSQL
LISTEN/NOTIFY (on SQLite within the notifier's fallback poll).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from raas.service.notify import long_poll
from raas.service.state import ServiceState

T = TypeVar("T")


def announce_jobs(state: ServiceState) -> None:
    """Wake every claim waiting for a job, in every service process (channel `jobs`)."""
    state.notify.publish("jobs")


async def wait_for_jobs(
    state: ServiceState,
    wait_s: float,
    attempt: Callable[[], T],
    found: Callable[[T], bool],
    gone: Callable[[], Awaitable[bool]] | None = None,
) -> T:
    """Run `attempt` (in the thread pool) until `found(result)` or `wait_s` passes, again on
    every announcement and at least every fallback poll."""
    return await long_poll(state.notify, "jobs", wait_s, attempt, found, gone)
