"""Action distributions and the heads that produce them.

The distributions are lean (no argument validation, no ``torch.distributions`` overhead): on the CPU a
batch-1 policy call is dominated by Python, so every avoided layer counts.

Shapes: ``B`` is any batch shape; ``A`` the action dimension. ``log_prob`` and ``entropy`` sum over the
action dimension and return ``B``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rlsuite.core.nets import orthogonal_init

LOG_2PI = math.log(2.0 * math.pi)
LOG_2 = math.log(2.0)


def sample_categorical(probs: torch.Tensor, check: bool = True) -> torch.Tensor:
    """One index per row of ``probs`` ``(B, n)`` (any leading shape ``B``) -> ``(B,)`` int64: ``argmax(p / q)``, ``q ~ Exp(1)``.

    Bit for bit what ``torch.multinomial(probs, 1)`` draws (its single-sample path is this exponential race, with
    the same ``exponential_`` call on the global generator), with one check of ``probs`` instead of its three
    reductions and two host syncs. ``check=False`` skips it too (a row with a NaN then gives the NaN's index): for a
    caller that checks a whole batch of draws afterwards, as PPO's rollout does.

    Raises:
        ValueError: (``check``) a probability is NaN or infinite.
    """
    flat = probs.reshape(-1, probs.shape[-1])
    if check and not bool(torch.isfinite(flat).all()):
        raise ValueError("categorical probabilities are NaN or infinite (the policy diverged); lower the learning rate, or "
                         "check the observations for NaN/inf.")
    q = torch.empty_like(flat).exponential_(1)
    return (flat / q).argmax(-1).view(probs.shape[:-1])


class Categorical:
    """Categorical over the last dimension of ``logits`` ``(B, n)``."""

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = torch.log_softmax(logits, dim=-1)

    def sample(self, check: bool = True) -> torch.Tensor:
        """``(B,)`` int64 samples (:func:`sample_categorical`)."""
        return sample_categorical(self.logits.exp(), check)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        """``action`` ``(B,)`` integer -> ``(B,)``."""
        return self.logits.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.logits.exp() * self.logits).sum(-1)

    @property
    def mode(self) -> torch.Tensor:
        return self.logits.argmax(-1)


class MaskedCategorical:
    """Categorical over the allowed entries of ``logits`` ``(B, n)``; ``mask`` ``(B, n)`` bool, True = allowed.

    Forbidden actions get probability exactly 0: their logits are replaced by the dtype's most negative
    finite value before the softmax (so no ``inf - inf`` and no NaN in values or gradients), and their
    log-probabilities are then set to ``-inf``. ``entropy`` counts ``0 * log 0`` as 0, so it equals the
    entropy of the renormalised distribution over the allowed actions; ``mode`` is the most likely
    allowed action; ``sample`` never returns a forbidden one.

    A row with no allowed action is an error in the env (the protocol promises at least one): with
    ``validate=True`` (default) it raises ``ValueError`` naming the rows, which costs one host sync.
    A rollout loop on the GPU passes ``validate=False`` and checks :func:`empty_mask_rows` once per
    rollout instead; without validation such a row is treated as all-allowed (uniform over ``n``
    actions if the logits are equal), so nothing crashes before that check.
    """

    def __init__(self, logits: torch.Tensor, mask: torch.Tensor, validate: bool = True) -> None:
        if mask.shape != logits.shape:
            raise ValueError(
                f"MaskedCategorical needs a mask of the logits' shape {tuple(logits.shape)}, got {tuple(mask.shape)}; "
                "pass info['action_mask'] of shape (num_envs, n)."
            )
        if mask.dtype != torch.bool:
            raise ValueError(f"the action mask must be a bool tensor (True = allowed), got dtype {mask.dtype}.")
        if validate:
            empty = ~mask.any(-1)
            if bool(empty.any()):
                rows = torch.nonzero(empty.reshape(-1)).flatten()[:10].tolist()
                raise ValueError(
                    f"action mask rows {rows} allow no action (all False); every state must allow at least one "
                    "action. Check the env's info['action_mask'] (after an autoreset it describes the new episode)."
                )
        else:
            mask = mask | ~mask.any(-1, keepdim=True)
        self.mask = mask
        filled = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
        self.logits = torch.where(mask, torch.log_softmax(filled, dim=-1), float("-inf"))

    @property
    def probs(self) -> torch.Tensor:
        """``(B, n)`` probabilities, exactly 0 on forbidden actions."""
        return self.logits.exp()

    def sample(self, check: bool = True) -> torch.Tensor:
        """``(B,)`` int64 samples (:func:`sample_categorical`), never a forbidden action (probability 0)."""
        return sample_categorical(self.probs, check)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        """``action`` ``(B,)`` integer -> ``(B,)`` (``-inf`` for a forbidden action)."""
        return self.logits.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        """``(B,)`` entropy of the distribution over the allowed actions."""
        safe = torch.where(self.mask, self.logits, 0.0)  # 0 * log 0 counts as 0, not NaN
        return -(self.probs * safe).sum(-1)

    @property
    def mode(self) -> torch.Tensor:
        return self.logits.argmax(-1)


def empty_mask_rows(mask: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: rows of an action mask ``(B, n)`` that allow no action (a device tensor, no sync)."""
    return ~mask.any(-1)


class MultiCategorical:
    """Independent categoricals for a ``MultiDiscrete(nvec)`` action: ``logits`` ``(B, sum(nvec))`` split
    into components of sizes ``nvec``; ``mask`` (optional) ``(B, sum(nvec))`` bool, laid out the same way
    (per component, True = allowed; each component needs an allowed value). Actions are ``(B, k)``
    int64, ``k = len(nvec)``; ``log_prob`` and ``entropy`` sum over the components and return ``(B,)``.
    """

    def __init__(self, logits: torch.Tensor, nvec: Sequence[int], mask: torch.Tensor | None = None, validate: bool = True) -> None:
        nvec = [int(n) for n in nvec]
        if logits.shape[-1] != sum(nvec):
            raise ValueError(f"MultiCategorical with nvec {nvec} needs logits (B, {sum(nvec)}), got {tuple(logits.shape)}.")
        if mask is not None and mask.shape != logits.shape:
            raise ValueError(
                f"MultiCategorical needs a mask of the logits' shape {tuple(logits.shape)} (one block of n_i per "
                f"component, nvec {nvec}), got {tuple(mask.shape)}."
            )
        self.nvec = nvec
        parts = logits.split(nvec, dim=-1)
        if mask is None:
            self.dists: list[Categorical | MaskedCategorical] = [Categorical(p) for p in parts]
        else:
            self.dists = [MaskedCategorical(p, m, validate) for p, m in zip(parts, mask.split(nvec, dim=-1), strict=True)]

    def sample(self, check: bool = True) -> torch.Tensor:
        """``(B, k)`` int64."""
        return torch.stack([d.sample(check) for d in self.dists], dim=-1)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        """``action`` ``(B, k)`` -> ``(B,)``."""
        return torch.stack([d.log_prob(action[..., i]) for i, d in enumerate(self.dists)], dim=-1).sum(-1)

    def entropy(self) -> torch.Tensor:
        return torch.stack([d.entropy() for d in self.dists], dim=-1).sum(-1)

    @property
    def mode(self) -> torch.Tensor:
        return torch.stack([d.mode for d in self.dists], dim=-1)


def _diag_gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """``(B, A)`` inputs (``std = exp(log_std)``) -> ``(B,)``: ``sum_a log N(x_a; mean_a, std_a^2)``."""
    z = (x - mean) / std
    return (-0.5 * z.pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)


def diag_gaussian_sample(mean: torch.Tensor, log_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A sample of ``DiagGaussian(mean, log_std)`` and its log-probability, without building the object.

    Bit-identical to ``d = DiagGaussian(mean, log_std); a = d.rsample(); (a, d.log_prob(a))``: the same draw
    (``randn_like(mean)``) and the same operations in the same order (a rollout loop on the CPU saves the
    Python of the object and of its calls). Call it under ``torch.no_grad()`` for :meth:`DiagGaussian.sample`'s
    detached action.

    Shapes: ``mean`` ``(B, A)``, ``log_std`` broadcastable to it -> ``(B, A)``, ``(B,)``.
    """
    log_std = log_std.expand_as(mean)
    std = log_std.exp()
    action = mean + std * torch.randn_like(mean)
    return action, _diag_gaussian_log_prob(action, mean, std, log_std)


class DiagGaussian:
    """Diagonal Gaussian with ``mean`` and ``log_std`` of shape ``(B, A)`` (log_std may broadcast)."""

    def __init__(self, mean: torch.Tensor, log_std: torch.Tensor) -> None:
        self.mean = mean
        self.log_std = log_std.expand_as(mean)
        self.std = self.log_std.exp()

    def sample(self) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample()

    def rsample(self) -> torch.Tensor:
        return self.mean + self.std * torch.randn_like(self.mean)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        return _diag_gaussian_log_prob(action, self.mean, self.std, self.log_std)

    def entropy(self) -> torch.Tensor:
        return (self.log_std + 0.5 * (1.0 + LOG_2PI)).sum(-1)

    @property
    def mode(self) -> torch.Tensor:
        return self.mean


class MaskedDiagGaussian:
    """Independent Gaussians on the entries of ``mean`` ``(B, K)`` where ``mask`` ``(B, K)`` (bool) is True.

    The other entries are no part of the distribution: whatever their values, they add 0 to :meth:`log_prob`,
    :meth:`entropy` and :meth:`kl` (e.g. OSPO's row of scores over a vehicle's feasible candidates, which
    change from row to row). ``log_std`` broadcasts to ``mean`` (a scalar: one learned noise level).
    ``log_prob``, ``entropy`` and ``kl`` sum over the masked-in entries of the last dimension and return
    ``(B,)``; :meth:`entropy_per_entry` is the entropy of one entry, in ``log_std``'s shape.
    """

    def __init__(self, mean: torch.Tensor, log_std: torch.Tensor, mask: torch.Tensor) -> None:
        self.mean, self.log_std, self.mask = mean, log_std, mask

    def sample(self) -> torch.Tensor:
        """``(B, K)`` ``mean + exp(log_std) * eps`` on every entry (the masked-out ones are meaningless)."""
        with torch.no_grad():
            return self.mean + self.log_std.exp() * torch.randn_like(self.mean)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, K)`` -> ``(B,)``: ``sum_{k: mask} log N(x_k; mean_k, exp(log_std)^2)``."""
        z = (x - self.mean) * torch.exp(-self.log_std)
        return torch.where(self.mask, -0.5 * z.pow(2) - self.log_std - 0.5 * LOG_2PI, 0.0).sum(-1)

    def entropy_per_entry(self) -> torch.Tensor:
        """``log_std + 0.5 log(2 pi e)``, the entropy of one entry (``log_std``'s shape)."""
        return self.log_std + 0.5 + 0.5 * LOG_2PI

    def entropy(self) -> torch.Tensor:
        """``(B,)``: the entropy of the masked-in entries."""
        return torch.where(self.mask, self.entropy_per_entry(), 0.0).sum(-1)

    def kl(self, other: MaskedDiagGaussian) -> torch.Tensor:
        """``(B,)``: ``KL(self || other)`` summed over ``self.mask``'s entries, per entry
        ``log(s_q / s_p) + (s_p^2 + (mu_p - mu_q)^2) / (2 s_q^2) - 1/2``."""
        var_p, var_q = torch.exp(2 * self.log_std), torch.exp(2 * other.log_std)
        kl = other.log_std - self.log_std + (var_p + (self.mean - other.mean).pow(2)) / (2 * var_q) - 0.5
        return torch.where(self.mask, kl, 0.0).sum(-1)

    @property
    def mode(self) -> torch.Tensor:
        return self.mean


class TanhGaussian:
    """``tanh(u)`` with ``u ~ N(mean, exp(log_std))``: actions in ``(-1, 1)``.

    ``log_prob`` includes the change of variables ``- sum log(1 - tanh(u)^2)``, computed in the stable
    form ``2 * (log 2 - u - softplus(-2u))``.
    """

    def __init__(self, mean: torch.Tensor, log_std: torch.Tensor) -> None:
        self.base = DiagGaussian(mean, log_std)

    @staticmethod
    def _log_det(u: torch.Tensor) -> torch.Tensor:
        return (2.0 * (LOG_2 - u - F.softplus(-2.0 * u))).sum(-1)

    def rsample_with_log_prob(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised sample and its log-probability: ``(B, A)``, ``(B,)``."""
        u = self.base.rsample()
        return torch.tanh(u), self.base.log_prob(u) - self._log_det(u)

    def sample(self) -> torch.Tensor:
        with torch.no_grad():
            return torch.tanh(self.base.rsample())

    def log_prob(self, action: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        u = torch.atanh(action.clamp(-1.0 + eps, 1.0 - eps))
        return self.base.log_prob(u) - self._log_det(u)

    @property
    def mode(self) -> torch.Tensor:
        return torch.tanh(self.base.mean)


class CategoricalHead(nn.Module):
    """Linear layer ``(B, in_dim) -> Categorical`` over ``n`` actions; with ``mask`` ``(B, n)`` bool a
    :class:`MaskedCategorical`."""

    def __init__(self, in_dim: int, n: int, gain: float = 0.01) -> None:
        super().__init__()
        self.logits = orthogonal_init(nn.Linear(in_dim, n), gain=gain)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None, validate: bool = True) -> Categorical | MaskedCategorical:
        if mask is None:
            return Categorical(self.logits(h))
        return MaskedCategorical(self.logits(h), mask, validate)


class MultiCategoricalHead(nn.Module):
    """Linear layer ``(B, in_dim) -> MultiCategorical`` for a ``MultiDiscrete(nvec)`` action; ``mask``
    ``(B, sum(nvec))`` bool optional."""

    def __init__(self, in_dim: int, nvec: Sequence[int], gain: float = 0.01) -> None:
        super().__init__()
        self.nvec = [int(n) for n in nvec]
        self.logits = orthogonal_init(nn.Linear(in_dim, sum(self.nvec)), gain=gain)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None, validate: bool = True) -> MultiCategorical:
        return MultiCategorical(self.logits(h), self.nvec, mask, validate)


class DiagGaussianHead(nn.Module):
    """Linear mean and a state-independent learned log-std (PPO style): ``(B, in_dim) -> DiagGaussian``."""

    def __init__(self, in_dim: int, act_dim: int, init_log_std: float = 0.0, gain: float = 0.01) -> None:
        super().__init__()
        self.mean = orthogonal_init(nn.Linear(in_dim, act_dim), gain=gain)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)))

    def forward(self, h: torch.Tensor) -> DiagGaussian:
        return DiagGaussian(self.mean(h), self.log_std)


class TanhGaussianHead(nn.Module):
    """State-dependent mean and log-std, squashed by tanh (SAC style): ``(B, in_dim) -> TanhGaussian``.

    The log-std is clamped to ``[log_std_min, log_std_max]``.
    """

    def __init__(self, in_dim: int, act_dim: int, log_std_min: float = -5.0, log_std_max: float = 2.0) -> None:
        super().__init__()
        self.out = nn.Linear(in_dim, 2 * act_dim)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def forward(self, h: torch.Tensor) -> TanhGaussian:
        mean, log_std = self.out(h).chunk(2, dim=-1)
        return TanhGaussian(mean, log_std.clamp(self.log_std_min, self.log_std_max))


class BoundedGaussianHead(nn.Module):
    """State-dependent Gaussian from a raw ``(*, 2A)`` network output ``h`` (no parameters): ``tanh(h)``
    is split into a mean in ``[-1, 1]`` and a log-std mapped affinely into ``[log_std_min,
    log_std_max]`` (Uni-O4's actor head). ``scale``/``bias`` ``(A,)`` move the distribution to env units
    (``mean * scale + bias``, ``log_std + log(scale)``); log-prob ratios are unchanged by them."""

    scale: torch.Tensor
    bias: torch.Tensor

    def __init__(self, act_dim: int, log_std_min: float = -5.0, log_std_max: float = 0.0,
                 scale: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.act_dim, self.log_std_min, self.log_std_max = act_dim, log_std_min, log_std_max
        self.register_buffer("scale", torch.ones(act_dim) if scale is None else torch.as_tensor(scale, dtype=torch.float32).clone())
        self.register_buffer("bias", torch.zeros(act_dim) if bias is None else torch.as_tensor(bias, dtype=torch.float32).clone())

    def forward(self, h: torch.Tensor) -> DiagGaussian:
        if h.shape[-1] != 2 * self.act_dim:
            raise ValueError(f"BoundedGaussianHead expects (*, {2 * self.act_dim}) inputs, got {tuple(h.shape)}.")
        mean, raw = torch.tanh(h).chunk(2, dim=-1)
        log_std = self.log_std_min + 0.5 * (raw + 1.0) * (self.log_std_max - self.log_std_min)
        return DiagGaussian(mean * self.scale + self.bias, log_std + self.scale.log())
