"""Preference (direct alignment) losses on sequence log-probabilities (pure functions).

Inputs are sequence-summed log-probs ``(B,)`` of the chosen (``w``) and rejected (``l``) responses
under the policy and the frozen reference; ``h = (logp_w - ref_w) - (logp_l - ref_l)`` is the implicit
reward margin. Each function returns ``(per_pair_loss (B,), stats)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rlsuite.core.registry import Registry

PREFERENCE_LOSSES: Registry = Registry("preference loss")


def _margin(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor) -> torch.Tensor:
    return (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, dict]:
    """DPO (Rafailov et al., 2023, arXiv:2305.18290): ``-log sigmoid(beta * h)`` per pair ``(B,)``.

    ``label_smoothing`` (cDPO) mixes in ``-log sigmoid(-beta * h)`` with that weight. At initialisation
    (policy == reference) the loss is ``log 2``.
    """
    z = beta * _margin(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    loss = -(1.0 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)
    with torch.no_grad():
        stats = {"reward_margin": z.mean(), "reward_accuracy": (z > 0).float().mean()}
    return loss, stats


def ipo_loss(
    policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, tau: float = 0.1
) -> tuple[torch.Tensor, dict]:
    """IPO (Azar et al., 2023, arXiv:2310.12036): ``(h - 1 / (2 tau))^2`` per pair; minimal at ``h = 1/(2 tau)``."""
    h = _margin(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    return (h - 1.0 / (2.0 * tau)).pow(2), {}


def rpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    chosen_nll: torch.Tensor,
    beta: float = 0.1,
    eta: float = 0.005,
) -> tuple[torch.Tensor, dict]:
    """RPO (Pang et al., 2024, "Iterative Reasoning Preference Optimization", arXiv:2404.19733; TRL's
    "rpo_alpha"): DPO plus ``eta`` times the chosen response's NLL ``chosen_nll`` ``(B,)``
    (length-normalised by the caller if wanted)."""
    loss, stats = dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)
    return loss + eta * chosen_nll, stats


def xpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    ref_sample_logp: torch.Tensor,
    beta: float = 0.1,
    alpha: float = 1e-5,
) -> tuple[torch.Tensor, dict]:
    """XPO (Xie et al., 2024, "Exploratory Preference Optimization", arXiv:2405.21046): online DPO on
    judged pairs plus ``alpha * log pi_theta(y')`` for ``y' ~ pi_ref`` (``ref_sample_logp`` ``(B,)``, the
    policy's sequence log-prob of a reference sample); minimising it moves mass off the reference's
    support, which is the exploration bonus. ``alpha = 0`` is online DPO."""
    loss, stats = dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)
    return loss + alpha * ref_sample_logp, stats


def vpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    calibration_logp: torch.Tensor,
    beta: float = 0.1,
    alpha: float = 0.01,
    optimistic: bool = True,
) -> tuple[torch.Tensor, dict]:
    """VPO (Cen et al., 2024, "Value-Incentivized Preference Optimization", arXiv:2405.19320): DPO plus
    ``s * alpha * log pi_theta(y)`` for samples ``y`` of a calibration policy (``calibration_logp`` ``(B,)``);
    ``s = +1`` (optimism, online: same direction as XPO's bonus) or ``-1`` (pessimism, offline: pulls
    toward the calibration data like RPO's NLL term). (Form from our reference notes' summary.)"""
    loss, stats = dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)
    sign = 1.0 if optimistic else -1.0
    return loss + sign * alpha * calibration_logp, stats


def rso_hinge_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    gamma: float = 0.5,
) -> tuple[torch.Tensor, dict]:
    """RSO's hinge-norm loss (Liu et al., 2023, "Statistical Rejection Sampling Improves Preference
    Optimization", arXiv:2309.06657): ``max(0, 1 - gamma * h)`` per pair (SLiC-style hinge on the
    normalised log-likelihood margin); pairs come from :func:`rso_accept_prob` sampling."""
    h = _margin(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    return torch.relu(1.0 - gamma * h), {}


def rso_accept_prob(rewards: torch.Tensor, beta: float, r_max: float | None = None) -> torch.Tensor:
    """RSO rejection sampling: accept a candidate from ``pi_sft`` with probability
    ``exp((r - r_max) / beta)`` so accepted samples follow ``pi_sft * exp(r / beta)`` (normalised);
    ``r_max`` defaults to the largest reward among the candidates ``(N,)``."""
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}.")
    top = rewards.max() if r_max is None else torch.as_tensor(r_max, dtype=rewards.dtype)
    return torch.exp((rewards - top) / beta).clamp(max=1.0)


def copg_loss(
    reward_1: torch.Tensor,
    reward_2: torch.Tensor,
    logratio_1: torch.Tensor,
    logratio_2: torch.Tensor,
    beta: float = 0.1,
) -> tuple[torch.Tensor, dict]:
    """CoPG (Flet-Berliac et al., 2024, "Contrastive Policy Gradient", arXiv:2406.19185): for two
    sequences from any behaviour policy, ``(1 / (2 beta)) * (R_1 - R_2 - beta * (l_1 - l_2))^2`` with
    ``l = logp - ref_logp`` (sequence sums, ``(B,)``). With 0/1 preference rewards it is IPO with
    ``tau = beta / 2`` times ``beta / 2``."""
    d = (reward_1 - reward_2) - beta * (logratio_1 - logratio_2)
    return d.pow(2) / (2.0 * beta), {}


def trpa_levels(correct: torch.Tensor, well_formed: torch.Tensor) -> torch.Tensor:
    """TRPA's rule-based preference levels ``(B,)``: ``2 * correct + well_formed`` (0 = wrong and malformed,
    3 = correct and well formed)."""
    return 2 * correct.long() + well_formed.long()


def trpa_pairs(levels: torch.Tensor, group_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every cross-level pair within a group: indices ``(chosen, rejected)``, each ``(P,)``, with
    ``levels[chosen] > levels[rejected]`` and both in the same group."""
    same = group_ids.unsqueeze(1) == group_ids.unsqueeze(0)
    better = levels.unsqueeze(1) > levels.unsqueeze(0)
    chosen, rejected = torch.nonzero(same & better, as_tuple=True)
    return chosen, rejected


