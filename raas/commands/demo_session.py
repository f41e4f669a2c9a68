"""What `raasd up` does as the demo people would: staff give the robot its daemon token and lease
key, and the demo researcher books the robot now, takes a control lease, runs a policy bundle on
it with `raas run` and renders the session's recording with `raas report`.

Only the service's HTTP API and the researcher CLI are used, exactly as a person would use them
(docs/service.md, docs/protocol.md); nothing here reaches into the service or the daemon.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from raas.commands.errors import ChildFailedError, ServiceRequestError
from raas.commands.up_children import Children

DEMO_STAFF = ("staff@demo.lab", "demo-staff")
DEMO_RESEARCHER = ("researcher@demo.lab", "demo-researcher")
DEMO_PURPOSE = "raasd up: demo session"


class Service:
    """The reservation service's JSON API at `base` (http://host:port/)."""

    def __init__(self, base: str) -> None:
        self.base = base

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        token: str | None = None,
        *,
        text: bool = False,
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read()).get("detail", "")
            except (ValueError, AttributeError):
                detail = ""
            raise ServiceRequestError(f"{method} /{path}: {exc.code} {detail}".rstrip()) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ServiceRequestError(f"{method} /{path}: no answer ({exc})") from None
        return raw.decode() if text else json.loads(raw or b"null")

    def healthy(self) -> bool:
        try:
            self.request("GET", "health")
        except ServiceRequestError:
            return False
        return True

    def login(self, who: tuple[str, str]) -> str:
        got = self.request("POST", "auth/login", {"email": who[0], "password": who[1]})
        return str(got["access_token"])

    def robot(self, name: str, token: str) -> dict[str, Any]:
        robots = self.request("GET", "robots", token=token)
        items = robots["items"] if isinstance(robots, dict) and "items" in robots else robots
        for r in items:
            if r["name"] == name:
                return dict(r)
        raise ServiceRequestError(f"the service has no robot {name!r}")


@dataclass(frozen=True)
class RobotCredentials:
    robot_id: int
    daemon_token: str  # RAAS_ROBOT_TOKEN: the robot's service link (heartbeats, feeds)
    lease_key_pem: str  # what leases of this robot verify with


def robot_credentials(svc: Service, name: str, dashboard_url: str = "") -> RobotCredentials:
    """As demo staff: the robot (created when the demo data lacks it), a daemon token for it
    (and, when given, the address of its live dashboard, which the booking page links); as the
    robot: its lease key."""
    staff = svc.login(DEMO_STAFF)
    try:
        robot_id = int(svc.robot(name, staff)["id"])
    except ServiceRequestError:  # `raasd up --robots N`: the demo data has shadow-1 and -2
        body = {"name": name, "kind": "shadow-hand (simulated)", "status": "available"}
        robot_id = int(svc.request("POST", "robots", body, token=staff)["id"])
    if dashboard_url:
        svc.request("PATCH", f"robots/{robot_id}", {"dashboard_url": dashboard_url}, token=staff)
    token = svc.request("POST", f"robots/{robot_id}/tokens", {"name": "raasd up"}, token=staff)
    daemon = str(token["token"])
    pem = svc.request("GET", f"robots/{robot_id}/lease-key", token=daemon, text=True)
    return RobotCredentials(robot_id, daemon, str(pem))


@dataclass(frozen=True)
class Booking:
    reservation_id: int
    starts_at: str
    ends_at: str
    lease: str  # a control lease token for the whole booking
    researcher_token: str


def book_now(svc: Service, robot_id: int, minutes: float) -> Booking:
    """As the demo researcher: book the robot from now, and take a control lease.

    Bookings earlier demo runs left on this slot are cancelled first (never anyone else's)."""
    token = svc.login(DEMO_RESEARCHER)
    # The service books whole minutes: from the minute that is running to the first whole
    # minute after the wanted span.
    wanted_end = datetime.now(UTC) + timedelta(minutes=minutes)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    end = wanted_end.replace(second=0, microsecond=0) + timedelta(minutes=1)
    query = urllib.parse.urlencode(
        {
            "robot_id": robot_id,
            "status": "confirmed",
            "starts_at": now.isoformat(),
            "ends_at": end.isoformat(),
        }
    )
    for old in svc.request("GET", f"reservations?{query}", token=token):
        if old.get("purpose") == DEMO_PURPOSE:
            svc.request("POST", f"reservations/{old['id']}/cancel", {}, token=token)
    body = {
        "robot_id": robot_id,
        "starts_at": now.isoformat(),
        "ends_at": end.isoformat(),
        "purpose": DEMO_PURPOSE,
    }
    try:
        res = svc.request("POST", "reservations", body, token=token)
    except ServiceRequestError as exc:
        raise ServiceRequestError(
            f"could not book the robot now ({exc}); is someone else's booking on it? "
            "(see the booking page)"
        ) from None
    lease = svc.request("POST", f"reservations/{res['id']}/lease", {"scope": "control"}, token)
    return Booking(int(res["id"]), res["starts_at"], res["ends_at"], str(lease["token"]), token)


