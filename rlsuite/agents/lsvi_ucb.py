"""LSVI-UCB and DR-LSVI-UCB: optimistic least-squares value iteration, nominal and distributionally robust.

The value-based baselines of DR-RPO (:mod:`rlsuite.agents.dr_rpo`), on the same linear-feature envs
(:mod:`rlsuite.core.linear_rl`) and the same episodes:

- **LSVI-UCB** (``lsvi-ucb``; Jin, Yang, Wang and Jordan, "Provably efficient reinforcement learning with
  linear function approximation", COLT 2020): ``Q_h(s, a) = r(s, a) + clip(phi^T w_h + beta sqrt(phi^T Lambda_h^-1 phi),
  0, H - h - 1)`` with ``w_h = Lambda_h^-1 sum phi V_{h+1}(s')`` and ``V_{h+1}(s') = max_a Q_{h+1}(s', a)``; the policy
  is greedy. The reward function is known (the env shows ``r(s, a)`` of every action), as in the paper.
- **DR-LSVI-UCB** (``dr-lsvi-ucb``; Liu and Xu, "Distributionally robust off-dynamics reinforcement learning:
  provable efficiency with linear function approximation", AISTATS 2024): the same loop on the robust Bellman
  operator of the d-rectangular TV set: ``Q_h(s, a) = r(s, a) + clip(phi^T (nu_h + beta sqrt(diag Lambda_h^-1)), 0, H - h - 1)``
  with ``nu_h`` the TV dual per factor over an alpha grid of regressions of ``min(V_{h+1}, alpha)`` (as DR-RPO's
  steps 2-3, :func:`rlsuite.agents.dr_rpo.robust_q_coefficients` without its per-coefficient clip) and the
  d-rectangular bonus ``beta sum_i phi_i sqrt(e_i^T Lambda^-1 e_i)``.

Implementation details: ``num_envs`` episodes per update (the papers: 1), all acting greedily (ties to the
lowest action; ``act(deterministic=False)`` is greedy too: exploration comes from the bonus alone); the
continuation value is clipped to ``[0, H - h - 1]`` per state-action pair; ``min_s V`` over the visited next
states. The weights ``w_h`` (``nu_h`` for the robust one) and ``Lambda_h^-1`` are kept, ``(H, d)`` and ``(H, d, d)``,
so the greedy policy is computed for any state.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import torch
from torch import nn

from rlsuite.agents.registry import AGENTS, AgentSpec
from rlsuite.core.linear_rl import (
    LinearEpisodicAgent,
    alpha_grid,
    elliptical_bonus,
    factor_bonus,
    ridge_regression,
    tv_dual,
)
from rlsuite.core.seeding import resolve_device


@dataclasses.dataclass(frozen=True)
class LSVIUCBConfig:
    """LSVI-UCB settings (defaults: ours, measured on rlsuite/LinearMDP-v0; docs/dr_rpo.md)."""

    num_envs: int = 8
    """Episodes per update, run in parallel (the paper: 1)."""
    beta: float = 3.0
    """Scale of the UCB bonus (of the order of the values: it must make an untried action look worth trying)."""
    ridge: float = 1.0
    """Ridge lambda_r added to the Gram matrix."""

    def __post_init__(self) -> None:
        if self.num_envs < 1 or self.beta < 0 or self.ridge <= 0:
            raise ValueError(f"need num_envs >= 1, beta >= 0 and ridge > 0; got {self.num_envs}, {self.beta}, {self.ridge}.")

    @property
    def robust(self) -> bool:
        return False


@dataclasses.dataclass(frozen=True)
class DRLSVIUCBConfig(LSVIUCBConfig):
    """DR-LSVI-UCB settings: LSVI-UCB on the d-rectangular TV-robust Bellman operator (defaults: ours)."""

    rho: float = 0.2
    """Radius of the total-variation ball around each factor."""
    alpha_grid: int = 20
    """Points of the alpha grid of the TV dual (from min V to max V, both included)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rho < 0 or self.alpha_grid < 2:
            raise ValueError(f"need rho >= 0 and alpha_grid >= 2, got rho={self.rho}, alpha_grid={self.alpha_grid}.")

    @property
    def robust(self) -> bool:
        return True


