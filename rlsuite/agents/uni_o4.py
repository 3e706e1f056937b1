"""Uni-O4 building blocks (Lei et al., ICLR 2024): ensemble behaviour cloning with a disagreement term,
the offline clipped objective, the AM-Q offline policy evaluation and the accept-if-improved rule.

Status: these pieces are pure functions with tests; the full agent (dynamics ensemble, the offline
multi-step improvement loop, the online PPO phase) and its CLI are not built yet.

Ensemble BC (:func:`ensemble_bc_loss`): for member ``i``,
``-(log pi_i(a|s) + alpha (log pi_i(a|s) - max_{j != i} log pi_j(a|s)))`` with ``alpha = 0.1``. The
authors' code treats the max as a constant (its default "heuristic" mode): the term then only rescales
member ``i``'s own BC gradient by ``1 + alpha`` and diversity comes from random initialisation alone.
Here the max keeps its gradient by default (``detach_max=False``), so the objective acts as written:
each member's term also lowers the likelihood of its strongest competitor on every sample, coupling
the members (tested: the gradients differ from the reference mode exactly there). Whether that yields
more diverse members depends on the data; the reference notes a KL "distribution" mode for explicit
repulsion, not built. ``detach_max=True`` reproduces the reference code.

Offline improvement uses PPO's clipped surrogate (:func:`rlsuite.agents.ppo.ppo_policy_loss`) with the
member's behaviour reference as the "old" policy and advantages ``Q(s, a) - V(s)`` normalised over the
batch (:func:`normalized_advantage`).

AM-Q (:func:`am_q`): roll the deterministic policy for ``horizon`` steps in a learned model from start
states of the dataset, drop trajectories once the termination function fires, and average ``Q(s_t,
pi(s_t))`` over all visited states (the code's mean; the paper writes a sum). :class:`AcceptIfImproved`
replaces the behaviour reference only when the AM-Q score beats the best so far.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def ensemble_bc_loss(log_probs: torch.Tensor, alpha: float = 0.1, detach_max: bool = False) -> torch.Tensor:
    """Summed member losses for ``log_probs (n, B)`` (member ``i``'s log-likelihood of the batch's
    actions); see the module docstring. ``n >= 2``."""
    n = log_probs.shape[0]
    if n < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {n}.")
    eye = torch.eye(n, dtype=torch.bool, device=log_probs.device)[:, :, None]  # (n, n, 1)
    others = log_probs[None].expand(n, -1, -1).masked_fill(eye, float("-inf"))  # row i: every member but i
    best_other = others.max(dim=1).values  # (n, B)
    if detach_max:
        best_other = best_other.detach()
    per_member = -(log_probs + alpha * (log_probs - best_other)).mean(dim=1)
    return per_member.sum()


def normalized_advantage(q: torch.Tensor, v: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``(Q - V)`` standardised over the batch ``(B,)``; carries no gradient."""
    a = (q - v).detach()
    return (a - a.mean()) / (a.std(unbiased=False) + eps)


@torch.no_grad()
def am_q(policy: Callable[[torch.Tensor], torch.Tensor], model_step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
         q_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], start_states: torch.Tensor, horizon: int,
         is_terminal: Callable[[torch.Tensor], torch.Tensor] | None = None) -> float:
    """Mean of ``q_fn(s_t, policy(s_t))`` over the states visited by ``horizon``-step model rollouts from
    ``start_states (N, obs)`` (``model_step(s, a) -> s'``); a trajectory stops counting once
    ``is_terminal(s')`` is True."""
    s = start_states
    alive = torch.ones(s.shape[0], dtype=torch.bool, device=s.device)
    total, count = 0.0, 0
    for _ in range(horizon):
        a = policy(s)
        q = q_fn(s, a)
        total += float(q[alive].sum())
        count += int(alive.sum())
        s = model_step(s, a)
        if is_terminal is not None:
            alive = alive & ~is_terminal(s)
        if not bool(alive.any()):
            break
    return total / max(count, 1)


class AcceptIfImproved:
    """Uni-O4's rule for replacing a member's behaviour reference: accept a candidate only when its
    OPE score is strictly higher than the best accepted so far (the initial score counts as accepted)."""

    def __init__(self, initial_score: float) -> None:
        self.best = float(initial_score)
        self.accepted = 0
        self.rejected = 0

    def __call__(self, score: float) -> bool:
        if score > self.best:
            self.best = float(score)
            self.accepted += 1
            return True
        self.rejected += 1
        return False
