"""`raasd policy check BUNDLE`: validate a policy bundle without a robot.

The same checks as when a robot loads it (manifest, model inputs and outputs, the hand's
actuators, cameras and resolution, the control period against the cell's rate), then a timing
estimate: the real onnxruntime session, warmed up, run N times with the runner's settings, p50 /
p99 / p99.9 / max against the inference budget (p99 above it refuses the bundle, as at load).

It also says how big the bundle is as `raas run` uploads it and warns (a WARNING line, `warnings`
in the JSON; the exit code is unchanged) when that is over the robot's default upload limit
(256 MiB, `[transport] max_upload_bytes`), where the upload would be refused as too_large.

Exit codes: 0 the bundle would load; 2 bad command line (an unknown hand model); 5 refused, the
field at fault named (on stderr, or in the JSON with --json).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_REFUSED = 5
#: The robot daemon's default cycle rate (raas.core.loop.LoopConfig.rate_hz).
DEFAULT_RATE_HZ = 12.5
WARMUP_RUNS = 30
MIB = 1024 * 1024


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "policy", help="policy bundles: check one without a robot"
    )
    psub = p.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    c: argparse.ArgumentParser = psub.add_parser(
        "check",
        help="validate a bundle as a robot would load it, and estimate its inference time",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("bundle", type=Path, metavar="BUNDLE", help="bundle directory, .zip or .tar")
    c.add_argument(
        "--hand", default=None, metavar="MODEL", help="hand model to check against (the built-in "
        "Shadow hand, shadow-dexterous)",
    )  # fmt: skip
    c.add_argument(
        "--rate", type=float, default=DEFAULT_RATE_HZ, metavar="HZ",
        help=f"the cell's cycle rate; the bundle's control_period_s must match ({DEFAULT_RATE_HZ})",
    )  # fmt: skip
    c.add_argument("--cameras", type=int, default=3, metavar="N", help="cameras of the cell (3)")
    c.add_argument(
        "--resolution", default="200x200", metavar="WxH", help="camera resolution (200x200)"
    )
    c.add_argument("--budget-ms", type=float, help="inference budget (half the period)")
    c.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (1)")
    c.add_argument(
        "--runs", type=int, default=1000, metavar="N", help="timed runs after 30 warm-up (1000)"
    )
    c.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    c.set_defaults(func=check)


def upload_bytes(path: Path) -> int:
    """About the bytes `raas run` sends for this bundle: an archive's own size; a directory as
    the uncompressed tar the client builds of it (a 512-byte header per entry, contents padded
    to 512 bytes, 1 KiB at the end; PAX headers for long names add a little)."""
    if not path.is_dir():
        return path.stat().st_size
    n = 512 + 1024  # the directory's own entry, the end of the archive
    for p in path.rglob("*"):
        n += 512
        if p.is_file():
            n += -(-p.stat().st_size // 512) * 512
    return n


def _upload(path: Path) -> dict[str, Any] | None:
    """The bundle's upload size against the robot's default upload limit (the `[transport]`
    section's `max_upload_bytes` of the robot's cell file, raas.transport.config)."""
    from raas.transport.config import TransportConfig

    try:
        size = upload_bytes(path)
    except OSError:
        return None  # a missing bundle is load_bundle's to name
    limit = int(TransportConfig().max_upload_bytes)
    return {"bytes": size, "limit_bytes": limit, "over_limit": size > limit}


def _upload_warning(u: dict[str, Any]) -> str:
    return (
        f"the bundle is {u['bytes'] / MIB:.1f} MiB as uploaded, over the robot's default upload "
        f"limit of {u['limit_bytes'] / MIB:g} MiB ([transport] max_upload_bytes in the robot's "
        "cell file; evaluation jobs: the reservation service's max_bundle_bytes, also 256 MiB "
        "by default): `raas run` and `raas jobs submit` will be refused (too_large) unless the "
        "robot's limit was raised"
    )


def _refused(exc: Any) -> dict[str, Any]:
    return {
        "ok": False,
        "field": exc.field,
        "error": type(exc).__name__,
        "message": exc.detail,
    }


def _describe(runner: Any, cell: Any, hand: str) -> dict[str, Any]:
    m = runner.manifest
    return {
        "name": m.name,
        "sha256": runner.bundle_hash,
        "hand": {
            "model": hand,
            "actuators": len(cell.actuator_names),
            "driven": len(m.action.actuators),
        },
        "observation": {
            "input": m.observation.input,
            "values": m.observation.size,
            "keys": [f.key for f in m.observation.fields],
        },
        "action": {
            "output": m.action.output,
            "kind": m.action.kind,
            "bins": m.action.bins,
            "mode": m.action.mode,
            "actuators": len(m.action.actuators),
        },
        "state": [
            {
                "input": s.input,
                "output": s.output,
                "shape": list(runner.policy.state(s.input).shape),
            }
            for s in m.state
        ],
        "object_pose_from": m.object_pose_source,
        "reads": sorted(runner.needs),
        "execution_provider": runner.provider,
    }


def _pose_words(b: dict[str, Any]) -> str:
    """What the policy reads of the object: its pose from mocap or the vision model, or none."""
    source = b["object_pose_from"]
    if source == "none":
        return "no object pose"
    return f"object pose from {'the vision model' if source == 'vision' else source}"


def _text(result: dict[str, Any], bundle: Path, out: TextIO) -> None:
    print(f"raasd policy check: {bundle}", file=out)
    b = result.get("bundle")
    if b is not None:
        h, o, a = b["hand"], b["observation"], b["action"]
        state = ", ".join(f"{s['input']}->{s['output']} {s['shape']}" for s in b["state"])
        bins = f" x {a['bins']} bins" if a["bins"] else ""
        print(f"  bundle       {b['name']} (sha256 {b['sha256'][:12]})", file=out)
        print(
            f"  hand         {h['model']}: the policy drives {h['driven']} of its "
            f"{h['actuators']} actuators",
            file=out,
        )
        print(
            f"  observation  {o['input']!r}: {o['values']} values ({', '.join(o['keys'])})",
            file=out,
        )
        print(
            f"  action       {a['output']!r}: {a['kind']} {a['mode']}, {a['actuators']} "
            f"actuators{bins}",
            file=out,
        )
        print(f"  state        {state or 'none'}", file=out)
        print(f"  reads        {', '.join(b['reads'])} ({_pose_words(b)})", file=out)
    t = result.get("timing")
    if t is not None:
        lat = t["latency_us"]
        print(
            f"  timing       {t['runs']} runs after {t['warmup']} warm-up on "
            f"{t['execution_provider']} ({t['intra_op_threads']} thread): p50 {lat['p50']:.1f}  "
            f"p99 {lat['p99']:.1f}  p99.9 {lat['p999']:.1f}  max {lat['max']:.1f} us; budget "
            f"{t['budget_us']:.0f} us (p99 at {t['p99_share_of_budget']:.1%} of it)",
            file=out,
        )
        print(
            "               an estimate on this machine; the robot measures again at load",
            file=out,
        )
    u = result.get("upload")
    if u is not None:
        print(
            f"  upload       {u['bytes'] / MIB:.1f} MiB as sent (the robot takes up to "
            f"{u['limit_bytes'] / MIB:g} MiB by default)",
            file=out,
        )
    for w in result.get("warnings", []):
        print(f"raasd policy check: WARNING: {w}", file=out)
    if result["ok"]:
        print("raasd policy check: OK, the bundle would load", file=out)
    else:
        print(f"raasd policy check: REFUSED: {result['field']}: {result['message']}", file=out)


def check(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from raas.policy import RuntimeOptions, load_bundle
    from raas.policy.errors import BundleError, OverBudgetError
    from raas.policy.hands import DEFAULT_HAND, cell_for_hand

    out = out if out is not None else sys.stdout
    err = sys.stderr
    hand = args.hand or DEFAULT_HAND
    try:
        w, h = (int(x) for x in args.resolution.lower().split("x"))
    except ValueError:
        print(f"raasd policy check: --resolution: expected WxH, got {args.resolution!r}", file=err)
        return EXIT_USAGE
    if args.runs < 1 or args.rate <= 0 or not 0 <= args.cameras <= 3:
        print("raasd policy check: --runs >= 1, --rate > 0, --cameras 0-3", file=err)
        return EXIT_USAGE
    try:
        cell = cell_for_hand(hand, cameras=args.cameras, camera_width=w, camera_height=h)
    except BundleError as exc:
        print(f"raasd policy check: --hand: {exc.detail}", file=err)
        return EXIT_USAGE
    period_s = 1.0 / args.rate
    budget_ms = args.budget_ms if args.budget_ms is not None else period_s * 1e3 / 2
    result: dict[str, Any]
    try:
        # The budget is judged below, so the figures are reported even when over it.
        runner = load_bundle(
            args.bundle,
            period_s=period_s,
            budget_ms=1e9,  # every check of a load but the budget
            cell=cell,
            options=RuntimeOptions(intra_op_threads=args.threads),
            measure_runs=args.runs,
        )
    except BundleError as exc:
        result = _refused(exc)
    else:
        lat = runner.load_latency_us
        result = {"ok": True, "bundle": _describe(runner, cell, hand)}
        result["timing"] = {
            "runs": args.runs,
            "warmup": WARMUP_RUNS,
            "execution_provider": runner.provider,
            "intra_op_threads": args.threads,
            "latency_us": lat,
            "budget_us": budget_ms * 1e3,
            "p99_share_of_budget": lat["p99"] / (budget_ms * 1e3),
        }
        if lat["p99"] > budget_ms * 1e3:
            over = OverBudgetError(
                "budget_ms",
                f"inference p99 is {lat['p99'] / 1e3:.3f} ms (p50 {lat['p50'] / 1e3:.3f} ms) "
                f"over {args.runs} runs, above the budget of {budget_ms:g} ms",
                p99_ms=lat["p99"] / 1e3,
                budget_ms=budget_ms,
            )
            result.update(_refused(over))
    upload = _upload(args.bundle)
    if upload is not None:
        result["upload"] = upload
        result["warnings"] = [_upload_warning(upload)] if upload["over_limit"] else []
    if args.json:
        print(json.dumps(result, indent=2), file=out)
    else:
        _text(result, args.bundle, out if result["ok"] else err)
    return EXIT_OK if result["ok"] else EXIT_REFUSED
