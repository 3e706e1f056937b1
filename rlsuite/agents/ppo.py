"""Proximal Policy Optimization (PPO), clipped objective, discrete and continuous actions.

Paper: Schulman et al., "Proximal Policy Optimization Algorithms", 2017 (arXiv:1707.06347).
Reference implementations: CleanRL ``ppo.py`` / ``ppo_continuous_action.py`` (Huang et al., "The 37
Implementation Details of PPO", ICLR blog track 2022) and Stable-Baselines3 ``PPO``.

Implementation details (numbered as a reader's checklist):

1. Vectorised rollouts of ``num_steps`` x ``num_envs`` into preallocated ``(T, N, ...)`` tensors on the
   device; acting runs under ``torch.no_grad`` with no host sync per step (not ``inference_mode``: a
   batched env's state tensors, made while acting, must stay writable for the caller after ``learn``).
   Each step is one call of :meth:`ActorCritic.act_value` (the observation normalised once for actor and
   critic, the layers run without ``nn.Module`` call overhead, a Gaussian sampled without a distribution
   object): the numbers and random draws of ``dist -> sample -> log_prob`` and ``value`` in about 40% less
   time on a CPU, where a rollout of few envs spends it on Python and per-op overhead, not arithmetic. The
   episode statistics are kept only when a run logs them.
2. Separate actor and critic MLPs (tanh, 64-64 by default), orthogonal init (gain sqrt 2 hidden,
   0.01 policy head, 1.0 value head), one Adam optimizer (eps 1e-5) over both.
3. GAE(lambda) on ``next_values = V(true next obs)``: a time-limit truncation bootstraps from the value
   of ``info["final_obs"]``; a termination does not. (CleanRL treats truncations as terminations.)
   The ``T*N`` next-observation values are computed in one batched call after the rollout.
4. Advantages normalised per minibatch; clipped surrogate; optionally clipped value loss; entropy
   bonus; global gradient-norm clipping; optional early stop of the epochs at ``target_kl``
   (checked after each epoch, with the k3 estimator ``(r - 1) - log r``; in a data-parallel run, on the
   mean over the ranks, so that every rank takes the same number of steps).
5. Linear learning-rate annealing to 0 over the run (``anneal_lr``).
6. Continuous actions: state-independent log-std, Gaussian samples stored unclipped (so log-probs are
   exact), clipped to the action bounds only when sent to the env (as CleanRL and SB3 do).
7. Optional running observation normalisation held inside the policy (``normalize_obs``); its
   statistics are updated after each PPO update, so the ratio of the update starts at exactly 1.
8. Action masks: when the env's ``info`` carries ``action_mask`` (see :mod:`rlsuite.core.vec_env`), the
   policy is a :class:`~rlsuite.core.distributions.MaskedCategorical` (forbidden actions have
   probability 0), the mask of every step is stored with the rollout and the update recomputes
   log-probabilities and entropies under the stored masks, so ratio and entropy bonus only ever see
   allowed actions. Empty mask rows are checked once per rollout, not per step (no host sync).
9. ``MultiDiscrete`` actions: one categorical per component from one linear head (log-probabilities and
   entropies summed over components), masked per component with a ``(N, sum(nvec))`` mask.
10. Asynchronous rollouts (``learn_async``, ``--workers N --async-rollouts``; Espeholt et al., "IMPALA", 2018):
    rollout workers act with their own copies of the policy, possibly some updates old, and each batch of
    ``num_steps x num_envs / N`` steps is trained on as it arrives. The old policy of the clipped surrogate is the
    behaviour policy ``mu`` that collected the batch, its advantages ``r_s + gamma * v_{s+1} - V(x_s)`` and value
    targets ``v_s`` come from V-trace (:func:`rlsuite.core.rollout.vtrace`, ``rho_bar = c_bar = 1``, lambda
    ``gae_lambda``), so the ratio ``pi / mu``, clipped, is the importance weight: RLlib's APPO without its target
    network and KL term. With fresh weights (no lag) ``v_s`` are the TD(lambda) returns of the synchronous update.

11. Optional reward scaling (``normalize_reward``; SB3's ``VecNormalize(norm_reward=True)``, Gymnasium's
    ``NormalizeReward``): each env keeps its discounted return ``R <- gamma * R + r`` (reset when its episode ends);
    after a rollout the running variance of all ``R`` seen is updated with the rollout's ``(T, N)`` values and the
    rollout's rewards are divided by its square root and clipped to ``+-reward_clip`` before GAE. The statistics
    and every env's ``R`` are checkpointed (exact resume); logged episode returns stay raw.
12. Optional adaptive learning rate (``desired_kl``; rsl_rl's "adaptive" schedule): before each optimiser step the
    minibatch's approximate KL between the rollout policy and the current one (the k3 estimator of detail 4,
    averaged over the ranks of a data-parallel run) divides every learning rate by 1.5 when above
    ``2 * desired_kl`` and multiplies it by 1.5 when below ``desired_kl / 2`` (but above 0: the first minibatch of an
    update, whose policy is still the rollout's, leaves it alone), within ``[1e-5, 1e-2]``. rsl_rl uses
    the closed-form KL of its Gaussian policy; the estimator works for every action space. The rate lives in the
    optimiser's state, so it is checkpointed.

Deviation from the paper: none in the objective (reward scaling and the adaptive rate are off by default).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn.modules import module as _torch_module

from rlsuite.agents.registry import AGENTS, AgentSpec
from rlsuite.core import distributed
from rlsuite.core.checkpoint import optional_tensor, restore_optional
from rlsuite.core.distributions import (
    CategoricalHead,
    DiagGaussianHead,
    MultiCategoricalHead,
    diag_gaussian_sample,
    empty_mask_rows,
)
from rlsuite.core.nets import MLP, activation, adam
from rlsuite.core.normalizer import RunningNorm
from rlsuite.core.rollout import RolloutStorage, vtrace
from rlsuite.core.seeding import resolve_device
from rlsuite.core.stats import explained_variance
from rlsuite.core.vec_env import TorchVecEnv, action_mask_width

if TYPE_CHECKING:
    from rlsuite.core.rollout_workers import AsyncRollouts


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO hyper-parameters (defaults: CleanRL's ppo_continuous_action)."""

    num_envs: int = 1
    """Parallel environments."""
    num_steps: int = 2048
    """Steps per env per rollout (the batch is num_envs * num_steps)."""
    learning_rate: float = 3e-4
    """Adam learning rate."""
    critic_learning_rate: float | None = None
    """Learning rate of the critic's parameters (None: ``learning_rate`` for everything)."""
    anneal_lr: bool = True
    """Anneal the learning rate linearly to 0 over the run."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    num_minibatches: int = 32
    """Minibatches per epoch (must divide the batch)."""
    update_epochs: int = 10
    """Epochs over each rollout."""
    norm_adv: bool = True
    """Normalise advantages per minibatch."""
    clip_coef: float = 0.2
    """Surrogate clipping epsilon."""
    clip_vloss: bool = False
    """Clip the value loss around the old values (PPO2 style)."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    target_kl: float | None = None
    """Stop the epochs early when the approximate KL exceeds this (None: never)."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the actor and of the critic."""
    activation: str = "tanh"
    """Activation (tanh, relu, elu, silu, gelu)."""
    normalize_obs: bool = False
    """Running observation normalisation inside the policy."""
    init_log_std: float = 0.0
    """Initial log standard deviation of the Gaussian policy (continuous actions)."""
    normalize_reward: bool = False
    """Divide rewards by the running std of each env's discounted return (implementation detail 11)."""
    reward_clip: float = 10.0
    """Bound on the scaled rewards when ``normalize_reward`` is on."""
    desired_kl: float | None = None
    """Adapt the learning rate to keep the approximate KL per minibatch near this (detail 12; None: off). It replaces
    the linear decay: pass ``--no-anneal-lr`` with it."""

    def __post_init__(self) -> None:
        batch = self.num_envs * self.num_steps
        if min(self.num_envs, self.num_steps, self.num_minibatches, self.update_epochs) < 1:
            raise ValueError("num_envs, num_steps, num_minibatches and update_epochs must all be >= 1.")
        if batch % self.num_minibatches:
            raise ValueError(
                f"num_minibatches={self.num_minibatches} does not divide the batch num_envs*num_steps={batch}; "
                f"choose a divisor, e.g. {max(d for d in range(1, min(batch, self.num_minibatches) + 1) if batch % d == 0)}."
            )
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError(f"gamma and gae_lambda must be in [0, 1], got {self.gamma}, {self.gae_lambda}.")
        if self.desired_kl is not None:
            if not self.desired_kl > 0:
                raise ValueError(f"desired_kl must be > 0 (e.g. 0.01), got {self.desired_kl}.")
            if self.anneal_lr:
                raise ValueError(f"desired_kl={self.desired_kl} adapts the learning rate and anneal_lr decays it linearly: choose "
                                 "one (--desired-kl with --no-anneal-lr, or leave --desired-kl unset).")
        if not self.reward_clip > 0:
            raise ValueError(f"reward_clip must be > 0, got {self.reward_clip}.")

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches


