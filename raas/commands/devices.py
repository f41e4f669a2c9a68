"""`raasd devices --config CELL.toml`: list the cell file's devices and probe each.

For lab staff setting up a cell: each device with its driver, whether it was found, what it is
(model, firmware, serial number), temperatures where the device has them, and what is wrong in
words. Probes start nothing (a simulated device says "simulated"). Exit 0 when every device was
found without a problem, 1 when one is missing or has a problem, 2 on a bad cell file.
`raasd devices --drivers` lists the registered drivers instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from raas.errors import ConfigError

EXIT_OK = 0
EXIT_MISSING = 1
EXIT_CONFIG = 2


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "devices",
        help="list the cell file's devices and probe each (found, model, firmware, serial)",
        description="List the devices a cell file names with their drivers and probe each "
        "without driving it: found or not, model, firmware, serial number, temperatures, and "
        "what is wrong. Exit 0 all found, 1 a device missing or with a problem, 2 bad cell file.",
    )
    p.add_argument(
        "--config", type=Path, metavar="CELL.toml", help="the cell file (docs/hardware.md)"
    )
    p.add_argument("--sim", action="store_true", help="the simulated cell (raas/cells/sim.toml)")
    p.add_argument("--json", action="store_true", help="print the reports as JSON")
    p.add_argument("--drivers", action="store_true", help="list the registered drivers and exit")
    p.set_defaults(func=main)


def _drivers(out: TextIO, as_json: bool) -> int:
    from raas_drivers.registry import drivers

    specs = drivers()
    if as_json:
        rows = [{"family": s.family, "name": s.name, "summary": s.summary} for s in specs]
        print(json.dumps(rows, indent=2), file=out)
        return EXIT_OK
    for s in specs:
        print(f"  {s.family:<8} {s.name:<{_DRIVER_W}} {s.summary}", file=out)
    return EXIT_OK


#: column widths of the listing (the longest built-in driver name: pylon-software)
_DEVICE_W = 16
_DRIVER_W = 14


def _line(r: Any) -> str:
    status = "found" if r.found else "MISSING"
    what = [x for x in (r.model,) if x]
    if r.firmware:
        what.append(f"firmware {r.firmware}")
    if r.serial_number:
        what.append(f"serial {r.serial_number}")
    if r.temperatures_c:
        temps = ", ".join(f"{k} {v:.1f} C" for k, v in r.temperatures_c.items())
        what.append(f"temperatures {temps}")
    line = f"  {r.device:<{_DEVICE_W}} {r.driver:<{_DRIVER_W}} {status:<8} {'; '.join(what)}"
    return line.rstrip()


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    if args.drivers:
        return _drivers(out, args.json)
    from raas.config import assemble_cell_config

    try:
        cfg = assemble_cell_config(args.config, {}, {}, sim=args.sim, what="raasd devices")
    except ConfigError as exc:
        print(f"raasd devices: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    from raas.daemon import probe_devices

    reports = probe_devices(cfg)
    ok = all(r.ok for r in reports)
    if args.json:
        rows = [
            {
                "device": r.device,
                "driver": r.driver,
                "found": r.found,
                "ok": r.ok,
                "model": r.model,
                "firmware": r.firmware,
                "serial_number": r.serial_number,
                "temperatures_c": r.temperatures_c,
                "details": r.details,
                "problems": r.problems,
            }
            for r in reports
        ]
        print(json.dumps({"ok": ok, "devices": rows}, indent=2, default=str), file=out)
        return EXIT_OK if ok else EXIT_MISSING
    where = args.config if args.config is not None else "the simulated cell"
    print(f"raasd devices: {len(reports)} devices in {where}", file=out)
    for r in reports:
        print(_line(r), file=out)
        for p in r.problems:
            print(f"  {'':<{_DEVICE_W}} problem: {p}", file=out)
    bad = [r.device for r in reports if not r.ok]
    verdict = "every device found" if ok else f"PROBLEMS with {', '.join(bad)}"
    print(f"raasd devices: {verdict}", file=out, flush=True)
    return EXIT_OK if ok else EXIT_MISSING
