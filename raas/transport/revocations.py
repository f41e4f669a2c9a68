"""Revocations reach the loop process without a Python thread in it.

A small child process (`python -m raas.transport.revocations`) runs the service's long-poll
follower (raas.leases.follow.RevocationFollower) and PUSHes every revoked `jti` with its expiry
over an ipc socket. The loop process owns the PULL end and drains it, non-blocking and bounded,
inside its cycle (`RevocationInbox.drain`). A push from the service is a few tens of ms, the
loop sees it within one cycle after: well inside the 1 s promise.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgpack
import zmq

from raas.leases.follow import RevocationFollower
from raas.transport.config import RevocationFeed


class RevocationInbox:
    """The loop's PULL end plus the relay child process feeding it."""

    def __init__(self, ctx: zmq.Context[Any], feed: RevocationFeed, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.endpoint = f"ipc://{run_dir}/revocations-{os.getpid()}.sock"
        self.sock: zmq.Socket[bytes] = ctx.socket(zmq.PULL)
        self.sock.linger = 0
        self.sock.bind(self.endpoint)
        token = os.environ.get(feed.token_env, "")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "raas.transport.revocations",
                "--endpoint",
                self.endpoint,
                "--service-url",
                feed.service_url,
                "--robot-id",
                str(feed.robot_id),
                "--wait",
                str(feed.wait_s),
                "--parent",
                str(os.getpid()),
            ],
            env={**os.environ, "RAAS_RELAY_TOKEN": token},
        )

    def drain(self, limit: int) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        for _ in range(limit):
            try:
                raw = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                jti, expires = msgpack.unpackb(raw)
                out.append((str(jti), float(expires)))
            except (ValueError, TypeError):
                continue
        return out

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.sock.close()


def _relay(endpoint: str, base_url: str, robot_id: int, wait: float, parent: int) -> None:
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.linger = 1000
    push.connect(endpoint)
    token = os.environ.get("RAAS_RELAY_TOKEN", "")
    follower = RevocationFollower(base_url, robot_id, token, wait=wait)
    try:
        while os.getppid() == parent:
            try:
                follower.poll()
            except Exception as exc:  # the service is down or restarting: retry soon
                sys.stderr.write(f"raasd revocations: {type(exc).__name__}: {exc}\n")
                time.sleep(1.0)
                continue
            # Send the whole current set each round: cheap, and a restarted loop catches up.
            with follower.revoked._lock:  # the set is private to this process
                items = list(follower.revoked._expiry.items())
            for jti, expires in items:
                push.send(msgpack.packb([jti, expires]))
    finally:
        follower.close()
        push.close()
        ctx.term()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="relay lease revocations to the robot's loop")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--service-url", required=True)
    p.add_argument("--robot-id", type=int, required=True)
    p.add_argument("--wait", type=float, default=25.0)
    p.add_argument("--parent", type=int, required=True)
    a = p.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        _relay(a.endpoint, a.service_url, a.robot_id, a.wait, a.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
