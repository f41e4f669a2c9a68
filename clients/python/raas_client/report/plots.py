"""The report's figures (matplotlib, Agg canvas, no pyplot state), each returned as PNG bytes."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from raas_client.report import format as fmt
from raas_client.report.chunks import chunk_timing
from raas_client.report.data import SAFETY_PREFIXES, SUCCESS_EVENTS, ReportData


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def _figure(w: float = 9.0, h: float = 3.2) -> Figure:
    return Figure(figsize=(w, h), layout="constrained")


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def lateness_histogram(d: ReportData) -> bytes:
    fig = _figure()
    ax = fig.add_subplot()
    late = np.asarray(d.lateness_ns, dtype=np.float64) / 1e3
    if late.size == 0:
        _empty(ax, "no cycles")
        return _png(fig)
    ax.hist(late, bins=100, color="#3870b8", log=True)
    for q, style in ((99, "--"), (99.9, ":")):
        v = float(np.percentile(late, q))
        ax.axvline(v, color="k", linestyle=style, linewidth=1, label=f"p{q:g} {v:.1f} us")
    ax.set_xlabel("lateness: trigger sent - t_k (us)")
    ax.set_ylabel("cycles")
    ax.legend(loc="upper right")
    return _png(fig)


def phase_timing(d: ReportData) -> bytes:
    fig = _figure(h=3.0)
    ax = fig.add_subplot()
    if not d.lateness_ns:
        _empty(ax, "no cycles")
        return _png(fig)
    names = list(fmt.PHASES)
    y = np.arange(len(names))
    qs = ((50, "#8fb4e3"), (99, "#3870b8"), (99.9, "#16375f"))
    h = 0.26
    for i, (q, color) in enumerate(qs):
        vals = [float(np.percentile(np.asarray(d.phases_ns[p]) / 1e3, q)) for p in names]
        ax.barh(y + (i - 1) * h, vals, height=h, color=color, label=f"p{q:g}")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("phase duration (us)")
    ax.legend(loc="lower right")
    return _png(fig)


def joints(d: ReportData) -> bytes:
    rows = d.joints.array()
    n = len(d.shown)
    fig = Figure(figsize=(9.0, 1.9 * max(1, (n + 1) // 2)), layout="constrained")
    if rows.size == 0 or n == 0:
        _empty(fig.add_subplot(), "no hand state recorded")
        return _png(fig)
    t = rows[:, 0]
    axes = fig.subplots((n + 1) // 2, 2, sharex=True, squeeze=False).ravel()
    for k, name in enumerate(d.shown):
        ax = axes[k]
        des, app, pos = rows[:, 1 + 3 * k], rows[:, 2 + 3 * k], rows[:, 3 + 3 * k]
        ax.plot(t, des, color="0.6", linewidth=0.8, linestyle="--", label="desired")
        ax.plot(t, app, color="#3870b8", linewidth=1.0, label="applied (target)")
        ax.plot(t, pos, color="#d0612b", linewidth=1.0, label="measured position")
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("rad", fontsize=8)
    for ax in axes[n:]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7, loc="upper right")
    for ax in axes[-2:]:
        ax.set_xlabel("time (s)")
    return _png(fig)


def staleness(d: ReportData) -> bytes:
    names = [n for n in d.stale if n != "trigger"] or list(d.stale)
    fig = Figure(figsize=(9.0, 1.2 + 0.9 * max(1, len(names))), layout="constrained")
    if not names or not d.t_s:
        _empty(fig.add_subplot(), "no sources recorded")
        return _png(fig)
    ax_s, ax_a = fig.subplots(2, 1, sharex=True, height_ratios=(1, 1.3))
    t = np.asarray(d.t_s)
    for i, name in enumerate(names):
        st = np.asarray(d.stale[name], dtype=bool)
        ax_s.scatter(t[st], np.full(int(st.sum()), i), marker="|", s=60, color="#c0392b")
        ax_a.plot(t, d.age_ms[name], linewidth=0.8, label=name)
    ax_s.set_yticks(range(len(names)), names)
    ax_s.set_ylim(-0.5, len(names) - 0.5)
    ax_s.set_title("stale cycles (a mark per cycle a source missed its deadline)", fontsize=9)
    ax_a.set_ylabel("age at trigger (ms)")
    ax_a.set_xlabel("time (s)")
    ax_a.legend(fontsize=7, loc="upper right", ncol=min(4, len(names)))
    return _png(fig)


def _cumulative(ax: Axes, t: np.ndarray, flags: np.ndarray, label: str, color: str) -> int:
    total = int(flags.sum())
    ax.step(t, np.cumsum(flags), where="post", label=f"{label} ({total})", color=color)
    return total


def successes(d: ReportData) -> bytes:
    fig = _figure(h=2.8)
    ax = fig.add_subplot()
    t = np.asarray(d.t_s)
    events = [
        (et, e)
        for et, e in d.events
        if e.get("kind") in SUCCESS_EVENTS or e.get("data", {}).get("success") is True
    ]
    goal_changes = np.asarray(d.goal_changed, dtype=bool)
    episodes = np.asarray(d.episode)
    if not events and not goal_changes.any() and (episodes.size == 0 or episodes.max() == 0):
        _empty(ax, "no task in this recording (no goals, episodes or success events)")
        return _png(fig)
    if goal_changes.any():
        _cumulative(
            ax, t, goal_changes, "goals reached (goal changed within an episode)", "#27ae60"
        )
    if events:
        et = np.array(sorted(x for x, _ in events))
        ax.step(et, np.arange(1, et.size + 1), where="post", color="#16375f",
                label=f"success events ({et.size})")  # fmt: skip
    if episodes.size and episodes.max() > episodes.min():
        starts = t[np.flatnonzero(np.diff(episodes)) + 1]
        for s in starts:
            ax.axvline(s, color="0.8", linewidth=0.8)
        ax.plot([], [], color="0.8", label=f"episode starts ({starts.size})")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("successes so far")
    ax.legend(fontsize=8, loc="upper left")
    return _png(fig)


def interventions(d: ReportData) -> bytes:
    fig = _figure(h=2.8)
    ax = fig.add_subplot()
    if not d.t_s:
        _empty(ax, "no cycles")
        return _png(fig)
    n = min(len(d.t_s), len(d.fallback), len(d.clipped))
    t = np.asarray(d.t_s[:n])
    fb = np.asarray(d.fallback[:n])
    _cumulative(ax, t, np.asarray(d.clipped[:n], dtype=bool), "clipped to limits", "#d0612b")
    _cumulative(ax, t, fb == 1, "fallback: repeat", "#3870b8")
    _cumulative(ax, t, fb == 2, "fallback: idle", "#16375f")
    safety = [et for et, e in d.events if str(e.get("kind", "")).startswith(SAFETY_PREFIXES)]
    for et in safety:
        ax.axvline(et, color="#c0392b", linewidth=1)
    if safety:
        ax.plot([], [], color="#c0392b", label=f"safety events ({len(safety)})")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("cycles so far")
    ax.legend(fontsize=8, loc="upper left")
    return _png(fig)


def _cycle_time(d: ReportData, cycles: np.ndarray) -> np.ndarray:
    """Seconds since the recording's first cycle, for cycle indices."""
    first = d.cycle[0] if d.cycle else 0
    return (cycles - first) * d.period_s


