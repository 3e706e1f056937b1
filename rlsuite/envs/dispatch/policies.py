"""Baseline dispatch policies: scores for every (vehicle, candidate) pair from the observation alone.

Each builder returns ``act(obs) -> scores``: observations ``(..., V, K, 28)`` (a torch tensor of the batched
env or a NumPy array of the single env) to float32 scores ``(..., V, K)`` of the same kind and device.
The env ignores the scores of masked pairs, so the policies need no mask; an empty candidate slot has
pickup ETA 0 in the observation (a real candidate's ETA is > 0) and gets score 0 from the greedy policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rlsuite.envs.dispatch.env import PICKUP_ETA

Policy = Callable[[Any], Any]


def greedy_policy(max_pickup_minutes: float = 20.0) -> Policy:
    """Nearest-vehicle dispatch: score ``1 + (max_pickup_minutes - ETA) / 60`` (> 0 for every feasible pair).

    Every score lies in ``(1, 1 + max_pickup_minutes / 60]``, so the matching takes about as many pairs as
    it can and, among those, minimises the total pickup time.
    """
    if not max_pickup_minutes > 0:
        raise ValueError(f"max_pickup_minutes must be > 0, got {max_pickup_minutes}.")

    def act(obs: Any) -> Any:
        eta_hours = obs[..., PICKUP_ETA]
        if isinstance(obs, torch.Tensor):
            return torch.where(eta_hours > 0, 1.0 + (max_pickup_minutes - 60.0 * eta_hours) / 60.0, 0.0).to(torch.float32)
        eta_hours = np.asarray(eta_hours)
        return np.where(eta_hours > 0, 1.0 + (max_pickup_minutes - 60.0 * eta_hours) / 60.0, 0.0).astype(np.float32)

    return act


def random_policy(seed: int | None = None) -> Policy:
    """Uniform ``(0, 1)`` scores on every pair: a random maximal matching. Seeded: the same seed gives the same
    scores for the same sequence of observation shapes."""
    state: dict[str, Any] = {"seed": seed, "torch": {}, "numpy": np.random.default_rng(seed)}

    def act(obs: Any) -> Any:
        if isinstance(obs, torch.Tensor):
            gens = state["torch"]
            if obs.device not in gens:
                g = torch.Generator(device=obs.device)
                if seed is None:
                    g.seed()
                else:
                    g.manual_seed(int(seed))
                gens[obs.device] = g
            u = torch.rand(obs.shape[:-1], generator=gens[obs.device], device=obs.device)
            return u.clamp_min(torch.finfo(torch.float32).tiny)  # (0, 1): a zero score would mean "no order"
        u = state["numpy"].random(np.shape(obs)[:-1], dtype=np.float32)
        return np.maximum(u, np.finfo(np.float32).tiny)

    return act


__all__ = ["greedy_policy", "random_policy"]