# ----------------------------------------------------------------------------- pure losses


def ppo_policy_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, clip_coef: float, clip_high: float | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate loss ``-mean(min(r * A, clip(r, 1 - eps, 1 + eps_high) * A))``, ``r = exp(logp - old_logp)``.

    Args:
        logp, old_logp, adv: ``(B,)``.
        clip_coef: epsilon (the lower clip, and the upper one unless ``clip_high`` is given).
        clip_high: ``eps_high`` of an asymmetric clip (OSPO: ``1.4 * eps``); ``None``: ``eps`` (symmetric).

    Returns:
        ``(loss, stats)`` with ``approx_kl`` (k3 estimator ``mean((r - 1) - log r)``) and
        ``clip_fraction`` (share of samples with ``r`` outside ``[1 - eps, 1 + eps_high]``).
    """
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()
    high = clip_coef if clip_high is None else clip_high
    loss = -torch.min(ratio * adv, ratio.clamp(1.0 - clip_coef, 1.0 + high) * adv).mean()
    with torch.no_grad():
        outside = (ratio - 1.0).abs() > clip_coef if clip_high is None else (ratio < 1.0 - clip_coef) | (ratio > 1.0 + clip_high)
        stats = {
            "approx_kl": ((ratio - 1.0) - log_ratio).mean(),
            "clip_fraction": outside.float().mean(),
        }
    return loss, stats


LR_BOUNDS = (1e-5, 1e-2)
"""The bounds of the adaptive learning rate (``desired_kl``), rsl_rl's."""


def adapt_learning_rate(lr: float, kl: float, desired_kl: float, bounds: tuple[float, float] = LR_BOUNDS) -> float:
    """rsl_rl's adaptive schedule: ``lr / 1.5`` when ``kl > 2 * desired_kl``, ``lr * 1.5`` when ``0 < kl < desired_kl / 2``,
    else ``lr``; then clipped to ``bounds``. A KL of exactly 0 (the first minibatch of an update, where the policy is
    still the rollout's) leaves the rate alone, as rsl_rl's ``kl_mean > 0`` guard means to."""
    if kl > 2.0 * desired_kl:
        lr /= 1.5
    elif 0.0 < kl < desired_kl / 2.0:
        lr *= 1.5
    return min(max(lr, bounds[0]), bounds[1])


