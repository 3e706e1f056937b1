"""Policy-gradient losses for language models (pure functions).

Inputs are per-token: ``logp``, ``old_logp`` ``(B, T)`` (log-probs of the sampled tokens under the
current and the behaviour policy), ``adv`` ``(B,)`` or ``(B, T)``, ``mask`` ``(B, T)``. Each function
returns ``(per_token_loss (B, T), stats)``; the caller reduces with
:func:`rlsuite.llm.aggregation.aggregate` so that global denominators stay in one place.
"""

from __future__ import annotations

import torch

from rlsuite.core.registry import Registry

POLICY_LOSSES: Registry = Registry("policy loss")


def _tok(adv: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return adv.unsqueeze(-1).expand_as(like) if adv.dim() == 1 else adv


def _masked_fraction(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(x.dtype)
    return (x.to(m.dtype) * m).sum() / m.sum().clamp_min(1.0)


def reinforce_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """REINFORCE: ``-A * logp`` per token (``old_logp`` unused; kept for a common signature)."""
    return -_tok(adv, logp) * logp, {}


def ppo_clip_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float = 0.2,
    eps_high: float | None = None,
) -> tuple[torch.Tensor, dict]:
    """PPO clip per token (GRPO's policy term; DAPO's clip-higher with ``eps_high > eps_low``):
    ``-min(rho * A, clip(rho, 1 - eps_low, 1 + eps_high) * A)``, ``rho = exp(logp - old_logp)``."""
    eps_high = eps_low if eps_high is None else eps_high
    a = _tok(adv, logp)
    ratio = torch.exp(logp - old_logp)
    loss = -torch.min(ratio * a, ratio.clamp(1.0 - eps_low, 1.0 + eps_high) * a)
    with torch.no_grad():
        clipped = (ratio < 1.0 - eps_low) | (ratio > 1.0 + eps_high)
        stats = {"clip_fraction": _masked_fraction(clipped, mask)}
    return loss, stats


def sapo_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, tau_pos: float = 1.0, tau_neg: float = 1.05
) -> tuple[torch.Tensor, dict]:
    """SAPO ("Soft Adaptive Policy Optimization", Qwen team, 2025): a smooth gate
    replaces the hard clip, ``-f(rho) * A`` with ``f(rho) = (4 / tau) * sigmoid(tau * (rho - 1))``,
    ``tau = tau_pos`` where ``A > 0`` else ``tau_neg``. The gate's slope is exactly 1 at ``rho = 1``.
    (Formula as summarised in our reference notes.)"""
    a = _tok(adv, logp)
    tau = torch.where(a > 0, torch.full_like(a, tau_pos), torch.full_like(a, tau_neg))
    ratio = torch.exp(logp - old_logp)
    return -(4.0 / tau) * torch.sigmoid(tau * (ratio - 1.0)) * a, {}


def gspo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float = 3e-4,
    eps_high: float = 4e-4,
) -> tuple[torch.Tensor, dict]:
    """GSPO (Zheng et al., 2025, arXiv:2507.18071): a sequence-level ratio
    ``s_i = exp(mean_t (logp - old_logp))`` clipped to ``[1 - eps_low, 1 + eps_high]``;
    per-sequence loss ``-min(s_i A_i, clip(s_i) A_i)``, written onto every token of the sequence so that
    ``seq-mean-token-mean`` aggregation gives ``mean_i loss_i``. ``adv`` must be ``(B,)``."""
    if adv.dim() != 1:
        raise ValueError(f"GSPO uses one advantage per sequence: adv must be (B,), got {tuple(adv.shape)}.")
    m = mask.to(logp.dtype)
    mean_log_ratio = ((logp - old_logp) * m).sum(1) / m.sum(1).clamp_min(1.0)
    s = torch.exp(mean_log_ratio)
    seq_loss = -torch.min(s * adv, s.clamp(1.0 - eps_low, 1.0 + eps_high) * adv)
    with torch.no_grad():
        stats = {"clip_fraction": ((s < 1.0 - eps_low) | (s > 1.0 + eps_high)).float().mean()}
    return seq_loss.unsqueeze(-1).expand_as(logp), stats


def cispo_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, eps_max: float = 5.0
) -> tuple[torch.Tensor, dict]:
    """CISPO (MiniMax-M1, 2025, arXiv:2506.13585): clip the importance weight, keep every token's
    gradient: ``-sg[min(rho, eps_max)] * A * logp``."""
    ratio = torch.exp(logp - old_logp).detach()
    return -ratio.clamp(max=eps_max) * _tok(adv, logp) * logp, {}


def p3o_loss(
    seq_logp_1: torch.Tensor,
    seq_old_logp_1: torch.Tensor,
    seq_logp_2: torch.Tensor,
    seq_old_logp_2: torch.Tensor,
    reward_1: torch.Tensor,
    reward_2: torch.Tensor,
    eps: float = 0.2,
    clip: str = "joint",
) -> tuple[torch.Tensor, dict]:
    """P3O (Wu et al., 2023, "Pairwise Proximal Policy Optimization", arXiv:2310.00212) on pairs of
    completions of the same prompt (all inputs ``(B,)``, sequence sums): ``D = r_1 - r_2``,
    ``q = [pi(y_1)/pi_old(y_1)] / [pi(y_2)/pi_old(y_2)]``; ``joint``: ``-1/2 min(D q, D clip(q, 1-eps, 1+eps))``;
    ``separate``: each sequence ratio clipped on its own. Invariant to a per-prompt reward shift.
    Returns the per-pair loss ``(B,)``."""
    d = reward_1 - reward_2
    lr1, lr2 = seq_logp_1 - seq_old_logp_1, seq_logp_2 - seq_old_logp_2
    if clip == "joint":
        q = torch.exp(lr1 - lr2)
        loss = -0.5 * torch.min(d * q, d * q.clamp(1.0 - eps, 1.0 + eps))
    elif clip == "separate":
        r1, r2 = torch.exp(lr1), torch.exp(lr2)
        term1 = torch.min(d * r1, d * r1.clamp(1.0 - eps, 1.0 + eps))
        term2 = torch.min(-d * r2, -d * r2.clamp(1.0 - eps, 1.0 + eps))
        loss = -0.5 * (term1 + term2)
    else:
        raise ValueError(f"unknown P3O clip mode {clip!r}; allowed: joint, separate.")
    return loss, {}


POLICY_LOSSES.register("reinforce", reinforce_loss)
POLICY_LOSSES.register("ppo_clip", ppo_clip_loss)
POLICY_LOSSES.register("sapo", sapo_loss)
POLICY_LOSSES.register("gspo", gspo_loss)
POLICY_LOSSES.register("cispo", cispo_loss)
POLICY_LOSSES.register("p3o", p3o_loss)
