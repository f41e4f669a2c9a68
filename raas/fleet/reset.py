"""Putting the cell back to an episode's start before each episode of a job.

In order: the robot's own scene reset (`reset {scene: true, seed}`: the simulated rig puts the
block back in the palm and the hand at its start pose, as a fresh rig with that seed would); a
real cell's reset hook (the cell file's `[reset] command`, run here, next to the daemon, while the
hand holds and the session is kept alive); or, with --ask-staff, a person (the worker prints what
to do and waits for Enter on its stdin). A job of one episode on a cell with none of these runs
on the cell as it is; a longer job raises NoResetError (docs/fleet.md)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from raas_client.errors import RemoteError
from raas_client.session import RemoteRobot

from raas.config import ResetHook
from raas.fleet.errors import NoResetError, ResetFailedError

#: The robot is busy (its post-session health check runs for about 20 s): retry this long.
BUSY_RETRY_S = 90.0


@dataclass(slots=True)
class EpisodeStart:
    job_id: int
    index: int
    seed: int  # the job's seed + the episode's index: the scene's and the goals' seed
    robot: str


def keep_alive(robot: RemoteRobot, done: Callable[[], bool], timeout_s: float) -> bool:
    """Heartbeat the robot session until done() or timeout_s; whether done() became true."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() >= deadline:
            return False
        robot.heartbeat()
        for _ in robot.events(timeout_s=0.1):
            pass
    return True


def retry_busy(robot: RemoteRobot, call: Callable[[], dict[str, object]]) -> dict[str, object]:
    """call(); while the robot answers `busy` (its health check after a session), again."""
    deadline = time.monotonic() + BUSY_RETRY_S
    while True:
        try:
            return call()
        except RemoteError as exc:
            if exc.code != "busy" or time.monotonic() >= deadline:
                raise
        keep_alive(robot, lambda: False, 1.0)


class Resetter:
    def __init__(
        self,
        hook: ResetHook | None,
        ask_staff: bool,
        log: Callable[[str], None],
        staff_input: IO[str] | None = None,
    ) -> None:
        self.hook = hook
        self.ask_staff = ask_staff
        self.log = log
        self.staff_input = staff_input

    def __call__(self, robot: RemoteRobot, start: EpisodeStart, required: bool) -> str:
        """Reset the cell for this episode; how it was done: scene | hook | staff | none."""
        try:
            retry_busy(robot, lambda: robot.reset_scene(start.seed))
            return "scene"
        except RemoteError as exc:
            if exc.code in ("estopped", "fault") or exc.code.startswith("lease_"):
                raise  # the robot's state, not the reset's: the episode's caller handles it
            if exc.code != "unavailable":
                raise ResetFailedError(f"the robot refused the scene reset: {exc}") from exc
        if self.hook is not None:
            self._run_hook(robot, self.hook, start)
            return "hook"
        if self.ask_staff:
            self._ask_staff(robot, start)
            return "staff"
        if required:
            raise NoResetError(
                f"robot {start.robot} cannot be reset between episodes: it is no simulated rig, "
                "its cell file has no [reset] hook and the worker runs without --ask-staff"
            )
        return "none"

    def _run_hook(self, robot: RemoteRobot, hook: ResetHook, start: EpisodeStart) -> None:
        env_extra = {
            "RAAS_JOB": str(start.job_id),
            "RAAS_EPISODE": str(start.index),
            "RAAS_SEED": str(start.seed),
            "RAAS_ROBOT": start.robot,
        }
        try:
            proc = subprocess.Popen(
                shlex.split(hook.command),
                env={**os.environ, **env_extra},
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            raise ResetFailedError(f"the reset hook {hook.command!r} did not start: {exc}") from exc
        if not keep_alive(robot, lambda: proc.poll() is not None, hook.timeout_s):
            proc.kill()
            proc.wait()
            raise ResetFailedError(
                f"the reset hook {hook.command!r} took longer than {hook.timeout_s:g} s (killed)"
            )
        if proc.returncode != 0:
            raise ResetFailedError(f"the reset hook {hook.command!r} exited {proc.returncode}")

    def _ask_staff(self, robot: RemoteRobot, start: EpisodeStart) -> None:
        self.log(
            f"job {start.job_id} episode {start.index + 1}: STAFF: put the block back in the palm "
            f"of {start.robot} and the hand at rest, then press Enter here"
        )
        source = self.staff_input
        if source is None:
            source = sys.stdin
        answered = threading.Event()
        line: list[str] = []

        def read() -> None:
            line.append(source.readline())
            answered.set()

        threading.Thread(target=read, name="staff", daemon=True).start()
        keep_alive(robot, answered.is_set, float("inf"))
        if not line or line[0] == "":
            raise ResetFailedError("nobody confirmed the reset (stdin closed)")
        self.log(f"job {start.job_id} episode {start.index + 1}: staff confirmed the reset")
