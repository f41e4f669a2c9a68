"""Serial codec cost: encode + decode of one hand STATE frame, beside msgpack of the same payload.

ours   messages.State -> encode_message (int16 fixed point, COBS, CRC-32C, delimiter) ->
       FrameDecoder.feed -> decode_message -> State with float64 SI arrays. What the link does
       per frame on the host, both directions of one state.
peer   msgpack.packb of the same fields (arrays as raw float64 bytes, the fastest msgpack
       form) -> unpackb -> np.frombuffer per array. No framing, no CRC, no quantisation: the
       cost floor of a general-purpose serializer for this payload.

Each iteration is timed alone (perf_counter_ns), both sides in the same run, one after the
other. Also reported: ours split into encode and decode, and bytes on the wire per frame.

  python -m bench serial_codec -- [--frames N] [--duration S]
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np
from raas_firmware_bridge.framing import FrameDecoder
from raas_firmware_bridge.messages import State, decode_message, encode_message

from bench.common import dist_us, fmt_dist, ratio, write_report


def sample_state(rng: np.random.Generator, cycle: int) -> State:
    return State(
        cycle=cycle,
        fw_time_us=1_000_000 + cycle * 1000,
        applied_seq=cycle - 1,
        fault_flags=0,
        positions=rng.uniform(-1.5, 1.5, 24),
        velocities=rng.uniform(-5, 5, 24),
        efforts=rng.uniform(-1, 1, 20),
        temperatures=rng.uniform(30, 60, 20),
    )


def ours_round_trip() -> tuple[Callable[[State], object], Callable[[State], bytes]]:
    dec = FrameDecoder()

    def run(s: State) -> object:
        frames = dec.feed(encode_message(s, s.cycle))
        return decode_message(frames[0])

    return run, lambda s: encode_message(s, s.cycle)


def peer_round_trip(s: State) -> object:
    packed = msgpack.packb(
        {
            "cycle": s.cycle,
            "fw_time_us": s.fw_time_us,
            "applied_seq": s.applied_seq,
            "fault_flags": s.fault_flags,
            "positions": s.positions.tobytes(),
            "velocities": s.velocities.tobytes(),
            "efforts": s.efforts.tobytes(),
            "temperatures": s.temperatures.tobytes(),
        }
    )
    d = msgpack.unpackb(packed)
    return (
        d["cycle"],
        np.frombuffer(d["positions"]),
        np.frombuffer(d["velocities"]),
        np.frombuffer(d["efforts"]),
        np.frombuffer(d["temperatures"]),
    )


def peer_bytes(s: State) -> int:
    d = {k: getattr(s, k) for k in ("cycle", "fw_time_us", "applied_seq", "fault_flags")}
    arrays = {k: getattr(s, k).tobytes() for k in State.SCALES}
    return len(msgpack.packb(d | arrays))


def measure(fn: Callable[[State], Any], states: list[State], deadline: float) -> np.ndarray:
    for s in states[:500]:  # warm-up
        fn(s)
    out = np.empty(len(states), dtype=np.int64)
    now = time.perf_counter_ns
    n = 0
    for s in states:
        t0 = now()
        fn(s)
        out[n] = now() - t0
        n += 1
        if n % 1000 == 0 and time.monotonic() > deadline:
            break
    return out[:n]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench serial_codec")
    p.add_argument("--frames", type=int, default=50_000)
    p.add_argument("--duration", type=float, default=60.0, help="cap per side, seconds")
    args = p.parse_args(argv)
    rng = np.random.default_rng(1)
    states = [sample_state(rng, k) for k in range(args.frames)]
    ours, encode = ours_round_trip()
    dec = FrameDecoder()
    wires = [encode(s) for s in states[:2000]]

    def decode_only(s: State) -> object:
        return decode_message(dec.feed(wires[s.cycle % len(wires)])[0])

    gc.collect()
    gc.disable()
    try:
        results = {}
        for name, fn in (
            ("peer", peer_round_trip),
            ("ours", ours),
            ("ours_encode", encode),
            ("ours_decode", decode_only),
        ):
            results[name] = dist_us(measure(fn, states, time.monotonic() + args.duration))
    finally:
        gc.enable()
    print(f"== STATE frame encode + decode per frame ({args.frames} frames max per side)")
    print(fmt_dist("peer (msgpack, raw float64 arrays)", results["peer"]))
    print(fmt_dist("ours (int16 + COBS + CRC-32C)", results["ours"]))
    print(fmt_dist("  ours encode only", results["ours_encode"]))
    print(fmt_dist("  ours decode only", results["ours_decode"]))
    r = ratio(results["ours"]["p50"], results["peer"]["p50"])
    wire_ours, wire_peer = len(wires[0]), peer_bytes(states[0])
    print(f"ratio p50 ours/peer: {r}")
    print(f"bytes per frame: ours {wire_ours} (on the wire), peer {wire_peer} (no framing)")
    write_report(
        "serial_codec",
        {
            "state_round_trip_us": {"ours": results["ours"], "peer": results["peer"]},
            "ours_encode_us": results["ours_encode"],
            "ours_decode_us": results["ours_decode"],
            "ratio_p50": r,
            "bytes_per_frame": {"ours": wire_ours, "peer": wire_peer},
        },
    )
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