def ppo_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip_coef: float | None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``0.5 * mean((V - R)^2)``, or with ``clip_coef`` the PPO2 form ``0.5 * mean(max((V - R)^2, (V_clip - R)^2))``
    where ``V_clip = old_V + clip(V - old_V, -eps, eps)``. All inputs ``(B,)``."""
    err = (values - returns).pow(2)
    if clip_coef is not None:
        clipped = old_values + (values - old_values).clamp(-clip_coef, clip_coef)
        err = torch.max(err, (clipped - returns).pow(2))
    return 0.5 * err.mean(), {}


# ----------------------------------------------------------------------------- networks


class ActorCritic(nn.Module):
    """Observation normaliser, actor (MLP + distribution head) and critic (MLP -> value).

    Shapes: ``obs`` ``(B, obs_dim)``; ``value(obs)`` -> ``(B,)``.
    """

    def __init__(self, obs_dim: int, action_space: gym.Space, cfg: PPOConfig) -> None:
        super().__init__()
        self.obs_norm = RunningNorm((obs_dim,)) if cfg.normalize_obs else nn.Identity()
        *body_hidden, width = cfg.hidden_sizes
        self.actor_body = nn.Sequential(MLP(obs_dim, width, body_hidden, cfg.activation, ortho_init=True, out_gain=np.sqrt(2)), activation(cfg.activation))
        if isinstance(action_space, gym.spaces.Discrete):
            self.head: nn.Module = CategoricalHead(width, int(action_space.n))
        elif isinstance(action_space, gym.spaces.MultiDiscrete):
            self.head = MultiCategoricalHead(width, np.asarray(action_space.nvec).ravel().tolist())
        else:
            self.head = DiagGaussianHead(width, int(np.prod(action_space.shape)), cfg.init_log_std)
        self.critic = MLP(obs_dim, 1, cfg.hidden_sizes, cfg.activation, ortho_init=True, out_gain=1.0)

    def dist(self, obs: torch.Tensor, action_mask: torch.Tensor | None = None, validate: bool = True) -> Any:
        """The action distribution; with ``action_mask`` ``(B, n)`` bool (True = allowed) a masked one."""
        h = self.actor_body(self.obs_norm(obs))
        return self.head(h) if action_mask is None else self.head(h, action_mask, validate)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(self.obs_norm(obs)).squeeze(-1)

    def act_value(self, obs: torch.Tensor, action_mask: torch.Tensor | None = None,
                  validate: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One rollout step: ``(action, logp, value)``, bit-identical to (and drawing the same random numbers as)
        ``d = self.dist(obs, action_mask, validate); a = d.sample(); (a, d.log_prob(a), self.value(obs))``.

        Cheaper on a small batch, where Python dominates: the observation is normalised once for actor and
        critic, the layers' ``forward`` run in a flat loop (the plan of :func:`_flat_layers`; with a forward hook on
        any of the modules, or a global one, it takes the plain calls above instead) and a Gaussian head samples
        without building a distribution (:func:`~rlsuite.core.distributions.diag_gaussian_sample`).

        Runs without gradients. Shapes: ``obs`` ``(B, obs_dim)``, ``action_mask`` ``(B, n)`` bool ->
        ``(B, *act_shape)``, ``(B,)``, ``(B,)``.
        """
        if torch.is_grad_enabled():  # (cheaper than a no_grad decorator on every call from the no_grad rollout loop)
            with torch.no_grad():
                return self.act_value(obs, action_mask, validate)
        plan = self._plan()
        if plan is None:
            dist = self.dist(obs) if action_mask is None else self.dist(obs, action_mask, validate)
            action = dist.sample()
            return action, dist.log_prob(action), self.value(obs)
        norm, actor, critic, mean_layer = plan
        x = _run_layers(norm, obs)
        h = _run_layers(actor, x)
        value = _run_layers(critic, x).squeeze(-1)
        if mean_layer is not None:  # DiagGaussianHead
            if action_mask is not None:
                raise ValueError("action_mask needs a Discrete or MultiDiscrete action space; this policy has a Gaussian head.")
            action, logp = diag_gaussian_sample(mean_layer(h), self.head.log_std)
            return action, logp, value
        dist = self.head.forward(h) if action_mask is None else self.head.forward(h, action_mask, validate)
        action = dist.sample(check=False)  # PPO's rollout checks its log-probs once per rollout instead
        return action, dist.log_prob(action), value

    def _plan(self) -> tuple[list[Callable], list[Callable], list[Callable], Callable | None] | None:
        """``(obs_norm layers, actor layers, critic layers, the Gaussian head's mean layer or None)`` (their forwards) for
        :meth:`act_value`, built once per set of submodules; ``None`` for a subclass with its own ``dist`` or
        ``value``, and while a forward hook is registered on any of the modules (or globally): the flat loop would
        skip it."""
        # obs_norm, actor_body, head, critic, and the count of module registrations anywhere: rebuilt when any layer
        # (here or nested) is replaced
        key = (*self._modules.values(), _MODULE_REGISTRATIONS[0])
        cached = self.__dict__.get("_plan_cache")
        if cached is None or cached[0] != key:
            watched: list[nn.Module] = [self.head]
            layers = [[_fast_forward(m) for m in _flat_layers(part, watched)] for part in (self.obs_norm, self.actor_body, self.critic)]
            mean_layer = self.head.mean if type(self.head) is DiagGaussianHead else None
            if mean_layer is not None:
                watched.append(mean_layer)
                mean_layer = mean_layer.forward
            own = type(self).dist is ActorCritic.dist and type(self).value is ActorCritic.value
            hooks = tuple(d for m in watched for d in (m._forward_hooks, m._forward_pre_hooks))
            cached = (key, (*layers, mean_layer) if own else None, hooks)
            self.__dict__["_plan_cache"] = cached  # a plain attribute: neither a submodule nor in the state dict
        if cached[1] is None or _torch_module._global_forward_hooks or _torch_module._global_forward_pre_hooks or any(cached[2]):
            return None
        return cached[1]

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_plan_cache", None)  # bound methods of this copy's modules: a copy builds its own
        return state


