"""What `raasd up` prints once the stack is up: where everything is and how to connect."""

from __future__ import annotations

import shlex
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

    def print(self) -> None:
        key = shlex.quote(self.server_key)  # Z85 keys hold shell characters
        rows = [
            ("booking page", self.base),
            *((f"  {role} login", f"{email} / {pw}") for role, email, pw in self.logins),
            ("live dashboard", self.dashboard or "off (--metrics-port -1)"),
            (f"robot {self.robot}", f"control {self.endpoint}  stream {self.stream}"),
            ("  server key", self.server_key),
        ]
        if self.recording is not None and self.report is not None:
            rows += [("recording", str(self.recording)), ("report", str(self.report))]
        if self.lease_file is not None:
            rows.append(("control lease", f"{self.lease_file} (valid while the booking lasts)"))
        print("\n" + "=" * 30 + " raas is up " + "=" * 30)
        for name, value in rows:
            print(f"  {name:<18} {value}")
        lease = f'"$(cat {self.lease_file})"' if self.lease_file else "TOKEN"
        print(
            f"\n  watch the robot:     .venv/bin/raas watch {self.endpoint} --server-key {key} "
            f"--lease {lease}\n"
            f"  run a bundle:        .venv/bin/raas run BUNDLE --robot {self.endpoint} "
            f"--server-key {key} --lease {lease}\n"
            f"  from Python:         RemoteRobot({self.endpoint!r}, "
            f"server_key={self.server_key!r}, lease=...)  (raas_client.session, docs/protocol.md)\n"
            "  a lease of your own: book the robot on the booking page, then "
            "POST /reservations/{id}/lease (docs/service.md)\n"
            "\nraasd up: the robot holds its pose and keeps serving; Ctrl-C stops everything.",
            flush=True,
        )
