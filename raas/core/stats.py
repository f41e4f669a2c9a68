"""The end-of-run figures: one dict that the summary prints and `--stats-json` writes.

Its shape is fixed by `stats_schema.json` beside this file (documented in docs/stats-json.md);
the schema's `$id` carries the version and changes when a field does.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Iterable
from importlib import resources
from typing import Any

from raas_drivers.lifecycle import Device

from raas import __version__
from raas.core.loop import ControlLoop
from raas.core.timing import fallback_counts, percentiles_us, phase_summary

SCHEMA_ID = "https://raas.dev/schemas/run-stats/3"


def schema() -> dict[str, Any]:
    text = resources.files("raas.core").joinpath("stats_schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


_CLOCK_KEYS = ("clock_offset_ns", "clock_drift_ppm", "clock_residual_ns", "clock_samples")


def device_clocks(devices: Iterable[Device]) -> dict[str, dict[str, float]]:
    """Each device's clock mapping (docs/clocks.md) from its stats(): `{device: {offset_ns,
    drift_ppm, residual_ns, samples}}`; a camera driver's per-camera figures as `cameras.left`.
    Devices without a clock of their own are left out."""
    out: dict[str, dict[str, float]] = {}
    for dev in devices:
        try:
            stats = dev.stats()
        except Exception:  # a driver's counters must never break the summary
            continue
        for key, value in stats.items():
            prefix, _, name = key.rpartition("clock_")
            if "clock_" + name not in _CLOCK_KEYS:
                continue
            part = prefix.rstrip(".")
            # a driver of several cameras prefixes each (`left.`); a device built per camera
            # section is already named for it (`cameras.left`)
            named = not part or dev.name == part or dev.name.endswith("." + part)
            who = dev.name if named else f"{dev.name}.{part}"
            out.setdefault(who, {})[name] = value
    return out


def device_counters(devices: Iterable[Device]) -> dict[str, dict[str, float | int]]:
    """Each device's own counters (Device.stats(): a serial link's frames, bytes, CRC errors,
    resyncs, timeouts, ...), by device name; whole numbers as integers. A device whose counters
    cannot be read is left out rather than failing the report."""
    out: dict[str, dict[str, float | int]] = {}
    for device in devices:
        try:
            counters = device.stats()
        except Exception:  # the figures of a run never fail for one driver's counters
            continue
        out[device.name] = {
            key: int(value) if float(value).is_integer() else float(value)
            for key, value in counters.items()
        }
    return out


def build_stats(
    loop: ControlLoop,
    extra: dict[str, Any] | None = None,
    devices: Iterable[Device] | None = None,
) -> dict[str, Any]:
    """The figures of `loop`'s run. `devices`: whose counters go under `devices` (default: the
    loop's hand and trigger board)."""
    res = loop.result
    log = loop.log
    cfg = loop.config
    fb = fallback_counts(log)
    sources = {
        name: {
            "stale_cycles": res.stale.get(name, 0),
            "late_cycles": res.late.get(name, 0),
            "max_stale_age_us": round(res.max_age_us.get(name, 0.0), 3),
            "deadline_us": round(r.deadline_ns / 1e3, 3),
            "required": r.required,
        }
        for name, r in loop.obs.sources.items()
    }
    stats: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "software": {"raas": __version__, "python": platform.python_version()},
        "config": {
            "rate_hz": cfg.rate_hz,
            "period_us": cfg.period_ns / 1e3,
            "duration_s": cfg.duration_s,
            "warmup_cycles": cfg.warmup_cycles,
            "max_repeats": cfg.max_repeats,
            "decide_budget_us": cfg.decide_budget_ns / 1e3,
            "apply_phase_ms": cfg.apply_phase_ms,
            "controller": loop.controller.name,
            "clock": "realtime" if loop.clock.realtime else "lockstep",
        },
        "rt": loop.rt_report.as_dict() if loop.rt_report is not None else None,
        "cycles": {
            "run": res.cycles,
            "warmup": res.warmup_cycles,
            "missed": res.missed,
            "overruns": res.overruns,
            "fallbacks": fb["repeat"] + fb["idle"],
            "fallbacks_repeat": fb["repeat"],
            "fallbacks_idle": fb["idle"],
            "apply_late": res.apply_late,
            "clipped": res.clipped,
        },
        "lateness_us": percentiles_us(log.series("lateness")),
        "period_error_us": percentiles_us(log.period_error(cfg.period_ns)),
        "trigger_to_apply_us": percentiles_us(log.series("trigger_to_apply")),
        "phases_us": phase_summary(log),
        "sources": sources,
        "devices": device_counters(devices if devices is not None else (loop.hand, loop.trigger)),
        "run": {
            "stop_reason": res.stop_reason,
            "lost_device": res.lost_device,
            "wall_s": round(res.wall_s, 6),
            "clock_s": round(res.grid_s, 6),
            "speed_vs_realtime": round(res.grid_s / res.wall_s, 3) if res.wall_s > 0 else None,
        },
    }
    sup = loop.supervisor
    stats["safety"] = {
        "state": res.safety_state,
        "reason": res.safety_reason,
        "detail": sup.detail,
        "held": res.safety_state in ("hold", "fault"),
        "rested_cycles": res.rested,
        "interventions": dict(res.interventions),
        "watchdog_trips": {k.value: v for k, v in sup.watchdogs.trips.items()},
        "transitions": [t.as_dict() for t in sup.history],
    }
    policy_stats = getattr(loop.controller, "policy_stats", None)
    if callable(policy_stats):
        stats["policy"] = policy_stats()
    if extra:
        stats.update(extra)
    return stats


def _safety_lines(safety: dict[str, Any]) -> list[str]:
    """The supervisor's end state (HELD when it held or faulted) and its last transitions."""
    state, reason, detail = safety["state"], safety["reason"], safety["detail"]
    why = f"{reason} ({detail})" if detail else reason
    ts = safety["transitions"][-8:]
    at = f" at cycle {ts[-1]['cycle']}" if ts and ts[-1]["to"] == state else ""
    if safety["held"]:
        line = (
            f"  HELD: the supervisor ended in {state.upper()} {why}{at}; the hand was held at its "
            "measured pose (docs/safety.md has the reason codes)"
        )
    else:
        line = f"  safety: ended {state.upper()} ({why})"
    out = [line]
    if ts:
        steps = " -> ".join(f"{t['to']} ({t['reason']}, cycle {t['cycle']})" for t in ts)
        out.append(f"  safety transitions: {ts[0]['from']} -> {steps}")
    if safety["rested_cycles"]:
        out.append(
            f"  policy not run in {safety['rested_cycles']} held cycles (the hold target was sent)"
        )
    return out


def _policy_lines(p: dict[str, Any]) -> list[str]:
    load, lat, dec = p["load_latency_us"], p["inference_latency_us"], p["decide_latency_us"]
    pose = p["object_pose_from"]
    pose = "no object pose" if pose == "none" else f"object pose from {pose}"
    return [
        f"  policy {p['bundle']} (sha256 {p['bundle_sha256'][:12]}) on "
        f"{p['execution_provider']} ({p['intra_op_threads']} intra-op thread), {pose}",
        f"  inference at load p50 {load.get('p50', 0.0):.1f}  p99 {load.get('p99', 0.0):.1f} us;"
        f" in the loop p50 {lat['p50']:.1f}  p99 {lat['p99']:.1f}  max {lat['max']:.1f} us; "
        f"whole decide p50 {dec['p50']:.1f}  p99 {dec['p99']:.1f} us (budget "
        f"{p['budget_us']:.0f} us)",
        f"  policy cycles {p['cycles']}: overruns {p['overruns']}, non-finite outputs "
        f"{p['nonfinite_outputs']}, missing observations {p['missing_observations']}, state "
        f"resets {p['state_resets']}; warm-ups {p['warmups']} x {p['warmup_runs']}, background "
        f"{p['background_warmups']}, skipped after an overrun {p['warmups_skipped']}",
    ]


def format_summary(stats: dict[str, Any]) -> str:
    """The human summary printed at the end of `raasd run`."""
    c = stats["cycles"]
    cfg = stats["config"]
    run = stats["run"]

    def row(label: str, p: dict[str, float]) -> str:
        return (
            f"  {label:<20} p50 {p['p50']:>10.1f}  p99 {p['p99']:>10.1f}  "
            f"p99.9 {p['p999']:>10.1f}  max {p['max']:>10.1f}  (us)"
        )

    lines = [
        f"raasd: {c['run']} cycles at {cfg['rate_hz']:g} Hz ({cfg['clock']}, "
        f"controller {cfg['controller']}) in {run['wall_s']:.2f} s wall, "
        f"{run['clock_s']:.2f} s on the loop clock; stop: {run['stop_reason']}",
        f"  missed cycles {c['missed']}  overruns {c['overruns']}  fallbacks {c['fallbacks']} "
        f"(repeat {c['fallbacks_repeat']}, idle {c['fallbacks_idle']})  "
        f"apply late {c['apply_late']}  clipped {c['clipped']}",
        row("lateness", stats["lateness_us"]),
        row("period error", stats["period_error_us"]),
        row("trigger->apply", stats["trigger_to_apply_us"]),
    ]
    if "safety" in stats:
        lines[1:1] = _safety_lines(stats["safety"])
    if "policy" in stats:
        lines += _policy_lines(stats["policy"])
    lines += [row(f"phase {name}", p) for name, p in stats["phases_us"].items()]
    stale = ", ".join(f"{n} {s['stale_cycles']}" for n, s in stats["sources"].items())
    lines.append(f"  stale cycles per source: {stale}")
    for name, c in stats.get("devices", {}).items():
        if "link_open" in c:
            lines.append(
                f"  link {name}: frames {c['link_frames_sent']} sent / "
                f"{c['link_frames_received']} received, bytes {c['link_bytes_sent']} / "
                f"{c['link_bytes_received']}, CRC errors {c['link_crc_errors']}, "
                f"resyncs {c['link_resyncs']}, timeouts {c['link_timeouts']}"
                + ("" if c["link_open"] else " (link down)")
            )
    rt = stats.get("rt")
    if rt:
        lines.append(
            f"  real-time: {rt['sched_policy']}"
            + (f" prio {rt['fifo_priority']}" if rt["fifo_priority"] is not None else "")
            + f", cpus {rt['affinity']}, mlockall {'yes' if rt['mlockall'] else 'no'}, "
            f"heap frozen {'yes' if rt['gc_frozen'] else 'no'}"
            + (f" ({'; '.join(rt['notes'])})" if rt["notes"] else "")
        )
    return "\n".join(lines)
