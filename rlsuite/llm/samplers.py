"""Which prompts to roll out, which samples and tokens to train on (registry ``SAMPLERS``).

- D3S: keep the highest-variance samples of each group and the top ``|A| * entropy`` tokens.
- VADE: Thompson sampling of prompts from a Beta posterior on each prompt's success rate.
- Selective sample buffer (Skywork R1V2): keep non-zero-advantage groups and refill with them.
- ExPO: answer-conditioned self-explanations as positives for groups with no correct sample.
- DR-PO: dataset reset, starting some rollouts from a prefix of a preferred response.
- CAPO (curvature): mask tokens whose predicted contribution to the update's KL is largest.

Stateful samplers expose ``state_dict`` / ``load_state_dict`` (tensors and plain numbers only).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import torch

from rlsuite.core.registry import Registry

SAMPLERS: Registry = Registry("sampler")


def max_variance_subset(values: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` entries of ``values`` ``(G,)`` whose (population) variance is largest.

    The optimum always takes the ``j`` smallest and the ``k - j`` largest values for some ``j``, so the
    search is over ``k + 1`` candidates, not all subsets.
    """
    g = values.numel()
    if not 1 <= k <= g:
        raise ValueError(f"k must be in [1, {g}], got {k}.")
    order = torch.argsort(values)
    best, best_var = None, -1.0
    for j in range(k + 1):
        idx = torch.cat([order[:j], order[g - (k - j) :]]) if k - j > 0 else order[:j]
        var = float(values[idx].var(unbiased=False))
        if var > best_var:
            best, best_var = idx, var
    assert best is not None
    return torch.sort(best).values


def d3s_sample_mask(adv: torch.Tensor, group_ids: torch.Tensor, keep: int) -> torch.Tensor:
    """D3S sample level (2025): in each group keep the ``keep``
    rollouts whose advantages have the largest variance (the extremes). Returns a bool mask ``(B,)``.
    (Rule from our reference notes' summary; the schedule of ``keep`` is the caller's.)"""
    mask = torch.zeros_like(adv, dtype=torch.bool)
    for gid in torch.unique(group_ids):
        members = torch.nonzero(group_ids == gid).squeeze(-1)
        k = min(keep, members.numel())
        mask[members[max_variance_subset(adv[members], k)]] = True
    return mask


def d3s_token_mask(adv: torch.Tensor, entropy: torch.Tensor, mask: torch.Tensor, keep_fraction: float) -> torch.Tensor:
    """D3S token level: keep the top ``keep_fraction`` of valid tokens by ``|A_i| * H_t``.

    Args:
        adv: ``(B,)`` sequence advantages.
        entropy: ``(B, T)`` per-token policy entropy.
        mask: ``(B, T)`` valid tokens.
        keep_fraction: in ``(0, 1]``.

    Returns:
        bool ``(B, T)``, a subset of ``mask``.
    """
    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}.")
    valid = mask.bool()
    score = (adv.abs().unsqueeze(-1) * entropy).masked_fill(~valid, float("-inf"))
    n_keep = max(1, int(round(keep_fraction * int(valid.sum()))))
    top = torch.topk(score.flatten(), n_keep).indices
    out = torch.zeros(score.numel(), dtype=torch.bool, device=score.device)
    out[top] = True
    return out.view_as(valid) & valid


@dataclasses.dataclass(frozen=True)
class D3SSchedule:
    """D3S ("Dynamic Dual-level Down-Sampling", 2025) curriculum: from aggressive down-sampling to none.

    Over ``anneal_steps`` steps, the samples kept per group grow linearly from ``keep_start`` to the group
    size and the kept token fraction from ``token_fraction_start`` to 1. The linear shape is our choice:
    only a summary of the schedule was available.
    """

    keep_start: int = 4
    token_fraction_start: float = 0.2
    anneal_steps: int = 100

    def masks(self, adv: torch.Tensor, group_ids: torch.Tensor, entropy: torch.Tensor, mask: torch.Tensor, step: int):
        """Sample mask ``(B,)`` and token mask ``(B, T)`` for training step ``step``."""
        g = int(torch.bincount(torch.unique(group_ids, return_inverse=True)[1]).max())
        frac = min(1.0, step / max(1, self.anneal_steps))
        keep = min(g, round(self.keep_start + frac * (g - self.keep_start)))
        sample = d3s_sample_mask(adv, group_ids, keep)
        p = self.token_fraction_start + frac * (1.0 - self.token_fraction_start)
        tokens = d3s_token_mask(adv, entropy, mask.bool() & sample.unsqueeze(-1), p)
        return sample, tokens


