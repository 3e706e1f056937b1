"""On-policy rollout storage and GAE / TD(lambda) returns that bootstrap truncations.

Convention used throughout the suite: at step ``t`` the agent saw ``obs[t]``, took ``actions[t]``, got
``rewards[t]`` and the env reported ``terminated[t]`` / ``truncated[t]``. ``next_obs[t]`` is the *true*
next observation: the env's ``info["final_obs"]`` when the episode ended at ``t`` (before the autoreset),
otherwise the observation returned by ``step``. With ``next_values[t] = V(next_obs[t])``::

    delta_t = r_t + gamma * (1 - terminated_t) * next_values_t - values_t
    A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1},   done_t = terminated_t or truncated_t

so a truncated (timed-out) episode bootstraps from the value of its final observation while a
terminated one does not, and no advantage leaks across an episode boundary.

:func:`vtrace` computes the off-policy targets of IMPALA (Espeholt et al., 2018) with the same convention,
for data collected by a behaviour policy ``mu`` other than the policy ``pi`` being trained.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over a ``(T, N)`` rollout.

    Args:
        rewards: ``(T, N)`` rewards.
        values: ``(T, N)`` V(obs[t]).
        next_values: ``(T, N)`` V(next_obs[t]), next_obs being the final observation where the episode ended.
        terminated: ``(T, N)`` bool, true end of the MDP (no bootstrap).
        truncated: ``(T, N)`` bool, time limit or other cut (bootstrap from ``next_values``).
        gamma: discount.
        gae_lambda: GAE lambda; 1 gives Monte-Carlo-with-bootstrap, 0 gives one-step TD.

    Returns:
        ``(advantages, returns)``, both ``(T, N)``; ``returns = advantages + values`` are the TD(lambda) targets.
    """
    if not (rewards.shape == values.shape == next_values.shape == terminated.shape == truncated.shape):
        raise ValueError(
            "compute_gae needs equal (T, N) shapes, got rewards "
            f"{tuple(rewards.shape)}, values {tuple(values.shape)}, next_values {tuple(next_values.shape)}, "
            f"terminated {tuple(terminated.shape)}, truncated {tuple(truncated.shape)}."
        )
    not_term = 1.0 - terminated.to(rewards.dtype)
    not_done = 1.0 - (terminated | truncated).to(rewards.dtype)
    deltas = rewards + gamma * not_term * next_values - values
    decay = gamma * gae_lambda * not_done
    adv = torch.empty_like(rewards)
    last = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        last = deltas[t] + decay[t] * last
        adv[t] = last
    return adv, adv + values


class VTraceReturns(NamedTuple):
    """What :func:`vtrace` returns; every field ``(T, N)``."""

    vs: torch.Tensor
    """``v_s``, the V-trace value targets."""
    advantages: torch.Tensor
    """``r_s + gamma * v_{s+1} - V(x_s)``: the policy-gradient advantage before its importance weight (for a surrogate
    whose ratio ``pi / mu`` is that weight, as PPO's clipped one with ``mu`` as the old policy)."""
    pg_advantages: torch.Tensor
    """``min(pg_rho_bar, rho_s) * advantages``: the paper's policy-gradient advantage (``-pg_advantages * log pi(a_s)``)."""
    rhos: torch.Tensor
    """``rho_s = pi(a_s | x_s) / mu(a_s | x_s)``, unclipped."""


