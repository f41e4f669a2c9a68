"""Cell files for the composition tests: written into a temp folder, as a lab would."""

from __future__ import annotations

from pathlib import Path

MIRROR16 = """
[hand]
driver = "mirror"
model = "leap-like"
actuators = 16
lag_s = 0.02
"""


def write_cell(dir_: Path, text: str, name: str = "cell.toml") -> Path:
    path = dir_ / name
    path.write_text(text)
    return path
