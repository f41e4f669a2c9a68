"""The `--stats-json` schema carries each device link's counters (docs/stats-json.md)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from raas_firmware_bridge.stats import LinkStats

from raas.core.stats import device_counters, schema


class _Link:
    """A device as the stats see it: a name and its counters (Device.stats())."""

    def __init__(self, name: str, counters: dict[str, float]) -> None:
        self.name = name
        self._counters = counters

    def stats(self) -> dict[str, float]:
        return self._counters


def _link_counters() -> dict[str, float]:
    link = LinkStats(frames_sent=10, frames_received=9, bytes_sent=560, bytes_received=2000)
    link.crc_errors, link.resyncs, link.timeouts = 1, 2, 3
    link.add_rtt(250_000)
    d = link.as_dict()
    d["link_open"] = 1.0
    return d


def _devices_schema() -> dict[str, Any]:
    s = schema()
    return {"$schema": s["$schema"], **s["properties"]["devices"]}


def test_link_counters_validate_as_integers() -> None:
    out = device_counters([_Link("hand", _link_counters())])  # type: ignore[list-item]
    jsonschema.validate(out, _devices_schema())
    hand = out["hand"]
    assert hand["link_crc_errors"] == 1 and isinstance(hand["link_crc_errors"], int)
    assert (hand["link_resyncs"], hand["link_timeouts"], hand["link_bytes_sent"]) == (2, 3, 560)
    assert hand["link_rtt_p50_us"] > 0


@pytest.mark.parametrize("missing", ["link_crc_errors", "link_resyncs", "link_bytes_received"])
def test_a_link_without_a_counter_is_refused(missing: str) -> None:
    counters = _link_counters()
    del counters[missing]
    with pytest.raises(jsonschema.ValidationError, match=missing):
        jsonschema.validate(
            device_counters([_Link("hand", counters)]),  # type: ignore[list-item]
            _devices_schema(),
        )


def test_a_device_whose_counters_fail_is_left_out() -> None:
    class Broken(_Link):
        def stats(self) -> dict[str, float]:
            raise OSError("gone")

    out = device_counters([Broken("mocap", {}), _Link("hand", _link_counters())])  # type: ignore[list-item]
    assert set(out) == {"hand"}