class VadeSampler:
    """VADE ("Variance-Aware Dynamic Sampling via Online Sample-Level Difficulty Estimation", 2025).

    Each prompt ``i`` has a Beta(``a_i``, ``b_i``) posterior on its success rate. :meth:`select` draws
    ``p_i ~ Beta`` (Thompson sampling) and takes the prompts with the largest ``p_i (1 - p_i)``, the
    variance of a binary reward, which is largest (most informative for a group method) at ``p = 0.5``.
    :meth:`update` adds the new successes and failures after a *two-scale prior decay*: every step all
    posteriors relax towards the prior by ``global_decay``, and a prompt's old evidence is scaled by
    ``visit_decay`` when it is rolled out again (the policy has changed since). The two decay rules are
    our reconstruction from the paper's summary.
    """

    def __init__(self, num_prompts: int, prior: tuple[float, float] = (1.0, 1.0), visit_decay: float = 0.5,
                 global_decay: float = 0.99, seed: int = 0) -> None:
        if num_prompts < 1 or min(prior) <= 0 or not (0 < visit_decay <= 1 and 0 < global_decay <= 1):
            raise ValueError(f"need num_prompts >= 1, positive prior, decays in (0, 1]; got {num_prompts}, {prior}, "
                             f"{visit_decay}, {global_decay}.")
        self.prior = prior
        self.visit_decay, self.global_decay = visit_decay, global_decay
        self.alpha = torch.full((num_prompts,), float(prior[0]), dtype=torch.float64)
        self.beta = torch.full((num_prompts,), float(prior[1]), dtype=torch.float64)
        self.gen = torch.Generator().manual_seed(seed)

    def select(self, k: int) -> torch.Tensor:
        """Indices ``(k,)`` of the prompts to roll out next."""
        if not 1 <= k <= self.alpha.numel():
            raise ValueError(f"k must be in [1, {self.alpha.numel()}], got {k}.")
        with torch.random.fork_rng(devices=[]):  # torch's Beta sampler takes no generator: seed it from ours
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=self.gen)))
            x = torch.distributions.Beta(self.alpha, self.beta).sample()
        return torch.topk(x * (1 - x), k).indices

    def update(self, prompt_ids: torch.Tensor, correct: torch.Tensor, total: torch.Tensor) -> None:
        """Record ``correct`` successes out of ``total`` rollouts for each prompt in ``prompt_ids`` (all ``(k,)``)."""
        a0, b0 = self.prior
        self.alpha = a0 + self.global_decay * (self.alpha - a0)
        self.beta = b0 + self.global_decay * (self.beta - b0)
        ids = prompt_ids.long()
        self.alpha[ids] = a0 + self.visit_decay * (self.alpha[ids] - a0) + correct.double()
        self.beta[ids] = b0 + self.visit_decay * (self.beta[ids] - b0) + (total - correct).double()

    def mean(self) -> torch.Tensor:
        """Posterior mean success rate per prompt ``(N,)``."""
        return self.alpha / (self.alpha + self.beta)

    def state_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha.clone(), "beta": self.beta.clone(), "generator": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.alpha, self.beta = state["alpha"].clone(), state["beta"].clone()
        self.gen.set_state(state["generator"])


