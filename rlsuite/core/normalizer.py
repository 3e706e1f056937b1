"""Running observation normalizer held as module buffers.

Because the statistics are buffers of an ``nn.Module`` that lives inside the policy, they are saved in
every checkpoint and traced into every export, so a deployed policy sees observations normalized exactly
as in training (the classic bug of normalizers kept in env wrappers).

In a data-parallel run (:mod:`rlsuite.core.distributed`) every rank's :meth:`RunningNorm.update` merges the
batch moments of all ranks' batches first, so the statistics stay identical on every rank; in a single
process the update is the same arithmetic as ever.
"""

from __future__ import annotations

import torch
from torch import nn

from rlsuite.core import distributed


class RunningNorm(nn.Module):
    """``clip((x - mean) / sqrt(var + eps), -clip, clip)`` with running mean/var.

    Statistics are merged batch by batch (parallel Welford / Chan et al.), so the result equals the
    mean and population variance of every sample seen, whatever the batch split. They change only in
    :meth:`update`; ``forward`` never updates. In a data-parallel run, ``update`` folds in the union of every
    rank's batch (every rank must call it, with its own batch).

    Args:
        shape: feature shape, e.g. ``(obs_dim,)``.
        eps: added to the variance.
        clip: bound on the normalized value.

    Shapes: ``forward``: ``(*, *shape) -> (*, *shape)``.
    """

    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor
    merges_over_ranks = True  # what rlsuite.core.distributed lists as statistics merged over the ranks

    def __init__(self, shape: tuple[int, ...], eps: float = 1e-8, clip: float = 10.0) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("var", torch.ones(shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.eps, self.clip = eps, clip

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Fold a batch ``(N, *shape)`` into the statistics (in a data-parallel run: every rank's batch)."""
        x = x.reshape(-1, *self.mean.shape).to(self.mean.dtype)
        ctx = distributed.stats_context()
        if ctx is not None:
            n, b_mean, b_var = distributed.merge_moments(x, ctx)
        else:
            n = x.shape[0]
            if n:
                b_mean = x.mean(0)
                b_var = x.var(0, unbiased=False)
        if n == 0:
            return
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

    def forward_cached(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`forward`, bit for bit, with ``rsqrt(var + eps)`` kept from call to call: recomputed whenever ``var``
        is replaced or written in place (its version counter: :meth:`update`, ``load_state_dict``, ``.to``) or ``eps``
        changes. For a loop that normalises one small batch at a time (a rollout on the CPU); exports and tracing
        use :meth:`forward`. A write that bypasses the version counter (through ``var.data`` or ``var.numpy()``) is
        not seen: change the statistics with :meth:`update`, ``load_state_dict`` or in-place ops on ``var``.
        Shapes as :meth:`forward`."""
        buffers = self._buffers  # (not self.var, self.mean: nn.Module's attribute lookup costs more than the arithmetic)
        var = buffers["var"]
        if var.is_inference():  # no version counter to watch
            return self.forward(x)
        cached = self.__dict__.get("_scale_cache")
        ptr = var.data_ptr()  # (with the object and its version: torch.utils.swap_tensors keeps the object, not the storage)
        if cached is None or cached[0] is not var or cached[1] != var._version or cached[2] != self.eps or cached[4] != ptr:
            with torch.no_grad():
                scale = torch.rsqrt(var + self.eps)
            cached = (var, var._version, self.eps, scale, ptr)
            self.__dict__["_scale_cache"] = cached  # a plain attribute, in no state dict
        clip = self.clip
        return ((x - buffers["mean"]) * cached[3]).clamp(-clip, clip)

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_scale_cache", None)  # keyed on var's version counter, which a copy (deepcopy, pickle) starts afresh
        return state


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
