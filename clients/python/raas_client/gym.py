"""A gymnasium.Env for a raas hand, stepping the robot remotely (needs the [gym] extra).

The spaces come from the robot's hello reply. `step(action)` answers the observation of cycle k
with the action for k and returns observation k+1; `reset()` makes the robot hold for a cycle
and start a new episode (on real hardware that is all a reset can be: nobody puts the object
back; on the simulated rig the world carries on from where it is). The robot is not
deterministic (real hardware, real timing), so the spec says `nondeterministic=True`.

    env = RemoteHandEnv("tcp://robot:5555", server_key=KEY, lease=TOKEN)
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

The task is the cell's, judged by the robot (raas/task/stepping.py, docs/protocol.md `task`):
Dactyl's block reorientation, the goal in `obs["goal"]` (x y z, qw qx qy qz; a new one after each
success).

- `reward`: the decrease of the angle between block and goal since the last step, +5 on a
  success, -20 when the block is dropped (the 2018 paper's reward; the values are the robot's
  `[transport.task]` settings). 0 when the robot judged nothing (no motion capture).
- `terminated`: the block was dropped, or the episode reached its last success (50).
- `truncated`: a goal was not reached within the goal timeout (80 s), or `max_episode_steps`
  steps were taken since reset().
- `info`: `cycle` and `episode` of the observation; `report` (raas_client.session.StepReport:
  whether the previous action was applied and with which timing; None on reset) with its
  `applied` and `fallback` also as keys; `task` (the robot's judgement: outcome, successes,
  error_rad, reward, over); `successes`; `safety` (the supervisor's state).
"""

from __future__ import annotations

import contextlib
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec

from raas_client.session import Observation, RemoteRobot

ENV_ID = "raas/RemoteHand-v0"
#: Task outcomes that end an episode as terminated; "timeout" (a goal not reached in time)
#: truncates it instead.
TERMINAL_OUTCOMES = ("dropped", "max_successes")


def _space(spec: dict[str, Any]) -> spaces.Space[Any]:
    shape = tuple(spec["shape"])
    if spec["dtype"] == "b1":
        return spaces.MultiBinary(list(shape) if len(shape) > 1 else shape[0])
    return spaces.Box(
        low=np.full(shape, spec["low"], dtype=np.float64),
        high=np.full(shape, spec["high"], dtype=np.float64),
        dtype=np.float64,
    )


class RemoteHandEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium declares it)

    def __init__(
        self,
        endpoint: str,
        *,
        server_key: str | None = None,
        lease: str | None = None,
        max_episode_steps: int = 1000,
        timeout_s: float = 10.0,
    ) -> None:
        self.robot = RemoteRobot(endpoint, server_key=server_key, lease=lease, timeout_s=timeout_s)
        info = self.robot.hello()
        sp = info["spaces"]
        self.observation_space = spaces.Dict(  # type: ignore[assignment]
            {name: _space(s) for name, s in sp["observation"].items()}
        )
        act = sp["action"]
        self.action_space = spaces.Box(
            low=np.array(act["low"], dtype=np.float32),
            high=np.array(act["high"], dtype=np.float32),
            dtype=np.float32,
        )
        self.spec = EnvSpec(
            ENV_ID,
            entry_point="raas_client.gym:RemoteHandEnv",
            nondeterministic=True,
            max_episode_steps=None,
            kwargs={
                "endpoint": endpoint,
                "server_key": server_key,
                "lease": lease,
                "max_episode_steps": max_episode_steps,
                "timeout_s": timeout_s,
            },
        )
        self.max_episode_steps = max_episode_steps
        self._bool = {n for n, s in sp["observation"].items() if s["dtype"] == "b1"}
        self._obs: Observation | None = None
        self._steps = 0
        self._armed = False

    def _convert(self, obs: Observation) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for name, arr in obs.arrays.items():
            out[name] = arr.astype(np.int8) if name in self._bool else np.array(arr)
        return out

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        if not self._armed:
            self.robot.open("control")
            self.robot.arm()
            self._armed = True
        after = -1 if self._obs is None else self._obs.cycle
        self.robot.reset_episode()
        self._obs = self.robot.observation(after=after)
        self._steps = 0
        return self._convert(self._obs), self._info(self._obs)

    @staticmethod
    def _info(obs: Observation) -> dict[str, Any]:
        rep = obs.report
        task = obs.task or {}
        return {
            "cycle": obs.cycle,
            "episode": obs.episode,
            "report": rep,
            "applied": None if rep is None else rep.applied,
            "fallback": None if rep is None else rep.fallback,
            "task": obs.task,
            "successes": int(task.get("successes", 0)),
            "safety": obs.safety,
        }

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        k = self._obs.cycle
        self.robot.act(k, np.asarray(action, dtype=np.float64))
        self._obs = self.robot.observation(after=k)
        self._steps += 1
        obs = self._obs
        task = obs.task or {}
        outcome = task.get("outcome")
        reward = float(task.get("reward", 0.0))
        terminated = outcome in TERMINAL_OUTCOMES
        truncated = outcome == "timeout" or self._steps >= self.max_episode_steps
        return self._convert(obs), reward, terminated, truncated, self._info(obs)

    def close(self) -> None:
        if self.robot.sock.closed:
            return
        if self._armed:
            # Closing anyway: should this fail, the robot holds on its own after liveness.
            with contextlib.suppress(Exception):
                self.robot.disarm()
        self.robot.close()
        self._armed = False
