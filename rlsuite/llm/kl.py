"""Per-token KL estimators between the policy and a reference, from sampled tokens (pure functions).

With ``u = ref_logp - logp`` on tokens sampled from the policy (Schulman, "Approximating KL
Divergence", 2020):

* ``k1 = -u``: unbiased for KL(pi || ref); as a *loss* its expected gradient is zero.
* ``k2 = u^2 / 2``: biased, low variance; as a loss (samples held fixed) its gradient is exactly the
  gradient of KL(pi || ref).
* ``k3 = exp(u) - u - 1``: unbiased for KL(pi || ref) and non-negative (GRPO's choice).
"""

from __future__ import annotations

import torch

KL_ESTIMATORS = ("k1", "k2", "k3")


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k3") -> torch.Tensor:
    """Per-token KL estimate ``(B, T)`` from log-probs of the sampled tokens under policy and reference."""
    u = ref_logp - logp
    if kind == "k1":
        return -u
    if kind == "k2":
        return 0.5 * u.pow(2)
    if kind == "k3":
        return torch.expm1(u) - u
    raise ValueError(f"unknown KL estimator {kind!r}; allowed: {', '.join(KL_ESTIMATORS)}.")


def kl_shaped_rewards(
    rewards: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, beta: float, kind: str = "k1"
) -> torch.Tensor:
    """KL in the reward (as in PPO-RLHF, P3O, RTO): ``r - beta * sum_t kl_t`` over each completion's valid
    tokens. ``rewards`` ``(B,)``; ``logp``, ``ref_logp``, ``mask`` ``(B, T)`` (log-probs are detached: the
    penalty is a reward, not a loss). Returns ``(B,)``."""
    kl = kl_estimate(logp.detach(), ref_logp.detach(), kind) * mask.to(logp.dtype)
    return rewards.to(kl.dtype) - beta * kl.sum(1).to(rewards.device)
