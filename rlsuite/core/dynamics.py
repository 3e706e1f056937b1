"""A probabilistic ensemble of learned dynamics models (PETS / MBPO / MOBILE style).

Each of ``members`` Gaussian MLPs maps ``(s, a)`` to a mean and log-variance of ``(s' - s, r)``; inputs
and targets are standardised with the training data's statistics (held as buffers). Training minimises
the Gaussian negative log-likelihood of every member on its own shuffle of the data, with learned soft
bounds on the log-variance and an L2 penalty per layer, and stops early on a hold-out set: after
``patience`` epochs in which no member's hold-out error improved by more than 1 %, every member returns
to its best epoch and the ``elites`` members with the lowest hold-out error are kept for prediction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from rlsuite.core.nets import EnsembleLinear, EnsembleMLP


class DynamicsEnsemble(nn.Module):
    """``members`` Gaussian models of ``(s' - s, r)`` given ``(s, a)``; see the module docstring.

    Shapes: :meth:`forward` ``(B, obs + act)`` or ``(members, B, obs + act)`` (standardised inputs) ->
    mean and log-variance ``(members, B, obs + 1)`` (standardised targets); :meth:`step` ``obs (B, obs),
    act (B, act), member (B,)`` -> ``next_obs (B, obs), reward (B,)`` in data units.
    """

    def __init__(self, obs_dim: int, act_dim: int, members: int = 7, elites: int = 5, hidden: Sequence[int] = (200, 200, 200, 200),
                 act: str = "silu") -> None:
        super().__init__()
        if not 1 <= elites <= members:
            raise ValueError(f"elites must be in [1, members={members}], got {elites}.")
        self.obs_dim, self.act_dim, self.members, self.n_elites = obs_dim, act_dim, members, elites
        out = obs_dim + 1
        self.net = EnsembleMLP(members, obs_dim + act_dim, 2 * out, hidden, act)
        self.max_logvar = nn.Parameter(torch.full((out,), 0.5))
        self.min_logvar = nn.Parameter(torch.full((out,), -10.0))
        for name, dim in (("in_mean", obs_dim + act_dim), ("out_mean", out)):
            self.register_buffer(name, torch.zeros(dim))
        self.register_buffer("in_std", torch.ones(obs_dim + act_dim))
        self.register_buffer("out_std", torch.ones(out))
        self.register_buffer("elites", torch.arange(elites))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, raw = self.net(x).chunk(2, dim=-1)
        logvar = self.max_logvar - F.softplus(self.max_logvar - raw)
        return mean, self.min_logvar + F.softplus(logvar - self.min_logvar)

    def nll(self, x: torch.Tensor, y: torch.Tensor, weight_decay: Sequence[float]) -> torch.Tensor:
        """Summed member losses on standardised ``x (members, B, in)``, ``y (members, B, out)``."""
        mean, logvar = self(x)
        loss = (((mean - y) ** 2) * torch.exp(-logvar) + logvar).mean(dim=(1, 2)).sum()
        loss = loss + 0.01 * (self.max_logvar.sum() - self.min_logvar.sum())
        lins = [m for m in self.net.net if isinstance(m, EnsembleLinear)]
        for j, lin in enumerate(lins):
            loss = loss + weight_decay[min(j, len(weight_decay) - 1)] * 0.5 * lin.weight.pow(2).sum()
        return loss

    @torch.no_grad()
    def step(self, obs: torch.Tensor, act: torch.Tensor, member: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean prediction of model ``member[b]`` for each row ``b``."""
        x = (torch.cat([obs, act], -1) - self.in_mean) / self.in_std
        mean, _ = self(x)  # (members, B, out)
        pick = mean.gather(0, member.view(1, -1, 1).expand(1, -1, mean.shape[-1]))[0]
        delta = pick * self.out_std + self.out_mean
        return obs + delta[:, :-1], delta[:, -1]

    def fit(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor, rew: torch.Tensor, generator: torch.Generator,
            holdout: float = 0.1, max_holdout: int = 5000, batch_size: int = 256, lr: float = 1e-3,
            weight_decay: Sequence[float] = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4), patience: int = 5, max_epochs: int = 200,
            log: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, float]:
        """Train on transitions ``obs (N, obs), act (N, act), next_obs (N, obs), rew (N,)``; returns the
        epochs run and the elites' mean hold-out MSE (standardised targets)."""
        n = obs.shape[0]
        if n < 10:
            raise ValueError(f"a dynamics model needs at least 10 transitions, got {n}.")
        x = torch.cat([obs, act], -1)
        y = torch.cat([next_obs - obs, rew[:, None]], -1)
        perm = torch.randperm(n, generator=generator).to(obs.device)
        n_hold = max(1, min(int(n * holdout), max_holdout))
        hold, train = perm[:n_hold], perm[n_hold:]
        with torch.no_grad():
            self.in_mean.copy_(x[train].mean(0))
            self.in_std.copy_(x[train].std(0).clamp_min(1e-6))
            self.out_mean.copy_(y[train].mean(0))
            self.out_std.copy_(y[train].std(0).clamp_min(1e-6))
        xs, ys = (x - self.in_mean) / self.in_std, (y - self.out_mean) / self.out_std
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        best = torch.full((self.members,), float("inf"), device=obs.device)
        snapshot = {k: v.detach().clone() for k, v in self.state_dict().items()}
        stale, epoch = 0, 0
        while epoch < max_epochs and stale < patience:
            order = torch.stack([train[torch.randperm(len(train), generator=generator).to(obs.device)] for _ in range(self.members)])
            for start in range(0, len(train), batch_size):
                idx = order[:, start : start + batch_size]
                loss = self.nll(xs[idx], ys[idx], weight_decay)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            epoch += 1
            with torch.no_grad():
                mse = ((self(xs[hold])[0] - ys[hold]) ** 2).mean(dim=(1, 2))
            improved = mse < 0.99 * best
            if bool(improved.any()):
                stale = 0
                state = self.state_dict()
                for i in improved.nonzero().flatten().tolist():
                    for k, v in state.items():
                        if k.startswith("net."):
                            snapshot[k][i].copy_(v[i])
                best = torch.where(improved, mse, best)
            else:
                stale += 1
            if log is not None:
                log(epoch, {"holdout_mse": float(mse.mean()), "best_holdout_mse": float(best.mean())})
        for k, v in self.state_dict().items():
            if k.startswith("net."):
                v.copy_(snapshot[k])
        with torch.no_grad():
            self.elites.copy_(best.argsort()[: self.n_elites])
        return {"epochs": float(epoch), "elite_holdout_mse": float(best[self.elites].mean())}
