"""Action chunks: the newest covering chunk (or ACT's ensemble) gives cycle k its action, by index;
bad chunks are refused and counted; no chunk -> a counted gap; nothing allocated per cycle."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raas.core.chunks import Blend, ChunkBuffer, ChunkUse, Verdict

H, N = 4, 3


def chunk(c: int, h: int = H, n: int = N) -> np.ndarray:
    """Row i of chunk c is the value 100*c + i, so a test can read where an action came from."""
    return np.repeat((100.0 * c + np.arange(h))[:, None], n, axis=1)


def test_latency_is_compensated_by_indexing() -> None:
    buf = ChunkBuffer(N, H)
    out = np.empty(N)
    assert buf.offer(10, chunk(10), arrival_cycle=12) is Verdict.ACCEPTED
    assert buf.action_for(12, out)
    np.testing.assert_array_equal(out, 100 * 10 + 2)  # row k - c, not row 0
    assert buf.last_age == 2


def test_newest_covering_chunk_wins_and_uses_are_reported() -> None:
    retired: list[ChunkUse] = []
    buf = ChunkBuffer(N, H, on_retire=retired.append)
    out = np.empty(N)
    buf.offer(0, chunk(0), arrival_cycle=1)
    got = []
    for k in range(1, 9):
        if k == 3:
            buf.offer(2, chunk(2), arrival_cycle=3)
        ok = buf.action_for(k, out)
        got.append(out[0] if ok else None)
    assert got == [1, 2, 201, 202, 203, None, None, None]
    assert buf.gaps == 3 and buf.covered == 5
    buf.close()
    assert retired == [ChunkUse(0, 1, 2, 2, first_row=1), ChunkUse(2, 3, 3, 1, first_row=1)]
    assert [list(u.cycles_used()) for u in retired] == [[1, 2], [3, 4, 5]]


@pytest.mark.parametrize(
    ("computed", "actions", "arrival", "verdict"),
    [
        (5, chunk(5, h=H + 1), 5, Verdict.WRONG_SIZE),
        (5, chunk(5, n=N - 1), 5, Verdict.WRONG_SIZE),
        (5, np.full((H, N), np.nan), 5, Verdict.NON_FINITE),
        (5, np.full((H, N), np.inf), 6, Verdict.NON_FINITE),
        (7, chunk(7), 6, Verdict.FUTURE),
        (5, chunk(5), 5 + H, Verdict.TOO_OLD),
    ],
)
def test_bad_chunks_are_refused_and_counted(
    computed: int, actions: np.ndarray, arrival: int, verdict: Verdict
) -> None:
    buf = ChunkBuffer(N, H)
    assert buf.offer(computed, actions, arrival) is verdict
    assert buf.refused[verdict] == 1 and buf.refused_total == 1 and buf.accepted == 0
    assert not buf.action_for(arrival, np.empty(N))  # nothing was stored


def test_max_age_refuses_chunks_computed_too_long_ago() -> None:
    buf = ChunkBuffer(N, 8, max_age=2)
    assert buf.offer(0, chunk(0, h=8), 3) is Verdict.TOO_OLD
    assert buf.offer(1, chunk(1, h=8), 3) is Verdict.ACCEPTED


def test_an_older_chunk_arriving_late_is_superseded_under_newest() -> None:
    buf = ChunkBuffer(N, H)
    assert buf.offer(3, chunk(3), 4) is Verdict.ACCEPTED
    assert buf.offer(2, chunk(2), 4) is Verdict.SUPERSEDED
    assert buf.offer(3, chunk(3), 4) is Verdict.SUPERSEDED
    assert buf.refused[Verdict.SUPERSEDED] == 2


def test_cycles_must_not_go_back() -> None:
    buf = ChunkBuffer(N, H)
    buf.action_for(5, np.empty(N))
    with pytest.raises(ValueError, match="cycle 4 is before"):
        buf.action_for(4, np.empty(N))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_actuators": 0, "horizon": 4}, "n_actuators"),
        ({"n_actuators": 2, "horizon": 0}, "horizon"),
        ({"n_actuators": 2, "horizon": 4, "capacity": 0}, "capacity"),
        ({"n_actuators": 2, "horizon": 4, "max_age": -1}, "max_age"),
        ({"n_actuators": 2, "horizon": 4, "decay": math.nan}, "decay"),
    ],
)
def test_bad_configuration_names_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ChunkBuffer(**kwargs)  # type: ignore[arg-type]


def test_exponential_blend_weights_the_oldest_prediction_most() -> None:
    m = 0.5
    buf = ChunkBuffer(N, H, blend=Blend.EXPONENTIAL, decay=m)
    out = np.empty(N)
    buf.offer(0, chunk(0), 1)
    buf.offer(1, chunk(1), 2)
    assert buf.action_for(2, out)
    w0, w1 = 1.0, math.exp(-m)
    expected = (w0 * (0 + 2) + w1 * (100 + 1)) / (w0 + w1)
    np.testing.assert_allclose(out, expected)
    assert buf.last_age == 1  # the newest contributor's


def _run(
    blend: Blend, arrivals: list[tuple[int, int]], cycles: int
) -> tuple[list[float | None], list[ChunkUse], ChunkBuffer]:
    """Offer chunk `c` at cycle `a` for each (c, a); ask every cycle 0..cycles-1. Checks that
    the retired chunks' reports give back each cycle's computation age exactly (what `raas
    report` plots from the recording's `chunk` events)."""
    retired: list[ChunkUse] = []
    buf = ChunkBuffer(N, H, blend=blend, decay=0.3, on_retire=retired.append)
    by_cycle: dict[int, list[int]] = {}
    for c, a in arrivals:
        by_cycle.setdefault(a, []).append(c)
    out = np.empty(N)
    got: list[float | None] = []
    ages: dict[int, int] = {}
    for k in range(cycles):
        for c in by_cycle.get(k, []):
            buf.offer(c, chunk(c), k)
        ok = buf.action_for(k, out)
        got.append(float(out[0]) if ok else None)
        if ok:
            ages[k] = buf.last_age
    buf.close()
    newest: dict[int, int] = {}  # cycle -> the newest chunk whose reported rows cover it
    for u in retired:
        for k in u.cycles_used():
            newest[k] = max(newest.get(k, -1), u.computed_cycle)
    assert {k: k - c for k, c in newest.items()} == ages
    return got, retired, buf


arrivals_st = st.lists(
    st.tuples(st.integers(0, 30), st.integers(0, 2 * H)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(arrivals=arrivals_st)
def test_newest_matches_a_reference_model(arrivals: list[tuple[int, int]]) -> None:
    got, retired, buf = _run(Blend.NEWEST, arrivals, 40)
    held: list[int] = []  # accepted computed cycles, by the rules written out plainly
    by_cycle: dict[int, list[int]] = {}
    for c, a in arrivals:
        by_cycle.setdefault(a, []).append(c)
    for k in range(40):
        for c in by_cycle.get(k, []):
            if k - c <= H - 1 and (not held or c > max(held)):
                held.append(c)
        covering = [c for c in held if c <= k < c + H]
        want = 100.0 * max(covering) + (k - max(covering)) if covering else None
        assert got[k] == want, (k, held)
    assert buf.accepted == len(held) == len(retired)
    assert buf.accepted + buf.refused_total == len(arrivals)
    assert sum(u.used for u in retired) == buf.covered == sum(g is not None for g in got)
    assert all(u.used + u.discarded == H for u in retired)
    assert buf.gaps + buf.covered == 40


@settings(max_examples=200, deadline=None)
@given(arrivals=arrivals_st)
def test_exponential_matches_a_reference_model(arrivals: list[tuple[int, int]]) -> None:
    got, retired, buf = _run(Blend.EXPONENTIAL, arrivals, 40)
    held: set[int] = set()
    by_cycle: dict[int, list[int]] = {}
    for c, a in arrivals:
        by_cycle.setdefault(a, []).append(c)
    for k in range(40):
        for c in by_cycle.get(k, []):
            if k - c <= H - 1 and c not in held:
                held.add(c)
        covering = sorted(c for c in held if c <= k < c + H)
        if not covering:
            assert got[k] is None
            continue
        ws = [math.exp(-0.3 * i) for i in range(len(covering))]
        want = sum(w * (100.0 * c + k - c) for w, c in zip(ws, covering, strict=True)) / sum(ws)
        assert got[k] == pytest.approx(want)
    assert all(u.used + u.discarded == H for u in retired)
    assert buf.accepted == len(retired)


@pytest.mark.parametrize("blend", list(Blend))
def test_nothing_is_allocated_per_cycle(blend: Blend) -> None:
    n = 4096  # wide rows: any temporary row (32 KiB) would show in the peak
    buf = ChunkBuffer(n, 100, blend=blend)
    out = np.empty(n)
    buf.offer(0, np.ones((100, n)), 0)
    buf.offer(1, np.ones((100, n)), 1)
    for k in range(1, 10):  # warm up
        buf.action_for(k, out)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for k in range(10, 90):
            assert buf.action_for(k, out)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - before < 4096, peak - before  # no temporary row, ever
    assert after - before < 1024  # and nothing kept
