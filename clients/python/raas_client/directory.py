"""Find a robot by name in the reservation service's robot directory (docs/fleet.md).

    entry = lookup("shadow-1")        # endpoints, server key, hand, devices, online
    conn = reserve_connection("shadow-1")   # the entry and a control lease for your booking

The service is found from arguments, then the environment, then a config file:

    RAAS_SERVICE_URL / RAAS_TOKEN      the service's base URL and your API token
    RAAS_CONFIG (default ~/.config/raas/client.toml) with `service_url = "..."`, `token = "..."`

The robot's CurveZMQ server key comes from the service's token-authenticated answer (HTTPS in
production), never from the robot itself.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from raas_client.errors import (
    ConfigurationError,
    NoCurrentBookingError,
    RobotOfflineError,
    ServiceRefusedError,
    ServiceUnreachableError,
    UnknownRobotError,
)

SERVICE_URL_ENV = "RAAS_SERVICE_URL"
TOKEN_ENV = "RAAS_TOKEN"
CONFIG_ENV = "RAAS_CONFIG"
DEFAULT_CONFIG = Path("~/.config/raas/client.toml")

_ERRORS: dict[str, type[ServiceRefusedError]] = {
    "unknown_robot": UnknownRobotError,
    "robot_offline": RobotOfflineError,
    "no_current_booking": NoCurrentBookingError,
}


@dataclass(frozen=True, slots=True)
class Service:
    url: str
    token: str


@dataclass(frozen=True, slots=True)
class RobotEntry:
    """A robot's directory entry, as the service answers it."""

    name: str
    control_endpoint: str
    stream_endpoint: str
    #: the CurveZMQ server key (Z85), "plain" for a robot registered without encryption
    server_key: str
    hand_model: str
    online: bool
    heartbeat_age_s: float | None
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Connection:
    """A directory entry and a control lease for the caller's booking running now."""

    robot: RobotEntry
    lease: str
    lease_expires_at: str
    reservation_id: int


def service_from(url: str | None = None, token: str | None = None) -> Service:
    """The service URL and token: arguments, then RAAS_SERVICE_URL/RAAS_TOKEN, then the config
    file. ConfigurationError names what is missing."""
    file: dict[str, Any] = {}
    path = Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG).expanduser()
    if path.exists():
        try:
            file = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"cannot read the client config {path}: {exc}") from exc
    url = url or os.environ.get(SERVICE_URL_ENV) or file.get("service_url")
    token = token or os.environ.get(TOKEN_ENV) or file.get("token")
    if not url:
        raise ConfigurationError(
            "which reservation service? pass --service URL, set RAAS_SERVICE_URL, or put "
            f"service_url in {path} (or pass --endpoint/--server-key/--lease directly)"
        )
    if not token:
        raise ConfigurationError(
            f"no API token for {url}: pass --token, set RAAS_TOKEN, or put token in {path}"
        )
    return Service(url=str(url).rstrip("/"), token=str(token))


def lookup(name: str, service: Service, *, timeout_s: float = 10.0) -> RobotEntry:
    """The directory entry of the robot `name` (no lease: for status and watching)."""
    return _entry(_call(service, "GET", f"/robots/by-name/{quote(name, safe='')}", timeout_s))


def list_robots(service: Service, *, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Every robot the service knows (`GET /robots`): name, `online`, `hand_model`,
    `server_public_key` (what a bound policy server admits: `raas serve-policy --robot-key`),
    endpoints, status; a robot that never registered has empty endpoints and key."""
    body = _request(service, "GET", "/robots", timeout_s)
    if not isinstance(body, list):
        raise ServiceRefusedError("bad_answer", f"{service.url}/robots: not a JSON list")
    return [x for x in body if isinstance(x, dict)]


def reserve_connection(name: str, service: Service, *, timeout_s: float = 10.0) -> Connection:
    """The robot's entry and a fresh control lease for the caller's booking running now.
    UnknownRobotError, RobotOfflineError, NoCurrentBookingError say what is wrong."""
    body = _call(service, "POST", f"/robots/by-name/{quote(name, safe='')}/connect", timeout_s)
    lease = body["lease"]
    return Connection(
        robot=_entry(body["robot"]),
        lease=str(lease["token"]),
        lease_expires_at=str(lease["expires_at"]),
        reservation_id=int(body["reservation_id"]),
    )


def _entry(body: dict[str, Any]) -> RobotEntry:
    if not body.get("control_endpoint"):
        raise ServiceRefusedError(
            "robot_not_registered",
            f"robot {body.get('name')} has not registered its endpoints with the service: "
            "pass --endpoint, --server-key and --lease",
        )
    return RobotEntry(
        name=str(body["name"]),
        control_endpoint=str(body["control_endpoint"]),
        stream_endpoint=str(body.get("stream_endpoint", "")),
        server_key=str(body.get("server_public_key") or "plain"),
        hand_model=str(body.get("hand_model", "")),
        online=bool(body.get("online")),
        heartbeat_age_s=body.get("heartbeat_age_s"),
        raw=body,
    )


def _call(service: Service, method: str, path: str, timeout_s: float) -> dict[str, Any]:
    body = _request(service, method, path, timeout_s)
    if not isinstance(body, dict):
        raise ServiceRefusedError("bad_answer", f"{service.url}{path}: not a JSON object")
    return body


def _request(service: Service, method: str, path: str, timeout_s: float) -> Any:
    """The JSON answer of `method path`; a refusal raises its named error (ServiceRefusedError
    and subclasses), an unreachable service ServiceUnreachableError."""
    headers = {"Authorization": f"Bearer {service.token}"}
    try:
        r = httpx.request(method, service.url + path, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise ServiceUnreachableError(
            f"the reservation service at {service.url} is unreachable: {exc}"
        ) from exc
    try:
        body = r.json()
    except ValueError:
        body = None
    if r.status_code >= 400:
        code = str(body.get("error", "")) if isinstance(body, dict) else ""
        detail = str(body.get("detail", r.text)) if isinstance(body, dict) else r.text
        cls = _ERRORS.get(code, ServiceRefusedError)
        raise cls(code or f"http_{r.status_code}", f"{service.url}: {detail}", r.status_code)
    return body