def chunk_latency(d: ReportData) -> bytes:
    """Per chunk: observation sent -> chunk arrived, split on the robot's clock into uplink,
    the server's compute time and downlink (raas_client.report.chunks)."""
    fig = _figure(h=3.2)
    ax = fig.add_subplot()
    c = chunk_timing(d.chunks)
    if not len(c):
        _empty(ax, "no action chunks (no policy server in this session)")
        return _png(fig)
    t = _cycle_time(d, c.arrival_cycle.astype(np.float64))
    ax.plot(t, c.latency_ms, ".", color="#16375f", markersize=4, label="latency (sent -> arrived)")
    ax.plot(t, c.compute_ms, ".", color="#3870b8", markersize=3, label="server compute")
    if c.offset_ns is not None:
        net = c.uplink_ms + c.downlink_ms
        ax.plot(t, net, ".", color="#d0612b", markersize=3, label="network (up + down)")
    period_ms = d.period_s * 1e3
    if np.isfinite(period_ms):
        ax.axhline(period_ms, color="0.6", linestyle=":", linewidth=1, label="one period")
    lat = c.latency_ms[np.isfinite(c.latency_ms)]
    if lat.size:
        p50, p99 = np.percentile(lat, [50, 99])
        ax.set_title(f"{len(c)} chunks: latency p50 {p50:.1f} ms, p99 {p99:.1f} ms", fontsize=9)
    top = np.nanmax(np.r_[c.latency_ms, c.compute_ms, period_ms, 1.0])
    ax.set_ylim(0, top * 1.35)  # room for the legend above the points
    ax.set_xlabel("read by the loop (s)")
    ax.set_ylabel("ms")
    ax.legend(fontsize=7, loc="upper left", ncol=4)
    return _png(fig)