def vtrace(
    behaviour_logp: torch.Tensor,
    target_logp: torch.Tensor,
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
    rho_bar: float = 1.0,
    c_bar: float = 1.0,
    pg_rho_bar: float | None = None,
    lam: float = 1.0,
) -> VTraceReturns:
    """V-trace targets over a ``(T, N)`` rollout of a behaviour policy ``mu`` (Espeholt et al., "IMPALA", ICML 2018, eq. 1).

    With ``rho_t = min(rho_bar, pi/mu)``, ``c_t = lam * min(c_bar, pi/mu)`` and
    ``delta_t = rho_t * (r_t + gamma * (1 - terminated_t) * next_values_t - values_t)``::

        v_s - V(x_s) = delta_s + gamma * (1 - done_s) * c_s * (v_{s+1} - V(x_{s+1})),   v_T - V(x_T) = 0

    i.e. ``v_s = V(x_s) + sum_t gamma^(t-s) (prod_{i<t} c_i) delta_t`` within the episode. The next state's target
    that the advantage uses is ``v_{s+1}`` inside the rollout and the bootstrap value ``next_values_s`` where the
    rollout or the episode ends (a truncation bootstraps, a termination does not, as in :func:`compute_gae`).
    On-policy (``pi == mu``, ``rho_bar, c_bar >= 1``) ``v_s`` are the TD(lambda) returns of :func:`compute_gae`, and
    with ``lam = 1`` ``advantages`` are its GAE(1) advantages (n-step returns bootstrapped at the rollout's end; given
    ``next_values_t = values_{t+1}`` within an episode, as a rollout has them).

    Args:
        behaviour_logp: ``(T, N)`` log mu(a_t | x_t), recorded when acting.
        target_logp: ``(T, N)`` log pi(a_t | x_t) under the policy being trained (no gradient flows through the targets).
        rewards, values, next_values, terminated, truncated: ``(T, N)``, as for :func:`compute_gae` (``values`` and
            ``next_values`` from the current critic).
        gamma: discount.
        rho_bar: truncation of the importance weight in ``delta_t`` (the paper: 1).
        c_bar: truncation of the trace coefficients ``c_t`` (the paper: 1).
        pg_rho_bar: truncation of the weight of ``pg_advantages`` (None: ``rho_bar``).
        lam: the paper's lambda in ``c_t`` (1: none).

    Returns:
        :class:`VTraceReturns` ``(vs, advantages, pg_advantages, rhos)``, every field ``(T, N)`` and detached.
    """
    shapes = {n: tuple(t.shape) for n, t in (("behaviour_logp", behaviour_logp), ("target_logp", target_logp), ("rewards", rewards),
                                             ("values", values), ("next_values", next_values), ("terminated", terminated),
                                             ("truncated", truncated))}
    if len(set(shapes.values())) != 1 or len(shapes["rewards"]) != 2:
        raise ValueError(f"vtrace needs equal (T, N) shapes, got {shapes}.")
    if min(rho_bar, c_bar) <= 0 or (pg_rho_bar is not None and pg_rho_bar <= 0) or not 0.0 <= lam <= 1.0:
        raise ValueError(f"vtrace needs rho_bar, c_bar, pg_rho_bar > 0 and lam in [0, 1], got {rho_bar}, {c_bar}, {pg_rho_bar}, {lam}.")
    with torch.no_grad():
        rhos = (target_logp - behaviour_logp).exp()
        not_term = 1.0 - terminated.to(rewards.dtype)
        not_done = 1.0 - (terminated | truncated).to(rewards.dtype)
        deltas = rhos.clamp(max=rho_bar) * (rewards + gamma * not_term * next_values - values)
        decay = gamma * not_done * lam * rhos.clamp(max=c_bar)
        vs_minus_v = torch.empty_like(rewards)
        last = torch.zeros_like(rewards[0])
        for t in range(rewards.shape[0] - 1, -1, -1):
            last = deltas[t] + decay[t] * last
            vs_minus_v[t] = last
        vs = values + vs_minus_v
        # the next state's target: v_{s+1} where the episode goes on inside the rollout, else the bootstrap value
        next_vs = next_values.clone()
        next_vs[:-1] = torch.where(not_done[:-1].bool(), vs[1:], next_values[:-1])
        advantages = rewards + gamma * not_term * next_vs - values
        pg_weight = rhos.clamp(max=rho_bar if pg_rho_bar is None else pg_rho_bar)
        return VTraceReturns(vs, advantages, pg_weight * advantages, rhos)


