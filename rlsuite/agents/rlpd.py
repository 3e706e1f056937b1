"""RLPD: online RL with offline data (Ball, Smith, Kostrikov, Levine, ICML 2023; authors' code ikostrikov/rlpd).

SAC with three changes that make it learn fast from a fixed dataset plus its own experience:

1. **Symmetric sampling**: every minibatch is half dataset, half online replay
   (:class:`rlsuite.core.replay.MixedSampler`, ``offline_ratio`` 0.5); no offline pretraining.
2. **LayerNorm critics**: a LayerNorm after every hidden layer of the Q networks bounds their
   extrapolation to actions the data never had (:class:`CriticEnsemble`).
3. **A large ensemble with a random subset in the target** (REDQ): ``num_qs`` = 10 critics, the target
   takes the minimum over ``num_min_qs`` = 2 members drawn at random for each update
   (:func:`subset_min`), and ``utd`` = 20 critic updates per env step (G sequential minibatches).

Per env step (after ``start_training`` uniformly random steps): ``utd`` critic updates, each on its own
minibatch, with the target ``y = r + gamma (1 - terminated) (min_{k in K} Q'_k(s', a') - alpha log pi(a'|s'))``,
``a' ~ pi(.|s')`` (the entropy term is RLPD's ``backup_entropy``); the loss is the mean over all heads of
``(Q_k(s, a) - y)^2`` (:func:`ensemble_critic_loss`); Polyak averaging after each. Then one actor and
temperature update on the last minibatch: ``alpha log pi(a|s) - mean_k Q_k(s, a)`` (mean over the whole
ensemble, as RLPD) and ``-log alpha (log pi + H_target)`` with ``H_target = -|A| / 2``. Only true
terminations stop bootstrapping; time-limit truncations bootstrap.

Shared with EXPO (:mod:`rlsuite.agents.expo` imports them): :class:`CriticEnsemble`, :func:`subset_min`,
:func:`ensemble_critic_loss`, :class:`MixedData` (dataset + online replay with the dataset's statistics)
and :func:`online_phase` (the env loop).

Deviations, each deliberate:

* Observations are standardised with the dataset's mean and standard deviation, actions scaled to
  ``[-1, 1]``, like the suite's other dataset agents (RLPD feeds raw observations).
* Defaults are sized for a CPU: ``utd`` 4 and critics 2 x 256; the paper's settings are
  :data:`PAPER` (``--utd 20``). ``start_training`` counts env steps of the online phase.
* The online phase runs in chunks between evaluations (the driver's); each chunk starts a fresh episode,
  so a run can resume from the checkpoint written after any evaluation, bit for bit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from rlsuite.agents.iql import ScaledPolicy, as_array_in, check_same_data, offline_build
from rlsuite.agents.registry import AGENTS, AgentSpec
from rlsuite.agents.sac import sac_alpha_loss
from rlsuite.core.distributions import TanhGaussianHead
from rlsuite.core.nets import MLP, EnsembleMLP, adam, soft_update
from rlsuite.core.replay import MixedSampler, ReplayBuffer
from rlsuite.core.seeding import resolve_device


@dataclasses.dataclass(frozen=True)
class RLPDConfig:
    """RLPD hyper-parameters (defaults sized for a CPU; :data:`PAPER` has the paper's)."""

    utd: int = 4
    """Critic updates per env step (the paper: 20), each on its own minibatch."""
    batch_size: int = 256
    """Transitions per minibatch (half dataset, half online replay)."""
    offline_ratio: float = 0.5
    """Share of every minibatch drawn from the dataset (symmetric sampling: 0.5)."""
    num_qs: int = 10
    """Critics in the ensemble."""
    num_min_qs: int = 2
    """Critics drawn at random for the minimum in the target (REDQ)."""
    critic_layer_norm: bool = True
    """LayerNorm after every hidden layer of the critics."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden widths of the actor and of every critic."""
    learning_rate: float = 3e-4
    """Adam learning rate of actor, critics and temperature."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    init_temperature: float = 1.0
    """Initial SAC temperature alpha."""
    target_entropy: float | None = None
    """Entropy target of the temperature (None: -|A| / 2)."""
    backup_entropy: bool = True
    """Subtract alpha log pi(a'|s') in the target (RLPD's default)."""
    start_training: int = 5000
    """Online env steps with uniformly random actions before the first update."""
    replay_capacity: int = 1_000_000
    """Online replay size (allocated for min(capacity, the online budget))."""
    reward_scale: float = 1.0
    """Rewards are multiplied by this ..."""
    reward_bias: float = 0.0
    """... and then shifted by this (RLPD's AntMaze setting: scale 1, bias -1), in the dataset and online."""

    def __post_init__(self) -> None:
        for name in ("utd", "batch_size", "num_qs", "num_min_qs", "replay_capacity"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}.")
        if self.num_min_qs > self.num_qs:
            raise ValueError(f"--num-min-qs ({self.num_min_qs}) cannot exceed --num-qs ({self.num_qs}).")
        if not 0.0 <= self.offline_ratio <= 1.0:
            raise ValueError(f"--offline-ratio must be in [0, 1], got {self.offline_ratio}.")
        if self.start_training < 0:
            raise ValueError(f"--start-training must be >= 0, got {self.start_training}.")
        check_common(self)


def check_common(cfg: Any) -> None:
    """The checks RLPD's and EXPO's configs share (clear errors for values that would give NaN or crash)."""
    if not cfg.hidden_sizes:
        raise ValueError("--hidden-sizes needs at least one width, e.g. --hidden-sizes 256 256.")
    for name in ("tau", "gamma"):
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise ValueError(f"--{name} must be in [0, 1], got {getattr(cfg, name)}.")
    if cfg.init_temperature <= 0:
        raise ValueError(f"--init-temperature must be > 0 (its log is learned), got {cfg.init_temperature}.")


#: The paper's locomotion settings (pass them as flags: ``--utd 20 --start-training 5000``); the CPU defaults
#: differ only in ``utd``.
PAPER: dict[str, Any] = {"utd": 20, "batch_size": 256, "num_qs": 10, "num_min_qs": 2, "hidden_sizes": (256, 256),
                         "learning_rate": 3e-4, "start_training": 5000}


# ----------------------------------------------------------------------------- pure functions


def subset_min(q: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
    """Minimum over the ensemble members ``members (k,)`` (long) of ``q (K, ...)``: ``(...)``."""
    return q.index_select(0, members).min(dim=0).values


def random_members(num_qs: int, k: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``k`` distinct member indices out of ``num_qs``, drawn uniformly: ``(k,)`` long."""
    return torch.randperm(num_qs, generator=generator, device=device)[:k]


def ensemble_critic_loss(q: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mean over the ``K`` heads and the batch of ``(Q_k(s, a) - y)^2``: ``q (K, B)``, ``target (B,)``."""
    loss = (q - target[None]).pow(2).mean()
    return loss, {"q_mean": q.detach().mean(), "critic_loss": loss.detach()}


def rlpd_target(reward: torch.Tensor, terminated: torch.Tensor, next_q: torch.Tensor, next_logp: torch.Tensor | None,
                alpha: torch.Tensor, gamma: float) -> torch.Tensor:
    """``r + gamma (1 - terminated) (next_q - alpha log pi(a'|s'))`` (no entropy term when ``next_logp`` is
    None); ``next_q`` is already the minimum over the drawn members; every tensor ``(B,)``."""
    v = next_q if next_logp is None else next_q - alpha * next_logp
    return reward + gamma * (1.0 - terminated.float()) * v


def tanh_sample(dist: Any, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A reparameterised sample of a :class:`rlsuite.core.distributions.TanhGaussian` drawn with ``generator``
    (so that a run resumes exactly on any device) and its log-probability: ``(B, A)``, ``(B,)``."""
    mean, log_std = dist.base.mean, dist.base.log_std
    u = mean + log_std.exp() * torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return torch.tanh(u), dist.base.log_prob(u) - dist._log_det(u)


def rlpd_actor_loss(logp: torch.Tensor, q: torch.Tensor, alpha: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``mean(alpha log pi(a|s) - mean_k Q_k(s, a))``: ``logp (B,)``, ``q (K, B)``."""
    loss = (alpha * logp - q.mean(dim=0)).mean()
    return loss, {"actor_loss": loss.detach(), "entropy": -logp.detach().mean()}


# ----------------------------------------------------------------------------- networks and data


class CriticEnsemble(nn.Module):
    """``K`` Q networks in one batched call: ``obs (B, obs), act (B, A) -> (K, B)``; also takes ``obs (B, n,
    obs), act (B, n, A) -> (K, B, n)`` (many candidate actions per state)."""

    def __init__(self, obs_dim: int, act_dim: int, num_qs: int, hidden: tuple[int, ...], layer_norm: bool) -> None:
        super().__init__()
        self.net = EnsembleMLP(num_qs, obs_dim + act_dim, 1, hidden, layer_norm=layer_norm)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, act], -1)
        lead = x.shape[:-1]
        return self.net(x.reshape(-1, x.shape[-1])).squeeze(-1).reshape(-1, *lead)


class Actor(nn.Module):
    """Tanh-Gaussian policy ``(B, in_dim) -> TanhGaussian`` over ``(-1, 1)^A`` (SAC's)."""

    def __init__(self, in_dim: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.body = MLP(in_dim, hidden[-1], hidden[:-1])
        self.act, self.head = nn.ReLU(), TanhGaussianHead(hidden[-1], act_dim)

    def forward(self, x: torch.Tensor):
        return self.head(self.act(self.body(x)))


class _Mode(nn.Module):
    """The actor's deterministic action ``tanh(mean)``: ``(B, obs) -> (B, A)`` (what export writes)."""

    def __init__(self, actor: Actor) -> None:
        super().__init__()
        self.actor = actor

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(obs).mode


class MixedData:
    """The dataset and the online replay as device buffers with the dataset's statistics: observations
    standardised (``(o - mean) / std``), actions scaled to ``[-1, 1]``, rewards ``r * scale + bias``;
    :meth:`sample` draws ``offline_ratio`` of a minibatch from the dataset and the rest online
    (:class:`rlsuite.core.replay.MixedSampler`). Attributes ``mean``, ``std``, ``low``, ``high`` (numpy)."""

    def __init__(self, arrays: dict[str, np.ndarray] | None, low: np.ndarray, high: np.ndarray, device: torch.device,
                 reward_scale: float = 1.0, reward_bias: float = 0.0, stats: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.low, self.high = np.asarray(low, np.float32), np.asarray(high, np.float32)
        self.device, self.reward_scale, self.reward_bias = device, float(reward_scale), float(reward_bias)
        if stats is not None:
            self.mean, self.std = (np.asarray(s, np.float32) for s in stats)
        else:
            assert arrays is not None
            obs = arrays["observations"].astype(np.float32)
            self.mean, self.std = obs.mean(0), obs.std(0) + 1e-3
        self.offline: ReplayBuffer | None = None
        self.online: ReplayBuffer | None = None
        if arrays is not None:
            n = len(arrays["rewards"])
            self.offline = ReplayBuffer(n, self.mean.shape, self.low.shape, device)
            self.offline.add(*self._tensors(arrays["observations"], self.scale_action(arrays["actions"]), arrays["rewards"],
                                            arrays["next_observations"], arrays["terminals"]))

    def _tensors(self, obs, act, rew, next_obs, term) -> tuple[torch.Tensor, ...]:
        f = dict(dtype=torch.float32, device=self.device)
        return (self.norm_obs(obs), torch.as_tensor(np.clip(act, -1.0, 1.0), **f),
                torch.as_tensor(np.asarray(rew, np.float32) * self.reward_scale + self.reward_bias, **f),
                self.norm_obs(next_obs), torch.as_tensor(np.asarray(term), dtype=torch.bool, device=self.device))

    def norm_obs(self, obs: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``(B, obs)`` raw -> standardised tensor on the device."""
        o = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        return (o - torch.as_tensor(self.mean, device=self.device)) / torch.as_tensor(self.std, device=self.device)

    def scale_action(self, act: np.ndarray) -> np.ndarray:
        return 2.0 * (np.asarray(act, np.float32) - self.low) / (self.high - self.low) - 1.0

    def unscale_action(self, act: torch.Tensor) -> np.ndarray:
        return self.low + (act.detach().cpu().numpy() + 1.0) * 0.5 * (self.high - self.low)

    def ensure_online(self, capacity: int) -> None:
        """Allocate the online replay (once) with ``capacity`` transitions."""
        if self.online is None:
            self.online = ReplayBuffer(capacity, self.mean.shape, self.low.shape, self.device)

    def add_online(self, obs: np.ndarray, act_scaled: np.ndarray, rew: float, next_obs: np.ndarray, terminated: bool) -> None:
        """One transition (raw observations, action in ``[-1, 1]``)."""
        assert self.online is not None
        self.online.add(*self._tensors(obs[None], act_scaled[None], np.array([rew]), next_obs[None], np.array([terminated])))

    def sample(self, n: int, offline_ratio: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """A minibatch ``{obs, actions, rewards, next_obs, terminated}`` of ``n`` transitions."""
        if self.offline is None:
            raise RuntimeError("no dataset: call set_data before training.")
        if self.online is None:  # no online data yet: the whole minibatch from the dataset
            return self.offline.sample(n, generator)
        return MixedSampler(self.offline, self.online, offline_ratio).sample(n, generator)

    def stats_state(self) -> dict[str, torch.Tensor]:
        return {"obs_mean": torch.as_tensor(self.mean), "obs_std": torch.as_tensor(self.std), "action_low": torch.as_tensor(self.low),
                "action_high": torch.as_tensor(self.high)}


def online_phase(agent: Any, env_id: str, steps: int, seed: int, total_steps: int | None,
                 log: Callable[[int, dict[str, float]], None] | None, log_every: int) -> list[float]:
    """``steps`` env steps of ``agent`` on a fresh ``env_id`` (reset with ``seed``): random actions for the
    first ``agent.warmup_steps`` (default ``agent.cfg.start_training``) online steps, then ``agent.explore``; every transition goes into the
    online replay (``terminated`` only stops bootstrapping) and, from ``start_training`` on,
    ``agent.update_step()`` runs after every env step. Returns the finished episodes' returns."""
    import gymnasium as gym

    data: MixedData = agent.data
    data.ensure_online(min(agent.cfg.replay_capacity, max(1, total_steps or steps)))
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    returns, ep_ret, stats = [], 0.0, {}
    warmup = getattr(agent, "warmup_steps", agent.cfg.start_training)
    for i in range(steps):
        if agent.online_steps < warmup:
            a = torch.rand(data.low.shape, generator=agent.generator, device=agent.device).mul(2.0).sub(1.0)
        else:
            a = agent.explore(data.norm_obs(obs[None]))[0]
        nxt, r, term, trunc, _ = env.step(data.unscale_action(a[None])[0])
        data.add_online(obs, a.cpu().numpy(), float(r), nxt, bool(term))
        agent.online_steps += 1
        ep_ret += float(r)
        obs = nxt
        if term or trunc:
            returns.append(ep_ret)
            ep_ret = 0.0
            obs, _ = env.reset()
        if agent.online_steps >= warmup:
            stats = agent.update_step()
        if log is not None and (i + 1) % log_every == 0:
            log(i + 1, {**{k: float(v) for k, v in stats.items()}, "episode_return": returns[-1] if returns else float("nan")})
    env.close()
    return returns


# ----------------------------------------------------------------------------- agent


class RLPD:
    """RLPD (see the module docstring): ``set_data``, ``learn_online``, ``act``, ``state_dict``."""

    algo = "rlpd"
    default_offline_steps = 0
    offline_phase = False  # learns online with the dataset in every minibatch; nothing to pretrain
    online_resumable = True  # the online replay is in the state: a run resumes mid-online, bit for bit

    def __init__(self, cfg: RLPDConfig, obs_dim: int, act_dim: int, device: str | torch.device = "cpu", seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.cfg, self.device = cfg, resolve_device(device)
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.actor = Actor(obs_dim, act_dim, cfg.hidden_sizes).to(self.device)
        self.critic = CriticEnsemble(obs_dim, act_dim, cfg.num_qs, cfg.hidden_sizes, cfg.critic_layer_norm).to(self.device)
        self.critic_target = CriticEnsemble(obs_dim, act_dim, cfg.num_qs, cfg.hidden_sizes, cfg.critic_layer_norm).to(self.device)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.log_alpha = torch.tensor(float(np.log(cfg.init_temperature)), device=self.device, requires_grad=True)
        self.target_entropy = cfg.target_entropy if cfg.target_entropy is not None else -act_dim / 2.0
        self.actor_opt, self.critic_opt = adam(self.actor.parameters(), cfg.learning_rate), adam(self.critic.parameters(), cfg.learning_rate)
        self.alpha_opt = adam([self.log_alpha], cfg.learning_rate)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.data: MixedData | None = None
        self.online_steps = 0
        self.updates = 0

    # ------------------------------------------------------------------ data and acting
    def set_data(self, arrays: dict[str, np.ndarray], low: np.ndarray, high: np.ndarray) -> None:
        self.data = MixedData(arrays, low, high, self.device, self.cfg.reward_scale, self.cfg.reward_bias)

    def learn_offline(self, steps: int, **_: Any) -> None:
        raise ValueError(f"RLPD has no offline phase (it learns online with the dataset in every minibatch); got {steps} offline "
                         "steps: use --offline-steps 0 and --online-steps N.")

    def explore(self, obs: torch.Tensor) -> torch.Tensor:
        """Stochastic actions in ``[-1, 1]`` for standardised ``obs (B, obs)``: ``(B, A)``."""
        with torch.no_grad():
            return tanh_sample(self.actor(obs), self.generator)[0]

    @torch.no_grad()
    def act(self, obs: np.ndarray | torch.Tensor, deterministic: bool = True) -> np.ndarray | torch.Tensor:
        """Env-unit actions ``(B, A)`` for raw observations ``(B, obs)`` (a tensor for a tensor, else an array)."""
        assert self.data is not None, "set_data or load_state_dict first"
        o = self.data.norm_obs(obs)
        a = self.actor(o).mode if deterministic else self.explore(o)
        return as_array_in(obs, self.data.unscale_action(a).astype(np.float32), self.device)

    def deploy_module(self) -> nn.Module:
        """``obs (B, obs) -> actions (B, A)``: the actor's mean action with the data statistics inside."""
        assert self.data is not None, "set_data or load_state_dict first"
        return ScaledPolicy(self.data, _Mode(self.actor)).eval()

    # ------------------------------------------------------------------ learning
    def learn_online(self, env_id: str, steps: int, seed: int = 0, total_steps: int | None = None,
                     log: Callable[[int, dict[str, float]], None] | None = None, log_every: int = 1000) -> list[float]:
        """``steps`` env steps (see :func:`online_phase`); returns the finished episodes' returns."""
        if self.data is None:
            raise RuntimeError("call set_data(dataset arrays, action low, action high) before learn_online.")
        return online_phase(self, env_id, steps, seed, total_steps, log, log_every)

    def update_step(self) -> dict[str, torch.Tensor]:
        """What one env step pays for: ``utd`` critic updates, then one actor and temperature update."""
        assert self.data is not None
        stats: dict[str, torch.Tensor] = {}
        for _ in range(self.cfg.utd):
            batch = self.data.sample(self.cfg.batch_size, self.cfg.offline_ratio, self.generator)
            stats.update(self.update_critic(batch))
        stats.update(self.update_actor(batch))
        self.updates += 1
        return stats

    def update_critic(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            next_a, next_logp = tanh_sample(self.actor(batch["next_obs"]), self.generator)
            members = random_members(cfg.num_qs, cfg.num_min_qs, self.generator, self.device)
            next_q = subset_min(self.critic_target(batch["next_obs"], next_a), members)
            y = rlpd_target(batch["rewards"], batch["terminated"], next_q, next_logp if cfg.backup_entropy else None, alpha, cfg.gamma)
        loss, stats = ensemble_critic_loss(self.critic(batch["obs"], batch["actions"]), y)
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_opt.step()
        soft_update(self.critic_target, self.critic, cfg.tau)
        return stats

    def update_actor(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        a, logp = tanh_sample(self.actor(batch["obs"]), self.generator)
        self.critic.requires_grad_(False)  # the actor loss must leave no gradient on the critics
        loss, stats = rlpd_actor_loss(logp, self.critic(batch["obs"], a), self.log_alpha.detach().exp())
        self.critic.requires_grad_(True)
        self.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.actor_opt.step()
        a_loss, _ = sac_alpha_loss(self.log_alpha, logp, self.target_entropy)
        self.alpha_opt.zero_grad(set_to_none=True)
        a_loss.backward()
        self.alpha_opt.step()
        return {**stats, "alpha": self.log_alpha.detach().exp()}

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Networks, optimizers, temperature, generator, counters, the data statistics and the online replay."""
        assert self.data is not None
        return {"actor": self.actor.state_dict(), "critic": self.critic.state_dict(), "critic_target": self.critic_target.state_dict(),
                "log_alpha": self.log_alpha.detach().clone(), **self.data.stats_state(),
                "optim": {"actor": self.actor_opt.state_dict(), "critic": self.critic_opt.state_dict(), "alpha": self.alpha_opt.state_dict()},
                "generator": self.generator.get_state(), "counters": torch.tensor([self.online_steps, self.updates]),
                "online": self.data.online.state_dict() if self.data.online is not None else {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (after :meth:`set_data` with the same dataset to continue training;
        without data the saved statistics are used: the agent can act and export, not train)."""
        load_common(self, state)
        self.actor.load_state_dict(state["actor"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        for opt, key in ((self.actor_opt, "actor"), (self.critic_opt, "critic"), (self.alpha_opt, "alpha")):
            opt.load_state_dict(state["optim"][key])


def load_common(agent: Any, state: dict[str, Any]) -> None:
    """What RLPD and EXPO restore alike: data statistics (checked against the data set), critics, generator,
    counters and the online replay."""
    if agent.data is None:
        agent.data = MixedData(None, state["action_low"].cpu().numpy(), state["action_high"].cpu().numpy(), agent.device,
                               agent.cfg.reward_scale, agent.cfg.reward_bias,
                               stats=(state["obs_mean"].cpu().numpy(), state["obs_std"].cpu().numpy()))
    check_same_data(agent.data, state, keys=())  # the saved statistics must be the data's
    agent.critic.load_state_dict(state["critic"])
    agent.critic_target.load_state_dict(state["critic_target"])
    agent.generator.set_state(state["generator"].cpu())
    agent.online_steps, agent.updates = (int(v) for v in state["counters"])
    agent.data.online = None
    if state.get("online"):
        agent.data.online = ReplayBuffer(int(state["online"]["capacity"]), agent.data.mean.shape, agent.data.low.shape, agent.device)
        agent.data.online.load_state_dict(state["online"])


AGENTS.register("rlpd", AgentSpec(
    name="rlpd", config_cls=RLPDConfig, agent_cls=RLPD, learns_from="dataset", build=offline_build(RLPD),
    summary="RLPD: SAC with symmetric dataset/online sampling, LayerNorm critic ensemble, high update ratio",
))
