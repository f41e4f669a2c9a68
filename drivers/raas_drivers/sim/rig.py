"""The simulated rig process: physics, hand and trigger board, motion-capture server.

    python -m raas_drivers.sim.rig --config '<RigConfig JSON>' --dir <socket dir> \
        [--render-sock <path>] [--ready-fd N] [--parent-pid P]

Serves, in one single-threaded epoll loop:
  <dir>/rig.sock    hand and trigger links (sim/link.py, msgpack over SOCK_SEQPACKET)
  <dir>/mocap.sock  mocap control (subscribe with a UDP port); frames go out as UDP datagrams
and, when cameras are on, sends each trigger's scene state to the camera process (render.py).

Clocks:
  realtime  physics follows CLOCK_MONOTONIC (one mj_step per 2 ms of wall time, caught up before
            any capture); a trigger or state request is captured when it arrives, stamped with
            time.monotonic_ns().
  lockstep  trigger k advances the world to sim time k * period under the last applied targets,
            then captures everything; stamps are sim time. The frames of cycle k are rendered
            before the cycle is acknowledged. Messages that arrived before a trigger (targets of
            the previous cycle) are applied before it, so a run depends only on the seed and on
            what the loop sent.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from raas_drivers.hand.config import ACTUATOR_NAMES, JOINT_NAMES
from raas_drivers.sim import link
from raas_drivers.sim.config import RigConfig
from raas_drivers.sim.link import LinkClosedError, LinkConn, LinkFullError, LinkServer
from raas_drivers.sim.mocap_model import MocapModel
from raas_drivers.sim.proc import die_with_parent, exit_on_sigterm, log, report_ready
from raas_drivers.sim.protocol import MOCAP_HEADER, MOCAP_MAGIC, mocap_datagram_size
from raas_drivers.sim.world import MARKER_NAMES, World

RENDER_DONE_TIMEOUT_S = 60.0
MAX_CATCH_UP_STEPS = 50  # realtime: beyond this we were stalled; re-base rather than race


class RigProcess:
    def __init__(self, cfg: RigConfig, sock_dir: Path, render_sock: str | None) -> None:
        self.cfg = cfg
        self.lockstep = cfg.clock == "lockstep"
        self.period_ns = cfg.period_ns
        seeds = np.random.SeedSequence(cfg.seed).spawn(2)
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
        self.rig_path = str(sock_dir / "rig.sock")
        self.mocap_path = str(sock_dir / "mocap.sock")
        self.server = LinkServer(self.rig_path)
        self.mocap_server = LinkServer(self.mocap_path)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.setblocking(False)
        self.mocap_subs: dict[int, int] = {}  # control fd -> UDP port
        self.ep = select.epoll()
        self.conns: dict[int, LinkConn] = {}
        self.kind: dict[int, str] = {}
        self._watch(self.server.fileno(), "server")
        self._watch(self.mocap_server.fileno(), "mocap_server")
        self.render: LinkConn | None = None
        if render_sock:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.connect(render_sock)
            self.render = LinkConn(s)
            self.render.send(["hello", "rig"])
            self._watch(self.render.fileno(), "render")
        # state
        self.applied_seq = -1
        self.last_trigger = -1
        self.t0_ns = 0
        self.pending: list[tuple[LinkConn, int]] = []
        self.snapshot = b""
        self.snapshot_ns = 0
        self.snapshot_seq = -1
        self.state_buf = np.zeros(2 * len(JOINT_NAMES) + 2 * len(ACTUATOR_NAMES))
        self.datagram = bytearray(mocap_datagram_size(len(MARKER_NAMES)))
        self.frames_dropped = 0
        self.render_pending: tuple[int, int, bytes] | None = None
        self.hello_info: dict[str, Any] = {
            "clock": cfg.clock,
            "period_ns": self.period_ns,
            "timestep_ns": self.dt_ns,
            "ctrlrange": self.world.ctrlrange.tolist(),
            "actuators": list(ACTUATOR_NAMES),
            "joints": list(JOINT_NAMES),
            "pid": os.getpid(),
        }

    def _watch(self, fd: int, kind: str) -> None:
        self.kind[fd] = kind
        self.ep.register(fd, select.EPOLLIN)

    def _drop(self, fd: int) -> None:
        self.ep.unregister(fd)
        self.kind.pop(fd, None)
        self.mocap_subs.pop(fd, None)
        conn = self.conns.pop(fd, None)
        self.pending = [(c, k) for c, k in self.pending if c is not conn]
        if conn is not None:
            conn.close()

    def _drop_render(self) -> None:
        """The camera process is gone: carry on without cameras (its drivers see the EOF)."""
        if self.render is not None:
            self._drop(self.render.fileno())
            self.render.close()
            self.render = None
        self.render_pending = None

    # ------------------------------------------------------------------ physics
    def catch_up(self, now_ns: int) -> None:
        """realtime: run the physics steps whose time has come."""
        due = (now_ns - self.t0_ns) // self.dt_ns - self.world.steps
        if due > MAX_CATCH_UP_STEPS:  # we were not scheduled for a while: do not race to catch up
            self.t0_ns += (due - 1) * self.dt_ns
            due = 1
        if due > 0:
            self.world.step_n(int(due))

    def advance_to_cycle(self, cycle: int) -> None:
        """lockstep: world time becomes cycle * period (never backwards)."""
        target = round(cycle * self.period_ns / self.dt_ns)
        self.world.step_n(target - self.world.steps)

    # ------------------------------------------------------------------ captures
    def hand_blob(self) -> bytes:
        pos, vel, eff, temp = self.world.hand_state()
        b = self.state_buf
        nj, na = len(JOINT_NAMES), len(ACTUATOR_NAMES)
        b[:nj] = pos
        b[nj : 2 * nj] = vel
        b[2 * nj : 2 * nj + na] = eff
        b[2 * nj + na :] = temp
        return b.tobytes()

    def send_mocap(self, cycle: int, capture_ns: int) -> None:
        if not self.mocap_subs:
            return
        positions, visible = self.mocap.observe(self.world.marker_positions(), capture_ns * 1e-9)
        n = len(MARKER_NAMES)
        buf = self.datagram
        MOCAP_HEADER.pack_into(buf, 0, MOCAP_MAGIC, cycle, capture_ns, n)
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

    # ------------------------------------------------------------------ messages
    def on_trigger(self, conn: LinkConn, cycle: int) -> None:
        if self.lockstep:
            if cycle > self.last_trigger:
                self.advance_to_cycle(cycle)
            base = cycle * self.period_ns
            hand_ns = base + round(self.cfg.hand_offset_us * 1000)
            mocap_ns = base + round(self.cfg.mocap_offset_us * 1000)
            self.last_trigger = max(self.last_trigger, cycle)
            self.snapshot = self.hand_blob()
            self.snapshot_ns = hand_ns
            self.snapshot_seq = self.applied_seq
            self.send_mocap(cycle, mocap_ns)
            self.send_render(cycle, base + round(self.cfg.camera_offset_us * 1000))
            conn.send([link.ACK, cycle, base])
            still: list[tuple[LinkConn, int]] = []
            for c, k in self.pending:
                if k == cycle:
                    self._send_state(c, k, self.snapshot, self.snapshot_ns, self.snapshot_seq)
                elif k > cycle:
                    still.append((c, k))
            self.pending = still
        else:
            now = time.monotonic_ns()
            self.catch_up(now)
            self.last_trigger = cycle
            self.send_mocap(cycle, now)
            conn.send([link.ACK, cycle, now])
            # the scene is snapshotted now, sent once this wake-up's messages are answered: the
            # renderer then takes a core while the hand state is already on its way
            if self.render is not None:
                self.render_pending = (
                    cycle,
                    now + round(self.cfg.camera_offset_us * 1000),
                    self.world.render_state().tobytes(),
                )

    def _send_state(
        self, conn: LinkConn, cycle: int, blob: bytes, capture_ns: int, seq: int
    ) -> None:
        with_errors(conn, [link.STATE, cycle, capture_ns, seq, blob])

    def on_request(self, conn: LinkConn, cycle: int) -> None:
        if self.lockstep:
            if cycle == self.last_trigger:
                self._send_state(conn, cycle, self.snapshot, self.snapshot_ns, self.snapshot_seq)
            elif cycle > self.last_trigger:
                self.pending.append((conn, cycle))
            # an older cycle than the last trigger is gone: no answer (it is stale)
        else:
            now = time.monotonic_ns()
            self.catch_up(now)
            self._send_state(conn, cycle, self.hand_blob(), now, self.applied_seq)

    def on_apply(self, cycle: int, blob: bytes) -> None:
        targets = np.frombuffer(blob, dtype=np.float64)
        if targets.shape != (len(ACTUATOR_NAMES),) or not np.isfinite(targets).all():
            log("rig: refused targets of shape", targets.shape)
            return
        if not self.lockstep:
            self.catch_up(time.monotonic_ns())
        self.world.set_targets(targets)
        self.applied_seq = cycle

    def handle(self, conn: LinkConn, message: list[Any]) -> None:
        kind = message[0]
        if kind == link.TRIGGER:
            self.on_trigger(conn, int(message[1]))
        elif kind == link.REQUEST:
            self.on_request(conn, int(message[1]))
        elif kind == link.APPLY:
            self.on_apply(int(message[1]), message[2])
        elif kind == link.HELLO:
            conn.role = str(message[1])
            conn.send([link.HELLO, self.hello_info])
        else:
            conn.send([link.ERROR, f"unknown message {kind!r}"])

    def handle_mocap_control(self, fd: int, conn: LinkConn, message: list[Any]) -> None:
        if message[0] == "sub":
            self.mocap_subs[fd] = int(message[1])
            conn.send(["hello", {"markers": list(MARKER_NAMES), "clock": self.cfg.clock}])
        else:
            conn.send([link.ERROR, f"unknown message {message[0]!r}"])

    # ------------------------------------------------------------------ loop
    def serve(self) -> None:
        self.t0_ns = time.monotonic_ns()
        batch: list[tuple[int, LinkConn, list[Any]]] = []
        while True:
            if self.lockstep:
                timeout = -1.0
            else:
                now = time.monotonic_ns()
                self.catch_up(now)
                next_ns = self.t0_ns + (self.world.steps + 1) * self.dt_ns
                timeout = max(0.0, (next_ns - time.monotonic_ns()) * 1e-9)
            events = self.ep.poll(timeout)
            batch.clear()
            for fd, _ in events:
                kind = self.kind.get(fd)
                if kind == "server":
                    self._accept(self.server, "link")
                elif kind == "mocap_server":
                    self._accept(self.mocap_server, "mocap")
                elif kind == "render":
                    if self.render is not None:
                        try:
                            self.render.recv()
                        except LinkClosedError:
                            log("rig: camera process closed its link")
                            self._drop_render()
                elif kind in ("link", "mocap"):
                    self._drain(fd, kind, batch)
            if self.lockstep:
                # targets and requests that arrived with a trigger go first: determinism
                batch.sort(key=lambda item: item[2][0] == link.TRIGGER)
            for fd, conn, message in batch:
                if fd not in self.conns:
                    continue
                try:
                    if self.kind.get(fd) == "mocap":
                        self.handle_mocap_control(fd, conn, message)
                    else:
                        self.handle(conn, message)
                except (LinkClosedError, LinkFullError):
                    self._drop(fd)
            if self.render_pending is not None:
                self.send_render(*self.render_pending)
                self.render_pending = None

    def _accept(self, server: LinkServer, kind: str) -> None:
        conn = server.accept()
        if conn is not None:
            self.conns[conn.fileno()] = conn
            self._watch(conn.fileno(), kind)

    def _drain(self, fd: int, kind: str, batch: list[tuple[int, LinkConn, list[Any]]]) -> None:
        conn = self.conns[fd]
        while True:
            try:
                message = conn.recv()
            except (LinkClosedError, ValueError):
                self._drop(fd)
                return
            if message is None:
                return
            batch.append((fd, conn, message))


def with_errors(conn: LinkConn, message: list[Any]) -> None:
    with contextlib.suppress(LinkClosedError, LinkFullError):
        conn.send(message)  # a client that went away is dropped by the epoll loop on its EOF


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m raas_drivers.sim.rig")
    parser.add_argument("--config", required=True, help="RigConfig as JSON")
    parser.add_argument("--dir", required=True, help="directory for the sockets")
    parser.add_argument("--render-sock", default="")
    parser.add_argument("--ready-fd", type=int, default=-1)
    parser.add_argument("--parent-pid", type=int, default=0)
    args = parser.parse_args(argv)
    exit_on_sigterm()
    try:
        die_with_parent(args.parent_pid)
        cfg = RigConfig.model_validate_json(args.config)
        rig = RigProcess(cfg, Path(args.dir), args.render_sock or None)
        report_ready(
            args.ready_fd,
            {
                "pid": os.getpid(),
                "rig_sock": rig.rig_path,
                "mocap_sock": rig.mocap_path,
                "markers": list(MARKER_NAMES),
            },
        )
        with contextlib.suppress(KeyboardInterrupt):
            rig.serve()
    finally:
        # the socket directory ends with the rig: the launcher removes it too, but when the
        # launcher was killed (PR_SET_PDEATHSIG brought us here) nobody else would
        shutil.rmtree(args.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
