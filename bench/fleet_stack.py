"""The processes `python -m bench fleet` measures: one reservation service (`raasd serve --demo`,
SQLite in a temp dir) and, per robot, a `raasd robot --sim --clock lockstep` daemon and its
`raasd worker`, each in a process group of its own (raas.commands.up_children), so a robot can
be SIGKILLed whole (daemon, rig, worker) as a dying control PC would be.

Only the service's HTTP API and the daemons' wire protocol are used, as a lab would use them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raas.commands import demo_session as demo
from raas.commands.up_children import Child, Children

_WORKER_READY = re.compile(r"raasd worker: robot \d+ on ")
_BANNER = re.compile(r"control (\S+) stream (\S+) (?:server key (\S+)|PLAIN)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Robot:
    name: str
    robot_id: int
    token: str
    endpoint: str
    server_key: str
    daemon: Child
    worker: Child | None = None
    killed: bool = False


class FleetStack:
    """Service + N lockstep robots (+ their workers), all stopped by close()."""

    def __init__(self, tmp: Path, *, health_check: bool) -> None:
        self.tmp = tmp
        self.kids = Children()
        self.health_check = health_check
        self.robots: list[Robot] = []
        self.svc: demo.Service | None = None
        self.verbose = False  # echo the workers' lines

    def tails(self, lines: int = 12) -> str:
        """The last lines of every child's output (what to read when a run went wrong)."""
        out = []
        for child in self.kids.children:
            text = "".join(child.lines[-lines:])
            out.append(f"--- {child.name} (exit {child.proc.poll()}):\n{text}")
        return "\n".join(out)

    # ----------------------------------------------------------------- start
    def start_service(self) -> demo.Service:
        port = free_port()
        cmd = [sys.executable, "-m", "raas.cli", "serve", "--demo", "--host", "127.0.0.1"]
        cmd += ["--port", str(port), "--log-level", "warning"]
        cmd += ["--database-url", f"sqlite:///{self.tmp / 'raas.db'}"]
        cmd += ["--signing-key", str(self.tmp / "lease-signing-key.pem")]
        env = {"RAAS_STATE_DIR": str(self.tmp)}
        child = self.kids.start(
            "service", cmd, env=env, echo=lambda line: False,
            stop_signals=(signal.SIGINT, signal.SIGINT),
        )  # fmt: skip
        child.wait_for(re.compile("reservation service on"), 120)
        svc = demo.Service(f"http://127.0.0.1:{port}/")
        deadline = time.monotonic() + 30
        while not svc.healthy():
            self.kids.check()
            if time.monotonic() > deadline:
                raise RuntimeError("the service did not answer within 30 s")
            time.sleep(0.1)
        self.svc = svc
        return svc

    def start_robots(self, n: int, *, rate_hz: float) -> list[Robot]:
        assert self.svc is not None
        started: list[tuple[str, demo.RobotCredentials, Child]] = []
        for i in range(1, n + 1):
            name = f"shadow-{i}"
            creds = demo.robot_credentials(self.svc, name)
            state = self.tmp / "robots" / name
            state.mkdir(parents=True, exist_ok=True)
            key = state / "lease-key.pem"
            key.write_text(creds.lease_key_pem)
            cmd = [sys.executable, "-m", "raas.cli", "robot", "--sim", "--clock", "lockstep"]
            cmd += [
                "--cameras",
                "0",
                "--no-rt",
                "--quiet",
                "--robot",
                name,
                "--rate",
                f"{rate_hz:g}",
            ]
            cmd += ["--robot-id", str(creds.robot_id), "--state-dir", str(state)]
            cmd += ["--control", "tcp://127.0.0.1:*", "--stream", "tcp://127.0.0.1:*"]
            cmd += ["--lease-key", str(key), "--revocations", self.svc.base.rstrip("/")]
            if not self.health_check:
                cmd.append("--no-health-check")
            daemon = self.kids.start(
                f"robot-{i}", cmd, env={"RAAS_ROBOT_TOKEN": creds.daemon_token},
                echo=lambda line: False,
            )  # fmt: skip
            started.append((name, creds, daemon))
        for name, creds, daemon in started:
            found = daemon.wait_for(_BANNER, 240)
            robot = Robot(
                name, creds.robot_id, creds.daemon_token, found.group(1),
                found.group(3) or "plain", daemon,
            )  # fmt: skip
            self.robots.append(robot)
        return self.robots

    def start_worker(self, robot: Robot) -> Child:
        assert self.svc is not None
        cmd = [sys.executable, "-m", "raas.cli", "worker"]
        cmd += ["--service", self.svc.base.rstrip("/"), "--robot-id", str(robot.robot_id)]
        cmd += ["--endpoint", robot.endpoint, "--server-key", robot.server_key]
        cmd += ["--state-dir", str(self.tmp / "robots" / robot.name / "worker")]
        robot.worker = self.kids.start(
            f"worker-{robot.name.rsplit('-', 1)[1]}", cmd,
            env={"RAAS_ROBOT_TOKEN": robot.token}, echo=lambda line: self.verbose,
        )  # fmt: skip
        return robot.worker

    def wait_workers(self, timeout_s: float = 120.0) -> None:
        """Every worker has started and is about to claim (its first line)."""
        for robot in self.robots:
            if robot.worker is not None:
                robot.worker.wait_for(_WORKER_READY, timeout_s)

    # ----------------------------------------------------------------- faults
    def kill(self, robot: Robot) -> None:
        """SIGKILL the robot's daemon (with its rig) and its worker at once: a dead control PC."""
        robot.killed = True
        for child in (robot.worker, robot.daemon):
            if child is None:
                continue
            child.essential = False
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.proc.pid, signal.SIGKILL)
        for child in (robot.worker, robot.daemon):
            if child is not None:
                child.proc.wait()

    def check(self) -> None:
        self.kids.check()

    def close(self) -> None:
        self.kids.stop_all(30.0)


# ---------------------------------------------------------------------- the service's API
class Api:
    """The few routes the benchmark calls, as the demo researcher (jobs) or staff."""

    def __init__(self, svc: demo.Service) -> None:
        self.svc = svc
        self.researcher = svc.login(demo.DEMO_RESEARCHER)
        self.staff = svc.login(demo.DEMO_STAFF)

    def put_bundle(self, data: bytes, sha256: str) -> None:
        req = urllib.request.Request(
            f"{self.svc.base}bundles/{sha256}", data=data, method="PUT",
            headers={
                "Content-Type": "application/octet-stream",
                "Authorization": f"Bearer {self.researcher}",
            },
        )  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"PUT /bundles: {exc.code} {exc.read()[:300]!r}") from None

    def submit(self, sha256: str, episodes: int, seed: int) -> dict[str, Any]:
        body = {"bundle_sha256": sha256, "task": "reorientation", "episodes": episodes}
        body |= {"seed": seed}
        return dict(self.svc.request("POST", "jobs", body, token=self.researcher))

    def job(self, job_id: int) -> dict[str, Any]:
        return dict(self.svc.request("GET", f"jobs/{job_id}", token=self.researcher))

    def logs(self, job_id: int) -> list[dict[str, Any]]:
        got = self.svc.request("GET", f"jobs/{job_id}/logs", token=self.researcher)
        items = got["items"] if isinstance(got, dict) and "items" in got else got
        return list(items)


def dumps(value: Any) -> str:
    return json.dumps(value, default=str)