def cancel(svc: Service, booking: Booking) -> None:
    """End the demo booking early (it stops counting against the researcher's quota)."""
    svc.request(
        "POST", f"reservations/{booking.reservation_id}/cancel", {}, booking.researcher_token
    )


@dataclass(frozen=True)
class DemoJob:
    job_id: int
    episodes: int
    status: str


def submit_job(svc: Service, token: str, bundle: Path, episodes: int) -> DemoJob:
    """As the demo researcher: the bundle into the service's store (once, by its sha256), then
    an evaluation job of `episodes` episodes on any robot (docs/fleet.md, Evaluation jobs)."""
    from raas_client.bundles import pack, sha256

    data = pack(bundle)
    digest = sha256(data)
    req = urllib.request.Request(svc.base + f"bundles/{digest}", data=data, method="PUT")
    req.add_header("Content-Type", "application/octet-stream")
    req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        raise ServiceRequestError(f"PUT /bundles/{digest[:12]}...: {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ServiceRequestError(f"PUT /bundles: no answer ({exc})") from None
    body = {"bundle_sha256": digest, "task": "reorientation", "episodes": episodes}
    job = svc.request("POST", "jobs", body, token=token)
    return DemoJob(int(job["id"]), episodes, str(job["status"]))


def cancel_job(svc: Service, token: str, job: DemoJob) -> None:
    """Cancel the demo job unless it has ended (the next `raasd up` starts with a clean queue)."""
    try:
        got = svc.request("GET", f"jobs/{job.job_id}", token=token)
        if got["status"] in ("queued", "running"):
            svc.request("POST", f"jobs/{job.job_id}/cancel", {}, token=token)
    except ServiceRequestError as exc:
        print(f"raasd up: the demo job {job.job_id} stays: {exc}", file=sys.stderr)


_RECORDING = re.compile(r"^recording: (\S+\.mcap)")
_REPORT = re.compile(r"-> (\S+\.html)")


def _raas(*args: str) -> list[str]:
    return [sys.executable, "-m", "raas_client.cli", *args]


def run_bundle(
    children: Children,
    bundle: Path,
    *,
    endpoint: str,
    server_key: str,
    lease: str,
    episodes: int,
    out_dir: Path,
    timeout_s: float,
) -> Path:
    """`raas run` the bundle on the robot (its progress echoed); the fetched recording."""
    cmd = _raas("run", str(bundle), "--robot", endpoint, "--episodes", str(episodes))
    cmd += ["--out", str(out_dir)]
    env = {"RAAS_SERVER_KEY": server_key, "RAAS_LEASE": lease}  # kept off the command line
    # Its stderr is merged and echoed line by line like every child's, so the supervisor is the
    # only writer on the terminal and no line redraws over another (raas run draws its upload
    # bar only on a terminal; here `raasd up` shows its own spinner instead).
    child = children.start("raas", cmd, env=env, essential=False, stop_signals=(signal.SIGTERM,))
    # Beside it, `raas watch`'s line once a second, in an observer session of the same lease
    # (the stream reaches open sessions only: docs/protocol.md, Stream authorization).
    watch = children.start(
        "watch",
        _raas("watch", endpoint),
        env={"RAAS_SERVER_KEY": server_key, "RAAS_LEASE": lease},
        essential=False,
        echo=lambda line: line.startswith("cycle"),
        stop_signals=(signal.SIGTERM,),
    )
    try:
        code = children.wait(child, timeout_s)
    finally:
        children.stop(watch, 5.0)
    # 1: the run ran but did not finish as planned (a safety stop ended it); its recording is
    # still worth a report. Anything else (a refused bundle: 5) fails the demo.
    if code not in (0, 1):
        raise ChildFailedError("raas run", f"exited with code {code}")
    for line in child.lines:
        if found := _RECORDING.match(line):
            return Path(found.group(1))
    raise ChildFailedError(
        "raas run", f"exited with code {code} without fetching the session's recording"
    )


def render_report(children: Children, recording: Path, timeout_s: float) -> Path:
    """`raas report` on the recording; the HTML file."""
    cmd = _raas("report", str(recording))
    child = children.start("raas", cmd, essential=False, stop_signals=(signal.SIGTERM,))
    code = children.wait(child, timeout_s)
    if code != 0:
        raise ChildFailedError("raas report", f"exited with code {code}")
    for line in child.lines:
        if found := _REPORT.search(line):
            return Path(found.group(1))
    return recording.with_suffix(".html")
