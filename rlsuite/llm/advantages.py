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


def igpo_turn_advantages(turn_rewards: torch.Tensor, turn_mask: torch.Tensor, group_ids: torch.Tensor, gamma: float = 1.0, eps: float = 1e-6) -> torch.Tensor:
    """IGPO turn advantages ``(B, K)``: each turn's reward (:func:`rlsuite.llm.rewards.igpo_turn_rewards`)
    is standardised across the group members that have that turn, then summed with discount ``gamma``
    over the remaining turns: ``A_k = sum_{j >= k} gamma^(j - k) * rhat_j``. Padding gets 0.
    Broadcast ``A_k`` over the tokens the policy generated in turn ``k``."""
    valid = turn_mask.bool()
    norm = torch.zeros_like(turn_rewards, dtype=torch.float32)
    for gid in torch.unique(group_ids):
        rows = group_ids == gid
        for k in range(turn_rewards.shape[1]):
            sel = rows & valid[:, k]
            if sel.sum() == 0:
                continue
            x = turn_rewards[sel, k].float()
            std = x.std() if x.numel() > 1 else torch.zeros(())
            norm[sel, k] = (x - x.mean()) / (std + eps)
    adv = torch.zeros_like(norm)
    running = torch.zeros(norm.shape[0])
    for k in range(norm.shape[1] - 1, -1, -1):
        running = torch.where(valid[:, k], norm[:, k] + gamma * running, torch.zeros_like(running))
        adv[:, k] = running
    return adv


def token_gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, gae_lambda: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over completion tokens for PPO with a critic (RTO's second stage): ``rewards``, ``values``,
    ``mask`` ``(B, T)``; the completion ends (no bootstrap) after its last valid token.
    Returns ``(advantages, returns)``, ``(B, T)``, zero on padding. Uses :func:`rlsuite.core.rollout.compute_gae`."""
    from rlsuite.core.rollout import compute_gae

    m = mask.bool()
    r, v = (rewards * m).T, (values * m).T
    next_v = torch.cat([v[1:], torch.zeros_like(v[:1])])
    next_valid = torch.cat([m.T[1:], torch.zeros_like(m.T[:1])])
    terminated = ~next_valid  # the state after the last valid token is terminal
    adv, ret = compute_gae(r, v, next_v * next_valid, terminated, torch.zeros_like(terminated), gamma, gae_lambda)
    return adv.T * m, ret.T * m


ADVANTAGES.register("igpo_turn_discounted", igpo_turn_advantages)
ADVANTAGES.register("rto_token_gae", token_gae)
