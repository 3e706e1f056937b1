"""Networks: MLP, ensembles evaluated in one batched call, parameter-update helpers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,  # negative slope 0.01 (torch's default)
}


def activation(name: str) -> nn.Module:
    """Instantiate an activation by name (relu, tanh, elu, silu, gelu, leaky_relu)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; allowed: {', '.join(ACTIVATIONS)}.") from None


def orthogonal_init(layer: nn.Linear, gain: float = math.sqrt(2.0), bias: float = 0.0) -> nn.Linear:
    """Orthogonal weights and constant bias, the usual PPO initialisation."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.constant_(layer.bias, bias)
    return layer


class MLP(nn.Module):
    """Fully connected network ``in_dim -> hidden... -> out_dim``.

    Args:
        in_dim: input features.
        out_dim: output features.
        hidden: sizes of the hidden layers.
        act: activation name between layers (none after the last).
        ortho_init: orthogonal init with gain sqrt(2) on hidden layers and ``out_gain`` on the last
            (PPO); otherwise torch's default init (SAC).
        out_gain: gain of the last layer under ``ortho_init``.

    Shapes: ``(*, in_dim) -> (*, out_dim)``.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (256, 256),
        act: str = "relu",
        ortho_init: bool = False,
        out_gain: float = 1.0,
    ) -> None:
        super().__init__()
        dims = [in_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            lin = nn.Linear(a, b)
            if ortho_init:
                orthogonal_init(lin)
            layers += [lin, activation(act)]
        last = nn.Linear(dims[-1], out_dim)
        if ortho_init:
            orthogonal_init(last, gain=out_gain)
        layers.append(last)
        self.net = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class EnsembleLinear(nn.Module):
    """``size`` independent linear layers applied in one batched matmul.

    Shapes: ``(in_features)`` batch ``(B, in)`` is broadcast to every member, or ``(size, B, in)`` gives
    each member its own input; output ``(size, B, out)``.
    """

    def __init__(self, size: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.size, self.in_features, self.out_features = size, in_features, out_features
        self.weight = nn.Parameter(torch.empty(size, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(size, 1, out_features))
        # Same distribution as nn.Linear's default init, member by member.
        bound = 1.0 / math.sqrt(in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.expand(self.size, *x.shape)
        if x.dim() != 3 or x.shape[0] != self.size:
            raise ValueError(
                f"EnsembleLinear expects (B, {self.in_features}) or ({self.size}, B, {self.in_features}), got {tuple(x.shape)}."
            )
        return torch.baddbmm(self.bias, x, self.weight)

    def extra_repr(self) -> str:
        return f"size={self.size}, in_features={self.in_features}, out_features={self.out_features}"


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the last dimension with a scale and shift per member: ``(size, B, dim) -> (size, B, dim)``."""

    def __init__(self, size: int, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size, 1, dim))
        self.bias = nn.Parameter(torch.zeros(size, 1, dim))
        self.dim, self.eps = dim, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.layer_norm(x, (self.dim,), eps=self.eps) * self.weight + self.bias


class EnsembleMLP(nn.Module):
    """``size`` MLPs with the same architecture, evaluated together.

    ``layer_norm``: a LayerNorm (per-member scale and shift) after every hidden linear layer, before the
    activation, as RLPD's critics have.

    Shapes: ``(B, in_dim)`` (shared input) or ``(size, B, in_dim)`` -> ``(size, B, out_dim)``.
    """

    def __init__(self, size: int, in_dim: int, out_dim: int, hidden: Sequence[int] = (256, 256), act: str = "relu",
                 layer_norm: bool = False) -> None:
        super().__init__()
        dims = [in_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            layers += [EnsembleLinear(size, a, b), *([EnsembleLayerNorm(size, b)] if layer_norm else []), activation(act)]
        layers.append(EnsembleLinear(size, dims[-1], out_dim))
        self.net = nn.Sequential(*layers)
        self.size, self.in_dim, self.out_dim, self.hidden, self.act = size, in_dim, out_dim, tuple(hidden), act
        self.layer_norm = layer_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @torch.no_grad()
    def member(self, i: int) -> MLP:
        """Member ``i`` as a stand-alone :class:`MLP` (a copy): ``(*, in_dim) -> (*, out_dim)``."""
        if not 0 <= i < self.size:
            raise IndexError(f"member {i} out of range for an ensemble of {self.size}.")
        if self.layer_norm:
            raise ValueError("member() copies plain MLPs; an ensemble with layer_norm has no MLP equivalent.")
        lins = [m for m in self.net if isinstance(m, EnsembleLinear)]
        mlp = MLP(self.in_dim, self.out_dim, self.hidden, self.act)
        for src, dst in zip(lins, [m for m in mlp.net if isinstance(m, nn.Linear)], strict=True):
            dst.weight.copy_(src.weight[i].T)
            dst.bias.copy_(src.bias[i, 0])
        return mlp.to(lins[0].weight.device)

    @torch.no_grad()
    def copy_member_(self, i: int, source: EnsembleMLP) -> None:
        """Overwrite member ``i`` with ``source``'s member ``i`` (same architecture)."""
        for dst, src in zip(self.parameters(), source.parameters(), strict=True):
            dst[i].copy_(src[i])


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging ``target <- (1 - tau) * target + tau * source`` in one fused call."""
    t_params = list(target.parameters())
    s_params = list(source.parameters())
    torch._foreach_lerp_(t_params, s_params, tau)


def adam(params, lr: float, eps: float = 1e-8) -> torch.optim.Adam:
    """Adam with the fused kernel where torch provides it (CPU and CUDA), else the default one."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, eps=eps)
