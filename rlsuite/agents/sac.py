"""Soft Actor-Critic (SAC) with automatic entropy tuning, continuous actions.

Papers: Haarnoja et al., "Soft Actor-Critic: Off-Policy Maximum Entropy Deep RL with a Stochastic
Actor", ICML 2018, and "Soft Actor-Critic Algorithms and Applications", 2018 (arXiv:1812.05905) for the
learned temperature. Reference implementations: Stable-Baselines3 ``SAC`` and CleanRL
``sac_continuous_action.py``.

Implementation details:

1. Tanh-squashed Gaussian actor with state-dependent log-std clamped to [-5, 2]; actions are stored
   in the squashed ``[-1, 1]`` units and rescaled to the env bounds when sent to the env.
2. Twin Q critics evaluated together as one ensemble (a single batched matmul per layer), with a
   Polyak-averaged target ensemble (``tau``); the target takes the minimum of the two.
3. The bootstrap mask is ``terminated`` only; a time-limit truncation bootstraps from
   ``info["final_obs"]`` (stored as ``next_obs``).
4. Temperature ``alpha = exp(log_alpha)`` tuned to a target entropy of ``-act_dim``; the loss is
   ``-log_alpha * (log pi + target_entropy)`` as in SB3 (CleanRL multiplies by ``alpha`` instead).
5. ``learning_starts`` uniform random actions first; then ``gradient_steps`` updates per env step,
   the actor and temperature updated every ``policy_frequency`` updates.
6. Critic loss ``0.5 * sum_i mean((Q_i - y)^2)`` (SB3's scale).

Deviation from the paper: no separate state-value network (the 2018 "applications" version drops it
too).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rlsuite.agents.registry import AGENTS, AgentSpec
from rlsuite.core.checkpoint import optional_tensor, restore_optional
from rlsuite.core.distributions import TanhGaussian, TanhGaussianHead
from rlsuite.core.nets import MLP, EnsembleMLP, activation, adam, soft_update
from rlsuite.core.normalizer import RunningNorm
from rlsuite.core.replay import ReplayBuffer
from rlsuite.core.seeding import resolve_device
from rlsuite.core.vec_env import TorchVecEnv


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """SAC hyper-parameters (defaults: Stable-Baselines3's)."""

    num_envs: int = 1
    """Parallel environments."""
    buffer_size: int = 1_000_000
    """Replay capacity (transitions)."""
    batch_size: int = 256
    """Minibatch size of each update."""
    learning_starts: int = 100
    """Env steps of uniform random actions before learning starts."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak coefficient of the target critics."""
    actor_lr: float = 3e-4
    """Actor learning rate."""
    critic_lr: float = 3e-4
    """Critic learning rate."""
    alpha_lr: float = 3e-4
    """Temperature learning rate."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of the actor and of each critic."""
    activation: str = "relu"
    """Activation."""
    gradient_steps: int = 1
    """Updates per vector env step."""
    policy_frequency: int = 1
    """Update the actor and temperature every this many critic updates."""
    autotune: bool = True
    """Learn the temperature alpha."""
    alpha: float = 1.0
    """Initial (or, without autotune, fixed) temperature."""
    target_entropy: float | None = None
    """Target entropy (None: -act_dim)."""
    normalize_obs: bool = False
    """Running observation normalisation (updated from each env step's observations)."""
    reward_scale: float = 1.0
    """Rewards are multiplied by this in the critic's target (the replay keeps the env's rewards): the
    entropy bonus weighs against rewards of this scale (SAC paper, section 5.2)."""
    log_every: int = 1000
    """Log training metrics every this many env steps."""

    def __post_init__(self) -> None:
        if min(self.num_envs, self.buffer_size, self.batch_size, self.gradient_steps, self.policy_frequency, self.log_every) < 1:
            raise ValueError("num_envs, buffer_size, batch_size, gradient_steps, policy_frequency and log_every must be >= 1.")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {self.tau}.")
        if self.alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}.")
        if not self.reward_scale > 0:
            raise ValueError(f"reward_scale must be > 0, got {self.reward_scale}.")


# ----------------------------------------------------------------------------- pure losses


