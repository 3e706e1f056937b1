"""Behaviour cloning: regress the dataset's actions from its observations.

A deterministic MLP with a tanh output over actions scaled to [-1, 1], trained with the mean squared
error (:func:`bc_loss`) on standardised observations; 2 x 256 ReLU layers, Adam 3e-4, batch 256. The
offline-RL papers' BC baseline; with ``top_fraction < 1`` it is "%BC" (only the best episodes by return).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rlsuite.agents.iql import (
    OfflineData,
    ScaledPolicy,
    as_array_in,
    check_same_data,
    episode_returns,
    offline_build,
)
from rlsuite.agents.registry import AGENTS, AgentSpec
from rlsuite.core.nets import MLP, adam
from rlsuite.core.seeding import resolve_device


@dataclasses.dataclass(frozen=True)
class BCConfig:
    """Behaviour cloning hyper-parameters (the settings of the IQL paper's BC baselines)."""

    learning_rate: float = 3e-4
    """Adam learning rate."""
    batch_size: int = 256
    """Transitions per update."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the deterministic actor."""
    top_fraction: float = 1.0
    """Fraction of episodes, by return, cloned (1.0: plain BC; 0.1: 10%BC)."""


def bc_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between predicted and dataset actions ``(B, act)``."""
    return (pred - target).pow(2).sum(-1).mean()


def top_episodes(arrays: dict[str, np.ndarray], fraction: float) -> dict[str, np.ndarray]:
    """The transitions of the best ``fraction`` of episodes by return (at least one episode)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"top_fraction must be in (0, 1], got {fraction}.")
    if fraction == 1:
        return arrays
    ends = arrays["terminals"] | arrays["timeouts"]
    rets = episode_returns(arrays["rewards"], ends)
    ep_id = np.concatenate([[0], np.cumsum(ends)[:-1]])
    keep_eps = np.argsort(-rets)[: max(1, int(round(fraction * len(rets))))]
    keep = np.isin(ep_id, keep_eps)
    return {k: v[keep] for k, v in arrays.items()}


class BC:
    """Behaviour cloning agent: ``set_data``, ``learn_offline(steps)``, ``act(obs)``."""

    algo = "bc"

    def __init__(self, cfg: BCConfig, obs_dim: int, act_dim: int, device: str | torch.device = "cpu", seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.cfg, self.device = cfg, resolve_device(device)
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.actor = MLP(obs_dim, act_dim, cfg.hidden_sizes).to(self.device)
        self.opt = adam(self.actor.parameters(), cfg.learning_rate)
        self.generator = torch.Generator().manual_seed(seed)
        self.data: OfflineData | None = None
        self.steps = 0

    def set_data(self, arrays: dict[str, np.ndarray], low: np.ndarray, high: np.ndarray) -> None:
        self.data = OfflineData(top_episodes(arrays, self.cfg.top_fraction), low, high, self.device, normalize_reward=False)

    def learn_offline(self, steps: int, total_steps: int | None = None, log: Callable[[int, dict[str, float]], None] | None = None,
                      log_every: int = 1000) -> None:
        """``steps`` updates (``total_steps`` is accepted for the common interface; BC has no schedule)."""
        if self.data is None:
            raise RuntimeError("call set_data(dataset arrays, action low, action high) before learn_offline.")
        for i in range(steps):
            b = self.data.sample(self.cfg.batch_size, self.generator)
            loss = bc_loss(torch.tanh(self.actor(b["obs"])), b["act"])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.steps += 1
            if log is not None and (i + 1) % log_every == 0:
                log(i + 1, {"bc_loss": float(loss.detach())})

    @torch.no_grad()
    def act(self, obs: np.ndarray | torch.Tensor, deterministic: bool = True) -> np.ndarray | torch.Tensor:
        """Env-unit actions ``(B, act)`` for raw observations ``(B, obs)`` (BC is deterministic)."""
        assert self.data is not None, "set_data or load_state_dict first"
        a = self.data.unscale_action(torch.tanh(self.actor(self.data.norm_obs(obs)))).astype(np.float32)
        return as_array_in(obs, a, self.device)

    def deploy_module(self) -> torch.nn.Module:
        """``obs (B, obs) -> actions (B, act)`` with the data statistics inside, for export."""
        assert self.data is not None, "set_data or load_state_dict first"
        return ScaledPolicy(self.data, torch.nn.Sequential(self.actor, torch.nn.Tanh())).eval()

    def state_dict(self) -> dict[str, Any]:
        assert self.data is not None
        return {"actor": self.actor.state_dict(), "obs_mean": torch.as_tensor(self.data.mean), "obs_std": torch.as_tensor(self.data.std),
                "action_low": torch.as_tensor(self.data.low), "action_high": torch.as_tensor(self.data.high),
                "steps": torch.tensor(self.steps), "optim": self.opt.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (call :meth:`set_data` with the same dataset first to train on;
        without data the saved statistics are used: the agent can act and export, not train)."""
        if self.data is None:
            self.data = OfflineData.from_state(state, self.device)
        check_same_data(self.data, state)
        self.actor.load_state_dict(state["actor"])
        self.steps = int(state["steps"])
        self.opt.load_state_dict(state["optim"])
        self.generator.set_state(state["generator"])


AGENTS.register("bc", AgentSpec(
    name="bc", config_cls=BCConfig, agent_cls=BC, learns_from="dataset", build=offline_build(BC),
    summary="Behaviour cloning (of the best episodes) on a dataset; offline only",
))
