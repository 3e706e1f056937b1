"""Reward shaping functions (pure)."""

from __future__ import annotations

import torch


def spo_winrate_rewards(pref: torch.Tensor) -> torch.Tensor:
    """SPO (Swamy et al., 2024, "A Minimaximalist Approach to RLHF", arXiv:2401.04056) self-play reward:
    ``r_i = 1/(G-1) * sum_{j != i} P(y_i > y_j)`` from a pairwise preference matrix ``pref`` ``(..., G, G)``
    (``pref[..., i, j] = P(y_i beats y_j)``; the diagonal is ignored). Returns ``(..., G)``."""
    g = pref.shape[-1]
    if pref.shape[-2] != g or g < 2:
        raise ValueError(f"pref must be (..., G, G) with G >= 2, got {tuple(pref.shape)}.")
    off = pref * (1.0 - torch.eye(g, dtype=pref.dtype, device=pref.device))
    return off.sum(-1) / (g - 1)