def chunk_age(d: ReportData) -> bytes:
    """Per cycle: how many cycles before it was applied the action was computed (the age of
    the observation it came from), and per chunk how many of its rows were applied."""
    fig = _figure(h=3.4)
    c = chunk_timing(d.chunks)
    if not len(c):
        _empty(fig.add_subplot(), "no action chunks (no policy server in this session)")
        return _png(fig)
    ax, ax_u = fig.subplots(2, 1, sharex=True, height_ratios=(1.6, 1))
    if c.applied_cycle.size:
        t = _cycle_time(d, c.applied_cycle.astype(np.float64))
        ax.step(t, c.age_cycles, where="post", color="#3870b8", linewidth=1)
        p50, p99 = np.percentile(c.age_cycles, [50, 99])
        ax.set_title(
            f"age of the applied action: p50 {p50:g}, p99 {p99:g}, max {c.age_cycles.max()} "
            f"cycles ({c.age_cycles.max() * d.period_s * 1e3:.0f} ms)",
            fontsize=9,
        )
        if np.isfinite(d.period_s):
            sec = ax.secondary_yaxis(
                "right",
                functions=(lambda x: x * d.period_s * 1e3, lambda y: y / (d.period_s * 1e3)),
            )
            sec.set_ylabel("ms")
    else:
        _empty(ax, "no chunk row was applied")
    ax.set_ylabel("cycles")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    tc = _cycle_time(d, c.cycle.astype(np.float64))
    w = 0.8 * d.period_s
    ax_u.bar(tc, c.used, width=w, color="#27ae60", label="rows applied")
    ax_u.bar(tc, c.discarded, bottom=c.used, width=w, color="0.75", label="rows discarded")
    ax_u.set_ylim(0, float(np.max(c.used + c.discarded)) * 1.5)
    ax_u.set_ylabel("rows")
    ax_u.set_xlabel("computed from the observation of (s)")
    ax_u.legend(fontsize=7, loc="upper left", ncol=2)
    return _png(fig)


#: Shown only for a session a policy server drove (the recording has `chunk` events).
CHUNK_FIGURES: tuple[tuple[str, str, Callable[[ReportData], bytes]], ...] = (
    ("chunk-latency", "Action chunks: latency", chunk_latency),
    ("chunk-age", "Action chunks: how far ahead the applied action was computed", chunk_age),
)

FIGURES: tuple[tuple[str, str, Callable[[ReportData], bytes]], ...] = (
    ("lateness", "Loop lateness", lateness_histogram),
    ("phases", "Per-phase timing", phase_timing),
    ("joints", "Joint targets against positions", joints),
    ("staleness", "Staleness timeline", staleness),
    ("successes", "Successes over time", successes),
    ("interventions", "Safety interventions", interventions),
)
