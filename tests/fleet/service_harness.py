"""The reservation service for the job worker tests: the real app (create_app) under uvicorn on a
loopback port, in a thread of the test process, with settings a subprocess cannot be given
(a short claim timeout and sweep), SQLite, users and one robot seeded; and a `raasd robot --sim`
daemon linked to it (directory entry, revocations), and `raasd worker` processes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from raas.service.app import create_app
from raas.service.models import Role
from tests.service.harness import Seeded, free_port, seed, settings_for
from tests.transport.harness import ROOT, LeaseIssuer, RobotDaemon, start_daemon, wait_for

ROBOT = "shadow-1"
USERS = {"staff@lab": Role.staff, "alice@lab": Role.researcher}


class Service:
    def __init__(self, tmp: Path, **settings: object) -> None:
        base = settings_for(f"sqlite:///{tmp / 'raas.db'}", tmp)
        self.settings = base.model_copy(update={"blob_dir": tmp / "blobs", **settings})
        self.seeded: Seeded = seed(self.settings, users=USERS, robots=(ROBOT,), unlimited=True)
        self.port = free_port()
        self.start()

    def start(self) -> None:
        """Serve (again) on the same port and database: a restart after `stop`."""
        config = uvicorn.Config(
            create_app(self.settings), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="service", daemon=True)
        self.thread.start()
        if not wait_for(self._up, 30, 0.05):
            raise RuntimeError("the service did not come up")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def robot_id(self) -> int:
        return self.seeded.robots[ROBOT]

    @property
    def robot_token(self) -> str:
        return self.seeded.robot_tokens[ROBOT]

    def _up(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def call(self, method: str, path: str, who: str = "alice@lab", **kw: Any) -> httpx.Response:
        return httpx.request(
            method, f"{self.url}{path}", headers=self.seeded.headers(who), timeout=30, **kw
        )

    def upload(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        r = httpx.put(
            f"{self.url}/bundles/{sha}",
            content=data,
            headers={
                **self.seeded.headers("alice@lab"),
                "Content-Type": "application/octet-stream",
            },
            timeout=30,
        )
        assert r.status_code in (200, 201), r.text
        return sha

    def submit(self, sha: str, episodes: int, **job: Any) -> dict[str, Any]:
        body = {"bundle_sha256": sha, "episodes": episodes, "robot": ROBOT, **job}
        r = self.call("POST", "/jobs", json=body)
        assert r.status_code == 201, r.text
        out: dict[str, Any] = r.json()
        return out

    def job(self, job_id: int) -> dict[str, Any]:
        r = self.call("GET", f"/jobs/{job_id}")
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    def entry(self) -> dict[str, Any]:
        r = self.call("GET", f"/robots/by-name/{ROBOT}")
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out


def linked_daemon(service: Service, tmp: Path, cell_toml: str = "") -> RobotDaemon:
    """`raasd robot --sim` (12.5 Hz lockstep, recorder on) following the service: it verifies
    the service's leases and registers its directory entry. `cell_toml`: more of its cell file
    (e.g. a `[transport.task]` that ends episodes quickly)."""
    tmp.mkdir(parents=True, exist_ok=True)
    pem = httpx.get(
        f"{service.url}/robots/{service.robot_id}/lease-key",
        headers={"Authorization": f"Bearer {service.robot_token}"},
        timeout=10,
    ).text
    (tmp / "lease.pem.pub").write_text(pem)
    issuer = LeaseIssuer(key=None, pub_path=tmp / "lease.pem.pub")  # type: ignore[arg-type]
    (tmp / "cell.toml").write_text(
        f'[recording]\nenabled = true\ndirectory = "{tmp}/rec"\n' + cell_toml
    )
    daemon = start_daemon(
        tmp / "robot",
        issuer,
        rate=12.5,
        extra=(
            "--config",
            str(tmp / "cell.toml"),
            "--revocations",
            service.url,
            "--robot-id",
            str(service.robot_id),
            # the worker heartbeats its session every 0.2 s; on a loaded 2-core machine a
            # process can stall longer than the harness's 0.5 s (the daemon's default is 1 s)
            "--liveness",
            "2",
        ),
        env={"RAAS_ROBOT_TOKEN": service.robot_token},
    )
    if not wait_for(lambda: service.entry()["control_endpoint"] == daemon.control, 30, 0.2):
        daemon.stop()
        raise RuntimeError("the daemon did not register with the service")
    return daemon


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def output(self) -> str:
        return "".join(self.lines)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start_worker(service: Service, state_dir: Path, *args: str) -> WorkerProcess:
    cmd = [
        sys.executable,
        "-m",
        "raas.cli",
        "worker",
        "--service",
        service.url,
        "--robot-id",
        str(service.robot_id),
        "--state-dir",
        str(state_dir),
        "--claim-wait",
        "2",
        *args,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAAS_")}
    env["RAAS_ROBOT_TOKEN"] = service.robot_token
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env=env,
    )
    worker = WorkerProcess(proc)

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            worker.lines.append(line)

    threading.Thread(target=drain, daemon=True).start()
    return worker


def descendants(pid: int) -> list[int]:
    """The process's children, their children, ... (from /proc), e.g. before it is SIGKILLed:
    a child that does not die with its parent is then still known."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_left(pids: list[int]) -> None:
    """SIGKILL those of `pids` still running raas code (a pid reused meanwhile is left alone)."""
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"raas" in cmd:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def wait_until(predicate: Any, timeout: float, what: str, explain: Any = None) -> None:
    """Poll predicate() until true; else fail naming `what` (and explain(), e.g. an output)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}" + (f":\n{explain()}" if explain else ""))
