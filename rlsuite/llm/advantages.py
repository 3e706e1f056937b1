"""Outcome-reward advantages for group-sampled completions (pure functions).

Notation: ``B`` completions, ``rewards`` ``(B,)``, ``group_ids`` ``(B,)`` (completions of the same
prompt share an id; any integers). Returned advantages are ``(B,)``, to be broadcast over the
completion's tokens. Standard deviations are the unbiased (``n - 1``) estimate, as TRL and verl use.
"""

from __future__ import annotations

import torch

from rlsuite.core.registry import Registry

ADVANTAGES: Registry = Registry("advantage estimator")


def _group_index(group_ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    uniq, inverse = torch.unique(group_ids, return_inverse=True)
    return inverse, int(uniq.numel())


def group_mean_std(rewards: torch.Tensor, group_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample group mean, unbiased group std (0 for a group of one) and group size, each ``(B,)``."""
    idx, k = _group_index(group_ids)
    r = rewards.to(torch.float64)
    count = torch.zeros(k, dtype=torch.float64, device=r.device).index_add_(0, idx, torch.ones_like(r))
    total = torch.zeros(k, dtype=torch.float64, device=r.device).index_add_(0, idx, r)
    mean = total / count
    sq = torch.zeros(k, dtype=torch.float64, device=r.device).index_add_(0, idx, (r - mean[idx]) ** 2)
    std = torch.where(count > 1, (sq / (count - 1).clamp_min(1)).sqrt(), torch.zeros_like(sq))
    dt = rewards.dtype if rewards.is_floating_point() else torch.float32
    return mean[idx].to(dt), std[idx].to(dt), count[idx].to(dt)


def grpo_advantages(rewards: torch.Tensor, group_ids: torch.Tensor, scale: str = "group", eps: float = 1e-6) -> torch.Tensor:
    """GRPO (Shao et al., 2024, DeepSeekMath, arXiv:2402.03300): ``A_i = (r_i - mean_G r) / (std_G r + eps)``.

    ``scale="none"`` gives Dr.GRPO's ``A_i = r_i - mean_G r`` (Liu et al., 2025, "Understanding R1-Zero-Like
    Training", arXiv:2503.20783); ``scale="batch"`` divides by the std of the whole batch instead.
    """
    mean, std, _ = group_mean_std(rewards, group_ids)
    centred = rewards - mean
    if scale == "group":
        return centred / (std + eps)
    if scale == "none":
        return centred
    if scale == "batch":
        return centred / (rewards.float().std() + eps)
    raise ValueError(f"unknown scale {scale!r}; allowed: group, none, batch.")


def dr_grpo_advantages(rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """Dr.GRPO: ``A_i = r_i - mean_G r`` (no division by the std); pair with ``seq-mean-token-sum-norm``."""
    return grpo_advantages(rewards, group_ids, scale="none")


def rloo_advantages(rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """RLOO (Ahmadian et al., 2024, arXiv:2402.14740): ``A_i = r_i - mean_{j != i} r_j``.

    Equals ``G / (G - 1) * (r_i - mean_G r)``; a group of one gets 0.
    """
    mean, _, count = group_mean_std(rewards, group_ids)
    return torch.where(count > 1, (rewards - mean) * count / (count - 1).clamp_min(1), torch.zeros_like(mean))


def remax_advantages(rewards: torch.Tensor, greedy_rewards: torch.Tensor) -> torch.Tensor:
    """ReMax (Li et al., 2024, arXiv:2310.10505): ``A_i = r(x, y_i) - r(x, y_greedy(x))``.

    ``greedy_rewards`` ``(B,)`` holds, for each completion, the reward of the greedy decode of its prompt.
    """
    if rewards.shape != greedy_rewards.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)} and greedy_rewards {tuple(greedy_rewards.shape)} must match.")
    return rewards - greedy_rewards


def ngrpo_advantages(rewards: torch.Tensor, group_ids: torch.Tensor, r_max: float = 1.0, eps: float = 1e-6) -> torch.Tensor:
    """NGRPO ("Negative-enhanced Group Relative Policy Optimization", 2025): mean and std over the group plus one virtual sample
    with the maximum reward ``r_max``, so an all-wrong group still gets negative advantages:
    ``A_i = (r_i - mean') / (std' + eps)`` with ``mean', std'`` over ``{r_1..r_G, r_max}``.
    (Formula from the paper's summary; the authors' asymmetric clipping is a separate loss option.)
    """
    idx, k = _group_index(group_ids)
    r = rewards.to(torch.float64)
    count = torch.ones(k, dtype=torch.float64, device=r.device).index_add_(0, idx, torch.ones_like(r))
    total = torch.full((k,), float(r_max), dtype=torch.float64, device=r.device).index_add_(0, idx, r)
    mean = total / count
    sq = ((r_max - mean) ** 2).index_add_(0, idx, (r - mean[idx]) ** 2)
    std = (sq / (count - 1)).sqrt()
    return ((r - mean[idx]) / (std[idx] + eps)).to(rewards.dtype if rewards.is_floating_point() else torch.float32)


ADVANTAGES.register("grpo", grpo_advantages)
ADVANTAGES.register("dr_grpo", dr_grpo_advantages)
ADVANTAGES.register("rloo", rloo_advantages)
ADVANTAGES.register("remax", remax_advantages)
ADVANTAGES.register("ngrpo", ngrpo_advantages)
