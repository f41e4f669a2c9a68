"""What `raasd up` prints once the stack is up: where everything is and how to connect."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from raas.commands import demo_session as demo


def save_lease(var: Path, booking: demo.Booking | None) -> Path | None:
    """The demo's control lease, for the user's own `raas run` while the booking lasts."""
    if booking is None:
        return None
    path = var / "demo" / "lease.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(booking.lease + "\n")
    return path


def save_client_config(var: Path, svc: demo.Service, booking: demo.Booking | None) -> Path | None:
    """A client config file (service URL and an API token of the demo researcher), so that
    `raas run BUNDLE --robot NAME` finds the robot by name (raas_client.directory)."""
    if booking is None:
        return None
    got = svc.request("POST", "auth/tokens", {"name": "raasd up"}, token=booking.researcher_token)
    path = var / "demo" / "client.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(f'service_url = "{svc.base}"\ntoken = "{got["token"]}"\n')
    return path


@dataclass(frozen=True)
class RobotRow:
    """One robot's addresses, from its daemon's banner."""

    name: str
    endpoint: str
    stream: str
    server_key: str
    dashboard: str | None


class Summary:
    """Where everything is, printed once the demo session is done."""

    def __init__(
        self,
        robot: str,
        base: str,
        endpoint: str,
        stream: str,
        server_key: str,
        dashboard: str | None,
    ) -> None:
        self.robot = robot
        self.base, self.endpoint, self.stream = base, endpoint, stream
        self.server_key, self.dashboard = server_key, dashboard
        self.logins: list[tuple[str, str, str]] = []
        self.recording: Path | None = None
        self.report: Path | None = None
        self.lease_file: Path | None = None
        self.client_config: Path | None = None
        self.others: list[RobotRow] = []  # `--robots N`: shadow-2..N
        self.job: demo.DemoJob | None = None  # the demo's evaluation job

    def print(self) -> None:
        key = shlex.quote(self.server_key)  # Z85 keys hold shell characters
        rows = [
            ("booking page", self.base),
            *((f"  {role} login", f"{email} / {pw}") for role, email, pw in self.logins),
            ("live dashboard", self.dashboard or "off (--metrics-port -1)"),
            (f"robot {self.robot}", f"control {self.endpoint}  stream {self.stream}"),
            ("  server key", self.server_key),
        ]
        for other in self.others:
            rows += [
                (f"robot {other.name}", f"control {other.endpoint}  stream {other.stream}"),
                ("  server key", other.server_key),
            ]
            if other.dashboard:
                rows.append(("  live dashboard", other.dashboard))
        if self.recording is not None and self.report is not None:
            rows += [("recording", str(self.recording)), ("report", str(self.report))]
        if self.lease_file is not None:
            rows.append(("control lease", f"{self.lease_file} (valid while the booking lasts)"))
        print("\n" + "=" * 30 + " raas is up " + "=" * 30)
        for name, value in rows:
            print(f"  {name:<18} {value}")
        lease = f'"$(cat {self.lease_file})"' if self.lease_file else "TOKEN"
        print(
            f"\n  watch the robot:     .venv/bin/raas watch {self.endpoint} --server-key={key} "
            f"--lease {lease}\n"
            f"  run a bundle:        .venv/bin/raas run BUNDLE --robot {self.endpoint} "
            f"--server-key={key} --lease {lease}\n"
            f"  from Python:         RemoteRobot({self.endpoint!r}, "
            f"server_key={self.server_key!r}, lease=...)  (raas_client.session, docs/protocol.md)\n"
            "  a lease of your own: book the robot on the booking page, then "
            "POST /reservations/{id}/lease (docs/service.md)\n"
            + self._by_name()
            + "\nraasd up: the robot holds its pose and keeps serving; Ctrl-C stops everything.",
            flush=True,
        )

    def _by_name(self) -> str:
        """The same by the robot's name: the client looks it up in the service (docs/fleet.md)."""
        if self.client_config is None:
            return ""
        env = f"RAAS_CONFIG={shlex.quote(str(self.client_config))}"
        return (
            f"\n  by name (service URL and the researcher's API token in {self.client_config}):\n"
            f"  status:              {env} .venv/bin/raas status {self.robot}\n"
            f"  run a bundle:        {env} .venv/bin/raas run BUNDLE --robot {self.robot}\n"
            f"  from Python:         RemoteRobot.connect({self.robot!r})  "
            "(with RAAS_CONFIG, or RAAS_SERVICE_URL and RAAS_TOKEN)\n"
            + self._others_by_name(env)
            + self._job(env)
        )

    def _job(self, env: str) -> str:
        """The demo's evaluation job and where to follow it."""
        if self.job is None:
            return ""
        wait = (
            ""
            if self.others
            else f" (it waits for {self.robot}: the demo booking holds it until it ends)"
        )
        return (
            f"\n  evaluation job {self.job.job_id}: {self.job.episodes} episodes of the bundle on "
            f"any free robot, run by its worker{wait}\n"
            f"  follow it:           {env} .venv/bin/raas jobs show {self.job.job_id}\n"
            f"                       or the Jobs panel of the booking page {self.base}book\n"
        )

    def _others_by_name(self, env: str) -> str:
        if not self.others:
            return ""
        names = ", ".join(o.name for o in self.others)
        last = self.others[-1].name
        return (
            f"  the other robots:    {names}: the same commands with their names, e.g.\n"
            f"                       {env} .venv/bin/raas status {last}\n"
            f"                       (a session on one needs a booking of it: the booking page)\n"
        )
