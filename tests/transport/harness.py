"""A real `raasd robot --sim` daemon process for transport and client tests, with a temp lease
key pair and a helper that signs leases (valid, expired, other robot, ...)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from raas_client.session import RemoteRobot

from raas.leases import LeaseClaims, generate_private_key, save_private_key, sign_lease

ROOT = Path(__file__).resolve().parents[2]
ROBOT = "shadow-1"


@dataclass
class LeaseIssuer:
    key: Ed25519PrivateKey
    pub_path: Path

    @classmethod
    def create(cls, directory: Path) -> LeaseIssuer:
        key = generate_private_key()
        save_private_key(key, directory / "lease.pem")
        return cls(key, directory / "lease.pem.pub")

    def issue(
        self,
        *,
        scope: str = "control",
        robot: str = ROBOT,
        sub: str = "alice",
        nbf: float | None = None,
        exp: float | None = None,
        minutes: float = 30,
        key: Ed25519PrivateKey | None = None,
        rid: int = 7,
    ) -> str:
        now = time.time()
        start = int(now - 5 if nbf is None else nbf)
        claims = LeaseClaims(
            iss="test",
            sub=sub,
            robot=robot,
            rid=rid,
            scope=scope,  # type: ignore[arg-type]
            nbf=start,
            exp=int(now + minutes * 60 if exp is None else exp),
            jti=uuid.uuid4().hex,
            iat=int(now),
        )
        return sign_lease(key or self.key, claims)


_BANNER = re.compile(r"control (\S+) stream (\S+) (?:server key (\S+)|PLAIN)")


@dataclass
class RobotDaemon:
    proc: subprocess.Popen[str]
    control: str
    stream: str
    server_key: str | None
    lines: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.server_key or "plain"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def output(self) -> str:
        return "".join(self.lines)


def start_daemon(
    tmp: Path,
    issuer: LeaseIssuer,
    *,
    transport: str = "tcp",
    clock: str = "lockstep",
    rate: float = 50.0,
    plain: bool = False,
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    timeout: float = 60,
    health_check: bool = False,
    cell: Path | None = None,
) -> RobotDaemon:
    """`raasd robot --sim` (or `--config cell` for a cell file of its own) on the test's ports."""
    tmp.mkdir(parents=True, exist_ok=True)
    if transport == "tcp":
        control, stream = "tcp://127.0.0.1:*", "tcp://127.0.0.1:*"
    else:
        control, stream = f"ipc://{tmp}/control.sock", f"ipc://{tmp}/stream.sock"
    cmd = [
        sys.executable,
        "-m",
        "raas.cli",
        "robot",
        *(("--config", str(cell)) if cell is not None else ("--sim",)),
        "--no-rt",
        "--quiet",
        "--clock",
        clock,
        "--rate",
        str(rate),
        "--cameras",
        "0",
        "--control",
        control,
        "--stream",
        stream,
        "--state-dir",
        str(tmp),
        "--lease-key",
        str(issuer.pub_path),
        "--liveness",
        "0.5",
        *(() if health_check else ("--no-health-check",)),
        *(("--plain",) if plain else ()),
        *extra,
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    found: re.Match[str] | None = None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        found = _BANNER.search(line)
        if found:
            break
    if found is None:
        proc.kill()
        proc.wait()
        raise RuntimeError("raasd robot did not come up:\n" + "".join(lines))
    daemon = RobotDaemon(proc, found.group(1), found.group(2), found.group(3), lines)

    def drain() -> None:  # keep reading so the daemon never blocks on a full pipe
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)

    threading.Thread(target=drain, daemon=True).start()
    return daemon


def wait_for(predicate: Any, timeout: float, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def watch_stream(
    daemon: RobotDaemon, issuer: LeaseIssuer, topics: tuple[bytes, ...], sub: str = "watcher"
) -> tuple[Any, Any]:
    """An observer session and its stream subscription (the stream reaches open sessions only,
    docs/protocol.md), returned once the first message has arrived. The caller heartbeats."""
    watcher = RemoteRobot(
        daemon.control, server_key=daemon.key, lease=issuer.issue(scope="observe", sub=sub)
    )
    watcher.open("observe")
    stream = watcher.stream(topics)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        watcher.heartbeat()
        if stream.sock.poll(200):
            return watcher, stream
    raise AssertionError("an observer session's stream never arrived")
