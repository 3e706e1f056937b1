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


PREFERENCE_LOSSES.register("dpo", dpo_loss)
PREFERENCE_LOSSES.register("ipo", ipo_loss)
PREFERENCE_LOSSES.register("rpo", rpo_loss)