def optimistic_q(phi: torch.Tensor, reward: torch.Tensor, w: torch.Tensor, lambda_inv: torch.Tensor, beta: float,
                 cap: torch.Tensor | float, robust: bool) -> torch.Tensor:
    """``Q = r + clip(phi^T w + bonus, 0, cap)``.

    Args:
        phi: ``(..., A, d)`` features; ``reward``: ``(..., A)``.
        w: ``(..., d)``; ``lambda_inv``: ``(..., d, d)``.
        beta: bonus scale: the elliptical bonus ``beta sqrt(phi^T Lambda^-1 phi)`` (LSVI-UCB) or, with ``robust``, the
            d-rectangular ``beta phi^T sqrt(diag Lambda^-1)``.
        cap: ``H - h - 1``, a number or ``(...)``.

    Returns:
        ``(..., A)``.
    """
    mean = torch.einsum("...ad,...d->...a", phi, w)
    if robust:
        bonus = torch.einsum("...ad,...d->...a", phi, torch.diagonal(lambda_inv, dim1=-2, dim2=-1).clamp_min(0).sqrt())
    else:
        bonus = torch.einsum("...ad,...de,...ae->...a", phi, lambda_inv, phi).clamp_min(0).sqrt()
    cap = cap if isinstance(cap, torch.Tensor) else mean.new_tensor(cap)
    return reward + torch.minimum((mean + beta * bonus).clamp_min(0.0), cap[..., None] if cap.ndim else cap)


class _Greedy(nn.Module):
    """``obs (B, A (d + 1) + 1) -> (B,)`` int64: the greedy action of the optimistic ``Q`` (what export writes)."""

    def __init__(self, w: torch.Tensor, lambda_inv: torch.Tensor, beta: float, robust: bool, n_actions: int, dim: int,
                 horizon: int) -> None:
        super().__init__()
        self.register_buffer("w", w.to(torch.float32).clone())
        self.register_buffer("lambda_inv", lambda_inv.to(torch.float32).clone())
        self.beta, self.robust = float(beta), bool(robust)
        self.n_actions, self.dim, self.horizon = n_actions, dim, horizon

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        rows = obs[:, : self.n_actions * (self.dim + 1)].reshape(obs.shape[0], self.n_actions, self.dim + 1)
        h = obs[:, -1].round().clamp(0, self.horizon - 1).to(torch.int64)
        cap = (self.horizon - 1 - h).to(obs.dtype)
        return optimistic_q(rows[..., : self.dim], rows[..., self.dim], self.w[h], self.lambda_inv[h], self.beta, cap,
                            self.robust).argmax(-1)


