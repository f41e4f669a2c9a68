"""The daemon's metrics end to end: a lockstep cell with metrics enabled, the real exporter
process, scraped over HTTP while the loop runs. Lockstep makes the figures exact: a probe
publisher (after the metrics publisher in the same cycle) scrapes at cycle N and must read
exactly N cycles, and histograms whose count is N."""

from __future__ import annotations

import io
import json
import os
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from raas.config import sim_cell_config
from raas.controllers import make_controller
from raas.core.observation import Step
from raas.daemon import cell_outputs, cell_up, run_cell, run_loop
from raas.metrics.board import default_board_path
from raas.metrics.publisher import MetricsPublisher

pytestmark = [pytest.mark.system]


def get(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.headers["Content-Type"], r.read()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


class Probe:
    """Scrapes the exporter from inside the loop at chosen cycles (lockstep: time stands still)."""

    def __init__(self, url: str, at: set[int]) -> None:
        self.url = url
        self.at = at
        self.published = 0
        self.scrapes: dict[int, tuple[str, dict[str, object]]] = {}

    def publish(self, step: Step) -> None:
        self.published += 1
        if self.published in self.at:
            ctype, body = get(self.url + "metrics")
            assert ctype.startswith("text/plain")
            status = json.loads(get(self.url + "status.json")[1])
            self.scrapes[self.published] = (body.decode(), status)


def cell_config(**metrics: object) -> dict[str, object]:
    return {
        "loop": {"rate_hz": 50.0, "duration_s": 2.0, "warmup_cycles": 5},
        "rig": {"clock": "lockstep", "rate_hz": 50.0, "cameras": 0},
        "rt": {"enabled": False},
        "metrics": {"enabled": True, "port": 0, **metrics},
    }


def test_daemon_metrics_parse_with_exact_counts_while_the_loop_runs() -> None:
    cfg = sim_cell_config(cell_config(robot="shadow-1"))
    with cell_up(cfg) as cell, cell_outputs(cell) as outputs:
        pub = next(p for p in outputs.publishers if isinstance(p, MetricsPublisher))
        assert pub.url is not None and pub.url.startswith("http://127.0.0.1:")
        board_path = pub.board.path
        assert board_path.exists()
        probe = Probe(pub.url, at={30, 80})
        ctl = make_controller(cfg.controller, cfg.loop.period_ns / 1e9)
        loop = cell.build_loop(ctl, publishers=[*outputs.publishers, probe])
        assert run_loop(loop) == 0
        _, body = get(pub.url + "metrics")  # after the run: the board keeps the totals
        final = samples(body.decode())
    assert not board_path.exists()  # removed when the cell's outputs stop

    for n in (30, 80):
        text, status = probe.scrapes[n]
        s = samples(text)
        assert s[("raas_loop_cycles_total", ())] == n
        for h in ("lateness", "trigger_to_apply", "decide"):
            assert s[(f"raas_loop_{h}_seconds_count", ())] == n
            assert s[(f"raas_loop_{h}_seconds_bucket", (("le", "+Inf"),))] == n
        assert s[("raas_loop_missed_cycles_total", ())] == 0
        assert s[("raas_loop_state", (("raas_loop_state", "RUNNING"),))] == 1
        assert s[("raas_loop_rate_config_hertz", ())] == 50.0
        assert ("raas_source_stale_cycles_total", (("source", "hand"),)) in s
        assert ("raas_source_stale_cycles_total", (("source", "mocap"),)) in s
        assert s[("raas_lease_info", (("holder", ""),))] == 1
        assert status["cycles"] == n
        assert status["state"] == "RUNNING"
        assert status["robot"] == "shadow-1"
        assert status["lateness_us"]["n"] == n  # type: ignore[index]
    # the whole run: warm-up (5) + 100 measured cycles, all counted by the board
    assert final[("raas_loop_cycles_total", ())] == loop.result.cycles + loop.result.warmup_cycles
    assert final[("raas_loop_decide_seconds_count", ())] == final[("raas_loop_cycles_total", ())]
    assert final[("raas_loop_overruns_total", ())] == loop.result.overruns


def test_run_prints_the_dashboard_address_and_cleans_up(capfd: pytest.CaptureFixture[str]) -> None:
    cfg = sim_cell_config(cell_config())
    outcome = run_cell(cfg, out=io.StringIO())
    assert outcome.exit_code == 0
    out = capfd.readouterr().out
    assert "live dashboard on http://127.0.0.1:" in out
    mine = f"raas-metrics-{os.getpid()}*"
    assert list(default_board_path().parent.glob(mine)) == []  # the board file is gone


def test_a_taken_port_is_a_clear_error_and_the_cell_comes_down() -> None:
    import socket

    from raas.metrics.errors import ExporterStartError

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        cfg = sim_cell_config(cell_config(port=port, start_timeout_s=10.0))
        with pytest.raises(ExporterStartError, match="did not come up"):
            run_cell(cfg, out=io.StringIO())
