"""OptiTrack motion capture over NatNet ("natnet"), on the `natnet` package.

The package is imported inside build/probe only, so the driver is listed and its settings checked
on a machine without it. `raas_drivers.natnet.emulator` is a NatNet server for tests.
"""

from __future__ import annotations

from typing import Any

from raas_drivers.errors import DriverError
from raas_drivers.natnet.config import NatNetSettings
from raas_drivers.registry import BuildContext, DriverSpec, ProbeReport, register


def _build(settings: NatNetSettings, ctx: BuildContext) -> Any:
    from raas_drivers.natnet.driver import NatNetMocap  # noqa: PLC0415

    return NatNetMocap(ctx.device, settings, period_ns=ctx.period_ns)


def _probe(settings: NatNetSettings, ctx: BuildContext) -> ProbeReport:
    """Connect, read the server's info and model definitions, check the mapped bodies."""
    from raas_drivers.natnet.driver import NatNetMocap  # noqa: PLC0415

    report = ProbeReport(device=ctx.device, driver="natnet", found=False)
    mocap = NatNetMocap(ctx.device, settings, period_ns=ctx.period_ns)
    try:
        mocap.configure()
    except ImportError as exc:
        report.problems.append(f"the natnet package is not installed: {exc}")
        return report
    except DriverError as exc:
        found = bool(mocap.server_info)
        report.found = found
        report.details.update(mocap.server_info)
        report.details["rigid_bodies"] = mocap.bodies
        report.problems.append(str(exc))
        if not found:
            report.problems.append(
                "is Motive streaming (Edit > Settings > Streaming: Broadcast Frame Data on, the "
                "right local interface, unicast/multicast as in the cell file)?"
            )
        return report
    finally:
        mocap.shutdown()
    report.found = True
    report.model = mocap.server_info.get("application")
    report.firmware = (
        f"server {mocap.server_info.get('server_version')}, "
        f"NatNet {mocap.server_info.get('natnet_version')}"
    )
    report.details["rigid_bodies"] = mocap.bodies
    report.details["rows"] = list(mocap.marker_names)
    return report


register(
    DriverSpec(
        family="mocap",
        name="natnet",
        settings=NatNetSettings,
        build=_build,
        probe=_probe,
        summary="OptiTrack Motive over NatNet (natnet package): rigid bodies and labeled markers",
    )
)