class SelectiveSampleBuffer:
    """Selective sample buffer (Skywork R1V2, 2025): groups whose advantages are not all zero are kept,
    and when too few samples of a batch carry a gradient, the zero-advantage groups are replaced by
    buffered ones drawn with probability proportional to their mean ``|A|``.

    Items are opaque (whatever the trainer needs to recompute log-probs); the buffer holds at most
    ``capacity`` items and drops the oldest first.
    """

    def __init__(self, capacity: int = 256, min_informative_share: float = 0.5, seed: int = 0) -> None:
        if capacity < 1 or not 0.0 <= min_informative_share <= 1.0:
            raise ValueError(f"need capacity >= 1 and min_informative_share in [0, 1]; got {capacity}, {min_informative_share}.")
        self.capacity, self.min_share = capacity, min_informative_share
        self.items: list[Any] = []
        self.priorities: list[float] = []
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.items)

    def push(self, items: Sequence[Any], group_advantages: Sequence[torch.Tensor]) -> int:
        """Store the items whose group advantages are not all zero; returns how many were stored."""
        stored = 0
        for item, adv in zip(items, group_advantages, strict=True):
            priority = float(adv.abs().mean())
            if priority > 0:
                self.items.append(item)
                self.priorities.append(priority)
                stored += 1
        overflow = len(self.items) - self.capacity
        if overflow > 0:
            del self.items[:overflow], self.priorities[:overflow]
        return stored

    def needs_refill(self, adv: torch.Tensor) -> bool:
        """True when the share of samples with a non-zero advantage ``(B,)`` is below ``min_informative_share``."""
        return float((adv != 0).float().mean()) < self.min_share

    def draw(self, n: int) -> list[Any]:
        """Up to ``n`` distinct buffered items, drawn with probability proportional to their priority; drawn
        items leave the buffer (each is replayed once)."""
        picked: list[Any] = []
        for _ in range(min(n, len(self.items))):
            i = self.rng.choices(range(len(self.items)), weights=self.priorities)[0]
            picked.append(self.items.pop(i))
            self.priorities.pop(i)
        return picked


def expo_positives(
    prompts: Sequence[str],
    answers: Sequence[str],
    group_rewards: torch.Tensor,
    explain: Callable[[list[str], list[str]], list[str]],
    is_correct: Callable[[str, str], float],
) -> dict[int, str]:
    """ExPO ("ExPO: Unlocking Hard Reasoning with Self-Explanation-Guided Reinforcement Learning", 2025):
    for each prompt whose group has no correct sample (``group_rewards`` ``(P, G)``), ask the policy for an
    explanation conditioned on the ground-truth answer (``explain(prompts, answers)`` returns completions
    generated from a hint prompt that contains the answer), strip the hint (the completion is scored and
    trained as a reply to the plain prompt) and keep it when it is correct for the plain prompt.

    Returns ``{prompt index: explanation}``; the trainer swaps each into its group in place of a wrong
    sample (ExP-GRPO) or uses it as the chosen response against a wrong one (ExP-DPO).
    """
    stuck = [i for i in range(len(prompts)) if float(group_rewards[i].max()) <= 0]
    if not stuck:
        return {}
    texts = explain([prompts[i] for i in stuck], [answers[i] for i in stuck])
    return {i: t for i, t in zip(stuck, texts, strict=True) if is_correct(prompts[i], t) > 0}


