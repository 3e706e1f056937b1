"""SubPO: policy gradient for submodular rewards (and ModPO, its modular-reward baseline).

Paper: Prajapat, Mutny, Zeilinger, Krause, "Submodular Reinforcement Learning", ICLR 2024.
Reference implementation: the authors' ``main.py`` (grid worlds), ``utils/network.py``, ``params/<task>/*.yaml``.

The return of an episode is a monotone submodular set function ``F`` of the visited states. With the
marginal gain ``Delta_j = F(tau_{0:j} u {s_{j+1}}) - F(tau_{0:j})`` the return telescopes,
``F(tau) = F({s_0}) + sum_j Delta_j``, so REINFORCE with causality gives

    grad J = E[ sum_i grad log pi(a_i | x_i) * (sum_{j >= i} Delta_j - b_i) ].

Implementation details (a reader's checklist):

1. **Batches of whole episodes.** Each iteration rolls out ``num_envs`` parallel episodes of the env's
   fixed ``horizon`` from their common start (the env auto-resets at the end, so the next iteration starts
   fresh episodes) and takes one gradient step (Adam, or the natural step of 6). The env reward is the
   marginal gain ``Delta_j`` (the submodular envs of :mod:`rlsuite.envs.submodular` pay it).
2. **Estimators** (``estimator``): ``future`` (default) weighs ``log pi(a_h | x_h)`` by the reward-to-go of
   marginal gains ``sum_{j >= h} Delta_j``: an unbiased estimate of ``grad E[F(tau)]``. ``immediate`` is what
   the authors' code does: it weighs ``log pi(a_h | x_h)`` by ``F(tau_{0:h+1})`` (the difference with
   ``F(tau_{0:h})`` is commented out there and there is no reward-to-go); since ``F(tau_{0:h})`` has zero mean
   under the score function this is, in expectation, the myopic gradient ``sum_h E[grad log pi(a_h) Delta_h]``.
   We use ``F(tau_{0:h+1}) - F({s_0})`` (the cumulative gain): ``F({s_0})`` is a constant, so nothing changes
   in expectation and the env need not report ``F``.
3. **Baseline** (``baseline``): per time step, the mean of the weights over the *other* episodes of the
   batch (leave-one-out), computed as ``(w - mean_b w) * B / (B - 1)``. It depends only on the time step and
   the other, independent episodes, so the estimate stays unbiased (tested by enumeration); the authors use
   none (``--no-baseline --estimator immediate`` reproduces their loss).
4. **Scale.** Weights are divided by the env's ``normaliser`` when it has one (the authors' ``MAX_Ret``), so
   losses read as fractions of the best return; the loss sums over time and averages over episodes (the
   authors average over time too: a constant factor that Adam ignores).
5. **Policy.** MLP (64, 32) tanh with a softmax over the ``Discrete(n)`` actions, on the env's observation:
   Markovian ``(x, y, t)`` (SubPO-M) or the history (SubPO-NM) is the env's ``observation`` option, which
   the ``observation`` field passes through (``rlsuite train subpo --observation history``). Orthogonal init
   with a 0.01 output gain (a near-uniform first policy); the authors feed raw cell indices with torch's
   default init.
6. **Natural gradient** (``natural``): ``theta <- theta + eta * x`` with ``x`` the solution of
   ``(F_hat + damping I) x = g`` by conjugate gradient, where ``F_hat = (1/B) sum_b s_b s_b^T`` is the
   empirical Fisher of the trajectory distribution built from the per-episode scores
   ``s_b = sum_t grad log pi(a_t | x_t)`` (``torch.func.vmap`` of ``grad``; the Fisher is never formed, only
   ``v -> S^T S v / B``), ``g`` the policy gradient of 2-4, and ``eta = sqrt(2 max_kl / x^T F_hat x)`` (the
   trust-region normalisation of TRPO: the quadratic model of the KL between successive trajectory
   distributions equals ``max_kl``).
7. **ModPO** (``modular``, registered as ``modpo``): the same learner trained on ``info["modular_reward"]``
   (``F({s_{j+1}})``, which counts revisits) instead of the marginal gain. Logs always report the env reward
   (``rollout/ep_return``, the marginal gains) and ``rollout/F_normalised`` (``episode_F / F_max``), so
   both are measured alike; ``rollout/train_return`` is the return of the reward trained on.

Deviations from the authors' code: the default estimator (``future``; theirs is ``immediate``), the baseline
(theirs: none), normalised observations and orthogonal init (5).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rlsuite.agents.registry import AGENTS, AgentSpec
from rlsuite.core.checkpoint import optional_tensor, restore_optional
from rlsuite.core.distributions import Categorical
from rlsuite.core.horizon import check_whole_episodes, env_horizon, log_horizon_note
from rlsuite.core.nets import MLP, adam
from rlsuite.core.seeding import resolve_device
from rlsuite.core.vec_env import TorchVecEnv

log = logging.getLogger("rlsuite")

ESTIMATORS = ("future", "immediate")
OBSERVATIONS = ("markov", "history")


@dataclasses.dataclass(frozen=True)
class SubPOConfig:
    """SubPO settings (defaults: the authors' grid coverage settings, params/coverage/subrl_M.yaml)."""

    num_envs: int = 500
    """Parallel episodes per gradient step (the batch)."""
    learning_rate: float = 1e-2
    """Adam learning rate (unused with natural)."""
    estimator: str = "future"
    """future (reward-to-go of marginal gains) | immediate (the authors' code: F(tau_{0:h+1}) per step)."""
    baseline: bool = True
    """Subtract the per-time-step mean weight of the other episodes of the batch."""
    modular: bool = False
    """Train on info['modular_reward'] (ModPO) instead of the env reward (the marginal gain)."""
    natural: bool = False
    """Natural-gradient step (damped empirical Fisher, conjugate gradient, trust-region step size) instead of Adam."""
    max_kl: float = 0.1
    """Natural step: size such that the quadratic KL model between successive trajectory distributions is this (ours, docs/subpo.md)."""
    cg_iters: int = 20
    """Natural step: conjugate-gradient iterations."""
    cg_damping: float = 1e-2
    """Natural step: damping added to the empirical Fisher."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient (the authors: 0)."""
    hidden_sizes: tuple[int, ...] = (64, 32)
    """Hidden layer sizes of the policy."""
    activation: str = "tanh"
    """Activation (tanh, relu, elu, silu, gelu)."""
    observation: str | None = None
    """The env's observation option: markov (position and time, SubPO-M) | history (visited cells, SubPO-NM); None: the env's default."""

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {self.estimator!r}; allowed: {', '.join(ESTIMATORS)}.")
        if self.observation is not None and self.observation not in OBSERVATIONS:
            raise ValueError(f"unknown observation {self.observation!r}; allowed: {', '.join(OBSERVATIONS)} (or None: the env's default).")
        if self.num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {self.num_envs}.")
        if self.baseline and self.num_envs < 2:
            raise ValueError("the baseline averages over the other episodes of the batch: use num_envs >= 2 or --no-baseline.")
        if self.learning_rate <= 0 or self.max_kl <= 0 or self.cg_damping < 0 or self.cg_iters < 1:
            raise ValueError(f"learning_rate > 0, max_kl > 0, cg_damping >= 0 and cg_iters >= 1 are required; got "
                             f"{self.learning_rate}, {self.max_kl}, {self.cg_damping}, {self.cg_iters}.")


@dataclasses.dataclass(frozen=True)
class ModPOConfig(SubPOConfig):
    """ModPO settings: SubPO trained on the modular reward F({s_{j+1}}), which counts revisits (defaults: the authors' params/coverage/subrl_SRL.yaml)."""

    modular: bool = True
    """Train on info['modular_reward'] (always on for modpo; rlsuite train subpo trains on marginal gains)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.modular:
            raise ValueError("modpo trains on the modular reward; for marginal gains run: rlsuite train subpo.")


def subpo_env_kwargs(config: SubPOConfig) -> dict[str, Any]:
    """The env keyword arguments ``config`` asks for (the observation option, when set)."""
    return {} if config.observation is None else {"observation": config.observation}


# ----------------------------------------------------------------------------- pure functions


def reward_to_go(rewards: torch.Tensor) -> torch.Tensor:
    """``G_t = sum_{j >= t} r_j`` for ``rewards`` ``(T, B)`` -> ``(T, B)``."""
    return rewards.flip(0).cumsum(0).flip(0)


def estimator_weights(rewards: torch.Tensor, estimator: str, baseline: bool) -> torch.Tensor:
    """Per-step weights of ``log pi(a_t | x_t)``: ``(T, B)`` marginal gains -> ``(T, B)``.

    ``future``: the reward-to-go ``sum_{j >= t} r_j``; ``immediate``: the gain so far ``sum_{j <= t} r_j``
    (``F(tau_{0:t+1}) - F({s_0})``). With ``baseline``, the mean of the other episodes' weights at the same
    step is subtracted: ``(w - mean_b w) * B / (B - 1)``.
    """
    if estimator == "future":
        w = reward_to_go(rewards)
    elif estimator == "immediate":
        w = rewards.cumsum(0)
    else:
        raise ValueError(f"unknown estimator {estimator!r}; allowed: {', '.join(ESTIMATORS)}.")
    if baseline:
        B = w.shape[1]
        if B < 2:
            raise ValueError("a leave-one-out baseline needs at least 2 episodes in the batch.")
        w = (w - w.mean(1, keepdim=True)) * (B / (B - 1))
    return w


def subpo_loss(logp: torch.Tensor, weights: torch.Tensor, entropy: torch.Tensor | None = None,
               ent_coef: float = 0.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Score-function surrogate ``-mean_b sum_t log pi(a_t | x_t) w_t - ent_coef * mean entropy``.

    Args:
        logp: ``(T, B)`` log-probabilities of the actions taken (with grad).
        weights: ``(T, B)`` from :func:`estimator_weights` (no grad).
        entropy: ``(T, B)`` policy entropies, or None.
        ent_coef: entropy bonus coefficient.

    Returns:
        ``(loss, stats)`` with ``policy_loss`` and ``entropy`` (when given).
    """
    pg = -(logp * weights.detach()).sum(0).mean()
    stats: dict[str, torch.Tensor] = {"policy_loss": pg.detach()}
    loss = pg
    if entropy is not None:
        ent = entropy.mean()
        loss = loss - ent_coef * ent
        stats["entropy"] = ent.detach()
    return loss, stats


def conjugate_gradient(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int,
                       tol: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve ``A x = b`` for a symmetric positive definite ``A`` given as ``matvec``; ``b`` ``(P,)``.

    Returns ``(x, residual norm)``; stops early once the squared residual is below ``tol``."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = r @ r
    for _ in range(iters):
        if rr <= tol:
            break
        Ap = matvec(p)
        alpha = rr / (p @ Ap)
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x, rr.sqrt()


def natural_step(scores: torch.Tensor, grad: torch.Tensor, damping: float, max_kl: float,
                 iters: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The natural-gradient ascent step ``eta * x`` with ``(S^T S / B + damping I) x = grad`` (conjugate gradient)
    and ``eta = sqrt(2 max_kl / x^T (S^T S / B) x)``.

    Args:
        scores: ``(B, P)`` per-episode score vectors ``sum_t grad log pi(a_t | x_t)``.
        grad: ``(P,)`` the policy gradient (ascent direction).
        damping, max_kl, iters: see :class:`SubPOConfig`.

    Returns:
        ``(step (P,), stats)`` with ``cg_residual``, ``natural_step_size`` (eta) and ``step_norm``.
    """
    B = scores.shape[0]

    def fisher(v: torch.Tensor) -> torch.Tensor:
        return scores.T @ (scores @ v) / B

    x, residual = conjugate_gradient(lambda v: fisher(v) + damping * v, grad, iters)
    quad = (x @ fisher(x)).clamp_min(1e-20)
    eta = torch.sqrt(2.0 * max_kl / quad)
    step = eta * x
    return step, {"cg_residual": residual, "natural_step_size": eta, "step_norm": step.norm()}


# ----------------------------------------------------------------------------- agent


class _GreedyPolicy(nn.Module):
    """``obs (B, obs_dim) -> (B,)`` int64: the most probable action (what export writes)."""

    def __init__(self, net: MLP) -> None:
        super().__init__()
        self.net = net

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).argmax(-1)


class SubPO:
    """SubPO / ModPO (see the module docstring): ``learn(env, total_steps, run, seed)``, ``act(obs)``,
    ``state_dict()`` / ``load_state_dict()``.

    Args:
        config: settings.
        observation_space: single-env Box observation space.
        action_space: single-env ``Discrete(n)`` (starting at 0).
        device: where the policy and the rollouts live.

    The env given to :meth:`learn` must have an int ``horizon`` (every episode lasts exactly that many steps,
    all parallel episodes start together) and, for ModPO, report ``info["modular_reward"]``.
    """

    def __init__(self, config: SubPOConfig, observation_space: gym.Space, action_space: gym.Space,
                 device: str | torch.device = "cpu") -> None:
        if not isinstance(observation_space, gym.spaces.Box):
            raise ValueError(f"SubPO needs a Box observation space, got {observation_space}.")
        if not isinstance(action_space, gym.spaces.Discrete) or int(action_space.start) != 0:
            raise ValueError(f"SubPO needs a Discrete(n) action space starting at 0, got {action_space}; "
                             "the submodular grid envs have Discrete(5).")
        self.config = config
        self.algo = "modpo" if config.modular else "subpo"
        self.observation_space, self.action_space = observation_space, action_space
        self.device = resolve_device(device)
        self.obs_dim = int(np.prod(observation_space.shape))
        self.n_actions = int(action_space.n)
        self.policy = MLP(self.obs_dim, self.n_actions, config.hidden_sizes, config.activation, ortho_init=True,
                          out_gain=0.01).to(self.device)
        self.optimizer = adam(self.policy.parameters(), lr=config.learning_rate)
        self.global_step = 0
        self.iteration = 0
        self._obs: torch.Tensor | None = None

    # ------------------------------------------------------------------ acting
    def _flat(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.to(self.device, torch.float32).reshape(-1, self.obs_dim)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Actions ``(B,)`` int64 for observations ``(B, *obs_shape)`` (``deterministic``: the most probable)."""
        dist = Categorical(self.policy(self._flat(obs)))
        return dist.mode if deterministic else dist.sample()

    def deploy_module(self) -> nn.Module:
        """``obs (B, obs_dim) -> actions (B,)`` (the most probable action) for export."""
        return _GreedyPolicy(self.policy).eval()

    # ------------------------------------------------------------------ training
    def check_env(self, env: TorchVecEnv) -> None:
        """Raise ``ValueError`` unless ``env`` has the fixed episode length SubPO trains on (called by the
        driver before a run directory is written)."""
        self.horizon_of(env)

    @staticmethod
    def horizon_of(env: TorchVecEnv) -> int:
        """The env's fixed episode length (its ``horizon``), or a clear error."""
        return env_horizon(env, "SubPO", "the rlsuite submodular grid envs")

    def rollout(self, env: TorchVecEnv) -> dict[str, torch.Tensor]:
        """One batch of ``num_envs`` whole episodes with the current stochastic policy.

        Returns ``obs`` ``(T, B, obs_dim)``, ``actions`` ``(T, B)``, ``rewards`` ``(T, B)`` (the env reward: marginal
        gains), ``train_rewards`` ``(T, B)`` (ModPO: the modular reward), ``episode_return`` ``(B,)`` and, where the env
        reports them, ``F_normalised`` ``(B,)``.
        """
        cfg = self.config
        T, N = self.horizon_of(env), env.num_envs
        if N != cfg.num_envs:
            raise ValueError(f"the env has {N} parallel envs but config.num_envs={cfg.num_envs}; make them equal.")
        obs_buf = torch.empty((T, N, self.obs_dim), device=self.device)
        act_buf = torch.empty((T, N), dtype=torch.int64, device=self.device)
        rew_buf = torch.empty((T, N), device=self.device)
        train_buf = torch.empty((T, N), device=self.device) if cfg.modular else rew_buf
        ended = torch.empty((T, N), dtype=torch.bool, device=self.device)
        obs = self._obs
        info: dict[str, Any] = {}
        with torch.no_grad():
            for t in range(T):
                obs_buf[t] = self._flat(obs)
                action = Categorical(self.policy(obs_buf[t])).sample()
                act_buf[t] = action
                obs, reward, _, _, info = env.step(action)
                rew_buf[t] = reward
                if cfg.modular:
                    if "modular_reward" not in info:
                        raise KeyError(f"ModPO trains on info['modular_reward'] but {type(env).__name__} does not report it; "
                                       "use a submodular env (rlsuite.envs.submodular) or train subpo.")
                    train_buf[t] = info["modular_reward"]
                ended[t] = info["_final_obs"]
        self._obs = obs
        check_whole_episodes(ended, env, "SubPO", "; use an env with a fixed horizon and no termination (the submodular grid envs)")
        out = {"obs": obs_buf, "actions": act_buf, "rewards": rew_buf, "train_rewards": train_buf,
               "episode_return": info["episode_return"]}
        if "episode_F" in info and "F_max" in info:
            out["F_normalised"] = info["episode_F"] / info["F_max"]
        return out

    def loss(self, batch: dict[str, torch.Tensor], scale: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The surrogate loss of a :meth:`rollout` batch (weights divided by ``scale``)."""
        cfg = self.config
        weights = estimator_weights(batch["train_rewards"], cfg.estimator, cfg.baseline) / scale
        dist = Categorical(self.policy(batch["obs"]))
        return subpo_loss(dist.log_prob(batch["actions"]), weights, dist.entropy(), cfg.ent_coef)

    def episode_scores(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``(B, P)`` per-episode scores ``sum_t grad log pi(a_t | x_t)`` for ``obs`` ``(T, B, obs_dim)`` and
        ``actions`` ``(T, B)`` (``P``: the policy's parameters in ``parameters()`` order)."""
        from torch.func import functional_call, grad, vmap

        params = {k: v.detach() for k, v in self.policy.named_parameters()}

        def logp_sum(p: dict[str, torch.Tensor], o: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
            logits = functional_call(self.policy, p, (o,))
            return torch.log_softmax(logits, -1).gather(-1, a[:, None]).sum()

        g = vmap(grad(logp_sum), in_dims=(None, 1, 1))(params, obs, actions)
        return torch.cat([g[k].reshape(obs.shape[1], -1) for k, _ in self.policy.named_parameters()], dim=1)

    def update(self, batch: dict[str, torch.Tensor], scale: float = 1.0) -> dict[str, float]:
        """One gradient step (Adam or natural) on a :meth:`rollout` batch; returns the stats."""
        cfg = self.config
        loss, stats = self.loss(batch, scale)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = list(self.policy.parameters())
        stats["grad_norm"] = torch.sqrt(sum((p.grad.detach() ** 2).sum() for p in params))
        if cfg.natural:
            g = -torch.cat([p.grad.reshape(-1) for p in params])
            step, ng_stats = natural_step(self.episode_scores(batch["obs"], batch["actions"]), g, cfg.cg_damping,
                                          cfg.max_kl, cfg.cg_iters)
            with torch.no_grad():
                nn.utils.vector_to_parameters(nn.utils.parameters_to_vector(params) + step, params)
            stats.update(ng_stats)
        else:
            self.optimizer.step()
        return {k: float(v) for k, v in stats.items()}

    def learn(self, env: TorchVecEnv, total_steps: int, run: Any = None, seed: int = 0) -> SubPO:
        """Train until ``global_step >= total_steps`` env steps, whole batches of episodes only (continues a
        restored run where it stopped)."""
        T = self.horizon_of(env)
        batch_steps = T * self.config.num_envs
        note = log_horizon_note(total_steps, self.global_step, batch_steps, f"{self.config.num_envs} episodes x {T} steps")
        if note:
            log.info(note)
        if self._obs is None:
            self._obs, _ = env.reset(seed=seed)
        scale = float(getattr(env, "normaliser", 1.0) or 1.0)
        while self.global_step < total_steps:
            t0 = time.perf_counter()
            batch = self.rollout(env)
            t_collect = time.perf_counter() - t0
            stats = self.update(batch, scale)
            self.global_step += batch_steps
            self.iteration += 1
            if run is not None:
                metrics = {
                    "rollout/ep_return": float(batch["episode_return"].mean()),
                    "rollout/train_return": float(batch["train_rewards"].sum(0).mean()),
                    "rollout/episodes": float(self.config.num_envs),
                    **{f"train/{k}": v for k, v in stats.items()},
                    "time/sps": batch_steps / (time.perf_counter() - t0),
                    "time/collect_seconds": t_collect,
                    "time/update_seconds": time.perf_counter() - t0 - t_collect,
                }
                if "F_normalised" in batch:
                    metrics["rollout/F_normalised"] = float(batch["F_normalised"].mean())
                if not self.config.natural:
                    metrics["train/learning_rate"] = self.config.learning_rate
                run.logger.log(self.global_step, metrics)
                run.step_done(self, env)
        return self

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """``weights`` (the policy), ``optim`` (Adam) and ``counters``."""
        return {
            "weights": {"policy": self.policy.state_dict()},
            "optim": {"optimizer": self.optimizer.state_dict()},
            "counters": {"global_step": self.global_step, "iteration": self.iteration},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["weights"]["policy"])
        if "optim" in state:
            self.optimizer.load_state_dict(state["optim"]["optimizer"])
        counters = state.get("counters", {})
        self.global_step = int(counters.get("global_step", 0))
        self.iteration = int(counters.get("iteration", 0))

    def training_state(self, env: TorchVecEnv) -> dict[str, Any]:
        """What exact resume needs beyond :meth:`state_dict`: the env's state and its current observation."""
        return {"obs": optional_tensor(self._obs), "env": env.state_dict()}

    def load_training_state(self, state: dict[str, Any], env: TorchVecEnv) -> None:
        env.load_state_dict(state["env"])
        self._obs = restore_optional(state["obs"], self.device)


def _build(cfg: SubPOConfig, obs_space: gym.Space, act_space: gym.Space, device: torch.device, seed: int) -> SubPO:
    return SubPO(cfg, obs_space, act_space, device)


_SUBPO = AgentSpec(
    name="subpo", config_cls=SubPOConfig, agent_cls=SubPO, learns_from="env", build=_build,
    summary="SubPO: policy gradient on marginal gains of a submodular reward (rlsuite/*-Grid / submodular envs)",
    default_env="rlsuite/Coverage-Grid-v0", env_kwargs=subpo_env_kwargs,
    presets={
        # the authors' params/<task>/subrl_M.yaml learning rates (500 episodes per step; two rooms: 3000)
        "rlsuite/Coverage-Bimodal-v0": dict(learning_rate=1e-2),
        "rlsuite/IPP-GP-v0": dict(learning_rate=1e-3),
        "rlsuite/Biodiversity-v0": dict(learning_rate=1e-3),
        "rlsuite/Entropy-Grid-v0": dict(learning_rate=1e-3),
        "rlsuite/ItemCollection-v0": dict(learning_rate=5e-3),
        "rlsuite/TwoRooms-v0": dict(learning_rate=2e-2, num_envs=3000),
    },
)
AGENTS.register("subpo", _SUBPO)
AGENTS.register("modpo", dataclasses.replace(
    _SUBPO, name="modpo", config_cls=ModPOConfig,
    summary="ModPO: SubPO's learner on the modular reward F({s}) that counts revisits (the baseline of SubPO)",
))

