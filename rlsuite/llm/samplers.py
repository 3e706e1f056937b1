"""Sample and token selection rules (pure functions over advantages and entropies)."""

from __future__ import annotations

import torch


def max_variance_subset(values: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` entries of ``values`` ``(G,)`` whose (population) variance is largest.

    The optimum always takes the ``j`` smallest and the ``k - j`` largest values for some ``j``, so the
    search is over ``k + 1`` candidates, not all subsets.
    """
    g = values.numel()
    if not 1 <= k <= g:
        raise ValueError(f"k must be in [1, {g}], got {k}.")
    order = torch.argsort(values)
    best, best_var = None, -1.0
    for j in range(k + 1):
        idx = torch.cat([order[:j], order[g - (k - j) :]]) if k - j > 0 else order[:j]
        var = float(values[idx].var(unbiased=False))
        if var > best_var:
            best, best_var = idx, var
    assert best is not None
    return torch.sort(best).values


def d3s_sample_mask(adv: torch.Tensor, group_ids: torch.Tensor, keep: int) -> torch.Tensor:
    """D3S sample level (2025): in each group keep the ``keep``
    rollouts whose advantages have the largest variance (the extremes). Returns a bool mask ``(B,)``.
    (Rule from our reference notes' summary; the schedule of ``keep`` is the caller's.)"""
    mask = torch.zeros_like(adv, dtype=torch.bool)
    for gid in torch.unique(group_ids):
        members = torch.nonzero(group_ids == gid).squeeze(-1)
        k = min(keep, members.numel())
        mask[members[max_variance_subset(adv[members], k)]] = True
    return mask


def d3s_token_mask(adv: torch.Tensor, entropy: torch.Tensor, mask: torch.Tensor, keep_fraction: float) -> torch.Tensor:
    """D3S token level: keep the top ``keep_fraction`` of valid tokens by ``|A_i| * H_t``.

    Args:
        adv: ``(B,)`` sequence advantages.
        entropy: ``(B, T)`` per-token policy entropy.
        mask: ``(B, T)`` valid tokens.
        keep_fraction: in ``(0, 1]``.

    Returns:
        bool ``(B, T)``, a subset of ``mask``.
    """
    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}.")
    valid = mask.bool()
    score = (adv.abs().unsqueeze(-1) * entropy).masked_fill(~valid, float("-inf"))
    n_keep = max(1, int(round(keep_fraction * int(valid.sum()))))
    top = torch.topk(score.flatten(), n_keep).indices
    out = torch.zeros(score.numel(), dtype=torch.bool, device=score.device)
    out[top] = True
    return out.view_as(valid) & valid
