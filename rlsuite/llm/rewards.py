"""Reward functions and reward shaping (pure; registry ``REWARDS``).

- SPO (minimax winner): self-play win-rate rewards from a pairwise preference matrix.
- OTC: tool-efficiency reward, granted only with a correct answer.
- IGPO (information gain): turn rewards from the model's belief in the gold answer.
- RTO: dense token rewards from a DPO model, for PPO with a critic.
"""

from __future__ import annotations

import math

import torch

from rlsuite.core.registry import Registry

REWARDS: Registry = Registry("reward function")


def spo_winrate_rewards(pref: torch.Tensor) -> torch.Tensor:
    """SPO (Swamy et al., 2024, "A Minimaximalist Approach to RLHF", arXiv:2401.04056) self-play reward:
    ``r_i = 1/(G-1) * sum_{j != i} P(y_i > y_j)`` from a pairwise preference matrix ``pref`` ``(..., G, G)``
    (``pref[..., i, j] = P(y_i beats y_j)``; the diagonal is ignored). Returns ``(..., G)``."""
    g = pref.shape[-1]
    if pref.shape[-2] != g or g < 2:
        raise ValueError(f"pref must be (..., G, G) with G >= 2, got {tuple(pref.shape)}.")
    off = pref * (1.0 - torch.eye(g, dtype=pref.dtype, device=pref.device))
    return off.sum(-1) / (g - 1)


def otc_tool_reward(m: torch.Tensor, n: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """OTC-GRPO's tool-efficiency term ("OTC: Optimal Tool Calls via Reinforcement Learning", 2025) for
    ``m`` tool calls when the fewest calls of a correct answer is ``n`` (both ``(B,)``)::

        1                         if m = n = 0
        cos(m * pi / (2m + c))    if n = 0 < m            (every call is a waste)
        sin(f(m, n) * pi / (2n))  otherwise, f(m, n) = 2 m n / (m + n)

    It peaks at 1 for ``m = n`` and decays both for too few and too many calls. The mapping ``f`` comes
    from a summary of the paper."""
    m, n = m.to(torch.float64), n.to(torch.float64)
    no_tool = torch.cos(m * math.pi / (2 * m + c))
    f = 2 * m * n / (m + n).clamp_min(1e-12)
    some_tool = torch.sin(f * math.pi / (2 * n.clamp_min(1e-12)))
    out = torch.where(n == 0, torch.where(m == 0, torch.ones_like(m), no_tool), some_tool)
    return out.clamp_min(0.0).to(torch.float32)


def otc_rewards(correct: torch.Tensor, tool_calls: torch.Tensor, group_ids: torch.Tensor, alpha: float = 1.0, c: float = 1.0) -> torch.Tensor:
    """OTC-GRPO reward ``alpha * r_tool(m, n) * correct`` ``(B,)``: ``n`` is the fewest tool calls among the
    correct completions of the same group (a group with no correct completion gets 0 everywhere: no tool
    credit without correctness)."""
    correct = correct.to(torch.float32)
    n = torch.zeros_like(tool_calls, dtype=torch.float32)
    for gid in torch.unique(group_ids):
        members = group_ids == gid
        ok = members & (correct > 0)
        if ok.any():
            n[members] = tool_calls[ok].min().to(torch.float32)
    return alpha * otc_tool_reward(tool_calls, n, c) * correct


def igpo_turn_rewards(answer_logp: torch.Tensor, outcome: torch.Tensor, turn_mask: torch.Tensor) -> torch.Tensor:
    """IGPO ("Information Gain-based Policy Optimization: A Simple and Effective Approach for Multi-Turn LLM
    Agents", 2025) turn rewards ``(B, K)``.

    Args:
        answer_logp: ``(B, K + 1)``; ``[:, k]`` is the mean log-prob of the gold answer's tokens given the
            prompt and the first ``k`` turns (teacher-forced), so ``p_k = exp(answer_logp[:, k])`` is the
            model's belief in the gold answer.
        outcome: ``(B,)`` outcome reward of the final answer (e.g. F1 or exact match).
        turn_mask: ``(B, K)`` valid turns (a prefix of each row).

    Returns:
        ``r_k = p_k - p_{k-1}`` for every valid turn but the last, the outcome on the last valid turn,
        0 on padding.
    """
    p = answer_logp.exp()
    gain = p[:, 1:] - p[:, :-1]
    valid = turn_mask.bool()
    last = valid.sum(1) - 1
    if (last < 0).any():
        raise ValueError("every trajectory needs at least one valid turn.")
    r = torch.where(valid, gain, torch.zeros_like(gain))
    r[torch.arange(r.shape[0]), last] = outcome.to(r.dtype)
    return r


def rto_token_rewards(
    dpo_logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, beta: float = 0.1, seq_reward: torch.Tensor | None = None
) -> torch.Tensor:
    """RTO (Zhong et al., 2024, "DPO Meets PPO: Reinforced Token Optimization for RLHF", arXiv:2404.18922)
    dense token rewards ``(B, T)``: ``r_t = beta * (log pi_dpo(y_t) - log pi_ref(y_t))`` on valid tokens, plus
    an optional sequence reward ``(B,)`` on each completion's last token. PPO with a critic then runs on them
    (see :func:`rlsuite.llm.advantages.token_gae`)."""
    m = mask.to(dpo_logp.dtype)
    r = beta * (dpo_logp - ref_logp) * m
    if seq_reward is not None:
        last = (m.sum(1) - 1).clamp_min(0).long()
        r = r.clone()
        r[torch.arange(r.shape[0]), last] += seq_reward.to(r.dtype)
    return r


REWARDS.register("spo_minimax", spo_winrate_rewards)
REWARDS.register("otc", otc_rewards)
REWARDS.register("igpo_infogain", igpo_turn_rewards)
REWARDS.register("rto", rto_token_rewards)
