"""The requeue sweep, run before every claim and every `job_sweep_interval_s` by a task of the
service: attempts whose worker went silent for `job_claim_timeout_s` (or whose hold ran out)
go back to the queue with their leases revoked; queued jobs past their deadline expire."""

from __future__ import annotations

import asyncio
import logging

from starlette.concurrency import run_in_threadpool

from raas.service.crud import job_attempts
from raas.service.job_wake import announce_jobs
from raas.service.state import ServiceState

log = logging.getLogger(__name__)


def sweep_once(state: ServiceState) -> bool:
    """Sweep if a cheap read finds something to do; True when a job changed."""
    now = state.clock()
    with state.db.read() as db:
        if not job_attempts.sweep_due(db, now, state.settings):
            return False
    with state.db.write() as db:
        revoked, changed = job_attempts.sweep(db, now, state.settings)
    if revoked:
        state.hub.notify()  # the daemons of the requeued attempts stop at once
    if changed:
        announce_jobs(state)
    return changed


async def sweep_forever(state: ServiceState) -> None:
    while True:
        await asyncio.sleep(state.settings.job_sweep_interval_s)
        try:
            await run_in_threadpool(sweep_once, state)
        except Exception:  # a busy database or a lost connection: try again next round
            log.exception("job sweep failed")