class DatasetResetSampler:
    """DR-PO dataset reset (Chang et al., 2024, "Dataset Reset Policy Optimization for RLHF",
    arXiv:2404.08495): with probability ``reset_prob`` a rollout starts not from the prompt but from the
    prompt followed by a random prefix ``y*[:h]`` (``h`` uniform in ``[0, len(y*))``) of a preferred
    offline response; the policy generates the rest and the reward scores ``prefix + generation``.
    Log-probs and gradients cover the generated tokens only.
    """

    def __init__(self, reset_prob: float = 0.5, seed: int = 0) -> None:
        if not 0.0 <= reset_prob <= 1.0:
            raise ValueError(f"reset_prob must be in [0, 1], got {reset_prob}.")
        self.reset_prob = reset_prob
        self.rng = random.Random(seed)

    def prefix(self, preferred: str) -> str:
        """The prefix of ``preferred`` to start from ('' = an ordinary rollout from the prompt)."""
        if not preferred or self.rng.random() >= self.reset_prob:
            return ""
        return preferred[: self.rng.randrange(len(preferred))]

    def state_dict(self) -> dict[str, Any]:
        return {"rng": list(self.rng.getstate()[1]), "rng_version": self.rng.getstate()[0], "gauss": self.rng.getstate()[2]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.setstate((state["rng_version"], tuple(state["rng"]), state["gauss"]))


def capo_curvature_contributions(
    features: torch.Tensor, probs: torch.Tensor, tokens: torch.Tensor, adv: torch.Tensor, lr: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each token's share of the predicted KL of one policy-gradient step, under a last-layer model.

    With logits ``z = W h``, one SGD step of size ``lr`` on ``mean_t A_t log pi(y_t | h_t)`` moves the logits
    at every position ``s`` by ``dz_s = (lr / N) sum_t A_t (e_{y_t} - p_t) (h_t . h_s)``; the KL between the
    policies before and after is, to second order, ``KL = 1/(2N) sum_s dz_s^T F_s dz_s`` with the softmax
    Fisher ``F_s = diag(p_s) - p_s p_s^T``. That quadratic form splits exactly into per-token shares
    ``c_t`` with ``KL = 1/2 sum_t c_t``.

    Args:
        features: ``(N, H)`` last hidden states feeding the LM head (valid tokens only).
        probs: ``(N, V)`` policy probabilities at those positions.
        tokens: ``(N,)`` sampled tokens.
        adv: ``(N,)`` advantages.
        lr: the step size of the model.

    Returns:
        ``(c, kl)``: shares ``(N,)`` and the predicted KL (scalar).
    """
    n = features.shape[0]
    g = -probs.clone()
    g[torch.arange(n), tokens] += 1.0  # d log p(y) / dz
    ag = adv.unsqueeze(-1) * g
    kernel = features @ features.T
    dz = (lr / n) * kernel @ ag  # (N, V)
    f_dz = probs * dz - probs * (probs * dz).sum(-1, keepdim=True)  # F_s dz_s
    # c_t = (1/N) sum_s dz_s^T F_s dz_s^(t),  dz_s^(t) = (lr/N) A_t g_t (h_t . h_s)
    c = (lr / n) / n * (ag * (kernel @ f_dz)).sum(-1)
    kl = 0.5 * c.sum()
    return c, kl


def capo_curvature_mask(
    features: torch.Tensor, probs: torch.Tensor, tokens: torch.Tensor, adv: torch.Tensor, lr: float,
    max_kl: float, max_reject_fraction: float = 0.1,
) -> tuple[torch.Tensor, dict]:
    """CAPO, curvature-aware policy optimisation (2025): mask the tokens that would push the update
    outside a trust region. Tokens are rejected in decreasing order of their KL share
    (:func:`capo_curvature_contributions`) until the predicted KL of the remaining ones is at most
    ``max_kl`` or ``max_reject_fraction`` of the tokens are rejected. The paper's own curvature tracker
    was not available to us: this last-layer Fisher model is our reconstruction of the idea.

    Returns a keep mask ``(N,)`` and stats (predicted KL before and after, rejected fraction).
    """
    c, kl_before = capo_curvature_contributions(features, probs, tokens, adv, lr)
    keep = torch.ones_like(adv, dtype=torch.bool)
    budget = int(math.floor(max_reject_fraction * adv.numel()))
    kl_after = kl_before
    if float(kl_before) > max_kl and budget > 0:
        for i in torch.argsort(c, descending=True)[:budget].tolist():
            keep[i] = False
            # a masked token keeps its place in the batch mean (global denominators) with a zero advantage
            kl_after = capo_curvature_contributions(features, probs, tokens, adv * keep, lr)[1]
            if float(kl_after) <= max_kl:
                break
    return keep, {"kl_before": float(kl_before), "kl_after": float(kl_after), "rejected": float((~keep).float().mean())}


SAMPLERS.register("d3s", D3SSchedule)
SAMPLERS.register("vade", VadeSampler)
SAMPLERS.register("selective_sample_buffer", SelectiveSampleBuffer)
SAMPLERS.register("expo", expo_positives)
SAMPLERS.register("drpo_dataset_reset", DatasetResetSampler)
SAMPLERS.register("capo_curvature", capo_curvature_mask)