class RolloutStorage:
    """Preallocated ``(T, N, ...)`` tensors for one on-policy rollout, kept on ``device``.

    Args:
        num_steps: ``T``, steps per env per rollout.
        num_envs: ``N``.
        obs_shape: single observation shape.
        action_shape: single action shape (``()`` for discrete).
        device: where every tensor lives.
        action_dtype: ``torch.int64`` for discrete actions, float otherwise.
        mask_width: ``n`` to keep the env's ``info["action_mask"]`` per step in ``action_masks``
            ``(T, N, n)`` bool (the mask of ``obs[t]``), ``None`` for envs without masks.
    """

    def __init__(
        self,
        num_steps: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...],
        device: torch.device,
        action_dtype: torch.dtype = torch.float32,
        mask_width: int | None = None,
    ) -> None:
        T, N = num_steps, num_envs
        self.num_steps, self.num_envs = T, N
        z = dict(device=device)
        self.obs = torch.zeros((T, N, *obs_shape), **z)
        self.next_obs = torch.zeros((T, N, *obs_shape), **z)
        self.actions = torch.zeros((T, N, *action_shape), dtype=action_dtype, **z)
        self.logp = torch.zeros((T, N), **z)
        self.rewards = torch.zeros((T, N), **z)
        self.values = torch.zeros((T, N), **z)
        self.next_values = torch.zeros((T, N), **z)
        self.terminated = torch.zeros((T, N), dtype=torch.bool, **z)
        self.truncated = torch.zeros((T, N), dtype=torch.bool, **z)
        self.advantages = torch.zeros((T, N), **z)
        self.returns = torch.zeros((T, N), **z)
        self.action_masks = None if mask_width is None else torch.ones((T, N, mask_width), dtype=torch.bool, **z)

    def insert(
        self,
        t: int,
        obs: torch.Tensor,
        action: torch.Tensor,
        logp: torch.Tensor,
        value: torch.Tensor,
        reward: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        action_mask: torch.Tensor | None = None,
    ) -> None:
        """Write step ``t`` (every argument ``(N, ...)``; ``action_mask`` ``(N, n)`` bool, the mask ``action``
        was drawn under, required when the storage keeps masks)."""
        self.obs[t] = obs
        self.actions[t] = action
        self.logp[t] = logp
        self.values[t] = value
        self.rewards[t] = reward
        self.next_obs[t] = next_obs
        self.terminated[t] = terminated
        self.truncated[t] = truncated
        if self.action_masks is not None:
            if action_mask is None:
                raise ValueError("this storage keeps action masks (mask_width was given); pass action_mask to insert().")
            self.action_masks[t] = action_mask

    def compute_returns(self, next_values: torch.Tensor, gamma: float, gae_lambda: float) -> None:
        """Fill ``advantages`` and ``returns`` given ``next_values`` ``(T, N)`` = V(next_obs)."""
        self.next_values.copy_(next_values)
        adv, ret = compute_gae(self.rewards, self.values, next_values, self.terminated, self.truncated, gamma, gae_lambda)
        self.advantages.copy_(adv)
        self.returns.copy_(ret)

    def minibatches(self, num_minibatches: int) -> Iterator[dict[str, torch.Tensor]]:
        """Shuffle the ``T * N`` samples (global torch RNG) and yield ``num_minibatches`` flat batches
        (with ``action_masks`` ``(B, n)`` when the storage keeps masks)."""
        total = self.num_steps * self.num_envs
        if num_minibatches < 1 or total % num_minibatches:
            raise ValueError(
                f"num_minibatches={num_minibatches} must divide num_steps * num_envs = {total}; "
                "pick a divisor so every minibatch has the same size."
            )
        flat = {
            "obs": self.obs.flatten(0, 1),
            "actions": self.actions.flatten(0, 1),
            "logp": self.logp.flatten(),
            "values": self.values.flatten(),
            "advantages": self.advantages.flatten(),
            "returns": self.returns.flatten(),
        }
        if self.action_masks is not None:
            flat["action_masks"] = self.action_masks.flatten(0, 1)
        if num_minibatches == 1:  # one full batch per epoch: the order does not matter, skip the gather
            yield flat
            return
        perm = torch.randperm(total).to(self.obs.device)
        size = total // num_minibatches
        for start in range(0, total, size):
            idx = perm[start : start + size]
            yield {k: v[idx] for k, v in flat.items()}
