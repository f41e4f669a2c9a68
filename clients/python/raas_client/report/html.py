"""The report as one self-contained HTML file: figures embedded as base64 PNG, no scripts."""

from __future__ import annotations

import base64
import contextlib
import html
import json
import time

import numpy as np

from raas_client import __version__
from raas_client.report import format as fmt
from raas_client.report.chunks import chunk_timing
from raas_client.report.data import ReportData
from raas_client.report.plots import CHUNK_FIGURES, FIGURES

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222;
       padding: 0 1rem; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: 0.9rem; }
td, th { border: 1px solid #ccc; padding: 0.2rem 0.6rem; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.warn { color: #a03000; font-weight: bold; }
img { max-width: 100%; }
code { background: #f3f3f3; padding: 0 0.2rem; }
"""


def _pct(values: list[int]) -> str:
    if not values:
        return "-"
    v = np.asarray(values, dtype=np.float64) / 1e3
    p50, p99, p999 = np.percentile(v, [50, 99, 99.9])
    return f"p50 {p50:.1f} / p99 {p99:.1f} / p99.9 {p999:.1f} / max {v.max():.1f} us"


def _rows(pairs: list[tuple[str, str]]) -> str:
    return "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in pairs
    )


def _chunk_rows(d: ReportData) -> list[tuple[str, str]]:
    c = chunk_timing(d.chunks)
    lat = c.latency_ms[np.isfinite(c.latency_ms)]
    rows = [
        (
            "action chunks",
            f"{len(c)} accepted; rows applied {int(c.used.sum())}, discarded "
            f"{int(c.discarded.sum())}",
        ),
        ("chunk latency", _pct_ms(lat)),
        ("server compute", _pct_ms(c.compute_ms[np.isfinite(c.compute_ms)])),
    ]
    if c.age_cycles.size:
        p50, p99 = np.percentile(c.age_cycles, [50, 99])
        rows.append(
            (
                "applied action's age",
                f"p50 {p50:g} / p99 {p99:g} / max {int(c.age_cycles.max())} cycles",
            )
        )
    if c.offset_ns is not None and c.offset_error_ms is not None:
        rows.append(
            (
                "server clock offset",
                f"{c.offset_ns / 1e6:.3f} ms (server minus robot, +- {c.offset_error_ms:.3f} ms)",
            )
        )
    return rows


def _pct_ms(v: np.ndarray) -> str:
    if not v.size:
        return "-"
    p50, p99, p999 = np.percentile(v, [50, 99, 99.9])
    return f"p50 {p50:.1f} / p99 {p99:.1f} / p99.9 {p999:.1f} / max {v.max():.1f} ms"


def render(d: ReportData) -> str:
    session = d.metadata.get(fmt.META_SESSION, {})
    rec = d.metadata.get(fmt.META_RECORDING, {})
    fb = np.asarray(d.fallback)
    summary: list[tuple[str, str]] = [
        ("file", str(d.path)),
        (
            "cycles recorded",
            f"{d.cycles} (cycle {d.cycle[0]} to {d.cycle[-1]})" if d.cycle else "0",
        ),
        (
            "missing cycle indices",
            f"{d.missing_cycles} in {d.gaps} gaps (missed by the loop or dropped by the recorder)",
        ),
        (
            "dropped by the recorder tap",
            str(max(d.dropped_before, int(rec.get("dropped_cycles", 0) or 0))),
        ),
        ("lateness", _pct(d.lateness_ns)),
        ("trigger to apply", _pct(d.trigger_to_apply_ns)),
        ("fallbacks", f"repeat {int((fb == 1).sum())}, idle {int((fb == 2).sum())}"),
        ("clipped cycles", str(int(np.sum(d.clipped)))),
        ("camera frames", ", ".join(f"{k} {v}" for k, v in sorted(d.frames.items())) or "none"),
        ("events", str(len(d.events))),
    ]
    if d.chunks:
        summary += _chunk_rows(d)
    meta_keys = ("robot", "reservation", "user", "bundle_sha256", "controller", "mode",
                 "session_id", "started_at", "raas_version", "git_commit", "rig_clock",
                 "rate_hz", "realtime")  # fmt: skip
    meta = [(k, session[k]) for k in meta_keys if session.get(k)]
    meta += [(k, v) for k, v in sorted(session.items()) if k not in meta_keys]
    status = (
        f'<p class="warn">The file is truncated ({html.escape(d.truncation_reason)}): its '
        "writer stopped before closing it; everything up to the last complete chunk is shown.</p>"
        if d.truncated
        else ""
    )
    if rec.get("status") is None and not d.truncated:
        status += '<p class="warn">The recording has no closing record.</p>'
    figures = []
    for key, title, fn in FIGURES + (CHUNK_FIGURES if d.chunks else ()):
        png = base64.b64encode(fn(d)).decode()
        figures.append(
            f'<h2 id="{key}">{html.escape(title)}</h2>\n'
            f'<img alt="{html.escape(title)}" src="data:image/png;base64,{png}">'
        )
    config = d.metadata.get(fmt.META_CONFIG, {}).get("cell_config", "")
    with contextlib.suppress(ValueError):
        config = json.dumps(json.loads(config), indent=2) if config else ""
    events = "\n".join(
        f"<tr><td class='num'>{t:.3f}</td><td>{html.escape(str(e.get('kind')))}</td>"
        f"<td>{html.escape(json.dumps(e.get('data', {}), default=str)[:300])}</td></tr>"
        for t, e in d.events[:200]
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>raas report: {html.escape(d.path.name)}</title>
<style>{_CSS}</style></head>
<body>
<h1>raas recording report: {html.escape(d.path.name)}</h1>
{status}
<h2 id="summary">Summary</h2>
<table>{_rows(summary)}</table>
<h2 id="session">Session</h2>
<table>{_rows(meta)}</table>
{"".join(figures)}
<h2 id="events">Events</h2>
<table><tr><th>t (s)</th><th>kind</th><th>data</th></tr>{events}</table>
<h2 id="config">Cell configuration</h2>
<pre>{html.escape(config) or "(none recorded)"}</pre>
<p><small>Made by raas report {__version__} on {time.strftime("%Y-%m-%d %H:%M:%S")}. Open the
recording itself in Foxglove (File, Open local file) to step through it cycle by cycle.</small></p>
</body></html>
"""
