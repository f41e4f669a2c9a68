"""The simulated rig's two boards: the emulated firmware (raas_firmware_bridge.emulator) with the
rig's MuJoCo hand as the hand board's plant and the rig's motion capture and cameras on the
trigger board's sync lines.

SimHandBoard answers STATE_REQUEST like the rig always did: in realtime it samples the world when
the request arrives; in lockstep it answers from the snapshot taken at the cycle's trigger, and
a request for a cycle not triggered yet waits for its trigger. SimTriggerBoard's pulse is the
rig's capture of a cycle (RigProcess.capture).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from raas_firmware_bridge.emulator.board_port import BoardPort
from raas_firmware_bridge.emulator.firmware import HandFirmware, TriggerFirmware
from raas_firmware_bridge.emulator.record import EventRecord
from raas_firmware_bridge.messages import State

if TYPE_CHECKING:
    from raas_drivers.sim.rig import RigProcess


class SimHandBoard(HandFirmware):
    def __init__(
        self, rig: RigProcess, port: BoardPort, record: EventRecord, watchdog_ms: float
    ) -> None:
        super().__init__(
            "hand", port, record, ctrlrange=rig.world.ctrlrange, watchdog_ms=watchdog_ms
        )
        self.rig = rig
        self.pending: set[int] = set()  # lockstep: requested cycles not triggered yet
        self.max_requested = -1
        self.last_answered = -1  # the cycle of the latest state sent (realtime: releases renders)
        self._pos = np.zeros(len(rig.world.ctrlrange))
        self._holding = False

    def plant_targets(self, targets: np.ndarray) -> None:
        delay = self.rig.action_delay
        if delay.active and not self._holding:
            targets = delay.push(targets)  # [rig.faults] action delay: the motors lag
        self.rig.world.set_targets(targets)

    def on_hold(self, now_us: int) -> None:
        """A hold goes to the motors at once, never delayed; queued targets are dropped."""
        self._holding = True
        try:
            super().on_hold(now_us)
        finally:
            self._holding = False
        self.rig.action_delay.clear(self.targets)

    def plant_positions(self) -> np.ndarray:
        world = self.rig.world
        np.take(world.data.actuator_length, world.actuator_idx, out=self._pos)
        return self._pos

    def sample(self, cycle: int, now_us: int) -> State | None:
        rig = self.rig
        self.max_requested = max(self.max_requested, cycle)
        if not rig.lockstep:
            rig.catch_up(rig.now_ns())  # now_us is the board's clock, not the host's
            self.last_answered = cycle  # the latest, not the largest: a new host may count from 0
            return self.make_state(
                cycle, self.wire_time_us(now_us), self.applied_seq, rig.world.hand_state()
            )
        if cycle == rig.last_trigger:
            return self.snapshot_state(cycle)
        if cycle > rig.last_trigger:
            self.pending.add(cycle)
        return None  # an older cycle than the last trigger is gone: no answer (it is stale)

    def snapshot_state(self, cycle: int) -> State:
        rig = self.rig
        return self.make_state(cycle, rig.snapshot_us, rig.snapshot_seq, rig.snapshot)

    def answer_pending(self, cycle: int) -> None:
        """lockstep: the trigger of `cycle` came; answer the requests that waited for it."""
        if cycle in self.pending:
            self.send(self.snapshot_state(cycle))
        self.pending = {k for k in self.pending if k > cycle}

    def on_boot(self, now_us: int) -> None:
        super().on_boot(now_us)
        self.pending.clear()

    def wire_time_us(self, now_us: int) -> int:
        return self.rig.board_us("hand", now_us * 1000)


class SimTriggerBoard(TriggerFirmware):
    def __init__(self, rig: RigProcess, port: BoardPort, record: EventRecord) -> None:
        super().__init__("trigger", port, record)
        self.rig = rig

    def pulse(self, cycle: int, now_us: int) -> int | None:
        return self.rig.capture(cycle)

    def wire_time_us(self, now_us: int) -> int:
        return self.rig.board_us("trigger", now_us * 1000)
