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


def _bapo_contributions(ratio: torch.Tensor, a: torch.Tensor, mask: torch.Tensor, c_lo: float, c_hi: float) -> tuple[float, float]:
    eff = torch.where(a >= 0, ratio.clamp(max=c_hi), ratio.clamp(min=c_lo)) * a * mask
    return float(eff.clamp(min=0).sum()), float((-eff).clamp(min=0).sum())


def bapo_bounds(
    ratio: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    lower: tuple[float, float] = (0.6, 0.9),
    upper: tuple[float, float] = (1.2, 3.0),
    target_share: float = 0.5,
    step_lower: float = 0.02,
    step_upper: float = 0.05,
) -> tuple[float, float, float]:
    """BAPO's adaptive ratio bounds ("BAPO: Stabilizing Off-Policy Reinforcement Learning for LLMs via
    Balanced Policy Optimization with Adaptive Clipping", 2025).

    The clipped contribution of a token is ``min(rho, c_hi) * A`` where ``A >= 0`` and ``max(rho, c_lo) * A``
    where ``A < 0``. Starting from ``(c_lo, c_hi) = (lower[0], upper[0])``, ``c_lo`` is raised in steps of
    ``step_lower`` (up to ``lower[1]``), then ``c_hi`` in steps of ``step_upper`` (up to ``upper[1]``), until
    the positive share ``P / (P + N)`` of the contributions reaches ``target_share`` (the paper's ``rho_0``;
    the authors' verl recipe states the same rule as a target ratio ``P / N``).

    Args:
        ratio: ``(B, T)`` importance ratios ``pi / pi_old`` (detached).
        adv: ``(B, T)`` advantages.
        mask: ``(B, T)`` valid tokens.

    Returns:
        ``(c_lo, c_hi, share)``: the bounds and the positive share they reach.
    """
    if not (0.0 < lower[0] <= lower[1] <= 1.0 <= upper[0] <= upper[1]) or not 0.0 <= target_share <= 1.0:
        raise ValueError(f"need 0 < lower[0] <= lower[1] <= 1 <= upper[0] <= upper[1] and target_share in [0, 1]; "
                         f"got lower={lower}, upper={upper}, target_share={target_share}.")
    ratio, a, m = ratio.detach(), adv.detach(), mask.to(ratio.dtype)

    def share(c_lo: float, c_hi: float) -> float:
        pos, neg = _bapo_contributions(ratio, a, m, c_lo, c_hi)
        return 1.0 if pos + neg == 0 else pos / (pos + neg)

    c_lo, c_hi = lower[0], upper[0]
    s = share(c_lo, c_hi)
    while s < target_share and c_lo < lower[1] and step_lower > 0:
        c_lo = min(c_lo + step_lower, lower[1])
        s = share(c_lo, c_hi)
    while s < target_share and c_hi < upper[1] and step_upper > 0:
        c_hi = min(c_hi + step_upper, upper[1])
        s = share(c_lo, c_hi)
    return c_lo, c_hi, s


def bapo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    lower: tuple[float, float] = (0.6, 0.9),
    upper: tuple[float, float] = (1.2, 3.0),
    target_share: float = 0.5,
    dual_clip: float | None = 3.0,
) -> tuple[torch.Tensor, dict]:
    """BAPO: PPO clip with the bounds of :func:`bapo_bounds` chosen for this batch,
    ``-min(rho A, clip(rho, c_lo, c_hi) A)``, plus the dual clip ``-max(., dual_clip * A)`` on ``A < 0``.

    The bounds come from the whole batch passed in: call it on the full batch (or pass bounds found on
    it) so that micro-batching does not change them. Stats report the chosen bounds."""
    a = _tok(adv, logp)
    ratio = torch.exp(logp - old_logp)
    c_lo, c_hi, s = bapo_bounds(ratio, a, mask, lower, upper, target_share)
    loss = -torch.min(ratio * a, ratio.clamp(c_lo, c_hi) * a)
    if dual_clip is not None:
        loss = torch.where(a < 0, torch.minimum(loss, -dual_clip * a), loss)
    with torch.no_grad():
        clipped = (ratio < c_lo) | (ratio > c_hi)
        stats = {"clip_fraction": _masked_fraction(clipped, mask), "c_lo": c_lo, "c_hi": c_hi, "positive_share": s}
    return loss, stats


