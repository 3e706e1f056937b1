"""Single-env views of :class:`~rlsuite.envs.dispatch.env.DispatchVecEnv` (``num_envs = 1``, CPU, NumPy).

- :class:`DispatchEnv`: the Gymnasium env of ``gymnasium.make("rlsuite/Dispatch-Manhattan-v0")``:
  observation ``(V, K, 28)`` float32, action ``(V, K)`` float32 scores, ``info`` with the batched env's
  entries for env 0 (``pair_mask`` ``(V, K)`` bool, ``vehicle_reward`` ``(V,)``, ``served`` float, ...).
- :class:`DispatchParallelEnv`: a PettingZoo ``ParallelEnv`` with one agent per vehicle,
  ``"vehicle_<i>"``: observation ``(K, 28)``, action ``(K,)`` scores, reward = the vehicle's reward of the
  step, ``infos[agent]`` = ``{"pair_mask": (K,) bool, "available": bool, "assigned": int, "acted": bool}``
  (the last two after a step). The env still matches centrally: the agents' scores form the ``(V, K)``
  score matrix (an agent left out of the action dict scores 0, i.e. takes no order).

Both take the keyword arguments of :class:`DispatchVecEnv` without ``num_envs``/``device`` (the data files
by name too: ``zones_csv``, ``travel_csv``, ``trips``, ``trips_date``, ``trips_mode``). At the end
of the episode the batched env has already started the next one: the views return the final
observation with ``truncated=True`` (PettingZoo: every agent truncated, ``agents`` empty until ``reset``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlsuite.envs.dispatch.env import DispatchVecEnv

try:  # PettingZoo is in the dispatch (and dev) extra; the Gymnasium view works without it
    from pettingzoo.utils.env import ParallelEnv
except ImportError:  # pragma: no cover - exercised only without the extra
    ParallelEnv = object  # type: ignore[assignment,misc]
    _HAS_PETTINGZOO = False
else:
    _HAS_PETTINGZOO = True

_SKIP = ("final_obs", "_final_obs", "episode_return", "episode_length")


def _env0(info: Mapping[str, Any]) -> dict[str, Any]:
    """The batched env's ``info`` for env 0: NumPy arrays for per-vehicle entries, floats/ints for per-env ones."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        if key in _SKIP:
            continue
        if value.ndim > 1:
            out[key] = value[0].numpy()
        elif value.dtype == torch.bool:
            out[key] = bool(value[0])
        else:
            out[key] = float(value[0]) if value.dtype.is_floating_point else int(value[0])
    return out


class DispatchEnv(gym.Env):
    """The dispatch problem as a single Gymnasium env (see the module docstring); ``env.vec`` is the batched env of one."""

    metadata = {"render_modes": []}

    def __init__(self, **kwargs: Any) -> None:
        self._vec = DispatchVecEnv(num_envs=1, device="cpu", **kwargs)
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space

    @property
    def vec(self) -> DispatchVecEnv:
        """The batched env of one behind this view."""
        return self._vec

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        obs, info = self._vec.reset(seed=seed, options=options)
        return obs[0].numpy(), _env0(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        a = torch.as_tensor(np.asarray(action))
        _, reward, terminated, truncated, info = self._vec.step(a.reshape(1, *a.shape))
        out = _env0(info)
        if bool(truncated[0]):  # the returned observation is the final one: give its masks
            out["pair_mask"] = self._vec.final_pair_mask[0].numpy()
            out["vehicle_available"] = out["pair_mask"].any(-1)
        return info["final_obs"][0].numpy(), float(reward[0]), bool(terminated[0]), bool(truncated[0]), out


class DispatchParallelEnv(ParallelEnv):
    """The dispatch problem as a PettingZoo ``ParallelEnv``, one agent per vehicle (see the module docstring)."""

    metadata = {"name": "rlsuite_dispatch_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, **kwargs: Any) -> None:
        if not _HAS_PETTINGZOO:
            raise ImportError("DispatchParallelEnv needs PettingZoo; fix: pip install 'rlsuite[dispatch]' (or pip install pettingzoo).")
        self._vec = DispatchVecEnv(num_envs=1, device="cpu", **kwargs)
        self.possible_agents = [f"vehicle_{i}" for i in range(self._vec.num_vehicles)]
        self.agents: list[str] = []
        self._index = {a: i for i, a in enumerate(self.possible_agents)}
        self._obs_space = gym.spaces.Box(-np.inf, np.inf, self._vec.single_observation_space.shape[1:], np.float32)
        self._act_spaces: dict[str, gym.spaces.Box] = {}  # one per agent (own sampling RNG), made when first asked for
        self.render_mode = None

    @property
    def vec(self) -> DispatchVecEnv:
        """The batched env of one behind this view."""
        return self._vec

    def observation_space(self, agent: str) -> gym.spaces.Box:
        """``Box(-inf, inf, (K, 28), float32)``, the same object for every agent."""
        self._check_agent(agent)
        return self._obs_space

    def action_space(self, agent: str) -> gym.spaces.Box:
        """``Box(-inf, inf, (K,), float32)`` scores, one object per agent."""
        if agent not in self._act_spaces:
            self._check_agent(agent)
            self._act_spaces[agent] = gym.spaces.Box(-np.inf, np.inf, (self._vec.num_candidates,), np.float32)
        return self._act_spaces[agent]

    def _check_agent(self, agent: str) -> None:
        if agent not in self._index:
            raise ValueError(f"unknown agent {agent!r}; agents are vehicle_0 .. vehicle_{len(self.possible_agents) - 1}.")

    def _split(self, obs: np.ndarray, info: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        mask = info["pair_mask"]
        obs_d = {a: obs[i] for i, a in enumerate(self.possible_agents)}
        infos = {a: {"pair_mask": mask[i], "available": bool(mask[i].any())} for i, a in enumerate(self.possible_agents)}
        return obs_d, infos

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """Start an episode (``options`` are accepted and ignored: the env has none)."""
        obs, info = self._vec.reset(seed=seed)
        self.agents = list(self.possible_agents)
        return self._split(obs[0].numpy(), _env0(info))

    def step(self, actions: Mapping[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise RuntimeError("the episode has ended; call reset() first.")
        scores = np.zeros((self._vec.num_vehicles, self._vec.num_candidates), dtype=np.float32)
        for agent, a in actions.items():
            self._check_agent(agent)
            scores[self._index[agent]] = np.asarray(a, dtype=np.float32).reshape(self._vec.num_candidates)
        _, _, _, truncated, info = self._vec.step(torch.from_numpy(scores)[None])
        done = bool(truncated[0])
        out = _env0(info)
        if done:
            out["pair_mask"] = self._vec.final_pair_mask[0].numpy()
        obs, infos = self._split(info["final_obs"][0].numpy(), out)
        reward = out["vehicle_reward"]
        for i, a in enumerate(self.possible_agents):
            infos[a]["assigned"] = int(out["assigned"][i])
            infos[a]["acted"] = bool(out["acted"][i])
        rewards = {a: float(reward[i]) for i, a in enumerate(self.possible_agents)}
        terminations = dict.fromkeys(self.possible_agents, False)
        truncations = dict.fromkeys(self.possible_agents, done)
        if done:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """The whole fleet's observation ``(V, K, 28)``."""
        return self._vec.last_observation[0].numpy()

    def close(self) -> None:
        pass


__all__ = ["DispatchEnv", "DispatchParallelEnv"]
