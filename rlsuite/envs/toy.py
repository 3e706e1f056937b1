"""Small tasks with known answers for testing agents: a masked contextual bandit.

## Description
``rlsuite/MaskedBandit-v0``: each episode is one decision among ``n`` actions. Action ``k`` pays
``k / (n - 1)`` whatever the state, so without masks the best action is always the last one,
``n - 1``. But the env forbids it: every state's action mask excludes ``n - 1``, and each of the other
actions is allowed with probability ``p_allowed`` (at least one always is). The best *allowed* action
is the highest allowed index, which changes from state to state. A policy that respects the mask and
learned the task picks it; a policy that ignores the mask picks ``n - 1``.

## Action Space
``Discrete(n)`` (default ``n = 5``). The mask comes as ``info["action_mask"]`` (bool ``(n,)``, True =
allowed) after ``reset`` and after every ``step``. A forbidden action is still accepted and paid (so
that env checkers, which sample without masks, run); ``info["forbidden"]`` tells that it was one.

## Observation Space
``Box(0, 1, (n,), float32)``: the action mask as 0.0 / 1.0 (the context).

## Rewards
``k / (n - 1)`` for action ``k``: in ``[0, 1]``; the best allowed action pays ``max_allowed / (n - 1)``.

## Starting State
A fresh mask: action ``n - 1`` forbidden, each other action allowed with probability ``p_allowed``;
if none is, one of them, chosen uniformly, is allowed.

## Episode End
Terminates after one step (the batched env autoresets in the same step; ``info["final_obs"]`` is the
decided state).

## Arguments
``num_envs``, ``device`` (batched env), ``n`` (>= 2), ``p_allowed`` (in ``(0, 1]``).

## Version History
* v0: initial version.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlsuite.core.seeding import resolve_device
from rlsuite.core.vec_env import TorchVecEnv


def best_allowed_action(mask: torch.Tensor) -> torch.Tensor:
    """``(N,)`` the highest allowed index of each row of ``mask`` ``(N, n)`` (the optimum of the bandit)."""
    n = mask.shape[-1]
    return (mask.long() * torch.arange(1, n + 1, device=mask.device)).argmax(-1)


class MaskedBanditVecEnv(TorchVecEnv):
    """``num_envs`` masked bandits on ``device`` (see the module docstring)."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, device: torch.device | str = "cpu", n: int = 5, p_allowed: float = 0.5) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
        if n < 2:
            raise ValueError(f"n must be >= 2 (the last action is always forbidden), got {n}.")
        if not 0.0 < p_allowed <= 1.0:
            raise ValueError(f"p_allowed must be in (0, 1], got {p_allowed}.")
        self.num_envs, self.n, self.p_allowed = num_envs, int(n), float(p_allowed)
        self.device = resolve_device(device)
        self.single_observation_space = gym.spaces.Box(0.0, 1.0, (self.n,), np.float32)
        self.single_action_space = gym.spaces.Discrete(self.n)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(int(np.random.SeedSequence().generate_state(1)[0]))
        self.mask = self._draw_masks()
        self._init_episode_stats()

    def _draw_masks(self) -> torch.Tensor:
        N, n = self.num_envs, self.n
        u = torch.rand((N, n), generator=self._gen, device=self.device)
        mask = u < self.p_allowed
        mask[:, n - 1] = False
        fallback = torch.randint(0, n - 1, (N,), generator=self._gen, device=self.device)
        forced = torch.nn.functional.one_hot(fallback, n).bool() & ~mask.any(-1, keepdim=True)
        return mask | forced

    def _obs(self) -> torch.Tensor:
        return self.mask.to(torch.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict]:
        if seed is not None:
            self._gen.manual_seed(int(seed))
        self.mask = self._draw_masks()
        self._init_episode_stats()
        return self._obs(), {"action_mask": self.mask.clone()}

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        a = torch.as_tensor(action, device=self.device).reshape(self.num_envs).long()
        reward = a.clamp(0, self.n - 1).to(torch.float32) / (self.n - 1)
        forbidden = ~self.mask.gather(1, a.clamp(0, self.n - 1)[:, None]).squeeze(1)
        terminated = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        truncated = torch.zeros_like(terminated)
        info: dict[str, Any] = {"final_obs": self._obs(), "_final_obs": terminated, "forbidden": forbidden}
        self.mask = self._draw_masks()
        info["action_mask"] = self.mask.clone()
        self._track_episodes(reward, terminated, info)
        return self._obs(), reward, terminated, truncated, info

    def state_dict(self) -> dict[str, Any]:
        return {"mask": self.mask.clone(), "generator": self._gen.get_state(), **self._episode_stats_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mask = state["mask"].to(self.device, torch.bool).clone()
        self._gen.set_state(state["generator"].cpu().to(torch.uint8))
        self._load_episode_stats_state(state)


class MaskedBanditEnv(gym.Env):
    """Single-env Gymnasium view of :class:`MaskedBanditVecEnv` (NumPy out, ``info["action_mask"]``)."""

    metadata = {"render_modes": []}

    def __init__(self, n: int = 5, p_allowed: float = 0.5) -> None:
        self._vec = MaskedBanditVecEnv(num_envs=1, device="cpu", n=n, p_allowed=p_allowed)
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        obs, info = self._vec.reset(seed=int(self.np_random.integers(0, 2**63 - 1)))
        return obs[0].numpy(), {"action_mask": info["action_mask"][0].numpy()}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        decided = self._vec.mask[0].numpy().copy()
        _, reward, terminated, truncated, info = self._vec.step(torch.as_tensor(np.asarray(action, dtype=np.int64)).reshape(1))
        # the episode ends here: the returned observation is the decided state, and the mask is its mask
        return (info["final_obs"][0].numpy(), float(reward[0]), bool(terminated[0]), bool(truncated[0]),
                {"action_mask": decided, "forbidden": bool(info["forbidden"][0])})
