"""What decides the action of a cycle: an in-loop policy, a scripted gait, or a remote client."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from raas.core.observation import Observation


class Controller(Protocol):
    #: Shown in status lines and stats.
    name: str
    #: Sources the controller reads; the loop waits for these before deciding and collects the
    #: others (e.g. cameras for a state-based policy) after applying, so they add no latency.
    needs: frozenset[str]

    def reset(self) -> None:
        """Start of an episode: forget recurrent state."""
        ...

    def decide(self, obs: Observation, out: np.ndarray) -> bool:
        """Write the desired action (20 position targets, rad) into `out`.

        Return False when there is no action for this cycle (the loop then takes the fallback).

        A controller may also have `prepare() -> None`: the realtime loop calls it
        LoopConfig.prepare_lead_ms before each trigger (PolicyController warms its inference
        up there); it must not change what decide() will return.

        And `background_warmup() -> Callable[[], object] | None`, called on the loop's thread
        once per realtime cycle before the wait for the devices (and, with a prepare() run
        before the trigger, once more right after it): what the loop's helper thread should run
        again and again during that wait and that lead (LoopConfig.warm_during_collect,
        warm_during_lead, raas/core/background_warmup.py), or None. What it returns must not
        change what decide() will return and must be safe while decide() runs on the loop's
        thread.

        And it may have a bool attribute `planned`, read after each decide: True when this
        cycle's action was planned for this very cycle before it began (a policy server's chunk
        row, indexed by cycle: raas.transport.policy_serve). The decide budget does not apply to
        such an action: a slow decide (a stalled process) does not make it stale, and the
        fallback (the last action repeated) would be the worse target for the same moment.

        And a bool attribute `rests_while_held`: True when the controller's only effect is its
        action (a policy; not a remote session, whose decide() also serves the client's
        requests). While the supervisor ignores actions (hold, fault, idle, ramp-down) the loop
        then calls none of decide(), prepare() and background_warmup(): a slow policy held for
        inference_overrun cannot stretch the cycles that keep sending the hold target (the
        hand's firmware watchdog trips after 500 ms without a command). Once the supervisor is
        armed again the loop asks the controller again, from the memory it had."""
        ...
