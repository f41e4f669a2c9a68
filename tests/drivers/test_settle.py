"""A cycle's requests go out before any clock fit: fire() and request_state() only send, and
the fits run in settle(), which the loop calls once every device was asked. Before, the hand's
state request waited for the trigger board's fit (~50 us hot, ~300 us after 80 ms idle)."""

from __future__ import annotations

import pytest
from raas_drivers.sim import RigConfig, SimRig

from tests.drivers.conftest import bring_up, collect, step

pytestmark = [pytest.mark.system]


def test_requests_send_only_and_settle_fits_both_clocks() -> None:
    with SimRig(RigConfig(clock="lockstep", cameras=0, seed=0)) as rig:
        cell = bring_up(rig)
        for _ in range(10):
            step(cell)
        trigger, hand = cell.devs.trigger.clock.mapper, cell.devs.hand.clock.mapper
        # the last step's answers are exchanges not fitted yet: the next requests must not fit
        t0, h0 = trigger.fits, hand.fits
        k = cell.next_cycle()
        cell.devs.trigger.fire(k)
        cell.devs.hand.request_state(k)
        assert (trigger.fits, hand.fits) == (t0, h0), "a request ran a clock fit"
        cell.devs.trigger.settle()
        assert trigger.fits == t0 + 1 and hand.fits == h0
        cell.devs.hand.settle()
        assert hand.fits == h0 + 1
        cell.devs.hand.settle()  # nothing new observed: no second fit
        assert hand.fits == h0 + 1
        collect(cell.sources, k)
