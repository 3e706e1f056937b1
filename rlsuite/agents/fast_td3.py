"""FastTD3: batched off-policy training with many parallel envs, large batches and a distributional critic.

Paper: Seo, Sferrazza, Geng, Nauman, Yin, Abbeel, "FastTD3: Simple, Fast, and Capable Reinforcement
Learning for Humanoid Control", 2025 (arXiv:2505.22642). Reference implementation: the authors'
``younggyoseo/FastTD3`` (``fast_td3/train.py``, ``fast_td3.py``, ``fast_td3_utils.py``, ``hyperparams.py``).

TD3 made fast on simulators that step thousands of envs at once on the device: collect one transition from
every env per vector step, then take a few gradient steps on very large minibatches.

Implementation details:

1. ``num_envs`` parallel envs (authors: 128 HumanoidBench, 1024 MuJoCo Playground, 4096 IsaacLab) and a
   device-resident replay that keeps ``buffer_size`` transitions *per env*, time-major ``(T, N, ...)``
   (:class:`NStepReplay`); a minibatch of ``batch_size`` (32768) spreads evenly over the envs.
2. n-step returns (``num_steps``; 1 by default, 3 on some tasks) assembled at sampling time along each env's own
   trajectory (:func:`n_step_returns`): the window stops at the first episode end (never sums across a reset)
   and at the newest stored step; the target then bootstraps with ``gamma ** k`` from the last step's next
   observation, for ``k`` the steps summed.
3. Only ``terminated`` stops bootstrapping; a time-limit truncation bootstraps from ``info["final_obs"]``
   (stored as that step's next observation).
4. Exploration: deterministic actor plus Gaussian noise whose std is drawn per env uniformly in
   ``[std_min, std_max]`` (0.001, 0.4) and drawn again when that env's episode ends, so the envs explore
   at many noise levels at once.
5. Distributional critics (C51): two critics output logits over ``num_atoms`` (101) atoms on
   ``[v_min, v_max]``; the n-step target distribution is projected onto the support
   (:func:`categorical_projection`) and the loss is the cross-entropy (:func:`categorical_critic_loss`).
6. Clipped double Q: of the two target critics' projected distributions, each sample takes the one whose
   expected value is lower (:func:`clipped_double_q`); both critics learn from it (``--no-use-cdq``: each from its own).
7. Target policy smoothing: the next action is the *current* actor's (no target actor, as the authors) plus
   noise of std ``policy_noise`` (0.001) clipped to ``noise_clip`` (0.5); Polyak target critics with ``tau`` 0.1.
8. ``num_updates`` (2) critic updates per vector step after ``learning_starts`` (10) vector steps; the actor
   every ``policy_frequency`` (2) critic updates, on the same minibatch, with loss ``-mean(Q)`` where ``Q`` is
   the minimum (``use_cdq``) or mean of the two critics' expected values at the actor's action
   (:func:`distributional_actor_loss`).
9. Critic MLP 1024-512-256, actor MLP 512-256-128 with a tanh output scaled to the action bounds and its last
   layer initialised ``N(0, init_scale = 0.01)``; AdamW (lr 3e-4, weight decay 0.1) for both; gradient-norm
   clipping off (``max_grad_norm`` 0).
10. Running observation normalisation (inside the actor, so checkpoints and exports carry it), updated from
    every vector step's observations before acting.
11. Optional bf16 autocast (``amp``) and ``torch.compile`` of the two loss computations (``compile``), both on in
    the authors' GPU runs. Random numbers are drawn outside the compiled code, so a compiled run draws the same.

Deviations from the authors' code, each deliberate:

* Exploration actions are clamped to ``[-1, 1]`` before they are stored and sent (the authors store the unclipped
  sum and let the env clip): the critic then learns at the action the env executed.
* The normaliser is updated from the env's observations only (the authors' also folds in every sampled
  minibatch); no reward normalisation and no learning-rate schedule (both optional in the authors' code).
* ``learning_starts`` counts vector steps, as the authors', while the run's budget counts env steps.
* A window cut by the newest stored step is shortened (and bootstraps) instead of excluded from sampling.
* ``amp`` and ``compile`` default to off (the authors: on), so that a default run is fp32 and eager on any device;
  use ``--amp --compile`` on a GPU. On a CPU, ``amp`` autocasts to bf16 as on a GPU (faster only on CPUs with bf16
  units) and compiling takes tens of seconds before the first update.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlsuite.agents.registry import AGENTS, AgentSpec
from rlsuite.core.checkpoint import optional_tensor, restore_optional
from rlsuite.core.nets import MLP, EnsembleMLP, soft_update
from rlsuite.core.normalizer import RunningNorm
from rlsuite.core.seeding import resolve_device
from rlsuite.core.vec_env import TorchVecEnv


@dataclasses.dataclass(frozen=True)
class FastTD3Config:
    """FastTD3 hyper-parameters (defaults: the authors' HumanoidBench settings; GPU-sized)."""

    num_envs: int = 128
    """Parallel environments (the authors: 128 HumanoidBench, 1024 MuJoCo Playground, 4096 IsaacLab)."""
    buffer_size: int = 50 * 1024
    """Replay capacity per env (transitions); the replay holds num_envs times this (Playground: 10240)."""
    batch_size: int = 32768
    """Transitions per minibatch, spread evenly over the envs."""
    learning_starts: int = 10
    """Vector steps (each num_envs transitions) collected before the first update."""
    num_updates: int = 2
    """Critic updates per vector step."""
    policy_frequency: int = 2
    """Update the actor every this many critic updates."""
    num_steps: int = 1
    """n of the n-step return (the authors use 3 on some tasks)."""
    gamma: float = 0.99
    """Discount factor (the authors' Playground settings: 0.97)."""
    tau: float = 0.1
    """Polyak coefficient of the target critics."""
    actor_lr: float = 3e-4
    """AdamW learning rate of the actor."""
    critic_lr: float = 3e-4
    """AdamW learning rate of the critics."""
    weight_decay: float = 0.1
    """AdamW weight decay of actor and critics."""
    actor_hidden_sizes: tuple[int, ...] = (512, 256, 128)
    """Hidden layer widths of the actor (ReLU)."""
    critic_hidden_sizes: tuple[int, ...] = (1024, 512, 256)
    """Hidden layer widths of each critic (ReLU)."""
    init_scale: float = 0.01
    """Std of the normal init of the actor's last layer (bias 0)."""
    num_atoms: int = 101
    """Atoms of the categorical value distribution."""
    v_min: float = -250.0
    """Lowest atom (set it near the lowest discounted return; Playground: -10)."""
    v_max: float = 250.0
    """Highest atom (Playground: 10)."""
    use_cdq: bool = True
    """Clipped double Q: the target takes the critic distribution with the lower mean, the actor the lower Q."""
    std_min: float = 0.001
    """Lowest exploration noise std (actions in [-1, 1] units), drawn per env."""
    std_max: float = 0.4
    """Highest exploration noise std, drawn per env."""
    policy_noise: float = 0.001
    """Std of the target policy smoothing noise."""
    noise_clip: float = 0.5
    """The smoothing noise is clipped to [-noise_clip, noise_clip]."""
    normalize_obs: bool = True
    """Running observation normalisation (mean and variance of every observation seen)."""
    max_grad_norm: float = 0.0
    """Clip each network's gradient norm to this (0: no clipping)."""
    amp: bool = False
    """bf16 autocast of the forward passes (the authors turn it on, on GPUs). On a CPU the matmuls run in bf16 too: faster
    where the CPU has bf16 units (AMX, AVX512-BF16), slower where it emulates them."""
    compile: bool = False
    """torch.compile the critic and actor losses (the authors turn it on, on GPUs; the first updates then take seconds to compile)."""
    log_every: int = 10_000
    """Log training metrics every this many env steps."""

    def __post_init__(self) -> None:
        ints = ("num_envs", "buffer_size", "batch_size", "num_updates", "policy_frequency", "num_steps", "log_every")
        bad = [f"{n}={getattr(self, n)}" for n in ints if getattr(self, n) < 1]
        if bad or self.learning_starts < 0:
            raise ValueError(f"{', '.join(bad) or f'learning_starts={self.learning_starts}'}: {', '.join(ints)} must be >= 1 "
                             "and learning_starts >= 0.")
        if not 0.0 < self.tau <= 1.0 or not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"tau and gamma must be in (0, 1], got tau={self.tau}, gamma={self.gamma}.")
        if self.num_atoms < 2 or not self.v_min < self.v_max:
            raise ValueError(f"the support needs num_atoms >= 2 and v_min < v_max, got num_atoms={self.num_atoms}, "
                             f"v_min={self.v_min}, v_max={self.v_max}.")
        if not 0.0 <= self.std_min <= self.std_max:
            raise ValueError(f"exploration stds need 0 <= std_min <= std_max, got std_min={self.std_min}, std_max={self.std_max}.")
        if min(self.policy_noise, self.noise_clip, self.max_grad_norm, self.weight_decay) < 0:
            raise ValueError("policy_noise, noise_clip, max_grad_norm and weight_decay must be >= 0.")
        if self.buffer_size < self.num_steps:
            raise ValueError(f"buffer_size={self.buffer_size} per env cannot hold an n-step window of num_steps={self.num_steps}.")


