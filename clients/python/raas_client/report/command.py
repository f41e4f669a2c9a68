"""`raas report FILE`: an HTML report with plots of a raas recording."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_ERROR = 2


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "report",
        help="an HTML report with plots of a recording (.mcap)",
        description="Read a raas recording (MCAP, also one cut short by a crash) and write a "
        "single self-contained HTML file: loop lateness, per-phase timing, joint targets against "
        "positions, staleness, successes and safety interventions. Needs the `report` extra: "
        "pip install 'raas-client[report]'.",
    )
    p.add_argument("file", type=Path, metavar="FILE", help="the .mcap recording")
    p.add_argument(
        "-o", "--output", type=Path, metavar="HTML", help="where to write it (FILE.html)"
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        from raas_client.report.data import load  # noqa: PLC0415 (the extra may be missing)
        from raas_client.report.errors import RecordingError  # noqa: PLC0415
        from raas_client.report.html import render  # noqa: PLC0415
    except ImportError as exc:
        sys.stderr.write(
            f"raas report: missing dependency ({exc.name}); install the report extra: "
            "pip install 'raas-client[report]'\n"
        )
        return EXIT_ERROR
    out: Path = args.output or args.file.with_suffix(".html")
    try:
        data = load(args.file)
    except RecordingError as exc:
        sys.stderr.write(f"raas report: {exc}\n")
        return EXIT_ERROR
    out.write_text(render(data), encoding="utf-8")
    note = " (truncated recording)" if data.truncated else ""
    sys.stdout.write(f"raas report: {data.cycles} cycles{note} -> {out}\n")
    return 0
