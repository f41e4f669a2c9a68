"""The simulated rig process: physics, the hand and trigger boards' firmware, mocap server.

    python -m raas_drivers.sim.rig --config '<RigConfig JSON>' --dir <rig dir> \
        [--render-sock <path>] [--ready-fd N] [--parent-pid P]

Serves, in one single-threaded epoll loop:
  <dir>/hand.tty     the hand board's serial port: a pty running the emulated firmware
  <dir>/trigger.tty  the trigger board's serial port (both: raas_firmware_bridge protocol)
  <dir>/mocap.sock   mocap control (subscribe with a UDP port); frames go out as UDP datagrams
and, when cameras are on, sends each trigger's scene state to the camera process (render.py).
The `*.tty` paths are symlinks to the current /dev/pts/N (like /dev/serial/by-id): a port that
vanished and came back is found at the same path. Link faults (RigConfig.link) are injected here.

Clocks:
  realtime  physics follows CLOCK_MONOTONIC (one mj_step per 2 ms of wall time, caught up before
            any capture); the hand's servo tick runs at 1 kHz of wall time; a trigger or state
            request is captured when it arrives, at CLOCK_MONOTONIC.
  lockstep  trigger k advances the world to sim time k * period under the last applied targets
            (one servo tick per physics step), then captures everything; stamps are sim time.
            The frames of cycle k are rendered before the cycle is acknowledged. The hand's
            messages that arrived before a trigger are handled first, and a trigger waits until
            the hand's STATE_REQUEST of its cycle has arrived (the hand's port is ordered, so
            the previous cycle's SET_TARGETS is then in too; two ptys are not ordered with
            respect to each other). A trigger whose state request does not come within
            TRIGGER_WAIT_S of wall time is handled anyway. A run depends only on the seed and
            on what the loop sent.
Every device stamps in its own clock (RigConfig.clocks: offset and drift against the host's
clock, docs/clocks.md). The boards' firmware runs on the rig's clock (its watchdog and the
port's pacing); what it puts on the wire (STATE fw_time_us, TRIGGER_ACK hw_time_us, HEARTBEAT
time_us) is its board's own clock (Firmware.wire_time_us). The mocap datagrams and camera notes
carry the mocap server's and the cameras' clock.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import shutil
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from raas_firmware_bridge.emulator.board_port import BoardPort
from raas_firmware_bridge.emulator.firmware import Firmware
from raas_firmware_bridge.emulator.record import EventRecord
from raas_firmware_bridge.messages import Heartbeat, Message, SetTargets, Trigger

from raas_drivers.sim import link
from raas_drivers.sim.boards import SimHandBoard, SimTriggerBoard
from raas_drivers.sim.config import RigConfig
from raas_drivers.sim.fault_clock import FaultClock
from raas_drivers.sim.link import LinkClosedError, LinkConn, LinkFullError, LinkServer
from raas_drivers.sim.mocap_model import MocapModel
from raas_drivers.sim.proc import die_with_parent, exit_on_sigterm, log, report_ready
from raas_drivers.sim.protocol import MOCAP_HEADER, MOCAP_MAGIC, mocap_datagram_size
from raas_drivers.sim.timing_faults import ActionDelay, TimestepStretch
from raas_drivers.sim.world import MARKER_NAMES, World

RENDER_DONE_TIMEOUT_S = 60.0
MAX_CATCH_UP_STEPS = 50  # realtime: beyond this we were stalled; re-base rather than race
SERVO_PERIOD_NS = 1_000_000  # the hand board's 1 kHz servo tick
TRIGGER_WAIT_S = 0.05  # lockstep: how long a trigger waits for the hand's state request
RENDER_HOLD_NS = 5_000_000  # realtime: how long a render waits for the hand's answer of its cycle
#: realtime: how long a pulse's capture work waits for the hand's state request of its cycle
#: (at most a quarter of the period), when the host asks the hand every cycle (_hand_first)
HAND_FIRST_WAIT_NS = 300_000


class RigProcess:
    def __init__(self, cfg: RigConfig, sock_dir: Path, render_sock: str | None) -> None:
        self.cfg = cfg
        self.lockstep = cfg.clock == "lockstep"
        self.period_ns = cfg.period_ns
        # (the first three children are the ones the rig always used: adding more changes none)
        seeds = np.random.SeedSequence(cfg.seed).spawn(5)
        self.world = World(cfg.world_params())
        self.world.reset(int(seeds[0].generate_state(1)[0]))
        self.dt_ns = self.world.timestep_ns
        self.mocap = MocapModel(
            len(MARKER_NAMES),
            seed=int(seeds[1].generate_state(1)[0]),
            noise_m=cfg.mocap_noise_m,
            dropout_rate_hz=cfg.mocap_dropout_rate_hz,
            dropout_s=cfg.mocap_dropout_s,
            dropout_jitter_s=min(cfg.mocap_dropout_jitter_s, cfg.mocap_dropout_s),
        )
        self.mocap_path = str(sock_dir / "mocap.sock")
        self.mocap_server = LinkServer(self.mocap_path)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.setblocking(False)
        self.mocap_subs: dict[int, int] = {}  # control fd -> UDP port
        self.ep = select.epoll()
        self.conns: dict[int, LinkConn] = {}
        self.kind: dict[int, str] = {}
        self._watch(self.mocap_server.fileno(), "mocap_server")
        self.render: LinkConn | None = None
        if render_sock:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.connect(render_sock)
            self.render = LinkConn(s)
            self.render.send(["hello", "rig"])
            self._watch(self.render.fileno(), "render")
        # the boards
        lc = cfg.link
        record_path = cfg.faults.record_path or sock_dir / "events.jsonl"
        self.record = EventRecord(record_path if lc.record_events else None)
        self.fault_clock = FaultClock(cfg.faults)
        self.exit_at: float | None = None  # outlive_parent_s: time.monotonic() to exit at
        self.term_at: float | None = None  # outlive_parent_s: when a SIGTERM came
        self.on_wake: Callable[[], None] | None = None  # called on every wake-up of serve()
        hand_rng, trigger_rng = np.random.default_rng(seeds[2]).spawn(2)
        f = cfg.faults
        self.action_delay = ActionDelay(
            f.action_delay_cycles, f.action_delay_prob, np.random.default_rng(seeds[3])
        )
        self.stretch = TimestepStretch(
            f.timestep_stretch_lambda_hz,
            f.timestep_substep_s,
            self.period_ns,
            np.random.default_rng(seeds[4]),
        )
        # lockstep: the watchdog counts sim time, which moves a period per trigger
        watchdog_ms = (
            max(lc.watchdog_ms, 2e-6 * self.period_ns) if self.lockstep else lc.watchdog_ms
        )
        self.hand = SimHandBoard(
            self,
            BoardPort(
                "hand", sock_dir / "hand.tty", lc, hand_rng, faulty="hand" in lc.faulty_boards
            ),
            self.record,
            watchdog_ms,
        )
        self.trigger = SimTriggerBoard(
            self,
            BoardPort(
                "trigger",
                sock_dir / "trigger.tty",
                lc,
                trigger_rng,
                faulty="trigger" in lc.faulty_boards,
            ),
            self.record,
        )
        self.boards: dict[str, Firmware] = {"hand": self.hand, "trigger": self.trigger}
        self.board_clock = {"hand": cfg.clocks.hand, "trigger": cfg.clocks.trigger}
        self.faulty = [self.boards[b] for b in lc.faulty_boards]
        self._byte_faults(lc.faults_from_cycle == 0 and cfg.faults.start_file is None)
        self.board_fd: dict[str, int] = {}
        for name, board in self.boards.items():
            self._watch_board(name, board)
        # state
        self.last_trigger = -1
        self.t0_ns = 0
        self.next_tick_ns = 0
        self.snapshot: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] = tuple(  # type: ignore[assignment]
            a.copy() for a in self.world.hand_state()
        )
        self.snapshot_us = 0
        self.snapshot_seq = self.hand.applied_seq
        self.deferred: list[tuple[float, int, Trigger]] = []  # lockstep: (wall deadline, seq, msg)
        self.reset_done = False
        self.vanish_done = False
        self.replug_at: float | None = None  # wall time (time.monotonic) the ports come back
        self.datagram = bytearray(mocap_datagram_size(len(MARKER_NAMES)))
        self.frames_dropped = 0
        # realtime: (cycle, capture ns, scene), sent to the renderer once the hand's state of
        # that cycle went out, or at render_hold_ns (CLOCK_MONOTONIC) at the latest
        self.render_pending: tuple[int, int, bytes] | None = None
        self.render_hold_ns = 0
        self.capture_due: tuple[int, int] | None = None  # realtime: (cycle, pulse ns) to capture

    def _watch(self, fd: int, kind: str) -> None:
        self.kind[fd] = kind
        self.ep.register(fd, select.EPOLLIN)

    def _watch_board(self, name: str, board: Firmware) -> None:
        fd = board.port.fileno()
        if fd >= 0:
            self.board_fd[name] = fd
            self._watch(fd, "board:" + name)

    def _unwatch_board(self, name: str) -> None:
        fd = self.board_fd.pop(name, -1)
        if fd >= 0:
            with contextlib.suppress(OSError, ValueError):
                self.ep.unregister(fd)
            self.kind.pop(fd, None)

    def _drop(self, fd: int) -> None:
        self.ep.unregister(fd)
        self.kind.pop(fd, None)
        self.mocap_subs.pop(fd, None)
        conn = self.conns.pop(fd, None)
        if conn is not None:
            conn.close()

    def _drop_render(self) -> None:
        """The camera process is gone: carry on without cameras (its drivers see the EOF)."""
        if self.render is not None:
            self._drop(self.render.fileno())
            self.render.close()
            self.render = None
        self.render_pending = None

    # ------------------------------------------------------------------ clocks
    def now_ns(self) -> int:
        """The boards' clock: CLOCK_MONOTONIC (realtime) or sim time (lockstep)."""
        return self.world.time_ns if self.lockstep else time.monotonic_ns()

    def board_us(self, board: str, host_ns: int | None = None) -> int:
        """The board's own clock (whole us) at host time `host_ns` (default: now)."""
        return self.board_clock[board].device_us(self.now_ns() if host_ns is None else host_ns)

    def elapsed_s(self) -> float:
        return (self.now_ns() - (0 if self.lockstep else self.t0_ns)) * 1e-9

    # ------------------------------------------------------------------ physics
    def catch_up(self, now_ns: int) -> None:
        """realtime: run the physics steps whose time has come."""
        due = (now_ns - self.t0_ns + self.stretch.total_ns) // self.dt_ns - self.world.steps
        if due > MAX_CATCH_UP_STEPS:  # we were not scheduled for a while: do not race to catch up
            self.t0_ns += (due - 1) * self.dt_ns
            due = 1
        if due > 0:
            self.world.step_n(int(due))

    def servo_ticks(self, now_ns: int) -> None:
        """realtime: the hand board's 1 kHz tick (ticks missed while descheduled collapse into
        one: only the last one's targets would have mattered)."""
        if now_ns >= self.next_tick_ns:
            self.hand.tick(now_ns // 1000)
            self.next_tick_ns += SERVO_PERIOD_NS
            if self.next_tick_ns <= now_ns:
                self.next_tick_ns = now_ns - now_ns % SERVO_PERIOD_NS + SERVO_PERIOD_NS

    def advance_to_cycle(self, cycle: int) -> None:
        """lockstep: world time becomes cycle * period (never backwards), one servo tick per
        physics step (the plant cannot change between two steps)."""
        target = round((cycle * self.period_ns + self.stretch.total_ns) / self.dt_ns)
        world = self.world
        while world.steps < target:
            self.hand.tick(world.time_ns // 1000)
            world.step_n(1)

    # ------------------------------------------------------------------ captures
    def send_mocap(self, cycle: int, capture_ns: int, sent_ns: int) -> None:
        """capture_ns, sent_ns: host clock (sim time in lockstep); the datagram carries them on
        the mocap server's clock."""
        if not self.mocap_subs or self._sensor_lost("mocap_lost", self.cfg.faults.mocap_lost_at_s):
            return
        positions, visible = self.mocap.observe(self.world.marker_positions(), capture_ns * 1e-9)
        n = len(MARKER_NAMES)
        buf = self.datagram
        clock = self.cfg.clocks.mocap
        dev_capture = clock.device_ns(capture_ns)
        dev_sent = clock.device_ns(sent_ns if self.lockstep else time.monotonic_ns())
        MOCAP_HEADER.pack_into(buf, 0, MOCAP_MAGIC, cycle, dev_capture, dev_sent, n)
        off = MOCAP_HEADER.size
        buf[off : off + n * 24] = positions.tobytes()
        buf[off + n * 24 :] = visible.astype(np.uint8).tobytes()
        for port in self.mocap_subs.values():
            with contextlib.suppress(OSError):  # a subscriber that went away: UDP does not care
                self.udp.sendto(buf, ("127.0.0.1", port))

    def send_render(self, cycle: int, capture_ns: int, scene: bytes | None = None) -> None:
        if self.render is None:
            return
        if scene is None:
            scene = self.world.render_state().tobytes()
        message = ["render", cycle, capture_ns, self.lockstep, scene]
        try:
            self.render.send(message)
            if self.lockstep:
                answer = self.render.recv_wait(RENDER_DONE_TIMEOUT_S)
                if answer[0] != "done" or answer[1] != cycle:
                    log("rig: unexpected renderer answer", answer[:2])
        except LinkFullError:
            self.frames_dropped += 1
        except (LinkClosedError, TimeoutError) as exc:
            log("rig: camera process lost:", exc)
            self._drop_render()

    def capture(self, cycle: int) -> int:
        """The trigger board's pulse for `cycle`: the sync lines fire, motion capture and cameras
        capture. Returns the pulse's time on the trigger board's clock in us."""
        self.fault_clock.poll(time.monotonic_ns())
        if cycle > self.last_trigger:
            self.stretch.next_cycle()  # the plant runs this much longer than the coming period
        if self.lockstep:
            if cycle > self.last_trigger:
                self.advance_to_cycle(cycle)
            base = cycle * self.period_ns
            hand_ns = base + round(self.cfg.hand_offset_us * 1000)
            mocap_ns = base + round(self.cfg.mocap_offset_us * 1000)
            self.last_trigger = max(self.last_trigger, cycle)
            self.snapshot = tuple(a.copy() for a in self.world.hand_state())  # type: ignore[assignment]
            self.snapshot_us = self.board_us("hand", hand_ns)
            self.snapshot_seq = self.hand.applied_seq
            self.send_mocap(cycle, mocap_ns, base)
            self.send_render(cycle, base + round(self.cfg.camera_offset_us * 1000))
            return self.board_us("trigger", base)
        now = time.monotonic_ns()
        now -= now % 1000  # the boards count whole microseconds; every stamp of a pulse agrees
        self.last_trigger = cycle
        # the board acknowledges the pulse first, as a microcontroller would; the capture work
        # (physics up to the pulse, mocap frame, scene) follows at once (capture_after_ack), so
        # the ack's way back is not longer than the trigger's way in by that work (the host's
        # clock mapping takes the exchange's midpoint)
        self.capture_due = (cycle, now)
        return self.board_us("trigger", now)

    def capture_after_ack(self) -> None:
        """realtime: what the pulse of capture() set off: motion capture and cameras capture."""
        if self.capture_due is None:
            return
        cycle, now = self.capture_due
        self.capture_due = None
        self.record.write("rig", "capture", now, cycle=cycle)  # the work starts (mono_ns)
        self.catch_up(now)
        self.send_mocap(cycle, now, now)
        # the scene is snapshotted now, sent once the hand's state of this cycle has gone out
        # (see _render_due): the renderer takes the cores for milliseconds, and over ptys the
        # host's state request (sent after the trigger) and both kernel workers moving the
        # bytes would wait behind it
        if self.render is not None:
            if self.render_pending is not None:  # a newer trigger: the older scene goes first
                self.send_render(*self.render_pending)
            self.render_pending = (
                cycle,
                now + round(self.cfg.camera_offset_us * 1000),
                self.world.render_state().tobytes(),
            )
            self.render_hold_ns = time.monotonic_ns() + RENDER_HOLD_NS

    def _hand_first(self, cycle: int) -> None:
        """realtime: before the pulse's capture work, answer the hand's state request of the same
        cycle, waiting up to HAND_FIRST_WAIT_NS (a quarter of the period at most) for it.

        The host writes the trigger, then the hand's request, on two ptys; each reaches this
        process through a kernel worker, so the request comes in a later wake-up than the pulse.
        Without the wait the request queued behind the capture work (physics, the mocap frame,
        the scene: ~250 us of cold Python on the 2-core VM), where two real boards would answer
        independently (docs/performance.md, "Where the devices' answers go"). Only when the
        host asked for the previous cycle's state (a host that asks every cycle): a host that
        polls the hand less often never holds up the capture."""
        hand = self.hand
        asked = hand.max_requested
        if asked < 0 or asked != cycle - 1 or not hand.ready or not hand.port.port.plugged:
            return
        wait_ns = min(HAND_FIRST_WAIT_NS, self.period_ns // 4)
        end = time.monotonic_ns() + wait_ns
        fd = hand.port.fileno()
        while hand.max_requested < cycle and fd >= 0:
            left = end - time.monotonic_ns()
            if left <= 0:
                self.record.write("rig", "hand_first_timeout", self.now_ns(), cycle=cycle)
                return
            readable, _, _ = select.select([fd], [], [], left * 1e-9)
            if not readable:
                continue
            for frame in hand.port.receive():
                msg = hand._decode(frame)
                if msg is not None:
                    self.handle_board(hand, frame.seq, msg)

    def _render_due(self, now_ns: int) -> bool:
        """realtime: may the pending render go now? Once the hand answered its cycle (or never
        will: not set up, unplugged), or when the hold ran out (a host that does not ask)."""
        pending = self.render_pending
        if pending is None:
            return False
        hand = self.hand
        return (
            hand.last_answered >= pending[0]
            or now_ns >= self.render_hold_ns
            or not hand.ready
            or not hand.port.port.plugged
        )

    # ------------------------------------------------------------------ faults
    def _sensor_lost(self, kind: str, at_s: float | None) -> bool:
        """Is the sensor fault `kind` (RigConfig.faults) in effect? Recorded the first time."""
        now = time.monotonic_ns()
        if not self.fault_clock.due(at_s, now):
            return False
        if self.fault_clock.first(kind):
            log(f"rig: fault injection: {kind}")
            self.record.write("rig", "fault", self.now_ns(), kind=kind)
        return True

    def _link_clock_s(self) -> float | None:
        """The clock of the link faults: the rig's (since start), or with faults.start_file the
        fault clock (None until it started)."""
        if self.cfg.faults.start_file is None:
            return self.elapsed_s()
        return self.fault_clock.elapsed(time.monotonic_ns())

    def _byte_faults(self, on: bool) -> None:
        for board in self.faulty:
            board.port.tx_faults.enabled = on
            board.port.rx_faults.enabled = on

    def scheduled_faults(self, cycle: int | None) -> None:
        """Fault injection at a time or at a cycle (RigConfig.link)."""
        lc = self.cfg.link
        if not self.faulty:
            return
        now_s = self._link_clock_s()
        gated = self.cfg.faults.start_file is not None
        if (
            cycle is not None
            and (lc.faults_from_cycle > 0 or gated)
            and now_s is not None
            and cycle >= lc.faults_from_cycle
            and not self.faulty[0].port.tx_faults.enabled
        ):
            self._byte_faults(True)
            if gated and lc.byte_faults:
                self.record.write("rig", "fault", self.now_ns(), kind="byte_faults")
        if not self.reset_done and (
            (lc.reset_at_cycle is not None and cycle is not None and cycle >= lc.reset_at_cycle)
            or (lc.reset_at_s is not None and now_s is not None and now_s >= lc.reset_at_s)
        ):
            self.reset_done = True
            for board in self.faulty:
                log(f"rig: fault injection: {board.name} firmware reset")
                board.reboot(self.now_ns() // 1000)
        if not self.vanish_done and (
            (lc.vanish_at_cycle is not None and cycle is not None and cycle >= lc.vanish_at_cycle)
            or (lc.vanish_at_s is not None and now_s is not None and now_s >= lc.vanish_at_s)
        ):
            self.vanish_done = True
            for board in self.faulty:
                log(f"rig: fault injection: {board.name} port vanishes")
                self._unwatch_board(board.name)
                board.port.unplug()
                self.record.write(board.name, "unplugged", self.now_ns())
            if lc.vanish_for_s is not None:
                self.replug_at = time.monotonic() + lc.vanish_for_s
        if self.replug_at is not None and time.monotonic() >= self.replug_at:
            self.replug_at = None
            for board in self.faulty:
                board.port.plug()
                self._watch_board(board.name, board)
                board.reboot(self.now_ns() // 1000)  # a board that lost its cable lost power
                self.record.write(
                    board.name, "plugged", self.now_ns(), path=board.port.port.tty_path
                )

    # ------------------------------------------------------------------ messages
    def handle_board(self, board: Firmware, seq: int, msg: Message) -> None:
        host_ns = self.now_ns()
        now_us = host_ns // 1000
        if isinstance(msg, Trigger) and board is self.trigger:
            self.scheduled_faults(msg.cycle)
            if board.port.fileno() < 0:  # the trigger board itself vanished
                return
        if not self.lockstep and not isinstance(msg, (SetTargets, Heartbeat, Trigger)):
            # physics catches up before anything that looks at the plant (a trigger's capture
            # and a state request catch up themselves); latching targets or feeding the
            # watchdog does not, so the hand's state request behind them is not held up
            self.catch_up(host_ns)
        board.handle(msg, seq, now_us)
        if isinstance(msg, Trigger) and board is self.trigger and self.lockstep:
            self.hand.answer_pending(msg.cycle)

    def _trigger_ready(self, msg: Trigger) -> bool:
        """lockstep: may this trigger be handled now (see the module docstring)?"""
        hand = self.hand
        return (
            hand.max_requested >= msg.cycle
            or not hand.ready
            or msg.cycle <= self.last_trigger
            or not hand.port.port.plugged
        )

    def handle_mocap_control(self, fd: int, conn: LinkConn, message: list[Any]) -> None:
        if message[0] == "sub":
            self.mocap_subs[fd] = int(message[1])
            conn.send(["hello", {"markers": list(MARKER_NAMES), "clock": self.cfg.clock}])
        elif message[0] == "reset" and len(message) > 1 and isinstance(message[1], int):
            self.reset_scene(int(message[1]))
            conn.send(["reset", {"seed": int(message[1]), "sim_time_ns": self.world.time_ns}])
        else:
            conn.send([link.ERROR, f"unknown message {message[0]!r}"])

    def reset_scene(self, seed: int) -> None:
        """The reset command (between episodes): the block back in the palm and the hand at its
        start pose, placed exactly as a fresh rig with this seed places them (the first child of
        SeedSequence(seed), as __init__ does); the world's clock goes on."""
        if not self.lockstep:
            self.catch_up(time.monotonic_ns())
        world_seed = int(np.random.SeedSequence(seed).spawn(5)[0].generate_state(1)[0])
        self.world.place_block(world_seed)
        log(f"rig: scene reset (seed {seed})")
        self.record.write("rig", "scene_reset", self.now_ns(), seed=seed)

    # ------------------------------------------------------------------ loop
    def _timeout(self) -> float:
        wake: list[float] = []
        mono = time.monotonic_ns()
        if not self.lockstep:
            wake.append(self.t0_ns + (self.world.steps + 1) * self.dt_ns)
            wake.append(self.next_tick_ns)
            lc = self.cfg.link
            origin = self.t0_ns if self.cfg.faults.start_file is None else self.fault_clock.start_ns
            if origin is not None and lc.reset_at_s is not None and not self.reset_done:
                wake.append(origin + lc.reset_at_s * 1e9)
            if origin is not None and lc.vanish_at_s is not None and not self.vanish_done:
                wake.append(origin + lc.vanish_at_s * 1e9)
        for board in self.boards.values():
            nxt = board.port.next_flush_ns()
            if nxt is not None:
                wake.append(nxt if not self.lockstep else mono + board.port.byte_ns)
        if self.deferred:
            wake.append(min(d for d, _, _ in self.deferred) * 1e9)
        if self.render_pending is not None and not self.lockstep:
            wake.append(self.render_hold_ns)
        if self.replug_at is not None:
            wake.append(self.replug_at * 1e9)
        if self.exit_at is not None:
            wake.append(self.exit_at * 1e9)
        if self.term_at is not None and self.exit_at is None:
            wake.append(time.monotonic_ns() + 20_000_000)
        if not wake:
            return -1.0
        return max(0.0, (min(wake) - time.monotonic_ns()) * 1e-9)

    def serve(self) -> None:
        self.t0_ns = time.monotonic_ns()
        self.next_tick_ns = self.t0_ns
        hand_batch: list[tuple[Firmware, int, Message]] = []
        triggers: list[tuple[int, Trigger]] = []
        while self.exit_at is None or time.monotonic() < self.exit_at:
            events = self.ep.poll(self._timeout())
            if self.on_wake is not None:
                self.on_wake()
            hand_batch.clear()
            triggers.clear()
            for fd, _ in events:
                kind = self.kind.get(fd)
                if kind == "mocap_server":
                    self._accept(self.mocap_server, "mocap")
                elif kind == "render":
                    if self.render is not None:
                        try:
                            self.render.recv()
                        except LinkClosedError:
                            log("rig: camera process closed its link")
                            self._drop_render()
                elif kind == "mocap":
                    self._drain_mocap(fd)
                elif kind is not None and kind.startswith("board:"):
                    board = self.boards[kind[6:]]
                    for frame in board.port.receive():
                        msg = board._decode(frame)
                        if msg is None:
                            continue
                        if isinstance(msg, Trigger) and board is self.trigger and self.lockstep:
                            triggers.append((frame.seq, msg))
                        else:
                            hand_batch.append((board, frame.seq, msg))
            # lockstep: the hand's messages first (targets of the previous cycle, this cycle's
            # request, then the triggers: the order that makes a run deterministic). realtime:
            # the trigger board's acks first, then the hand's answers, then the pulse's capture
            # work: two boards answer independently, so neither answer waits for the other
            # board's work or for the capture (the host maps each board's clock by its
            # exchanges' midpoints, which a reply held up by the other board would skew)
            first = self.trigger if not self.lockstep else self.hand
            for board, seq, msg in hand_batch:
                if board is first:
                    self.handle_board(board, seq, msg)
            for board, seq, msg in hand_batch:
                if board is not first:
                    self.handle_board(board, seq, msg)
            if self.capture_due is not None and not self.lockstep:
                self._hand_first(self.capture_due[0])
            self.capture_after_ack()
            if self.lockstep:
                deadline = time.monotonic() + TRIGGER_WAIT_S
                self.deferred += [(deadline, seq, t) for seq, t in triggers]
                still: list[tuple[float, int, Trigger]] = []
                now = time.monotonic()
                for item in self.deferred:
                    if self._trigger_ready(item[2]) or now >= item[0]:
                        self.handle_board(self.trigger, item[1], item[2])
                    else:
                        still.append(item)
                self.deferred = still
            else:
                now_ns = time.monotonic_ns()
                self.catch_up(now_ns)
                self.servo_ticks(now_ns)
            self.scheduled_faults(None)
            now_ns = time.monotonic_ns()
            for board in self.boards.values():
                board.port.flush(now_ns)
            if self._render_due(time.monotonic_ns()):
                assert self.render_pending is not None
                self.send_render(*self.render_pending)
                self.render_pending = None

    def _accept(self, server: LinkServer, kind: str) -> None:
        conn = server.accept()
        if conn is not None:
            self.conns[conn.fileno()] = conn
            self._watch(conn.fileno(), kind)

    def _drain_mocap(self, fd: int) -> None:
        conn = self.conns[fd]
        while True:
            try:
                message = conn.recv()
            except (LinkClosedError, ValueError):
                self._drop(fd)
                return
            if message is None:
                return
            try:
                self.handle_mocap_control(fd, conn, message)
            except (LinkClosedError, LinkFullError):
                self._drop(fd)
                return


TERM_DECIDE_S = 0.2  # outlive_parent_s: how long after a SIGTERM we look whether the parent died


def _parent_alive(parent_pid: int) -> bool:
    if os.getppid() != parent_pid:
        return False
    try:
        state = Path(f"/proc/{parent_pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _outlive_parent(rig: RigProcess, parent_pid: int, outlive_s: float) -> None:
    """A SIGTERM because the launching process died: keep the hand and its firmware running
    `outlive_s` longer, as real hardware would; a SIGTERM from a live parent (the launcher
    closing) still ends the rig (TERM_DECIDE_S later). The decision waits: when a multi-threaded
    parent is killed, PR_SET_PDEATHSIG may fire as the creating thread exits, before the process
    is gone and we are re-parented."""

    def on_term(signum: int, frame: object) -> None:
        if rig.term_at is None:
            rig.term_at = time.monotonic()

    def decide() -> None:
        if rig.term_at is None or rig.exit_at is not None:
            return
        if time.monotonic() - rig.term_at < TERM_DECIDE_S:
            return
        if _parent_alive(parent_pid):
            raise SystemExit(0)
        rig.exit_at = rig.term_at + outlive_s
        rig.record.write("rig", "parent_died", rig.now_ns(), outlive_s=outlive_s)
        log(f"rig: the launching process died; the hand runs {outlive_s} s longer")

    rig.on_wake = decide
    signal.signal(signal.SIGTERM, on_term)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m raas_drivers.sim.rig")
    parser.add_argument("--config", required=True, help="RigConfig as JSON")
    parser.add_argument("--dir", required=True, help="directory for the ports and sockets")
    parser.add_argument("--render-sock", default="")
    parser.add_argument("--ready-fd", type=int, default=-1)
    parser.add_argument("--parent-pid", type=int, default=0)
    args = parser.parse_args(argv)
    exit_on_sigterm()
    try:
        die_with_parent(args.parent_pid)
        cfg = RigConfig.model_validate_json(args.config)
        rig = RigProcess(cfg, Path(args.dir), args.render_sock or None)
        if cfg.faults.outlive_parent_s > 0:
            _outlive_parent(rig, args.parent_pid, cfg.faults.outlive_parent_s)
        report_ready(
            args.ready_fd,
            {
                "pid": os.getpid(),
                "hand_port": str(rig.hand.port.link_path),
                "trigger_port": str(rig.trigger.port.link_path),
                "mocap_sock": rig.mocap_path,
                "markers": list(MARKER_NAMES),
                "events": str(Path(args.dir) / "events.jsonl"),
            },
        )
        with contextlib.suppress(KeyboardInterrupt):
            rig.serve()
    finally:
        # the rig directory ends with the rig: the launcher removes it too, but when the
        # launcher was killed (PR_SET_PDEATHSIG brought us here) nobody else would
        shutil.rmtree(args.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