#: modules registered as attributes of other modules so far, in this process (a global torch hook counts them): a
#: change tells :meth:`ActorCritic._plan` that a layer may have been replaced, also deep inside a container
_MODULE_REGISTRATIONS = [0]


def _count_registration(module: nn.Module, name: str, submodule: nn.Module | None) -> None:
    _MODULE_REGISTRATIONS[0] += 1


torch.nn.modules.module.register_module_module_registration_hook(_count_registration)


def _flat_layers(module: nn.Module, watched: list[nn.Module]) -> list[nn.Module]:
    """The leaf modules that ``module`` runs in order, through ``nn.Sequential`` and :class:`MLP` (whose forward
    is its ``net``); every module met is appended to ``watched`` (for the hook check of :meth:`ActorCritic.act_value`)."""
    watched.append(module)
    if type(module) is nn.Sequential:
        return [leaf for child in module for leaf in _flat_layers(child, watched)]
    if type(module) is MLP:
        return _flat_layers(module.net, watched)
    return [module]


def _fast_forward(layer: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The layer's ``forward`` (no ``nn.Module.__call__``); a :class:`RunningNorm`'s keeps its scale between calls."""
    return layer.forward_cached if type(layer) is RunningNorm else layer.forward


def _run_layers(layers: list[Callable[[torch.Tensor], torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
    """``x`` through each of the layers' forwards in turn (what the containers do, without their per-call overhead)."""
    for forward in layers:
        x = forward(x)
    return x


def _episode_means(done: torch.Tensor, returns: torch.Tensor, lengths: torch.Tensor) -> tuple[float, float, float]:
    """``(episodes, mean return, mean length)`` of the episodes that ended in a rollout, from its ``(T, N)`` per-step
    ``done`` flags and the env's ``info["episode_return"]`` and ``info["episode_length"]`` (float); NaN means when none
    ended. Summed per step, then step after step in float32, as a running per-step sum would: the same numbers."""
    n_ep = float(done.sum())
    if not n_ep:
        return 0.0, float("nan"), float("nan")
    per_step = torch.stack([torch.where(done, returns, 0.0).sum(1), torch.where(done, lengths, 0.0).sum(1)], 1).cpu().numpy()
    ret_sum, len_sum = np.add.accumulate(per_step, axis=0)[-1]  # float32, sequential
    return n_ep, float(ret_sum / np.float32(n_ep)), float(len_sum / np.float32(n_ep))


# ----------------------------------------------------------------------------- agent


class _DeterministicPPO(nn.Module):
    def __init__(self, policy: ActorCritic, low: torch.Tensor | None, high: torch.Tensor | None) -> None:
        super().__init__()
        self.obs_norm, self.actor_body, self.head = policy.obs_norm, policy.actor_body, policy.head
        self.clip = low is not None
        if low is not None:
            self.register_buffer("low", low.clone().float())
            self.register_buffer("high", high.clone().float())

    def forward(self, obs: torch.Tensor, action_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.actor_body(self.obs_norm(obs))
        mode = (self.head(h) if action_mask is None else self.head(h, action_mask)).mode
        return torch.max(torch.min(mode, self.high), self.low) if self.clip else mode


class PPO:
    """PPO agent: ``learn(env, total_steps)``, ``act(obs)``, ``state_dict()`` / ``load_state_dict()``.

    Args:
        config: hyper-parameters.
        observation_space: single-env Box observation space.
        action_space: single-env Discrete, MultiDiscrete or Box action space.
        device: where the networks and rollouts live.
        policy: a ready module to train instead of a fresh :class:`ActorCritic` (e.g. one initialised
            offline); it needs ``obs_norm``, ``actor_body``, ``head``, ``critic``, ``dist(obs)`` and
            ``value(obs)`` like :class:`ActorCritic`; with an ``act_value(obs, action_mask, validate)`` like
            :meth:`ActorCritic.act_value` the rollout calls that, else it composes ``dist`` and ``value`` itself.
    """

    algo = "ppo"
    remote_envs = True  # learn() uses its env through the batched-env contract alone, so it trains on rollout workers (--workers)

    def __init__(self, config: PPOConfig, observation_space: gym.Space, action_space: gym.Space, device: str | torch.device = "cpu",
                 policy: nn.Module | None = None) -> None:
        if not isinstance(observation_space, gym.spaces.Box):
            raise ValueError(f"PPO needs a Box observation space, got {observation_space}.")
        if not isinstance(action_space, gym.spaces.Box | gym.spaces.Discrete | gym.spaces.MultiDiscrete):
            raise ValueError(f"PPO supports Discrete, MultiDiscrete and Box action spaces, got {action_space}.")
        if isinstance(action_space, gym.spaces.MultiDiscrete) and ((np.asarray(action_space.start) != 0).any() or action_space.nvec.ndim != 1):
            raise ValueError(f"PPO needs a 1-D MultiDiscrete action space starting at 0, got nvec={action_space.nvec.tolist()}, "
                             f"start={action_space.start.tolist()}; reshape or shift the env's actions (gymnasium.wrappers.TransformAction).")
        self.config = config
        self.observation_space, self.action_space = observation_space, action_space
        self.device = resolve_device(device)
        self.discrete = isinstance(action_space, gym.spaces.Discrete | gym.spaces.MultiDiscrete)
        self.obs_dim = int(np.prod(observation_space.shape))
        self.policy = (policy or ActorCritic(self.obs_dim, action_space, config)).to(self.device)
        if config.critic_learning_rate is None:
            self.optimizer = adam(self.policy.parameters(), lr=config.learning_rate, eps=1e-5)
        else:
            critic = {id(p) for p in self.policy.critic.parameters()}
            rest = [p for p in self.policy.parameters() if id(p) not in critic]
            self.optimizer = torch.optim.Adam([{"params": rest, "lr": config.learning_rate},
                                               {"params": list(self.policy.critic.parameters()), "lr": config.critic_learning_rate}],
                                              eps=1e-5)
        if not self.discrete:
            self._low = torch.as_tensor(action_space.low, dtype=torch.float32, device=self.device)
            self._high = torch.as_tensor(action_space.high, dtype=torch.float32, device=self.device)
        self.reward_norm = RunningNorm(()).to(self.device) if config.normalize_reward else None
        self.global_step = 0
        self.iteration = 0
        self._obs: torch.Tensor | None = None
        self._mask: torch.Tensor | None = None  # the env's action mask for self._obs (masked envs only)
        self._ret: torch.Tensor | None = None  # each env's discounted return, (N,) (normalize_reward only)

    # ------------------------------------------------------------------ acting
    def _to_env(self, action: torch.Tensor) -> torch.Tensor:
        return action if self.discrete else torch.max(torch.min(action, self._high), self._low)

    def _dist(self, obs: torch.Tensor, action_mask: torch.Tensor | None, validate: bool = True) -> Any:
        # a policy passed in by the caller may only know dist(obs): call it that way when there is no mask
        return self.policy.dist(obs) if action_mask is None else self.policy.dist(obs, action_mask, validate)

    def _act_value(self, obs: torch.Tensor, action_mask: torch.Tensor | None,
                   validate: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(action, logp, value)`` of one rollout step for a policy without ``act_value`` (see
        :meth:`ActorCritic.act_value`; the same composition, unfused)."""
        dist = self._dist(obs, action_mask, validate)
        action = dist.sample()
        return action, dist.log_prob(action), self.policy.value(obs)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False, action_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Actions for ``obs`` ``(B, *obs_shape)``: ``(B,)`` ints (``(B, k)`` for MultiDiscrete) or
        ``(B, act_dim)`` within the bounds. ``action_mask`` ``(B, n)`` bool (the env's
        ``info["action_mask"]``, True = allowed): forbidden actions are never returned."""
        if action_mask is not None:
            if not self.discrete:
                raise ValueError("action_mask needs a Discrete or MultiDiscrete action space; this PPO has Box actions.")
            width = action_mask_width(self.action_space)
            if action_mask.shape[-1] != width:
                raise ValueError(f"action_mask has shape {tuple(action_mask.shape)}; the action space {self.action_space} "
                                 f"needs (B, {width}) (n for Discrete, sum(nvec) for MultiDiscrete).")
            action_mask = action_mask.to(self.device, torch.bool).reshape(-1, width)
        dist = self._dist(obs.to(self.device, torch.float32).reshape(-1, self.obs_dim), action_mask)
        return self._to_env(dist.mode if deterministic else dist.sample())

    def deploy_module(self) -> nn.Module:
        """A self-contained module ``obs (B, obs_dim) -> actions`` for export: the observation normaliser,
        the deterministic action (mode) and the clip to the action bounds are inside it. For masked
        discrete actions it takes the mask as an optional second input, ``(B, n)`` bool."""
        return _DeterministicPPO(self.policy, None if self.discrete else self._low, None if self.discrete else self._high).eval()

    # ------------------------------------------------------------------ training
    def budget_note(self, total_steps: int) -> str | None:
        """The sentence to show when :meth:`learn` will pass ``total_steps`` (it trains whole rollouts of
        ``num_envs * num_steps`` env steps, so a budget that is not a multiple of that is rounded up), else None."""
        batch, left = self.config.batch_size, total_steps - self.global_step
        if left <= 0 or left % batch == 0:
            return None
        reached = self.global_step + -(-left // batch) * batch
        what = f"is not a whole number of rollouts from step {self.global_step}" if self.global_step else "is not a multiple of the rollout"
        return f"--total-steps {total_steps} {what} (num_envs*num_steps = {batch}): training {reached} steps"

    def learn(self, env: TorchVecEnv, total_steps: int, run: Any = None, seed: int = 0, anneal_steps: int | None = None) -> PPO:
        """Train until ``global_step >= total_steps`` (continues a restored run where it stopped); whole
        rollouts only, so the last one may pass ``total_steps`` (see :meth:`budget_note`). ``anneal_steps``:
        the step count the linear lr annealing spans (default ``total_steps``; pass the whole run's length
        when calling in chunks)."""
        cfg = self.config
        if env.num_envs != cfg.num_envs:
            raise ValueError(f"env has {env.num_envs} parallel envs but config.num_envs={cfg.num_envs}.")
        T, N = cfg.num_steps, cfg.num_envs
        num_iterations = max(1, -(-(anneal_steps or total_steps) // cfg.batch_size))
        base_lrs = [cfg.learning_rate] + ([cfg.critic_learning_rate] if cfg.critic_learning_rate is not None else [])
        if self._obs is None:
            self._obs, info = env.reset(seed=seed)
            self._mask = self._check_mask(info.get("action_mask"))
            self._ret = None  # fresh episodes: no discounted return carried over (normalize_reward)
        obs, mask = self._obs, self._mask
        act_shape = self.action_space.shape if not isinstance(self.action_space, gym.spaces.Discrete) else ()
        storage = RolloutStorage(T, N, self.observation_space.shape, act_shape, self.device, torch.int64 if self.discrete else torch.float32,
                                 mask_width=None if mask is None else mask.shape[1])
        returns_seen = None
        if self.reward_norm is not None:
            returns_seen = torch.zeros((T, N), device=self.device)  # every env's discounted return at every step
            if self._ret is None:
                self._ret = torch.zeros(N, device=self.device)
        # (action, logp, value) per step: the policy's fused act_value (same numbers, less Python per step) if it has one
        act_value = getattr(self.policy, "act_value", None) or self._act_value
        # the finished episodes' returns and lengths feed only the logged metrics: kept per step (one copy each, summed
        # after the rollout) when there is a run to log them, not kept at all otherwise
        episodes = None
        if run is not None:
            episodes = (torch.zeros((T, N), dtype=torch.bool, device=self.device), torch.zeros((T, N), device=self.device),
                        torch.zeros((T, N), device=self.device))
            ep_done, ep_return, ep_length = (x.unbind(0) for x in episodes)
        while self.global_step < total_steps:
            t_start = time.perf_counter()
            if cfg.anneal_lr:
                for group, base in zip(self.optimizer.param_groups, base_lrs, strict=True):
                    group["lr"] = base * max(0.0, 1.0 - self.iteration / num_iterations)
            empty_masks = torch.zeros((), dtype=torch.bool, device=self.device)
            with torch.no_grad():
                for t in range(T):
                    action, logp, value = act_value(obs, mask, False)
                    next_obs, reward, terminated, truncated, info = env.step(self._to_env(action))
                    storage.insert(t, obs, action, logp, value, reward, info["final_obs"], terminated, truncated, mask)
                    if mask is not None:
                        empty_masks |= empty_mask_rows(mask).any()
                        if "action_mask" not in info:
                            raise ValueError("the env reported info['action_mask'] at reset but not after a step; an env "
                                             "with action masks must report them after every step.")
                        mask = info["action_mask"].to(torch.bool)
                    done = info["_final_obs"]
                    if returns_seen is not None:
                        self._ret = self._ret * cfg.gamma + reward
                        returns_seen[t] = self._ret
                        self._ret = torch.where(done, 0.0, self._ret)
                    if episodes is not None:
                        ep_done[t].copy_(done)
                        ep_return[t].copy_(info["episode_return"])
                        ep_length[t].copy_(info["episode_length"])
                    obs = next_obs
                next_values = self.policy.value(storage.next_obs.flatten(0, 1)).view(T, N)
                reward_scale = self._scale_rewards(storage.rewards, returns_seen) if returns_seen is not None else None
            if mask is not None and bool(empty_masks):
                raise ValueError("the env returned an info['action_mask'] row that allows no action; every state must "
                                 "allow at least one (per component for MultiDiscrete).")
            if self.discrete and not bool(storage.logp.isfinite().all()):  # (sampling does not check probabilities per step)
                raise ValueError(f"the policy's action probabilities were not finite (NaN) in rollout {self.iteration + 1}: "
                                 "training diverged; lower the learning rate, or check the observations and rewards for NaN/inf.")
            self._obs, self._mask = obs, mask
            self.global_step += T * N
            self.iteration += 1
            storage.compute_returns(next_values, cfg.gamma, cfg.gae_lambda)
            t_collect = time.perf_counter() - t_start
            stats = self._update(storage)
            if cfg.normalize_obs:
                self.policy.obs_norm.update(storage.obs.flatten(0, 1))
            if run is not None:
                assert episodes is not None
                n_ep, ep_return_mean, ep_length_mean = _episode_means(*episodes)
                metrics = {
                    "rollout/ep_return": ep_return_mean,
                    "rollout/ep_length": ep_length_mean,
                    "rollout/episodes": n_ep,
                    **{f"train/{k}": v for k, v in stats.items()},
                    "train/learning_rate": self.optimizer.param_groups[0]["lr"],
                    **({"train/reward_scale": float(reward_scale)} if reward_scale is not None else {}),
                    "time/sps": cfg.batch_size / (time.perf_counter() - t_start),
                    "time/collect_seconds": t_collect,
                    "time/update_seconds": time.perf_counter() - t_start - t_collect,
                }
                run.logger.log(self.global_step, metrics)
                run.step_done(self, env)
        return self

    def learn_async(self, rollouts: AsyncRollouts, total_steps: int, run: Any = None, seed: int = 0,
                    anneal_steps: int | None = None) -> PPO:
        """Train on asynchronous rollout workers (implementation detail 10) until ``global_step >= total_steps``.

        One iteration is one batch of ``num_steps x rollouts.envs_per_worker`` steps from whichever worker finishes
        first; ``seed`` is the workers' (they were seeded when started). Logs ``rollout/policy_lag`` (updates between
        the weights a batch was collected with and the learner's) and ``train/rho_mean`` (mean of ``pi / mu``).
        """
        cfg = self.config
        T, n = cfg.num_steps, rollouts.envs_per_worker
        if self.reward_norm is not None:
            raise ValueError("normalize_reward keeps each env's discounted return across rollouts, which asynchronous workers "
                             "do not send; use synchronous workers (drop --async-rollouts) or --no-normalize-reward.")
        if (T * n) % cfg.num_minibatches:
            raise ValueError(f"asynchronous rollouts train on each worker's batch of num_steps*num_envs/workers = {T * n} steps; "
                             f"num_minibatches={cfg.num_minibatches} does not divide it. Choose a divisor of {T * n}.")
        num_iterations = max(1, -(-(anneal_steps or total_steps) // (T * n)))
        base_lrs = [cfg.learning_rate] + ([cfg.critic_learning_rate] if cfg.critic_learning_rate is not None else [])
        act_shape = self.action_space.shape if not isinstance(self.action_space, gym.spaces.Discrete) else ()
        storage = RolloutStorage(T, n, self.observation_space.shape, act_shape, self.device, torch.int64 if self.discrete else torch.float32,
                                 mask_width=rollouts.mask_width)
        rollouts.start(self.policy, T)
        while self.global_step < total_steps:
            t_start = time.perf_counter()
            if cfg.anneal_lr:
                for group, base in zip(self.optimizer.param_groups, base_lrs, strict=True):
                    group["lr"] = base * max(0.0, 1.0 - self.iteration / num_iterations)
            b = rollouts.next_batch(self.policy.state_dict(), self.iteration)
            t_wait = time.perf_counter() - t_start
            for k in ("obs", "next_obs", "actions", "logp", "rewards", "terminated", "truncated"):
                b[k] = b[k].to(self.device)
            masks = None if b["action_masks"] is None else b["action_masks"].to(self.device).flatten(0, 1)
            with torch.no_grad():
                values = self.policy.value(b["obs"].flatten(0, 1)).view(T, n)
                next_values = self.policy.value(b["next_obs"].flatten(0, 1)).view(T, n)
                target_logp = self._dist(b["obs"].flatten(0, 1), masks, validate=False).log_prob(b["actions"].flatten(0, 1)).view(T, n)
            vt = vtrace(b["logp"], target_logp, b["rewards"], values, next_values, b["terminated"], b["truncated"], cfg.gamma,
                        lam=cfg.gae_lambda)
            for name, value in (("obs", b["obs"]), ("actions", b["actions"]), ("logp", b["logp"]), ("values", values),
                                ("advantages", vt.advantages), ("returns", vt.vs)):
                getattr(storage, name).copy_(value)
            if masks is not None:
                storage.action_masks.copy_(masks.view(T, n, -1))
            lag = self.iteration - b["version"]
            stats = self._update(storage)
            if cfg.normalize_obs:
                self.policy.obs_norm.update(storage.obs.flatten(0, 1))
            self.global_step += T * n
            self.iteration += 1
            if run is not None:
                n_ep = b["episodes"]
                run.logger.log(self.global_step, {
                    "rollout/ep_return": b["ep_return"] / n_ep if n_ep else float("nan"),
                    "rollout/ep_length": b["ep_length"] / n_ep if n_ep else float("nan"),
                    "rollout/episodes": n_ep, "rollout/policy_lag": lag, "train/rho_mean": float(vt.rhos.mean()),
                    **{f"train/{k}": v for k, v in stats.items()}, "train/learning_rate": self.optimizer.param_groups[0]["lr"],
                    "time/sps": T * n / (time.perf_counter() - t_start), "time/wait_seconds": t_wait,
                })
                run.step_done(self, rollouts)
        return self

    def _update(self, storage: RolloutStorage) -> dict[str, float]:
        cfg = self.config
        sums: dict[str, torch.Tensor] = {}
        n = 0
        for _ in range(cfg.update_epochs):
            epoch_kl = torch.zeros((), device=self.device)
            epoch_n = 0
            for mb in storage.minibatches(cfg.num_minibatches):
                dist = self._dist(mb["obs"], mb.get("action_masks"), validate=False)
                logp = dist.log_prob(mb["actions"])
                entropy = dist.entropy().mean()
                values = self.policy.value(mb["obs"])
                adv = mb["advantages"]
                if cfg.norm_adv and adv.numel() > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                pg_loss, pg_stats = ppo_policy_loss(logp, mb["logp"], adv, cfg.clip_coef)
                v_loss, _ = ppo_value_loss(values, mb["values"], mb["returns"], cfg.clip_coef if cfg.clip_vloss else None)
                loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
                if cfg.desired_kl is not None:  # every rank sees the same mean KL, so the rates stay equal
                    kl = float(distributed.average(pg_stats["approx_kl"]))
                    for group in self.optimizer.param_groups:
                        group["lr"] = adapt_learning_rate(group["lr"], kl, cfg.desired_kl)
                self.optimizer.step()
                step_stats = {
                    "policy_loss": pg_loss.detach(),
                    "value_loss": v_loss.detach(),
                    "entropy": entropy.detach(),
                    "grad_norm": grad_norm.detach(),
                    **pg_stats,
                }
                for k, v in step_stats.items():
                    sums[k] = sums.get(k, 0.0) + v
                n += 1
                epoch_kl += pg_stats["approx_kl"]
                epoch_n += 1
            # in a data-parallel run every rank stops on the mean KL of all ranks, so their optimisers stay in step
            if cfg.target_kl is not None and distributed.average(epoch_kl / epoch_n).item() > cfg.target_kl:
                break
        out = {k: float(v / n) for k, v in sums.items()}
        out["explained_variance"] = explained_variance(storage.values.flatten(), storage.returns.flatten())
        if not self.discrete and isinstance(getattr(self.policy.head, "log_std", None), torch.Tensor):
            out["action_std"] = float(self.policy.head.log_std.detach().exp().mean())
        return out

    def _scale_rewards(self, rewards: torch.Tensor, returns_seen: torch.Tensor) -> torch.Tensor:
        """Fold the rollout's discounted returns ``(T, N)`` into the running variance, then divide ``rewards (T, N)``
        in place by its square root and clip them (implementation detail 11); returns the factor."""
        assert self.reward_norm is not None
        self.reward_norm.update(returns_seen.flatten())
        scale = torch.rsqrt(self.reward_norm.var + self.reward_norm.eps)
        rewards.mul_(scale).clamp_(-self.config.reward_clip, self.config.reward_clip)
        return scale

    def _check_mask(self, mask: torch.Tensor | None) -> torch.Tensor | None:
        if mask is None:
            return None
        if not self.discrete:
            raise ValueError("the env reports info['action_mask'] but this PPO has Box actions; masks need Discrete or MultiDiscrete.")
        width = action_mask_width(self.action_space)
        if mask.dim() != 2 or mask.shape[1] != width:
            raise ValueError(f"info['action_mask'] has shape {tuple(mask.shape)}; the action space {self.action_space} "
                             f"needs (num_envs, {width}).")
        return mask.to(self.device, torch.bool)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """``weights`` (incl. the observation normaliser), ``optim`` (optimizer state) and ``counters``."""
        weights = {"policy": self.policy.state_dict()}
        if self.reward_norm is not None:
            weights["reward_norm"] = self.reward_norm.state_dict()
        return {
            "weights": weights,
            "optim": {"optimizer": self.optimizer.state_dict()},
            "counters": {"global_step": self.global_step, "iteration": self.iteration},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["weights"]["policy"])
        if self.reward_norm is not None:
            self.reward_norm.load_state_dict(state["weights"]["reward_norm"])
        if "optim" in state:
            self.optimizer.load_state_dict(state["optim"]["optimizer"])
        counters = state.get("counters", {})
        self.global_step = int(counters.get("global_step", 0))
        self.iteration = int(counters.get("iteration", 0))

    def training_state(self, env: TorchVecEnv) -> dict[str, Any]:
        """What exact resume needs beyond :meth:`state_dict`: the env's state and its current observation."""
        return {"obs": optional_tensor(self._obs), "action_mask": optional_tensor(self._mask, torch.bool), "env": env.state_dict(),
                "reward_return": optional_tensor(self._ret)}

    def load_training_state(self, state: dict[str, Any], env: TorchVecEnv) -> None:
        env.load_state_dict(state["env"])
        self._obs = restore_optional(state["obs"], self.device)
        self._mask = restore_optional(state.get("action_mask"), self.device, torch.bool)
        self._ret = restore_optional(state.get("reward_return"), self.device)


AGENTS.register(
    "ppo",
    AgentSpec(
        name="ppo",
        config_cls=PPOConfig,
        agent_cls=PPO,
        summary="Proximal Policy Optimization (clipped), discrete and continuous actions",
        default_env="CartPole-v1",
        presets={
            # CleanRL's ppo.py layout (128 steps per env, 4 minibatches) with 8 envs, 10 epochs, lr 1e-3 and no
            # entropy bonus: solves it (deterministic eval 500) by 40-60k steps on every seed and thread count
            # measured (docs/learning_tests.md); rl-zoo's n_steps 32 / 20 epochs reached only 227 on some CPUs.
            "CartPole-v1": dict(
                num_envs=8, num_steps=128, num_minibatches=4, update_epochs=10, gamma=0.99, gae_lambda=0.95,
                learning_rate=1e-3, ent_coef=0.0,
            ),
            # rl-baselines3-zoo's Pendulum-v1 settings without gSDE.
            "Pendulum-v1": dict(
                num_envs=4, num_steps=1024, num_minibatches=64, update_epochs=10, gamma=0.9, gae_lambda=0.95,
                learning_rate=1e-3, clip_coef=0.2,
            ),
            # ours: the batched torch env with 128 envs x 32 steps and reward scaling (RL Zoo normalises Pendulum's
            # rewards too); gamma 0.95: at 0.9 without reward scaling evaluations stalled near -220 and drifted, at 0.9
            # with it 4 of 5 seeds stayed below -200 in 300k steps; this reaches -200 in about 50-65k steps (3-4 s on one
            # CPU thread) on most seeds and plateaus near -195 (docs/ppo.md, scripts/bench/time_to_solve.py).
            "rlsuite/Pendulum-v0": dict(
                num_envs=128, num_steps=32, num_minibatches=16, update_epochs=10, gamma=0.95, gae_lambda=0.95,
                learning_rate=1e-3, normalize_reward=True,
            ),
            # CleanRL's MuJoCo defaults with observation normalisation.
            "Hopper-v5": dict(normalize_obs=True),
            "InvertedPendulum-v5": dict(normalize_obs=True),
            # ours: 16 greenhouses, one day (96 steps) per rollout, small initial noise. With the default comfort
            # penalties it does not beat the rule-based controller reliably (profit -0.10 to +0.12 around the rule's
            # after 300k steps, seeds 0-2); trained on the profit (comfort weights 0) with --normalize-reward
            # --normalize-obs --init-log-std 0 --gamma 0.9 it does, by 0.21 (docs/greenhouse.md).
            "rlsuite/Greenhouse-Lettuce-v0": dict(
                num_envs=16, num_steps=96, num_minibatches=4, update_epochs=10, gamma=0.99, gae_lambda=0.95,
                learning_rate=3e-4, init_log_std=-0.5,
            ),
            # legged-robot style: many envs, short rollouts, few epochs, small initial noise.
            "rlsuite/Quadruped-Balance-v0": dict(
                num_envs=16, num_steps=64, num_minibatches=4, update_epochs=5, gamma=0.99, gae_lambda=0.95,
                learning_rate=3e-4, hidden_sizes=(128, 128), activation="elu", init_log_std=-1.0,
            ),
        },
    ),
)
