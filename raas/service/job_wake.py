"""Wake-ups of job workers waiting in `POST /robots/{id}/jobs/claim?wait=S`.

`announce_jobs` is called after every commit that may give a waiting worker something to
claim (a submit, a requeue, a hold or booking change); `wait_for_jobs` is the claim's
long-poll. Both go through the in-process hub (raas/service/revocations.py): waiters of this
process wake at once, waiters of another service process within its fallback poll
(`FALLBACK_POLL_S`). These two functions are the only place that knows how the wake-up
travels: point them at a cross-process channel (PostgreSQL LISTEN/NOTIFY) to reach every
worker process at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from raas.service.revocations import long_poll
from raas.service.state import ServiceState

T = TypeVar("T")


def announce_jobs(state: ServiceState) -> None:
    """Wake every claim waiting for a job (channel `jobs`)."""
    state.jobs_hub.notify()


async def wait_for_jobs(
    state: ServiceState,
    wait_s: float,
    attempt: Callable[[], T],
    found: Callable[[T], bool],
    gone: Callable[[], Awaitable[bool]] | None = None,
) -> T:
    """Run `attempt` (in the thread pool) until `found(result)` or `wait_s` passes, again on
    every announcement and at least every fallback poll."""
    return await long_poll(state.jobs_hub, wait_s, attempt, found, gone)
