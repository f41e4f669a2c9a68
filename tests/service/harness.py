"""Helpers for the service tests: seeded databases, in-process apps and real server processes.

`seed(url, ...)` migrates a database and creates users (with known bearer tokens) and robots
directly through the crud layer. `ServerProcess` runs `raasd serve` in a subprocess on a free
loopback port, so concurrency and crash tests meet real sockets and a real process to kill.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from raas.service.app import create_app, create_state
from raas.service.crud import robots as robot_crud
from raas.service.crud import tokens as token_crud
from raas.service.crud import users as user_crud
from raas.service.models import Role
from raas.service.schemas import QuotaUpdate, RobotCreate, UserCreate
from raas.service.settings import Settings
from raas.service.state import ServiceState

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Seeded:
    settings: Settings
    #: email -> (user id, bearer token)
    users: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: robot name -> robot id
    robots: dict[str, int] = field(default_factory=dict)
    #: robot name -> daemon token
    robot_tokens: dict[str, str] = field(default_factory=dict)

    def token(self, email: str) -> str:
        return self.users[email][1]

    def headers(self, email: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(email)}"}


def settings_for(url: str, tmp: Path) -> Settings:
    return Settings(database_url=url, signing_key_path=tmp / "lease-signing-key.pem")


def seed(
    settings: Settings,
    *,
    users: dict[str, Role],
    robots: tuple[str, ...] = ("arm-1",),
    unlimited: bool = False,
) -> Seeded:
    """Migrate the database and create users (each with an API token) and robots."""
    state = create_state(settings)
    now = datetime.now(UTC)
    out = Seeded(settings=settings)
    try:
        with state.db.write() as db:
            for email, role in users.items():
                user = user_crud.create_user(
                    db, UserCreate(email=email, name=email.split("@")[0], role=role), now
                )
                if unlimited:
                    user_crud.set_quota(db, user, QuotaUpdate())
                _, secret = token_crud.issue(
                    db, user, kind="api", name="test", now=now, lifetime=None
                )
                out.users[email] = (user.id, secret)
            issuer = user_crud.list_users(db, limit=1, offset=0)[0]
            for name in robots:
                robot = robot_crud.create(
                    db, RobotCreate(name=name, kind="test-hand"), state.public_key_pem, now
                )
                out.robots[name] = robot.id
                _, secret = token_crud.issue(
                    db,
                    issuer,
                    kind="robot",
                    name=f"{name} daemon",
                    now=now,
                    lifetime=None,
                    robot_id=robot.id,
                )
                out.robot_tokens[name] = secret
    finally:
        state.db.dispose()
    return out


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


ROLES: dict[str, Role] = {
    "admin@lab": Role.admin,
    "staff@lab": Role.staff,
    "alice@lab": Role.researcher,
    "bob@lab": Role.researcher,
}


class Clock:
    """A settable clock for the app (`create_app(settings, clock=...)`)."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC).replace(second=0, microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def make_client(settings: Settings, clock: Clock | None = None) -> tuple[TestClient, ServiceState]:
    """An in-process app on an already seeded database."""
    app = create_app(settings, clock=clock)
    return TestClient(app), app.state.service


class ServerProcess:
    """`raasd serve` in a subprocess on 127.0.0.1; `start()` returns once /health answers.
    `args`: more `raasd serve` flags (`--workers 2`); `env`: more environment variables."""

    def __init__(
        self,
        settings: Settings,
        log: Path,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.log = log
        self.args = args
        self.env = env or {}
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0, port: int | None = None) -> ServerProcess:
        """`port`: serve there (a restart on the port clients know); else a free one."""
        self.port = port or free_port()
        argv = [
            sys.executable,
            "-m",
            "raas.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--database-url",
            self.settings.database_url,
            "--signing-key",
            str(self.settings.signing_key_path),
            "--log-level",
            "warning",
            *self.args,
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, cwd=REPO, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not answer in {timeout}s: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, nothing the process could still do."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class ApiEnv:
    """An in-process app on a seeded database, with a settable clock (on a whole minute)."""

    client: TestClient
    seeded: Seeded
    clock: Clock
    state: ServiceState

    def h(self, email: str) -> dict[str, str]:
        return self.seeded.headers(email)

    def at(self, delta: timedelta) -> str:
        return (self.clock.now + delta).isoformat()

    def book(
        self,
        email: str,
        start: timedelta,
        end: timedelta,
        robot: str = "arm-1",
        **extra: object,
    ) -> httpx.Response:
        return self.client.post(
            "/reservations",
            json={
                "robot_id": self.seeded.robots[robot],
                "starts_at": self.at(start),
                "ends_at": self.at(end),
                **extra,
            },
            headers=self.h(email),
        )


def api_env(
    database_url: str, tmp: Path, clock: Clock | None = None, **settings: object
) -> tuple[ApiEnv, TestClient]:
    """Seed ROLES and robots arm-1, arm-2; answer the env and its client (use `with client:`)."""
    base = settings_for(database_url, tmp).model_copy(update=settings)
    seeded = seed(base, users=ROLES, robots=("arm-1", "arm-2"))
    clock = clock or Clock()
    client, state = make_client(base, clock)
    return ApiEnv(client, seeded, clock, state), client