def drpo_decoupled_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    rewards: torch.Tensor,
    mask: torch.Tensor,
    group_ids: torch.Tensor,
    max_len: int,
    tau: float = 1.0,
    length_temperature: float = 0.1,
    beta: float = 1e3,
    delta: float = 1e-4,
) -> tuple[torch.Tensor, dict]:
    """DRPO ("DRPO: Efficient Reasoning via Decoupled Reward Policy Optimization", 2025; built on
    DisCO). Not DR-PO (dataset reset), see :class:`rlsuite.llm.samplers.DatasetResetSampler`.

    Score ``s(y) = mean_t logp_t``. In each group with at least one correct (``r = 1``) and one wrong
    (``r = 0``) completion::

        J_g = sum_{y+} w(y+) s(y+) - tau * log mean_{y-} exp(s(y-) / tau)
        w  = softmax over the correct completions of (1 - |y+| / max_len) / length_temperature

    so shorter correct answers weigh more without ever being pushed below a wrong one (the length signal is
    decoupled from the negatives). The loss is ``-sum_g J_g / (number of groups)`` plus the trust-region
    penalty ``sg[max(0, beta * (KL - delta))] * KL`` with ``KL`` the masked token mean of the k3 estimate of
    ``KL(pi_old || pi)``. Inputs: ``logp``, ``old_logp``, ``mask`` ``(B, T)``; ``rewards``, ``group_ids``
    ``(B,)``. Returns the scalar loss (``(,)``) and stats. Checked against the authors' verl code.
    """
    if length_temperature <= 0 or tau <= 0:
        raise ValueError(f"tau and length_temperature must be > 0, got {tau}, {length_temperature}.")
    m = mask.to(logp.dtype)
    lengths = m.sum(1)
    score = (logp * m).sum(1) / lengths.clamp_min(1.0)
    log_ratio = logp - old_logp
    kl = ((torch.exp(log_ratio) - 1.0 - log_ratio) * m).sum() / m.sum().clamp_min(1.0)
    uniq = torch.unique(group_ids)
    objective = logp.new_zeros(())
    n_valid = 0
    for gid in uniq:
        members = group_ids == gid
        pos, neg = members & (rewards == 1), members & (rewards == 0)
        if not pos.any() or not neg.any():
            continue
        n_valid += 1
        w = torch.softmax((1.0 - lengths[pos] / max_len) / length_temperature, 0)
        neg_s = score[neg] / tau
        log_mean_exp = torch.logsumexp(neg_s, 0) - torch.log(torch.tensor(float(neg_s.numel()), dtype=logp.dtype))
        objective = objective + (w * score[pos]).sum() - tau * log_mean_exp
    penalty = torch.clamp(beta * (kl - delta), min=0.0).detach() * kl
    loss = -objective / len(uniq) + penalty
    return loss, {"kl_old": kl.detach(), "valid_groups": n_valid / len(uniq)}


def grao_loss(
    seq_logp: torch.Tensor,
    adv: torch.Tensor,
    ref_answer_logp: torch.Tensor,
    ref_answer_adv: torch.Tensor,
    group_ids: torch.Tensor,
    answer_group_ids: torch.Tensor,
    imitation_weight: float = 1.0,
    alignment_weight: float = 0.1,
) -> tuple[torch.Tensor, dict]:
    """GRAO ("Group Relative Alignment Optimization", 2025; an ICLR 2026 submission, withdrawn).

    Three terms on length-normalised sequence log-probs (all ``(B,)`` for samples, ``(P,)`` for the one
    reference answer ``y*`` of each group, matched through the group ids)::

        explore   = -mean_i A_i * s(y_i)
        imitate   = -imitation_weight * mean_g A*_g * s(y*_g)
        align     =  alignment_weight * mean_i relu(s(y_i) - s(y*_g(i)))  (samples never above y*)

    ``A*`` is the advantage of the reference answer in its group (its reward normalised with the group's).
    Only a summary of the paper's objective was available: the exact form of the alignment regulariser
    is our reconstruction (a hinge keeping every sample's score below the reference answer's).
    """
    pos = {int(g): i for i, g in enumerate(answer_group_ids.tolist())}
    if set(pos) != set(torch.unique(group_ids).tolist()):
        raise ValueError("every group needs exactly one reference answer: answer_group_ids must match the groups.")
    ref_of_sample = ref_answer_logp[torch.tensor([pos[int(g)] for g in group_ids.tolist()], device=seq_logp.device)]
    explore = -(adv * seq_logp).mean()
    imitate = -imitation_weight * (ref_answer_adv * ref_answer_logp).mean()
    align = alignment_weight * torch.relu(seq_logp - ref_of_sample).mean()
    return explore + imitate + align, {"explore": explore.detach(), "imitate": imitate.detach(), "align": align.detach()}


POLICY_LOSSES.register("reinforce", reinforce_loss)
POLICY_LOSSES.register("ppo_clip", ppo_clip_loss)
POLICY_LOSSES.register("sapo", sapo_loss)
POLICY_LOSSES.register("gspo", gspo_loss)
POLICY_LOSSES.register("cispo", cispo_loss)
POLICY_LOSSES.register("p3o_pairwise", p3o_loss)
POLICY_LOSSES.register("bapo", bapo_loss)
POLICY_LOSSES.register("drpo_decoupled", drpo_decoupled_loss)
POLICY_LOSSES.register("grao", grao_loss)