class LSVIUCB(LinearEpisodicAgent):
    """LSVI-UCB / DR-LSVI-UCB (see the module docstring; which one: ``config.robust``).

    Args:
        config: :class:`LSVIUCBConfig` or :class:`DRLSVIUCBConfig`.
        observation_space, action_space: a linear-feature env's single spaces.
        device: where the episodes and the weights live.
    """

    def __init__(self, config: LSVIUCBConfig, observation_space: gym.Space, action_space: gym.Space,
                 device: str | torch.device = "cpu") -> None:
        self.algo = "dr-lsvi-ucb" if config.robust else "lsvi-ucb"
        super().__init__(config, observation_space, action_space, resolve_device(device))
        H, d = self.horizon, self.dim
        self.w = torch.zeros(H, d, dtype=torch.float64, device=self.device)
        eye = torch.eye(d, dtype=torch.float64, device=self.device) / config.ridge
        self.lambda_inv = eye.expand(H, d, d).clone()  # no data yet: Lambda = ridge I

    # ------------------------------------------------------------------ acting
    def q_values(self, phi: torch.Tensor, reward: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``(B, A)`` optimistic ``Q`` for ``phi`` ``(B, A, d)``, ``reward`` ``(B, A)`` and ``h`` ``(B,)``."""
        cap = (self.horizon - 1 - h).to(torch.float64)
        return optimistic_q(phi, reward, self.w[h], self.lambda_inv[h], self.config.beta, cap, self.config.robust)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Greedy actions ``(B,)`` int64 (both modes; LSVI-UCB explores through its bonus)."""
        return self.q_values(*self.features(obs)).argmax(-1)

    def sample(self, obs: torch.Tensor) -> torch.Tensor:
        return self.act(obs)

    def deploy_module(self) -> nn.Module:
        """``obs -> greedy action`` for export."""
        return _Greedy(self.w, self.lambda_inv, self.config.beta, self.config.robust, self.n_actions, self.dim, self.horizon).eval()

    # ------------------------------------------------------------------ the update
    @torch.no_grad()
    def update(self) -> dict[str, float]:
        """Backward induction over every episode kept: new ``w`` and ``Lambda^-1`` per step."""
        cfg, H, data = self.config, self.horizon, self.data
        w, lambda_inv = torch.zeros_like(self.w), torch.zeros_like(self.lambda_inv)
        for h in reversed(range(H)):
            phi = data.phi[h]
            if h + 1 < H:
                v_next = optimistic_q(data.next_phi[h], data.next_reward[h], w[h + 1], lambda_inv[h + 1], cfg.beta,
                                      float(H - h - 2), cfg.robust).max(-1).values
            else:
                v_next = torch.zeros(data.n, dtype=torch.float64, device=self.device)
            if cfg.robust:
                alphas = alpha_grid(v_next, cfg.alpha_grid)
                coef, lambda_inv[h] = ridge_regression(phi, torch.minimum(v_next[None, :], alphas[:, None]), cfg.ridge)
                w[h] = tv_dual(coef, alphas, v_next.min(), cfg.rho)
            else:
                w[h], lambda_inv[h] = ridge_regression(phi, v_next, cfg.ridge)
        self.w, self.lambda_inv = w, lambda_inv
        stats = {"bonus_mean": float(cfg.beta * factor_bonus(lambda_inv[0]).mean())}
        if self._first is not None:
            phi0, r0 = self._first
            q0 = self.q_values(phi0, r0, torch.zeros(phi0.shape[0], dtype=torch.int64, device=self.device))
            stats["value_start"] = float(q0.max(-1).values.mean())
            stats["bonus_start"] = float((cfg.beta * elliptical_bonus(phi0, lambda_inv[0])).mean())
        return stats

    # ------------------------------------------------------------------ state
    def weights(self) -> dict[str, torch.Tensor]:
        return {"w": self.w.clone(), "lambda_inv": self.lambda_inv.clone()}

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        self.w = weights["w"].to(self.device, torch.float64).clone()
        self.lambda_inv = weights["lambda_inv"].to(self.device, torch.float64).clone()


def _build(cfg: LSVIUCBConfig, obs_space: gym.Space, act_space: gym.Space, device: torch.device, seed: int) -> LSVIUCB:
    return LSVIUCB(cfg, obs_space, act_space, device)


_LSVI = AgentSpec(
    name="lsvi-ucb", config_cls=LSVIUCBConfig, agent_cls=LSVIUCB, learns_from="env", build=_build,
    summary="LSVI-UCB: optimistic least-squares value iteration with linear features (non-robust baseline of DR-RPO; "
            "rlsuite/LinearMDP-v0, rlsuite/PutOption-v0)",
    default_env="rlsuite/LinearMDP-v0",
    presets={"rlsuite/PutOption-v0": dict(beta=1.0)},
)
AGENTS.register("lsvi-ucb", _LSVI)
AGENTS.register("dr-lsvi-ucb", dataclasses.replace(
    _LSVI, name="dr-lsvi-ucb", config_cls=DRLSVIUCBConfig,
    summary="DR-LSVI-UCB: LSVI-UCB on the d-rectangular TV-robust Bellman operator (value-based robust baseline of DR-RPO)",
    presets={"rlsuite/PutOption-v0": dict(beta=0.1)},  # a larger bonus swamps the TV penalty there (docs/dr_rpo.md)
))
