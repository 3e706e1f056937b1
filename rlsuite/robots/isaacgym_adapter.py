"""Isaac Gym tasks as rlsuite batched envs: wrap a ``VecTask`` (IsaacGymEnvs) or a legged_gym
``BaseTask`` into the :class:`rlsuite.core.vec_env.TorchVecEnv` protocol, tensors staying on the GPU.

Isaac Gym itself is not needed to import this module (its binaries only exist for Python 3.6-3.8;
``isaacgym-stubs`` provides types for ``gymapi`` only, so the task object is typed structurally here).
In an Isaac Gym process: ``env = IsaacGymVecEnv(task)`` and train any rlsuite agent on it, or bridge
processes with :mod:`rlsuite.robots.transport`.

Semantics:

- ``task.step(actions)`` returns ``(obs_dict, rew, reset, extras)`` (VecTask: ``obs_dict["obs"]``) or
  ``(obs, privileged_obs, rew, reset, extras)`` (legged_gym); both are accepted.
- ``terminated = reset & ~time_outs`` and ``truncated = reset & time_outs`` with
  ``time_outs = extras["time_outs"]`` (all False when the task does not report them).
- Isaac tasks reset finished envs inside ``step``, so the observation returned for a finished env is
  already the next episode's first one. When the task stores the pre-reset observation in
  ``extras["final_obs"]`` (or ``"terminal_obs"``), that is passed on as ``info["final_obs"]`` and
  truncations stay truncations (the learner bootstraps from the true last state).
- Without a pre-reset observation, bootstrapping a truncated env would use the next episode's first
  observation, which is wrong. The adapter then reports every truncation as a termination
  (``terminated |= truncated``, ``truncated`` all False): no bootstrap, a small bias toward shorter
  horizons instead of value targets from an unrelated state. It says so once in the log (logger
  ``rlsuite.robots``); ``info["final_obs"]`` is then the post-reset observation and
  ``info["final_obs_exact"]`` is False. For exact truncation handling, put the pre-reset observation
  in ``extras["final_obs"]`` in the task's ``step`` (before its ``reset_idx``).
- The privileged / ``states`` observation is passed on as ``info["critic_obs"]``.
- Actions and observations are Boxes: actions in ``[-clip_actions, clip_actions]`` (VecTask's
  ``clipActions``, default 1), observations unbounded.
- Seeds are fixed when the simulation is created; ``reset(seed=...)`` cannot reseed it and says so
  once in the log. ``state_dict`` holds only the episode statistics (no exact resume).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch

from rlsuite.core.vec_env import TorchVecEnv

log = logging.getLogger("rlsuite.robots")


class VecTaskLike(Protocol):
    """What the adapter reads from an Isaac Gym task."""

    num_envs: int
    num_obs: int
    num_actions: int
    device: Any

    def step(self, actions: torch.Tensor) -> tuple: ...

    def reset(self) -> Any: ...


class IsaacGymVecEnv(TorchVecEnv):
    """See the module docstring."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, task: VecTaskLike, clip_actions: float | None = None) -> None:
        for name in ("num_envs", "num_obs", "num_actions", "step", "reset"):
            if not hasattr(task, name):
                raise TypeError(f"{type(task).__name__} is not a VecTask-like object: it has no {name!r}.")
        self.task = task
        self.num_envs = int(task.num_envs)
        self.device = torch.device(task.device) if not isinstance(task.device, torch.device) else task.device
        clip = float(clip_actions if clip_actions is not None else getattr(task, "clip_actions", 1.0))
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (int(task.num_obs),), np.float32)
        self.single_action_space = gym.spaces.Box(-clip, clip, (int(task.num_actions),), np.float32)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self._warned_seed = False
        self._warned_truncation = False
        self._init_episode_stats()

    @staticmethod
    def _obs_of(out: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        if isinstance(out, dict):
            return out["obs"], out.get("states")
        if isinstance(out, tuple):
            return out[0], out[1] if len(out) > 1 else None
        return out, None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict]:
        if seed is not None and not self._warned_seed:
            log.warning("Isaac Gym tasks are seeded when the simulation is created; reset(seed=%d) cannot reseed it.", seed)
            self._warned_seed = True
        obs, critic = self._obs_of(self.task.reset())
        self._init_episode_stats()
        return obs.float(), ({"critic_obs": critic} if critic is not None else {})

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        out = self.task.step(torch.as_tensor(action, device=self.device, dtype=torch.float32))
        if len(out) == 4:
            obs_out, rew, reset, extras = out
            obs, critic = self._obs_of(obs_out)
        elif len(out) == 5:
            obs, critic, rew, reset, extras = out
        else:
            raise TypeError(f"task.step returned {len(out)} values; expected 4 (VecTask) or 5 (legged_gym).")
        done = reset.bool()
        time_outs = extras.get("time_outs")
        time_outs = time_outs.bool() if time_outs is not None else torch.zeros_like(done)
        terminated, truncated = done & ~time_outs, done & time_outs
        final = extras.get("final_obs", extras.get("terminal_obs"))
        if final is None:  # no pre-reset observation: a truncation cannot bootstrap correctly (module docstring)
            if not self._warned_truncation and extras.get("time_outs") is not None:  # no .any(): no device sync per step
                log.warning("%s gives no pre-reset observation (extras['final_obs'] or extras['terminal_obs']): truncations "
                            "(time-outs) are reported as terminations, so they are not bootstrapped. For exact truncation "
                            "handling, store the observation before the reset in extras['final_obs'] in the task's step.",
                            type(self.task).__name__)
                self._warned_truncation = True
            terminated, truncated = done, torch.zeros_like(done)
        info: dict[str, Any] = {"final_obs": (final if final is not None else obs).float(), "_final_obs": done,
                                "final_obs_exact": final is not None}
        if critic is not None:
            info["critic_obs"] = critic
        reward = rew.float()
        self._track_episodes(reward, done, info)
        return obs.float(), reward, terminated, truncated, info

    @property
    def exact_resume(self) -> bool:
        return False  # the simulator's state lives in Isaac Gym

    def state_dict(self) -> dict[str, Any]:
        return self._episode_stats_state()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._load_episode_stats_state(state)
