"""Running observation normalizer held as module buffers.

Because the statistics are buffers of an ``nn.Module`` that lives inside the policy, they are saved in
every checkpoint and traced into every export, so a deployed policy sees observations normalized exactly
as in training (the classic bug of normalizers kept in env wrappers).
"""

from __future__ import annotations

import torch
from torch import nn


class RunningNorm(nn.Module):
    """``clip((x - mean) / sqrt(var + eps), -clip, clip)`` with running mean/var.

    Statistics are merged batch by batch (parallel Welford / Chan et al.), so the result equals the
    mean and population variance of every sample seen, whatever the batch split. They change only in
    :meth:`update`; ``forward`` never updates.

    Args:
        shape: feature shape, e.g. ``(obs_dim,)``.
        eps: added to the variance.
        clip: bound on the normalized value.

    Shapes: ``forward``: ``(*, *shape) -> (*, *shape)``.
    """

    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor

    def __init__(self, shape: tuple[int, ...], eps: float = 1e-8, clip: float = 10.0) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("var", torch.ones(shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.eps, self.clip = eps, clip

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Fold a batch ``(N, *shape)`` into the statistics."""
        x = x.reshape(-1, *self.mean.shape).to(self.mean.dtype)
        n = x.shape[0]
        if n == 0:
            return
        b_mean = x.mean(0)
        b_var = x.var(0, unbiased=False)
        total = self.count + n
        w = (n / total).to(self.mean.dtype)
        delta = b_mean - self.mean
        new_mean = self.mean + delta * w
        m2 = self.var * (1.0 - w) + b_var * w + delta.pow(2) * w * (1.0 - w)
        self.mean.copy_(new_mean)
        self.var.copy_(m2)
        self.count.copy_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) * torch.rsqrt(self.var + self.eps)).clamp(-self.clip, self.clip)


class FixedNorm(nn.Module):
    """``(x - mean) / std`` with constant statistics (e.g. an offline dataset's), held as buffers so
    checkpoints and exports carry them. Shapes: ``(*, D) -> (*, D)``."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        if mean.shape != std.shape or bool((std <= 0).any()):
            raise ValueError(f"FixedNorm needs mean and std of one shape with std > 0, got {tuple(mean.shape)} and {tuple(std.shape)}.")
        self.register_buffer("mean", mean.detach().clone().float())
        self.register_buffer("std", std.detach().clone().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
