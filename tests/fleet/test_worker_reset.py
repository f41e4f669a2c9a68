"""Resetting a cell that cannot reset itself (a real cell; here a mirror hand, no simulated rig):
the robot refuses the scene reset (`unavailable`), so the worker runs the cell file's [reset]
hook (with the episode in its environment; a failing or slow hook is an error), asks staff with
--ask-staff, or, with neither, refuses a job of more than one episode."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from raas_client.errors import RemoteError
from raas_client.session import RemoteRobot

from raas.commands.worker import _reset_hook
from raas.config import ResetHook
from raas.errors import ConfigError
from raas.fleet.errors import NoResetError, ResetFailedError
from raas.fleet.reset import EpisodeStart, Resetter
from tests.transport.harness import LeaseIssuer, RobotDaemon, start_daemon

pytestmark = [pytest.mark.system, pytest.mark.slow]

CELL = """
[hand]
driver = "mirror"
model = "leap-like"
actuators = 16
lag_s = 0.0
"""


@pytest.fixture(scope="module")
def real_cell(
    tmp_path_factory: pytest.TempPathFactory, issuer: LeaseIssuer
) -> Iterator[RobotDaemon]:
    tmp = Path(tmp_path_factory.mktemp("mirror"))
    # the daemon reads a cell file with a [reset] section (the worker's) and ignores it
    (tmp / "cell.toml").write_text(CELL + '\n[reset]\ncommand = "true"\n')
    d = start_daemon(tmp, issuer, clock="realtime", rate=20.0, cell=tmp / "cell.toml")
    yield d
    d.stop()


@pytest.fixture()
def robot(real_cell: RobotDaemon, issuer: LeaseIssuer) -> Iterator[RemoteRobot]:
    r = RemoteRobot(real_cell.control, server_key=real_cell.key, lease=issuer.issue())
    r.open("control")
    yield r
    r.close()


START = EpisodeStart(job_id=7, index=1, seed=12, robot="shadow-1")


def _hook(tmp: Path, body: str, timeout_s: float = 30.0) -> ResetHook:
    script = tmp / "hook.py"
    script.write_text(body)
    return ResetHook(command=f"{sys.executable} {script} {tmp / 'out.txt'}", timeout_s=timeout_s)


def test_a_real_cell_refuses_the_scene_reset(robot: RemoteRobot) -> None:
    with pytest.raises(RemoteError) as refused:
        robot.reset_scene(seed=1)
    assert refused.value.code == "unavailable" and "reset hook" in str(refused.value)


def test_the_reset_hook_runs_with_the_episode_in_its_environment(
    robot: RemoteRobot, tmp_path: Path
) -> None:
    hook = _hook(
        tmp_path,
        "import os, sys\n"
        "names = ('RAAS_JOB', 'RAAS_EPISODE', 'RAAS_SEED', 'RAAS_ROBOT')\n"
        "open(sys.argv[1], 'w').write(' '.join(os.environ[k] for k in names))\n",
    )
    assert Resetter(hook, False, print)(robot, START, required=True) == "hook"
    assert (tmp_path / "out.txt").read_text() == "7 1 12 shadow-1"
    robot.heartbeat()
    assert robot.status()["controlled"]  # the session was kept alive while the hook ran


def test_a_failing_or_slow_hook_is_an_error(robot: RemoteRobot, tmp_path: Path) -> None:
    failing = _hook(tmp_path, "import sys\nsys.exit(4)\n")
    with pytest.raises(ResetFailedError, match="exited 4"):
        Resetter(failing, False, print)(robot, START, required=True)
    slow = _hook(tmp_path, "import time\ntime.sleep(30)\n", timeout_s=1.0)
    with pytest.raises(ResetFailedError, match="longer than 1 s"):
        Resetter(slow, False, print)(robot, START, required=True)
    missing = ResetHook(command=str(tmp_path / "no-such-hook"))
    with pytest.raises(ResetFailedError, match="did not start"):
        Resetter(missing, False, print)(robot, START, required=True)


def test_staff_confirm_the_reset_with_ask_staff(robot: RemoteRobot) -> None:
    said: list[str] = []
    assert Resetter(None, True, said.append, io.StringIO("\n"))(robot, START, True) == "staff"
    assert "STAFF: put the block back in the palm of shadow-1" in said[0]
    assert "staff confirmed the reset" in said[1]
    with pytest.raises(ResetFailedError, match="nobody confirmed"):
        Resetter(None, True, said.append, io.StringIO(""))(robot, START, True)


def test_without_a_reset_only_a_one_episode_job_runs(robot: RemoteRobot) -> None:
    resetter = Resetter(None, False, print)
    assert resetter(robot, START, required=False) == "none"
    with pytest.raises(NoResetError, match="cannot be reset between episodes"):
        resetter(robot, START, required=True)


def test_the_cell_file_s_reset_section(tmp_path: Path) -> None:
    cell = tmp_path / "cell.toml"
    cell.write_text(CELL + '\n[reset]\ncommand = "reset-cell --home"\ntimeout_s = 60\n')
    hook = _reset_hook(cell)
    assert hook == ResetHook(command="reset-cell --home", timeout_s=60)
    cell.write_text(CELL)
    assert _reset_hook(cell) is None
    cell.write_text('[reset]\ncommand = "x"\ntimeout_s = -1\n')
    with pytest.raises(ConfigError, match=r"reset\.timeout_s"):
        _reset_hook(cell)
