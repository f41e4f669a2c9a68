"""The control modes a session can put the robot in, behind one interface.

`SessionController` (raas/transport/session.py) is the session registry: it serves the control
socket, opens and closes sessions, checks leases and liveness, and hands each cycle to the mode
that decides it. Each mode keeps its own rules in its own module:

    remote_step.py   `step`: the controlling client's action for each observation
    bundle_run.py    `policy`: an uploaded bundle's controller runs inside the loop
    health_run.py    `health`: the post-session health check's fixed motion
    policy_serve.py  `serve`: a remote policy server's action chunks, never waited for
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from raas.core.observation import Observation
from raas.safety import Transition


class ControlMode(Protocol):
    #: The mode's name as `status`, `heartbeat` and the stream show it.
    name: str

    def decide(self, obs: Observation, out: np.ndarray) -> bool:
        """This cycle's action into `out`; False: the loop's fallback (counted, reported)."""
        ...

    def stopped(self, t: Transition) -> None:
        """The supervisor stopped the hand (hold, ramp down, fault) while this mode ran."""
        ...

    def end(self, reason: str) -> None:
        """The mode ends: its session closed, an e-stop, or a client's `stop`/`disarm`."""
        ...