def sac_critic_loss(q: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``0.5 * sum_i mean((q_i - target)^2)`` for ``q`` ``(E, B)`` (E critics) and ``target`` ``(B,)``."""
    loss = 0.5 * (q - target.unsqueeze(0)).pow(2).mean(dim=1).sum()
    return loss, {"q_mean": q.detach().mean()}


def sac_target(
    reward: torch.Tensor, terminated: torch.Tensor, next_q: torch.Tensor, next_logp: torch.Tensor, alpha: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Soft Bellman target ``r + gamma * (1 - terminated) * (min_i Q'_i(s', a') - alpha * log pi(a'|s'))``.

    ``next_q`` is ``(E, B)``; the other tensors ``(B,)``.
    """
    soft_v = next_q.min(dim=0).values - alpha * next_logp
    return reward + gamma * (1.0 - terminated.float()) * soft_v


def sac_actor_loss(logp: torch.Tensor, q: torch.Tensor, alpha: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``mean(alpha * log pi(a|s) - min_i Q_i(s, a))`` with ``a ~ pi`` reparameterised; ``q`` ``(E, B)``."""
    loss = (alpha * logp - q.min(dim=0).values).mean()
    return loss, {"entropy": -logp.detach().mean()}


def sac_alpha_loss(log_alpha: torch.Tensor, logp: torch.Tensor, target_entropy: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``-mean(log_alpha * (log pi + target_entropy))`` (``logp`` detached)."""
    return -(log_alpha * (logp.detach() + target_entropy)).mean(), {}


# ----------------------------------------------------------------------------- networks


class Actor(nn.Module):
    """Observation normaliser, MLP body and tanh-Gaussian head, plus the action rescaling to env bounds."""

    def __init__(self, obs_dim: int, act_dim: int, low: np.ndarray, high: np.ndarray, cfg: SACConfig) -> None:
        super().__init__()
        self.obs_norm = RunningNorm((obs_dim,)) if cfg.normalize_obs else nn.Identity()
        *body_hidden, width = cfg.hidden_sizes
        self.body = nn.Sequential(MLP(obs_dim, width, body_hidden, cfg.activation), activation(cfg.activation))
        self.head = TanhGaussianHead(width, act_dim)
        self.register_buffer("action_scale", torch.as_tensor((high - low) / 2.0, dtype=torch.float32))
        self.register_buffer("action_bias", torch.as_tensor((high + low) / 2.0, dtype=torch.float32))

    def dist(self, obs: torch.Tensor) -> TanhGaussian:
        return self.head(self.body(self.obs_norm(obs)))

    def to_env(self, squashed: torch.Tensor) -> torch.Tensor:
        """``[-1, 1]`` actions -> env units."""
        return squashed * self.action_scale + self.action_bias


class _DeterministicSAC(nn.Module):
    def __init__(self, actor: Actor) -> None:
        super().__init__()
        self.actor = actor

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor.to_env(self.actor.dist(obs).mode)


class TwinQ(nn.Module):
    """``E`` Q-functions ``Q(s, a)`` in one ensemble: ``(B, obs_dim), (B, act_dim) -> (E, B)``."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: SACConfig, size: int = 2) -> None:
        super().__init__()
        self.q = EnsembleMLP(size, obs_dim + act_dim, 1, cfg.hidden_sizes, cfg.activation)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.q(torch.cat([obs, act], dim=-1)).squeeze(-1)


# ----------------------------------------------------------------------------- agent


class SAC:
    """SAC agent: ``learn(env, total_steps)``, ``act(obs)``, ``state_dict()`` / ``load_state_dict()``.

    Args:
        config: hyper-parameters.
        observation_space: single-env Box observation space.
        action_space: single-env bounded Box action space.
        device: where networks and the replay buffer live.
    """

    algo = "sac"

    def __init__(self, config: SACConfig, observation_space: gym.Space, action_space: gym.Space, device: str | torch.device = "cpu") -> None:
        if not isinstance(observation_space, gym.spaces.Box):
            raise ValueError(f"SAC needs a Box observation space, got {observation_space}.")
        if not isinstance(action_space, gym.spaces.Box) or not np.all(np.isfinite(action_space.low)) or not np.all(np.isfinite(action_space.high)):
            raise ValueError(f"SAC needs a bounded Box action space (continuous actions), got {action_space}. Use PPO for discrete actions.")
        self.config = config
        self.observation_space, self.action_space = observation_space, action_space
        self.device = resolve_device(device)
        self.obs_dim = int(np.prod(observation_space.shape))
        self.act_dim = int(np.prod(action_space.shape))
        self.actor = Actor(self.obs_dim, self.act_dim, action_space.low, action_space.high, config).to(self.device)
        self.critic = TwinQ(self.obs_dim, self.act_dim, config).to(self.device)
        self.critic_target = TwinQ(self.obs_dim, self.act_dim, config).to(self.device)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.log_alpha = torch.tensor(float(np.log(config.alpha)), device=self.device, requires_grad=config.autotune)
        self.target_entropy = float(config.target_entropy if config.target_entropy is not None else -self.act_dim)
        self.actor_opt = adam(self.actor.parameters(), lr=config.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), lr=config.critic_lr)
        self.alpha_opt = adam([self.log_alpha], lr=config.alpha_lr)
        self.buffer = ReplayBuffer(config.buffer_size, observation_space.shape, (self.act_dim,), self.device)
        self.global_step = 0
        self.updates = 0
        self._obs: torch.Tensor | None = None
        self._acc = torch.zeros(3, device=self.device, dtype=torch.float64)  # episode return sum, length sum, count
        self._last_log = 0

    # ------------------------------------------------------------------ acting
    def _obs_in(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.to(self.device, torch.float32).reshape(-1, self.obs_dim)

    def deploy_module(self) -> nn.Module:
        """A self-contained module ``obs (B, obs_dim) -> actions`` in env units for export (normaliser,
        deterministic tanh-mean and rescaling inside)."""
        return _DeterministicSAC(self.actor).eval()

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Actions ``(B, act_dim)`` in env units for ``obs`` ``(B, *obs_shape)``."""
        dist = self.actor.dist(self._obs_in(obs))
        return self.actor.to_env(dist.mode if deterministic else dist.sample())

    # ------------------------------------------------------------------ training
    def budget_note(self, total_steps: int) -> str | None:
        """The sentence to show when :meth:`learn` will pass ``total_steps`` (each iteration steps all
        ``num_envs`` envs, so a budget that is not a multiple of that is rounded up), else None."""
        n, left = self.config.num_envs, total_steps - self.global_step
        if left <= 0 or left % n == 0:
            return None
        return f"--total-steps {total_steps} is not a multiple of num_envs = {n} from step {self.global_step}: training {self.global_step + -(-left // n) * n} steps"

    def learn(self, env: TorchVecEnv, total_steps: int, run: Any = None, seed: int = 0) -> SAC:
        """Train until ``global_step >= total_steps`` (continues a restored run where it stopped)."""
        cfg = self.config
        if env.num_envs != cfg.num_envs:
            raise ValueError(f"env has {env.num_envs} parallel envs but config.num_envs={cfg.num_envs}.")
        N = cfg.num_envs
        if self._obs is None:
            self._obs, _ = env.reset(seed=seed)
        obs = self._obs
        stats: dict[str, torch.Tensor] = {}
        t_last = time.perf_counter()
        while self.global_step < total_steps:
            with torch.no_grad():
                flat_obs = self._obs_in(obs)
                if self.global_step < cfg.learning_starts:
                    action = torch.rand((N, self.act_dim), device=self.device) * 2.0 - 1.0
                else:
                    action = self.actor.dist(flat_obs).sample()
                next_obs, reward, terminated, truncated, info = env.step(self.actor.to_env(action))
                self.buffer.add(flat_obs, action, reward, self._obs_in(info["final_obs"]), terminated)
                if cfg.normalize_obs:
                    self.actor.obs_norm.update(flat_obs)
                done = info["_final_obs"]
                self._acc += torch.stack(
                    [torch.where(done, info["episode_return"], 0.0).sum(), torch.where(done, info["episode_length"].float(), 0.0).sum(), done.sum()]
                ).to(torch.float64)
            obs = next_obs
            self._obs = obs
            self.global_step += N
            if self.global_step >= cfg.learning_starts:
                self.before_updates()
                for _ in range(cfg.gradient_steps):
                    stats = self.update(self.sample_batch(cfg.batch_size))
            if run is not None:
                if self.global_step - self._last_log >= cfg.log_every:
                    now = time.perf_counter()
                    ret_sum, len_sum, count = self._acc.tolist()
                    metrics: dict[str, Any] = {
                        "rollout/ep_return": ret_sum / count if count else float("nan"),
                        "rollout/ep_length": len_sum / count if count else float("nan"),
                        "rollout/episodes": count,
                        **{f"train/{k}": v for k, v in stats.items()},
                        "train/alpha": self.log_alpha.exp().item(),
                        **self.extra_metrics(),
                        "time/sps": (self.global_step - self._last_log) / (now - t_last),
                    }
                    run.logger.log(self.global_step, metrics)
                    self._acc.zero_()
                    self._last_log, t_last = self.global_step, now
                run.step_done(self, env)
        return self

    # hooks of the training loop (model-based variants such as rlsuite.agents.robust_mbrl override them)
    def before_updates(self) -> None:
        """Called once per vector env step from ``learning_starts`` on, before the gradient steps."""

    def sample_batch(self, batch_size: int) -> dict[str, torch.Tensor]:
        """The minibatch of one update (here: uniform from the replay)."""
        return self.buffer.sample(batch_size)

    def extra_metrics(self) -> dict[str, float]:
        """Metrics logged beside SAC's own."""
        return {}

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One SAC update on ``batch`` (fields ``(B, ...)``); returns detached stats."""
        cfg = self.config
        obs = self.actor.obs_norm(batch["obs"])
        next_obs = self.actor.obs_norm(batch["next_obs"])
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            next_dist = self.actor.head(self.actor.body(next_obs))
            next_a, next_logp = next_dist.rsample_with_log_prob()
            target = sac_target(cfg.reward_scale * batch["rewards"], batch["terminated"], self.critic_target(next_obs, next_a), next_logp, alpha, cfg.gamma)
        q_loss, stats = sac_critic_loss(self.critic(obs, batch["actions"]), target)
        self.critic_opt.zero_grad(set_to_none=True)
        q_loss.backward()
        self.critic_opt.step()
        stats["critic_loss"] = q_loss.detach()
        self.updates += 1
        if self.updates % cfg.policy_frequency == 0:
            a, logp = self.actor.head(self.actor.body(obs)).rsample_with_log_prob()
            self.critic.requires_grad_(False)  # the actor loss must not leave gradients on the critic
            pi_loss, pi_stats = sac_actor_loss(logp, self.critic(obs, a), alpha)
            self.critic.requires_grad_(True)
            self.actor_opt.zero_grad(set_to_none=True)
            pi_loss.backward()
            self.actor_opt.step()
            stats.update(pi_stats, actor_loss=pi_loss.detach())
            if cfg.autotune:
                a_loss, _ = sac_alpha_loss(self.log_alpha, logp, self.target_entropy)
                self.alpha_opt.zero_grad(set_to_none=True)
                a_loss.backward()
                self.alpha_opt.step()
                stats["alpha_loss"] = a_loss.detach()
        soft_update(self.critic_target, self.critic, cfg.tau)
        return stats

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """``weights`` (actor incl. normaliser, critics, targets, temperature), ``optim`` and ``counters``."""
        return {
            "weights": {
                "actor": self.actor.state_dict(),
                "critic": self.critic.state_dict(),
                "critic_target": self.critic_target.state_dict(),
                "log_alpha": self.log_alpha.detach().clone(),
            },
            "optim": {
                "actor_opt": self.actor_opt.state_dict(),
                "critic_opt": self.critic_opt.state_dict(),
                "alpha_opt": self.alpha_opt.state_dict(),
            },
            "counters": {"global_step": self.global_step, "updates": self.updates},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        w = state["weights"]
        self.actor.load_state_dict(w["actor"])
        self.critic.load_state_dict(w["critic"])
        self.critic_target.load_state_dict(w["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(w["log_alpha"])
        if "optim" in state:
            for name in ("actor_opt", "critic_opt", "alpha_opt"):
                getattr(self, name).load_state_dict(state["optim"][name])
        counters = state.get("counters", {})
        self.global_step = int(counters.get("global_step", 0))
        self.updates = int(counters.get("updates", 0))

    def training_state(self, env: TorchVecEnv) -> dict[str, Any]:
        """Replay buffer, env state, current observation and the logging accumulators."""
        return {"obs": optional_tensor(self._obs), "env": env.state_dict(), "replay": self.buffer.state_dict(), "acc": self._acc.clone(), "last_log": self._last_log}

    def load_training_state(self, state: dict[str, Any], env: TorchVecEnv) -> None:
        env.load_state_dict(state["env"])
        self.buffer.load_state_dict(state["replay"])
        self._obs = restore_optional(state["obs"], self.device)
        self._acc = state["acc"].to(self.device).clone()
        self._last_log = int(state["last_log"])


AGENTS.register(
    "sac",
    AgentSpec(
        name="sac",
        config_cls=SACConfig,
        agent_cls=SAC,
        summary="Soft Actor-Critic with automatic entropy tuning, continuous actions",
        default_env="Pendulum-v1",
        presets={
            # ours: SB3's defaults with one env (an update per env step, as on Pendulum-v1).
            "rlsuite/Pendulum-v0": dict(num_envs=1),
            # rl-baselines3-zoo's MuJoCo setting: 10,000 random steps before learning starts.
            "Hopper-v5": dict(learning_starts=10_000),
            # ours: rewards are euros per square metre per 15 minutes (about 5e-4); in thousandths of a euro
            # they weigh against the entropy bonus as rewards of order 1 do (docs/greenhouse.md).
            "rlsuite/Greenhouse-Lettuce-v0": dict(reward_scale=1000.0, learning_starts=1000),
        },
    ),
)
