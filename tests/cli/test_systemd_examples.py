"""The systemd unit files docs/fleet.md gives (docs/examples/systemd/) still match the commands:
each parses as a unit, runs `raasd SUBCOMMAND`, and every flag of its ExecStart is one that
`raasd SUBCOMMAND --help` lists; every ${VAR} it uses is named in its environment file's
comments; the robot and worker units read the same environment file."""

from __future__ import annotations

import configparser
import re
import shlex
from typing import Any

import pytest

from tests.cli.conftest import ROOT

UNITS = ROOT / "docs" / "examples" / "systemd"
NAMES = ("raas-service.service", "raas-robot.service", "raas-worker.service")


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string((UNITS / name).read_text())
    return parser


def test_the_examples_are_the_ones_the_docs_name() -> None:
    assert sorted(p.name for p in UNITS.glob("*.service")) == sorted(NAMES)
    fleet = (ROOT / "docs" / "fleet.md").read_text()
    for name in NAMES:
        assert f"docs/examples/systemd/{name}" in fleet, name


@pytest.mark.parametrize("name", NAMES)
def test_a_unit_runs_raasd_with_flags_it_has(name: str, run_raasd: Any) -> None:
    unit = _unit(name)
    assert {"Unit", "Service", "Install"} <= set(unit.sections())
    service = unit["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/raasd"), argv[0]
    sub = argv[1]
    got = run_raasd(sub, "--help")
    assert got.returncode == 0, f"raasd {sub}: {got.stderr}"
    flags = [a.split("=", 1)[0] for a in argv[2:] if a.startswith("--")]
    assert flags, argv
    for flag in flags:
        assert re.search(rf"(^|[\s\[,]){re.escape(flag)}\b", got.stdout), (
            f"{name}: raasd {sub} has no {flag}"
        )
    # SIGINT is how every raasd process stops in order (the hand holds first)
    assert service["KillSignal"] == "SIGINT"
    assert service.get("User") == "raas"


@pytest.mark.parametrize("name", ("raas-robot.service", "raas-worker.service"))
def test_every_variable_is_set_by_the_environment_file(name: str) -> None:
    robot = (UNITS / "raas-robot.service").read_text()
    documented = set(re.findall(r"^# (RAAS_\w+)=", robot, re.M))
    text = (UNITS / name).read_text()
    used = set(re.findall(r"\$\{?(RAAS_\w+)\}?", text))
    assert used and used <= documented, used - documented
    assert _unit(name)["Service"]["EnvironmentFile"] == "/etc/raas/robot.env"


def test_the_worker_lives_and_dies_with_its_robot() -> None:
    unit = _unit("raas-worker.service")["Unit"]
    assert "raas-robot.service" in unit["BindsTo"] and "raas-robot.service" in unit["After"]
