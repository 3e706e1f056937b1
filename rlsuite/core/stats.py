"""Small statistics shared by agents."""

from __future__ import annotations

import torch


def explained_variance(pred: torch.Tensor, target: torch.Tensor) -> float:
    """``1 - Var(target - pred) / Var(target)``; NaN when the target has no variance.

    1 means a perfect value function, 0 one no better than a constant, negative one that is worse.
    """
    var_t = target.var()
    if var_t.item() == 0:
        return float("nan")
    return float(1.0 - (target - pred).var() / var_t)
