"""The daemon's entry in the service's robot directory (docs/fleet.md): where its sockets are,
its CurveZMQ server public key, its hand, devices and what it can do. Sent with every heartbeat.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from raas.transport.errors import EndpointError

#: What every raas daemon serves (docs/protocol.md): observe the stream, step it remotely,
#: run an uploaded policy bundle.
BASE_CAPABILITIES = ("observe", "remote_step", "run_bundle")


#: Bind addresses that mean "every interface": nobody can connect to them from elsewhere.
WILDCARD_HOSTS = ("0.0.0.0", "::", "*", "")


def _host_port(endpoint: str) -> tuple[str, str]:
    """("host", "port") of a tcp endpoint; EndpointError for anything else."""
    parts = urlsplit(endpoint)
    if parts.scheme != "tcp" or not parts.netloc:
        raise EndpointError(f"not a tcp endpoint: {endpoint!r} (tcp://HOST:PORT)")
    host, sep, port = parts.netloc.rpartition(":")
    if not sep or not port.isdigit():
        return parts.netloc, ""
    return host, port


def advertised(bound: str, advertise: str | None, *, control: bool) -> str:
    """The endpoint the directory gives clients for a socket bound at `bound`.

    `advertise` is a host (`10.0.0.5`, `hand1.lab.example`: the bound port is kept) or a tcp
    endpoint (`tcp://HOST:PORT`: its port is the control socket's, e.g. behind a port mapping;
    the stream keeps its bound port on that host). None: the bound endpoint as it is. Raises
    EndpointError for an advertise address that is not a host or tcp://HOST[:PORT], or for an
    ipc/inproc socket (nothing to advertise: only processes on the robot's machine reach it).
    """
    if advertise is None:
        return bound
    if not bound.startswith("tcp://"):
        raise EndpointError(
            f"--advertise {advertise!r}: the socket {bound} is not tcp; only tcp is reachable "
            "from another machine"
        )
    _, bound_port = _host_port(bound)
    if "://" in advertise:
        host, port = _host_port(advertise)
        if not port or not control:  # the stream keeps its bound port on that host
            port = bound_port
    else:
        host, port = advertise, bound_port
    if not host or host in WILDCARD_HOSTS or "/" in host:
        raise EndpointError(
            f"--advertise {advertise!r}: give the host clients reach this robot at "
            "(an address or a name, optionally as tcp://HOST:PORT), not a wildcard"
        )
    return f"tcp://{host}:{port}"


def unreachable(endpoint: str) -> bool:
    """A tcp endpoint bound to every interface: its address means nothing to a client."""
    if not endpoint.startswith("tcp://"):
        return False
    host, _ = _host_port(endpoint)
    return host.strip("[]") in WILDCARD_HOSTS


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