def trpa_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    kl_old: torch.Tensor | None = None,
    beta_chosen: float = 0.1,
    beta_rejected: float = 0.1,
    alpha: float = 0.0,
) -> tuple[torch.Tensor, dict]:
    """TRPA ("Trust Region Preference Approximation: A simple and stable reinforcement learning algorithm for
    LLM reasoning", 2025):
    ``-log sigmoid(beta_w * (logp - ref)(y_w) - beta_l * (logp - ref)(y_l)) + alpha * KL(pi_old || pi)``
    on pairs from :func:`trpa_pairs` (sequence sums ``(B,)``; ``kl_old`` a scalar estimate of the KL to the
    rollout policy, e.g. the token mean of :func:`rlsuite.llm.kl.kl_estimate`). ``beta_w != beta_l`` is the
    paper's anisotropic variant; with ``beta_w = beta_l`` and ``alpha = 0`` it is DPO. The coefficients
    come from a summary of the paper, not its code."""
    z = beta_chosen * (policy_chosen - ref_chosen) - beta_rejected * (policy_rejected - ref_rejected)
    loss = -F.logsigmoid(z)
    if kl_old is not None and alpha:
        loss = loss + alpha * kl_old
    return loss, {"reward_accuracy": (z.detach() > 0).float().mean()}


PREFERENCE_LOSSES.register("dpo", dpo_loss)
PREFERENCE_LOSSES.register("ipo", ipo_loss)
PREFERENCE_LOSSES.register("rpo", rpo_loss)
PREFERENCE_LOSSES.register("xpo", xpo_loss)
PREFERENCE_LOSSES.register("vpo", vpo_loss)
PREFERENCE_LOSSES.register("rso", rso_hinge_loss)
PREFERENCE_LOSSES.register("copg", copg_loss)
PREFERENCE_LOSSES.register("trpa", trpa_loss)