# ----------------------------------------------------------------------------- pure functions


def n_step_returns(rewards: torch.Tensor, terminated: torch.Tensor, ends: torch.Tensor, gamma: float
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """n-step returns of windows of consecutive steps of one env each, cut at the first end.

    Args:
        rewards: ``(B, n)`` rewards of steps ``t, ..., t+n-1`` of one env per row.
        terminated: ``(B, n)`` bool: the step ended its episode by termination (no bootstrap).
        ends: ``(B, n)`` bool: the window stops after this step (episode end of any kind, or no later step stored).
        gamma: discount factor.

    Returns:
        ``(returns, last, bootstrap, discount)``, each ``(B,)``: ``sum_{k<=last} gamma^k r_k`` with ``last`` the
        first step that ends the window (else ``n - 1``); ``bootstrap`` 0.0 where that step terminated, else 1.0;
        ``discount = gamma ** (last + 1)``, the weight of the bootstrapped value.
    """
    n = rewards.shape[1]
    k = torch.arange(n, device=rewards.device)
    last = torch.where(ends | terminated, k, n - 1).min(dim=1).values  # the first step that ends the window, else n - 1
    powers = torch.pow(torch.full((n,), gamma, dtype=rewards.dtype, device=rewards.device), k.to(rewards.dtype))
    included = (k.unsqueeze(0) <= last.unsqueeze(1)).to(rewards.dtype)
    returns = (rewards * powers * included).sum(dim=1)
    bootstrap = 1.0 - terminated.gather(1, last.unsqueeze(1)).squeeze(1).to(rewards.dtype)
    discount = torch.pow(torch.full_like(returns, gamma), (last + 1).to(rewards.dtype))
    return returns, last, bootstrap, discount


def categorical_projection(next_probs: torch.Tensor, rewards: torch.Tensor, bootstrap: torch.Tensor,
                           discount: torch.Tensor | float, support: torch.Tensor) -> torch.Tensor:
    """Project the distribution of ``r + bootstrap * discount * Z'`` onto the fixed ``support`` (C51).

    Each atom ``z_j`` of the next-state distribution moves to ``r + bootstrap * discount * z_j``, clipped to
    ``[v_min, v_max]``; its probability is split between the two neighbouring atoms in proportion to closeness
    (all of it to an atom it lands on exactly).

    Args:
        next_probs: ``(..., K)`` probabilities of the next-state value distribution on ``support``.
        rewards: ``(...)`` (n-step) rewards.
        bootstrap: ``(...)`` 1.0 to bootstrap, 0.0 at a termination (the target is then ``r`` alone).
        discount: ``(...)`` or a float: ``gamma ** k`` for ``k`` summed steps.
        support: ``(K,)`` evenly spaced atoms from ``v_min`` to ``v_max``.

    Returns:
        ``(..., K)`` target probabilities (each row sums to the row of ``next_probs``).
    """
    k = support.shape[0]
    v_min, v_max = support[0], support[-1]
    delta = (v_max - v_min) / (k - 1)
    scale = (bootstrap * torch.as_tensor(discount, dtype=next_probs.dtype, device=next_probs.device)).unsqueeze(-1)
    tz = (rewards.unsqueeze(-1) + scale * support).clamp(v_min, v_max)
    b = ((tz - v_min) / delta).clamp(0, k - 1).expand(next_probs.shape)
    lower = b.floor().long().clamp(0, k - 1)
    upper = (lower + 1).clamp(max=k - 1)
    w_upper = b - lower.to(b.dtype)
    out = torch.zeros_like(next_probs)
    out.scatter_add_(-1, lower, next_probs * (1.0 - w_upper))
    out.scatter_add_(-1, upper, next_probs * w_upper)
    return out


def expected_value(probs: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """``sum_j p_j z_j``: ``(..., K) -> (...)``."""
    return (probs * support).sum(dim=-1)


def clipped_double_q(target_probs: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """Per sample, the distribution of the critic whose expected value is lowest: ``(E, B, K) -> (B, K)``
    (a tie goes to the first critic)."""
    pick = expected_value(target_probs, support).argmin(dim=0)  # (B,)
    return target_probs.gather(0, pick.view(1, -1, 1).expand(1, *target_probs.shape[1:])).squeeze(0)


def categorical_critic_loss(logits: torch.Tensor, target_probs: torch.Tensor, support: torch.Tensor
                            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Cross-entropy of each critic against its target, summed over critics, averaged over the batch.

    ``sum_e mean_b ( -sum_j target_{(e,)b,j} * log softmax(logits_{e,b})_j )`` for ``logits`` ``(E, B, K)`` and
    ``target_probs`` ``(B, K)`` (one target for every critic) or ``(E, B, K)`` (one per critic).
    Stats: ``q_mean`` (expected value of the critics' distributions), ``target_q_mean``.
    """
    logp = F.log_softmax(logits, dim=-1)
    loss = -(target_probs * logp).sum(dim=-1).mean(dim=-1).sum()
    with torch.no_grad():
        stats = {"q_mean": expected_value(logp.exp(), support).mean(), "target_q_mean": expected_value(target_probs, support).mean()}
    return loss, stats


def distributional_actor_loss(logits: torch.Tensor, support: torch.Tensor, use_cdq: bool = True
                              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``-mean_b(Q(s_b, pi(s_b)))`` with ``Q`` the minimum (``use_cdq``) or mean over the critics of the expected
    value of each critic's distribution; ``logits`` ``(E, B, K)`` at the actor's actions."""
    q = expected_value(F.softmax(logits, dim=-1), support)  # (E, B)
    q = q.min(dim=0).values if use_cdq else q.mean(dim=0)
    return -q.mean(), {"actor_q_mean": q.detach().mean()}


# ----------------------------------------------------------------------------- replay


class NStepReplay:
    """Per-env circular replay on ``device``, time-major ``(capacity, num_envs, ...)``, sampled as n-step windows.

    Each vector step adds one transition per env (``obs, action, reward, next_obs, terminated, done``; ``next_obs``
    is the true next observation, ``info["final_obs"]`` at an episode end; ``done`` = terminated or truncated).
    :meth:`sample` draws a start step uniformly among the stored ones for each row (rows spread evenly over the
    envs) and assembles the n-step return along that env's trajectory with :func:`n_step_returns`.

    Args:
        capacity: transitions kept per env (the oldest are overwritten).
        num_envs: parallel envs.
        obs_dim, act_dim: flat observation and action sizes.
        n: steps of the return.
        gamma: discount of the return.
        device: where the storage lives.
    """

    FIELDS = ("obs", "actions", "rewards", "next_obs", "terminated", "done")

    def __init__(self, capacity: int, num_envs: int, obs_dim: int, act_dim: int, n: int, gamma: float,
                 device: torch.device | str = "cpu") -> None:
        self.capacity, self.num_envs, self.n, self.gamma = int(capacity), int(num_envs), int(n), float(gamma)
        self.device = torch.device(device)
        z = dict(device=self.device)
        t, e = self.capacity, self.num_envs
        self.obs = torch.zeros((t, e, obs_dim), **z)
        self.next_obs = torch.zeros((t, e, obs_dim), **z)
        self.actions = torch.zeros((t, e, act_dim), **z)
        self.rewards = torch.zeros((t, e), **z)
        self.terminated = torch.zeros((t, e), dtype=torch.bool, **z)
        self.done = torch.zeros((t, e), dtype=torch.bool, **z)
        self.ptr = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size * self.num_envs

    def add(self, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, next_obs: torch.Tensor,
            terminated: torch.Tensor, done: torch.Tensor) -> None:
        """Store one vector step: every argument has leading dimension ``num_envs``."""
        p = self.ptr
        self.obs[p] = obs
        self.actions[p] = actions
        self.rewards[p] = rewards
        self.next_obs[p] = next_obs
        self.terminated[p] = terminated
        self.done[p] = done
        self.ptr = (p + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        """``batch_size`` n-step samples: ``obs``, ``actions`` ``(B, ...)``, ``returns``, ``bootstrap``, ``discount``
        ``(B,)`` and ``next_obs`` ``(B, obs_dim)`` (the observation after the window's last step)."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay; add a vector step first.")
        env = torch.arange(batch_size, device=self.device) % self.num_envs
        c = torch.randint(0, self.size, (batch_size,), device=self.device)  # chronological index, 0 = oldest
        start = (self.ptr - self.size) % self.capacity
        if self.n == 1:
            p = (start + c) % self.capacity
            return {"obs": self.obs[p, env], "actions": self.actions[p, env], "returns": self.rewards[p, env],
                    "next_obs": self.next_obs[p, env], "bootstrap": (~self.terminated[p, env]).float(),
                    "discount": torch.full((batch_size,), self.gamma, device=self.device)}
        steps = c.unsqueeze(1) + torch.arange(self.n, device=self.device)  # (B, n)
        beyond = steps >= self.size - 1  # no stored step after this one: the window stops here
        pos = (start + steps.clamp(max=self.size - 1)) % self.capacity
        e2 = env.unsqueeze(1).expand_as(pos)
        returns, last, bootstrap, discount = n_step_returns(self.rewards[pos, e2], self.terminated[pos, e2],
                                                            self.done[pos, e2] | beyond, self.gamma)
        p0, pl = pos[:, 0], pos.gather(1, last.unsqueeze(1)).squeeze(1)
        return {"obs": self.obs[p0, env], "actions": self.actions[p0, env], "returns": returns,
                "next_obs": self.next_obs[pl, env], "bootstrap": bootstrap, "discount": discount}

    def state_dict(self) -> dict[str, Any]:
        """The stored steps (``size`` rows: the storage is filled from row 0) and the pointers."""
        return {"ptr": self.ptr, "size": self.size, "capacity": self.capacity, "num_envs": self.num_envs,
                **{f: getattr(self, f)[: self.size] for f in self.FIELDS}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if (int(state["capacity"]), int(state["num_envs"])) != (self.capacity, self.num_envs):
            raise ValueError(f"replay state holds {state['capacity']} steps x {state['num_envs']} envs, this replay "
                             f"{self.capacity} x {self.num_envs}; build the agent with the checkpoint's buffer_size and num_envs.")
        n = int(state["size"])
        for f in self.FIELDS:
            getattr(self, f)[:n] = state[f].to(self.device)
        self.size, self.ptr = n, int(state["ptr"])


# ----------------------------------------------------------------------------- networks


class Actor(nn.Module):
    """Observation normaliser, MLP with a tanh output in ``[-1, 1]``, and the rescaling to the env's bounds.

    Shapes: ``forward``: ``(B, obs_dim) -> (B, act_dim)`` in ``[-1, 1]``; ``to_env`` rescales.
    """

    def __init__(self, obs_dim: int, act_dim: int, low: np.ndarray, high: np.ndarray, cfg: FastTD3Config) -> None:
        super().__init__()
        self.obs_norm = RunningNorm((obs_dim,)) if cfg.normalize_obs else nn.Identity()
        self.net = MLP(obs_dim, act_dim, cfg.actor_hidden_sizes, "relu")
        last = self.net.net[-1]
        nn.init.normal_(last.weight, 0.0, cfg.init_scale)
        nn.init.zeros_(last.bias)
        self.register_buffer("action_scale", torch.as_tensor((high - low) / 2.0, dtype=torch.float32).reshape(-1))
        self.register_buffer("action_bias", torch.as_tensor((high + low) / 2.0, dtype=torch.float32).reshape(-1))

    def policy(self, normed_obs: torch.Tensor) -> torch.Tensor:
        """Actions in ``[-1, 1]`` for already normalised observations."""
        return torch.tanh(self.net(normed_obs))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.policy(self.obs_norm(obs))

    def to_env(self, action: torch.Tensor) -> torch.Tensor:
        """``[-1, 1]`` actions -> env units."""
        return action * self.action_scale + self.action_bias


class _DeterministicFastTD3(nn.Module):
    def __init__(self, actor: Actor) -> None:
        super().__init__()
        self.actor = actor

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor.to_env(self.actor(obs))


class DistributionalTwinQ(nn.Module):
    """Two categorical critics in one ensemble: ``(B, obs_dim), (B, act_dim) -> logits (2, B, num_atoms)``;
    ``support`` ``(num_atoms,)`` holds the atoms."""

    support: torch.Tensor

    def __init__(self, obs_dim: int, act_dim: int, cfg: FastTD3Config) -> None:
        super().__init__()
        self.q = EnsembleMLP(2, obs_dim + act_dim, cfg.num_atoms, cfg.critic_hidden_sizes, "relu")
        self.register_buffer("support", torch.linspace(cfg.v_min, cfg.v_max, cfg.num_atoms))

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.q(torch.cat([obs, act], dim=-1))


def _adamw(params: Any, lr: float, weight_decay: float) -> torch.optim.AdamW:
    return torch.optim.AdamW(list(params), lr=lr, weight_decay=weight_decay)


# ----------------------------------------------------------------------------- agent


class FastTD3:
    """FastTD3 agent: ``learn(env, total_steps)``, ``act(obs)``, ``state_dict()`` / ``load_state_dict()``.

    Args:
        config: hyper-parameters.
        observation_space: single-env Box observation space.
        action_space: single-env bounded Box action space.
        device: where networks and the replay live.
    """

    algo = "fast-td3"
    remote_envs = True  # learn() uses its env through the batched-env contract alone (--workers)

    def __init__(self, config: FastTD3Config, observation_space: gym.Space, action_space: gym.Space,
                 device: str | torch.device = "cpu") -> None:
        if not isinstance(observation_space, gym.spaces.Box):
            raise ValueError(f"FastTD3 needs a Box observation space, got {observation_space}.")
        if not isinstance(action_space, gym.spaces.Box) or not np.all(np.isfinite(action_space.low)) or not np.all(np.isfinite(action_space.high)):
            raise ValueError(f"FastTD3 needs a bounded Box action space (continuous actions), got {action_space}. Use PPO for discrete actions.")
        self.config = cfg = config
        self.observation_space, self.action_space = observation_space, action_space
        self.device = resolve_device(device)
        self.obs_dim = int(np.prod(observation_space.shape))
        self.act_dim = int(np.prod(action_space.shape))
        self.actor = Actor(self.obs_dim, self.act_dim, action_space.low, action_space.high, cfg).to(self.device)
        self.critic = DistributionalTwinQ(self.obs_dim, self.act_dim, cfg).to(self.device)
        self.critic_target = DistributionalTwinQ(self.obs_dim, self.act_dim, cfg).to(self.device)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.actor_opt = _adamw(self.actor.parameters(), cfg.actor_lr, cfg.weight_decay)
        self.critic_opt = _adamw(self.critic.parameters(), cfg.critic_lr, cfg.weight_decay)
        self.buffer = NStepReplay(cfg.buffer_size, cfg.num_envs, self.obs_dim, self.act_dim, cfg.num_steps, cfg.gamma, self.device)
        self.global_step = 0
        self.updates = 0
        self._obs: torch.Tensor | None = None
        self._noise_std: torch.Tensor | None = None  # (num_envs,) exploration std of each env's current episode
        self._acc = torch.zeros(3, device=self.device, dtype=torch.float64)  # episode return sum, length sum, count
        self._last_log = 0
        self._critic_loss_fn: Callable[..., Any] = self._critic_loss
        self._actor_loss_fn: Callable[..., Any] = self._actor_loss
        if cfg.compile:
            self._critic_loss_fn = torch.compile(self._critic_loss)
            self._actor_loss_fn = torch.compile(self._actor_loss)

    # ------------------------------------------------------------------ acting
    def _obs_in(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.to(self.device, torch.float32).reshape(-1, self.obs_dim)

    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.config.amp else contextlib.nullcontext()

    def deploy_module(self) -> nn.Module:
        """A self-contained module ``obs (B, obs_dim) -> actions`` in env units for export (normaliser, actor and
        rescaling inside)."""
        return _DeterministicFastTD3(self.actor).eval()

    def _draw_std(self, n: int) -> torch.Tensor:
        cfg = self.config
        return torch.rand(n, device=self.device) * (cfg.std_max - cfg.std_min) + cfg.std_min

    def _explore(self, action: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        return (action + torch.randn_like(action) * std.unsqueeze(1)).clamp(-1.0, 1.0)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Actions ``(B, act_dim)`` in env units for ``obs`` ``(B, *obs_shape)``; stochastic: Gaussian noise with a
        std drawn per row uniformly in ``[std_min, std_max]``, clamped to the bounds."""
        with self._autocast():
            a = self.actor(self._obs_in(obs)).float()
        if not deterministic:
            a = self._explore(a, self._draw_std(a.shape[0]))
        return self.actor.to_env(a)

    # ------------------------------------------------------------------ training
    def budget_note(self, total_steps: int) -> str | None:
        """The sentence to show when :meth:`learn` will pass ``total_steps`` (each iteration steps all
        ``num_envs`` envs, so a budget that is not a multiple of that is rounded up), else None."""
        n, left = self.config.num_envs, total_steps - self.global_step
        if left <= 0 or left % n == 0:
            return None
        return f"--total-steps {total_steps} is not a multiple of num_envs = {n} from step {self.global_step}: training {self.global_step + -(-left // n) * n} steps"

    def learn(self, env: TorchVecEnv, total_steps: int, run: Any = None, seed: int = 0) -> FastTD3:
        """Train until ``global_step >= total_steps`` env steps (continues a restored run where it stopped)."""
        cfg = self.config
        if env.num_envs != cfg.num_envs:
            raise ValueError(f"env has {env.num_envs} parallel envs but config.num_envs={cfg.num_envs}; pass --num-envs {env.num_envs} "
                             "or build the env with the config's.")
        N = cfg.num_envs
        if self._obs is None:
            self._obs, _ = env.reset(seed=seed)
            self._noise_std = self._draw_std(N)
        obs, std = self._obs, self._noise_std
        assert std is not None
        stats: dict[str, torch.Tensor] = {}
        t_last = time.perf_counter()
        while self.global_step < total_steps:
            with torch.no_grad():
                flat_obs = self._obs_in(obs)
                if cfg.normalize_obs:
                    self.actor.obs_norm.update(flat_obs)
                with self._autocast():
                    mean_action = self.actor(flat_obs).float()
                action = self._explore(mean_action, std)
                next_obs, reward, terminated, truncated, info = env.step(self.actor.to_env(action))
                done = info["_final_obs"]
                self.buffer.add(flat_obs, action, reward, self._obs_in(info["final_obs"]), terminated, done)
                std = torch.where(done, self._draw_std(N), std)  # a fresh noise level for each new episode
                self._acc += torch.stack(
                    [torch.where(done, info["episode_return"], 0.0).sum(), torch.where(done, info["episode_length"].float(), 0.0).sum(), done.sum()]
                ).to(torch.float64)
            obs = next_obs
            self._obs, self._noise_std = obs, std
            self.global_step += N
            if self.global_step // N > cfg.learning_starts:
                for _ in range(cfg.num_updates):
                    stats.update(self.update(self.buffer.sample(cfg.batch_size)))
            if run is not None:
                if self.global_step - self._last_log >= cfg.log_every:
                    now = time.perf_counter()
                    ret_sum, len_sum, count = self._acc.tolist()
                    metrics: dict[str, Any] = {
                        "rollout/ep_return": ret_sum / count if count else float("nan"),
                        "rollout/ep_length": len_sum / count if count else float("nan"),
                        "rollout/episodes": count,
                        **{f"train/{k}": v for k, v in stats.items()},
                        "train/noise_std": std.mean(),
                        "time/sps": (self.global_step - self._last_log) / (now - t_last),
                    }
                    run.logger.log(self.global_step, metrics)
                    self._acc.zero_()
                    self._last_log, t_last = self.global_step, now
                run.step_done(self, env)
        return self

    def _critic_loss(self, obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor, returns: torch.Tensor,
                     bootstrap: torch.Tensor, discount: torch.Tensor, noise: torch.Tensor
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """The critic loss on one minibatch (raw observations ``(B, obs_dim)``, the rest as :meth:`NStepReplay.sample`
        gives it; ``noise`` ``(B, act_dim)`` standard normal); also returns the normalised observations."""
        cfg = self.config
        support = self.critic.support
        with self._autocast():
            obs_n, next_n = self.actor.obs_norm(obs), self.actor.obs_norm(next_obs)
            with torch.no_grad():
                smoothing = (noise * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
                next_a = (self.actor.policy(next_n).float() + smoothing).clamp(-1.0, 1.0)
                next_probs = F.softmax(self.critic_target(next_n, next_a).float(), dim=-1)  # (2, B, K)
                target = categorical_projection(next_probs, returns, bootstrap, discount, support)
                if cfg.use_cdq:
                    target = clipped_double_q(target, support)
            loss, stats = categorical_critic_loss(self.critic(obs_n, actions).float(), target, support)
        return loss, stats, obs_n

    def _actor_loss(self, obs_n: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with self._autocast():
            logits = self.critic(obs_n, self.actor.policy(obs_n).float()).float()
            return distributional_actor_loss(logits, self.critic.support, self.config.use_cdq)

    def _step(self, loss: torch.Tensor, opt: torch.optim.Optimizer, module: nn.Module) -> torch.Tensor | None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = None
        if self.config.max_grad_norm > 0:
            norm = nn.utils.clip_grad_norm_(module.parameters(), self.config.max_grad_norm)
        opt.step()
        return norm

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One critic update on ``batch`` (fields as :meth:`NStepReplay.sample` returns them), the actor every
        ``policy_frequency`` updates, then the Polyak step; returns detached stats."""
        cfg = self.config
        noise = torch.randn_like(batch["actions"])
        q_loss, stats, obs_n = self._critic_loss_fn(batch["obs"], batch["actions"], batch["next_obs"], batch["returns"],
                                                    batch["bootstrap"], batch["discount"], noise)
        norm = self._step(q_loss, self.critic_opt, self.critic)
        stats = {k: v.detach() for k, v in stats.items()}
        stats["critic_loss"] = q_loss.detach()
        if norm is not None:
            stats["critic_grad_norm"] = norm.detach()
        self.updates += 1
        if self.updates % cfg.policy_frequency == 0:
            self.critic.requires_grad_(False)  # the actor loss must not leave gradients on the critics
            try:
                pi_loss, pi_stats = self._actor_loss_fn(obs_n.detach())
            finally:
                self.critic.requires_grad_(True)
            norm = self._step(pi_loss, self.actor_opt, self.actor)
            stats.update({k: v.detach() for k, v in pi_stats.items()}, actor_loss=pi_loss.detach())
            if norm is not None:
                stats["actor_grad_norm"] = norm.detach()
        soft_update(self.critic_target, self.critic, cfg.tau)
        return stats

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """``weights`` (actor incl. normaliser, critics, target critics), ``optim`` and ``counters``."""
        return {
            "weights": {"actor": self.actor.state_dict(), "critic": self.critic.state_dict(), "critic_target": self.critic_target.state_dict()},
            "optim": {"actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict()},
            "counters": {"global_step": self.global_step, "updates": self.updates},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        w = state["weights"]
        self.actor.load_state_dict(w["actor"])
        self.critic.load_state_dict(w["critic"])
        self.critic_target.load_state_dict(w["critic_target"])
        if "optim" in state:
            for name in ("actor_opt", "critic_opt"):
                getattr(self, name).load_state_dict(state["optim"][name])
        counters = state.get("counters", {})
        self.global_step = int(counters.get("global_step", 0))
        self.updates = int(counters.get("updates", 0))

    def training_state(self, env: TorchVecEnv) -> dict[str, Any]:
        """Replay, env state, current observations, per-env exploration stds and the logging accumulators."""
        return {"obs": optional_tensor(self._obs), "noise_std": optional_tensor(self._noise_std), "env": env.state_dict(),
                "replay": self.buffer.state_dict(), "acc": self._acc.clone(), "last_log": self._last_log}

    def load_training_state(self, state: dict[str, Any], env: TorchVecEnv) -> None:
        env.load_state_dict(state["env"])
        self.buffer.load_state_dict(state["replay"])
        self._obs = restore_optional(state["obs"], self.device)
        self._noise_std = restore_optional(state["noise_std"], self.device)
        self._acc = state["acc"].to(self.device).clone()
        self._last_log = int(state["last_log"])


# sized for one CPU thread (docs/fast_td3.md): smaller networks and batches, 4 updates per vector step, 3-step returns,
# gamma 0.97 (the authors' Playground discount) and the support on the pendulum's discounted returns
CPU_PENDULUM = dict(num_envs=64, buffer_size=2048, batch_size=1024, num_updates=4, num_steps=3, gamma=0.97, critic_lr=1e-3,
                    v_min=-600.0, v_max=0.0, actor_hidden_sizes=(128, 128), critic_hidden_sizes=(128, 128), log_every=2048)

AGENTS.register(
    "fast-td3",
    AgentSpec(
        name="fast-td3",
        config_cls=FastTD3Config,
        agent_cls=FastTD3,
        summary="FastTD3: many parallel envs, large batches, distributional clipped double Q, continuous actions",
        default_env="rlsuite/Pendulum-v0",
        presets={
            # ours: solves the pendulum in about 13-34 s on one CPU thread (docs/fast_td3.md)
            "rlsuite/Pendulum-v0": dict(CPU_PENDULUM),
            "Pendulum-v1": dict(CPU_PENDULUM),
        },
    ),
)
