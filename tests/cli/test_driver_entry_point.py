"""A lab's own driver package registers through the `raas.drivers` entry-point group: once it is
installed (here: a dist-info on the path, as pip leaves it), cell files can name its driver."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import ROOT

pytestmark = [pytest.mark.system]

REGISTRATION = """
from raas_drivers.mirror import MirrorHand, MirrorHandSettings, load_shape
from raas_drivers.registry import DriverSpec, ProbeReport, register


def build(settings, ctx):
    return MirrorHand(ctx.device, load_shape(settings, ctx.device, ctx.base_dir),
                      period_ns=ctx.period_ns, lag_s=0.0)


def probe(settings, ctx):
    return ProbeReport(ctx.device, "labhand", True, model="the lab's own hand")


register(DriverSpec(family="hand", name="labhand", settings=MirrorHandSettings, build=build,
                    summary="a lab's hand from its own package", probe=probe))
"""


def test_an_installed_package_adds_a_driver(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "labdrivers").mkdir(parents=True)
    (site / "labdrivers" / "__init__.py").write_text("")
    (site / "labdrivers" / "labhand.py").write_text(REGISTRATION)
    info = site / "labdrivers-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: labdrivers\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[raas.drivers]\nlabhand = labdrivers.labhand\n")
    cell = tmp_path / "cell.toml"
    cell.write_text('[hand]\ndriver = "labhand"\nactuators = 5\n')
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])

    def raasd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "raas.cli", *args],
            capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False,
        )  # fmt: skip

    listed = raasd("devices", "--drivers")
    assert listed.returncode == 0 and "labhand" in listed.stdout
    probed = raasd("devices", "--config", str(cell))
    assert probed.returncode == 0, probed.stdout + probed.stderr
    assert "the lab's own hand" in probed.stdout
    ran = raasd("run", "--config", str(cell), "--rate", "50", "--duration", "0.5", "--no-rt")
    assert ran.returncode == 0, ran.stderr
    assert "hand labhand 'mirror' (5 actuators)" in ran.stdout
    # without the package the same cell file is refused, the driver named
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
    refused = raasd("run", "--config", str(cell), "--duration", "0.5")
    assert refused.returncode == 2 and "unknown hand driver 'labhand'" in refused.stderr
