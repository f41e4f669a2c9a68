"""RigConfig refuses what it does not know and names the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from raas_drivers.sim import RigConfig


def test_defaults_are_the_cells() -> None:
    cfg = RigConfig()
    assert cfg.rate_hz == 12.5 and cfg.period_ns == 80_000_000
    assert cfg.cameras == 3 and (cfg.camera_width, cfg.camera_height) == (200, 200)
    assert cfg.mocap_dropout_rate_hz == 0.2 and cfg.mocap_dropout_s == 1.0
    assert RigConfig(camera_width=640, camera_height=480).camera_width == 640  # the Basler's


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"clock": "wallclock"}, "clock"),
        ({"cameras": 4}, "cameras"),
        ({"rate_hz": 0}, "rate_hz"),
        ({"mocap_dropout_rate_hz": -1}, "mocap_dropout_rate_hz"),
        ({"camera_widht": 640}, "camera_widht"),
    ],
)
def test_invalid_config_names_the_field(fields: dict[str, object], name: str) -> None:
    with pytest.raises(ValidationError) as info:
        RigConfig.model_validate(fields)
    assert [e["loc"][0] for e in info.value.errors()] == [name]
    assert name in str(info.value)
