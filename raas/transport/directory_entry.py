"""The daemon's entry in the service's robot directory (docs/fleet.md): where its sockets are,
its CurveZMQ server public key, its hand, devices and what it can do. Sent with every heartbeat.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: What every raas daemon serves (docs/protocol.md): observe the stream, step it remotely,
#: run an uploaded policy bundle.
BASE_CAPABILITIES = ("observe", "remote_step", "run_bundle")


def directory_entry(
    *,
    control_endpoint: str,
    stream_endpoint: str,
    server_public_key: str | None,
    hand_model: str,
    drivers: Mapping[str, str],
    realtime: bool,
) -> dict[str, Any]:
    """`drivers`: the cell file's device keys ("hand", "cameras.left") and their drivers."""
    caps = list(BASE_CAPABILITIES)
    if any(key.startswith("cameras.") for key in drivers):
        caps.append("cameras")
    if "mocap" in drivers:
        caps.append("mocap")
    caps.append("realtime" if realtime else "lockstep")
    return {
        "control_endpoint": control_endpoint,
        "stream_endpoint": stream_endpoint,
        "server_public_key": server_public_key or "",
        "hand_model": hand_model,
        "devices": [{"key": k, "driver": d} for k, d in drivers.items()],
        "capabilities": caps,
    }
