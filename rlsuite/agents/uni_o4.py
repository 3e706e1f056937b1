"""Uni-O4: offline-to-online RL with one on-policy objective (Lei et al., ICLR 2024; authors' code
Lei-Kun/Uni-O4).

Pipeline (:class:`UniO4`):

1. **Supervised components**, trained together for ``offline_steps`` updates on the dataset
   (:meth:`UniO4.learn_offline`):

   * an ensemble of ``n_members`` Gaussian policies cloned from the data with the disagreement term
     (:func:`ensemble_bc_loss`): for member ``i``, ``-(log pi_i(a|s) + alpha (log pi_i(a|s) - max_{j != i}
     log pi_j(a|s)))``, ``alpha = 0.1``. The authors' code treats the max as a constant (its default
     "heuristic" mode): the term then only rescales member ``i``'s own gradient by ``1 + alpha`` and
     diversity comes from random initialisation alone. Here the max keeps its gradient
     (``detach_max=False``), so each member's term also lowers the likelihood of its strongest
     competitor on every sample (tested: the gradients differ exactly there); ``detach_max=True``
     reproduces the reference code;
   * IQL critics (expectile ``V``, twin ``Q``; :class:`rlsuite.agents.iql.IQL`'s critic step), the
     fixed ``Q_tau`` of the paper;
   * a behaviour value ``V_beta`` in reward units, which initialises the online critic.

2. **Dynamics ensemble** (:class:`rlsuite.core.dynamics.DynamicsEnsemble`, 7 models, 5 elites, hold-out
   early stopping) and the env's termination function (:mod:`rlsuite.envs.termination`).

3. **Multi-step policy improvement** (:meth:`UniO4.improve`), ``improve_steps`` updates: each member
   ``pi_i`` starts from its BC weights and has a behaviour reference ``pi_i^old`` (the same weights).
   Each update samples states ``s`` from the data and actions ``a ~ pi_i^old(.|s)``, forms advantages
   ``min(Q1, Q2)(s, a) - V(s)`` standardised over the batch (:func:`normalized_advantage`), and takes one
   Adam step on PPO's clipped surrogate (:func:`rlsuite.agents.ppo.ppo_policy_loss`) with ratio
   ``pi_i / pi_i^old`` (clip 0.25, per-member gradient-norm clip 0.5, linear lr decay). Every
   ``ope_every`` updates, **AM-Q** (:func:`am_q`) scores each member: deterministic rollouts of
   ``ope_horizon`` steps in the learned model from ``ope_starts`` dataset states, trajectories dropped
   once the termination function fires, mean ``Q(s_t, pi_i(s_t))`` over the visited states (the code's
   mean; the paper writes a sum). :class:`AcceptIfImproved` replaces ``pi_i^old`` by ``pi_i`` only when
   the score beats the member's best.

4. **Online PPO** (:meth:`UniO4.learn_online`): the member with the best accepted AM-Q initialises a
   standard PPO actor (same network and Gaussian head, the dataset's fixed observation statistics),
   ``V_beta`` initialises the critic; rollouts of 2048 steps, GAE(0.99, 0.95), clip 0.05, entropy 0.01,
   actor lr 2e-5 and critic lr 2e-4 with linear decay (:class:`rlsuite.agents.ppo.PPO`).

Deviations from the authors' code, each deliberate:

* Time-limit truncations bootstrap everywhere (critic targets, ``V_beta``, model rollouts): only true
  terminations cut. The reference sets ``not_done = 1 - (terminal or timeout)``.
* Nothing is selected with real-environment returns in the offline phase: the online member is the one
  with the best AM-Q (the reference takes the 3 best by AM-Q and then the best by real evaluation).
* ``V_beta`` is fitted by TD(0) with a target network (which bootstraps truncations), not by regression on
  Monte-Carlo returns that treat truncations as ends.
* AM-Q uses common random numbers: the same start states and the same elite model per trajectory at
  every evaluation (mean predictions), so the gate compares policies, not samples.
* Members are trained jointly on one minibatch with one Adam over the ensemble (the reference visits
  them in a random order, one optimiser each; Adam is per parameter, so only the order differs), and
  use torch's default initialisation rather than orthogonal.
* Defaults sized for a CPU: critics 2 x 256 with lr 3e-4 (the authors: 2 x 1024, lr 1e-4, 2e6 steps);
  clip epsilon fixed at 0.25 (the reference's schedule stops after 200 steps near 0.245).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from rlsuite.agents.iql import (
    IQL,
    IQLConfig,
    OfflineData,
    ScaledPolicy,
    as_array_in,
    check_same_data,
    offline_build,
)
from rlsuite.agents.ppo import PPO, PPOConfig, ppo_policy_loss
from rlsuite.agents.registry import AGENTS, AgentSpec
from rlsuite.core.distributions import BoundedGaussianHead
from rlsuite.core.dynamics import DynamicsEnsemble
from rlsuite.core.nets import MLP, EnsembleMLP, adam, soft_update
from rlsuite.core.normalizer import FixedNorm
from rlsuite.core.seeding import resolve_device


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
    """``(Q - V)`` standardised along the last (batch) dimension: ``(..., B)``; carries no gradient."""
    a = (q - v).detach()
    return (a - a.mean(-1, keepdim=True)) / (a.std(-1, unbiased=False, keepdim=True) + eps)


@torch.no_grad()
def am_q(policy: Callable[[torch.Tensor], torch.Tensor], model_step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
         q_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], start_states: torch.Tensor, horizon: int,
         is_terminal: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Mean of ``q_fn(s_t, policy(s_t))`` over the states visited by ``horizon``-step model rollouts from
    ``start_states (*G, N, obs)`` (``model_step(s, a) -> s'``); a trajectory stops counting once
    ``is_terminal(s')`` is True. Returns one score per group: shape ``G`` (a 0-d tensor for ``(N, obs)``)."""
    s = start_states
    alive = torch.ones(s.shape[:-1], dtype=torch.bool, device=s.device)
    total = torch.zeros(s.shape[:-2], dtype=torch.float64, device=s.device)
    count = torch.zeros(s.shape[:-2], dtype=torch.float64, device=s.device)
    for _ in range(horizon):
        a = policy(s)
        q = q_fn(s, a)
        total += torch.where(alive, q, torch.zeros_like(q)).sum(-1).double()
        count += alive.sum(-1).double()
        s = model_step(s, a)
        if is_terminal is not None:
            alive = alive & ~is_terminal(s)
        if not bool(alive.any()):
            break
    return (total / count.clamp_min(1.0)).float()


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


@dataclasses.dataclass(frozen=True)
class UniO4Config:
    """Uni-O4 hyper-parameters (the authors' MuJoCo defaults unless noted in the module docstring)."""

    n_members: int = 4
    """Policies in the behaviour-cloned ensemble."""
    alpha: float = 0.1
    """Weight of the disagreement term."""
    detach_max: bool = False
    """Treat the competing member's likelihood as a constant (the reference code's mode)."""
    hidden_sizes: tuple[int, ...] = (256, 256, 256)
    """Hidden sizes of the policies and of the online critic."""
    activation: str = "relu"
    """Activation of the policies and of the online critic."""
    bc_lr: float = 1e-4
    """Adam lr of the ensemble BC."""
    batch_size: int = 512
    """Minibatch of every offline update."""
    critic_hidden: tuple[int, ...] = (256, 256)
    """Hidden sizes of the IQL critics."""
    critic_lr: float = 3e-4
    """Adam lr of the IQL critics and of V_beta."""
    expectile: float = 0.7
    """IQL expectile."""
    gamma: float = 0.99
    """Discount."""
    tau: float = 0.005
    """Polyak rate of the target networks."""
    dynamics_members: int = 7
    """Models in the dynamics ensemble."""
    dynamics_elites: int = 5
    """Models used for rollouts."""
    dynamics_hidden: tuple[int, ...] = (200, 200, 200, 200)
    """Hidden sizes of each dynamics model."""
    dynamics_lr: float = 1e-3
    """Adam lr of the dynamics ensemble."""
    dynamics_patience: int = 5
    """Epochs without hold-out improvement before stopping."""
    dynamics_max_epochs: int = 100
    """Upper bound on dynamics epochs (an epoch on 100k transitions takes ~10 s on one CPU core)."""
    dynamics_batch_size: int = 256
    """Minibatch of the dynamics training."""
    improve_steps: int = 10_000
    """Offline policy-improvement updates (K)."""
    improve_lr: float = 1e-4
    """Adam lr of the improvement, decayed linearly to 0 over ``improve_steps``."""
    clip: float = 0.25
    """Clip epsilon of the offline surrogate."""
    max_grad_norm: float = 0.5
    """Per-member gradient-norm clip."""
    ope_every: int = 100
    """Updates between AM-Q evaluations (C)."""
    ope_horizon: int = 1000
    """Model rollout length of AM-Q (H); shrink it when AM-Q explodes."""
    ope_starts: int = 512
    """Start states of AM-Q."""
    online_num_steps: int = 2048
    """Online PPO rollout length."""
    online_minibatches: int = 16
    """Online PPO minibatches per epoch (2048 / 16 = 128)."""
    online_epochs: int = 10
    """Online PPO epochs per rollout."""
    online_lr: float = 2e-5
    """Online actor lr."""
    online_critic_lr: float = 2e-4
    """Online critic lr."""
    online_clip: float = 0.05
    """Online clip epsilon."""
    online_ent_coef: float = 0.01
    """Online entropy bonus."""
    online_gae_lambda: float = 0.95
    """Online GAE lambda."""

    def __post_init__(self) -> None:
        if self.n_members < 2:
            raise ValueError(f"n_members must be >= 2 (the disagreement term compares members), got {self.n_members}.")
        for name in ("improve_steps", "ope_every", "ope_horizon", "ope_starts", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")


class UniO4ActorCritic(nn.Module):
    """The online actor-critic: fixed observation normaliser, one member's MLP with the bounded Gaussian
    head (in env units) and the critic initialised from ``V_beta``. Same interface as PPO's
    :class:`rlsuite.agents.ppo.ActorCritic`: ``dist(obs (B, obs)) -> DiagGaussian``, ``value(obs) -> (B,)``."""

    def __init__(self, obs_norm: nn.Module, actor_body: nn.Module, head: nn.Module, critic: nn.Module) -> None:
        super().__init__()
        self.obs_norm, self.actor_body, self.head, self.critic = obs_norm, actor_body, head, critic

    def dist(self, obs: torch.Tensor) -> Any:
        return self.head(self.actor_body(self.obs_norm(obs)))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(self.obs_norm(obs)).squeeze(-1)


def _clip_grad_per_member(params: list[nn.Parameter], n: int, max_norm: float) -> torch.Tensor:
    """Clip each ensemble member's gradient (the leading dim of every parameter) to ``max_norm``;
    returns the norms ``(n,)`` before clipping."""
    sq = torch.zeros(n, device=params[0].device)
    for p in params:
        if p.grad is not None:
            sq += p.grad.reshape(n, -1).pow(2).sum(1)
    norm = sq.sqrt()
    scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    for p in params:
        if p.grad is not None:
            p.grad.mul_(scale.view(n, *[1] * (p.grad.dim() - 1)))
    return norm


class UniO4:
    """Uni-O4 agent: ``set_data``, ``learn_offline(steps)``, ``improve(steps)``, ``learn_online(env_id,
    steps)``, ``act(obs)``, ``state_dict()``. See the module docstring.

    Args:
        cfg: hyper-parameters.
        obs_dim, act_dim: flat observation and action sizes.
        device: where every network lives.
        seed: seeds initialisation and sampling.
        termination: ``f(raw next_obs (B, obs)) -> (B,) bool`` for model rollouts (None: never ends).
    """

    algo = "uni-o4"

    def __init__(self, cfg: UniO4Config, obs_dim: int, act_dim: int, device: str | torch.device = "cpu", seed: int = 0,
                 termination: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        torch.manual_seed(seed)
        self.cfg, self.device, self.seed = cfg, resolve_device(device), seed
        self.obs_dim, self.act_dim, self.termination = obs_dim, act_dim, termination
        n = cfg.n_members
        self.members = EnsembleMLP(n, obs_dim, 2 * act_dim, cfg.hidden_sizes, cfg.activation).to(self.device)
        self.head = BoundedGaussianHead(act_dim).to(self.device)
        self.bc_opt = adam(self.members.parameters(), cfg.bc_lr)
        self.critics = IQL(IQLConfig(expectile=cfg.expectile, gamma=cfg.gamma, tau=cfg.tau, learning_rate=cfg.critic_lr, batch_size=cfg.batch_size,
                                     hidden_sizes=cfg.critic_hidden), obs_dim, act_dim, self.device, seed)
        self.v_beta = MLP(obs_dim, 1, cfg.hidden_sizes, cfg.activation).to(self.device)
        self.v_beta_target = copy.deepcopy(self.v_beta).requires_grad_(False)
        self.v_opt = adam(self.v_beta.parameters(), cfg.critic_lr)
        self.dynamics = DynamicsEnsemble(obs_dim, act_dim, cfg.dynamics_members, cfg.dynamics_elites, cfg.dynamics_hidden).to(self.device)
        self.generator = torch.Generator().manual_seed(seed)
        self.data: OfflineData | None = None
        self.offline_steps = 0
        self.improve_done = 0
        self.reference: EnsembleMLP | None = None
        self.gates: list[AcceptIfImproved] = []
        self.ope_history: list[list[float]] = []
        self.ppo: PPO | None = None
        self._env = None
        self._ope: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ data
    def set_data(self, arrays: dict[str, np.ndarray], low: np.ndarray, high: np.ndarray) -> None:
        """Dataset arrays (``observations, actions, rewards, next_observations, terminals, timeouts``)
        and the env's action bounds; rewards are scaled for the critics as IQL does."""
        self.data = OfflineData(arrays, low, high, self.device, normalize_reward=True)
        self.critics.data = self.data

    def _require_data(self) -> OfflineData:
        if self.data is None:
            raise RuntimeError("call set_data(dataset arrays, action low, action high) first.")
        return self.data

    # ------------------------------------------------------------------ phase 1: supervised
    def dist(self, obs: torch.Tensor, net: EnsembleMLP | None = None) -> Any:
        """The members' Gaussians at normalised ``obs (B, obs)`` or ``(n, B, obs)``: ``(n, B, act)``."""
        return self.head((net or self.members)(obs))

    def learn_offline(self, steps: int, total_steps: int | None = None, log: Callable[[int, dict[str, float]], None] | None = None,
                      log_every: int = 1000) -> None:
        """``steps`` updates of the ensemble BC, the IQL critics and ``V_beta``, each on its own minibatch."""
        data = self._require_data()
        if self.reference is not None:
            raise RuntimeError("the supervised phase is over (policy improvement has started); it cannot resume.")
        cfg = self.cfg
        for i in range(steps):
            b = data.sample(cfg.batch_size, self.generator)
            bc = ensemble_bc_loss(self.dist(b["obs"]).log_prob(b["act"]), cfg.alpha, cfg.detach_max)
            self.bc_opt.zero_grad(set_to_none=True)
            bc.backward()
            self.bc_opt.step()
            c_stats, _ = self.critics.update_critics(data.sample(cfg.batch_size, self.generator))
            vb = data.sample(cfg.batch_size, self.generator)
            with torch.no_grad():
                target = vb["rew"] / data.reward_scale + cfg.gamma * (1.0 - vb["term"]) * self.v_beta_target(vb["next_obs"]).squeeze(-1)
            v_loss = (self.v_beta(vb["obs"]).squeeze(-1) - target).pow(2).mean()
            self.v_opt.zero_grad(set_to_none=True)
            v_loss.backward()
            self.v_opt.step()
            soft_update(self.v_beta_target, self.v_beta, cfg.tau)
            self.offline_steps += 1
            if log is not None and (i + 1) % log_every == 0:
                log(i + 1, {"bc_loss": float(bc.detach()), "v_beta_loss": float(v_loss.detach()), **c_stats})

    # ------------------------------------------------------------------ phase 2 + 3: dynamics, improvement
    def fit_dynamics(self, log: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, float]:
        """Train the dynamics ensemble on the dataset (normalised observations, scaled actions)."""
        data, cfg = self._require_data(), self.cfg
        t = data.t
        return self.dynamics.fit(t["obs"], t["act"], t["next_obs"], t["rew"], self.generator, lr=cfg.dynamics_lr,
                                 batch_size=cfg.dynamics_batch_size,
                                 patience=cfg.dynamics_patience, max_epochs=cfg.dynamics_max_epochs, log=log)

    def _q(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return torch.minimum(*self.critics.q(s, a.clamp(-1.0, 1.0)))

    def ope(self, net: EnsembleMLP | None = None) -> torch.Tensor:
        """AM-Q score of every member of ``net`` (default: the current policies): ``(n,)``."""
        data, cfg, n = self._require_data(), self.cfg, self.cfg.n_members
        if not self._ope:
            idx = torch.randint(0, len(data), (cfg.ope_starts,), generator=self.generator).to(self.device)
            elites = self.dynamics.elites[torch.randint(0, cfg.dynamics_elites, (n * cfg.ope_starts,), generator=self.generator).to(self.device)]
            self._ope = {"starts": data.t["obs"][idx].expand(n, -1, -1).contiguous(), "elite": elites}
        mean, std = (torch.as_tensor(x, device=self.device) for x in (data.mean, data.std))
        elite = self._ope["elite"]

        def policy(s: torch.Tensor) -> torch.Tensor:
            return self.dist(s, net).mean.clamp(-1.0, 1.0)

        def step(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
            nxt, _ = self.dynamics.step(s.reshape(-1, self.obs_dim), a.reshape(-1, self.act_dim), elite)
            return nxt.view_as(s)

        def is_terminal(s: torch.Tensor) -> torch.Tensor:
            flat = s.reshape(-1, self.obs_dim)
            dead = ~torch.isfinite(flat).all(-1)
            if self.termination is not None:
                dead = dead | self.termination(flat * std + mean)
            return dead.view(s.shape[:-1])

        return am_q(policy, step, self._q, self._ope["starts"], cfg.ope_horizon, is_terminal)

    def start_improvement(self, log: Callable[[str], None] | None = None) -> None:
        """Fit the dynamics, copy the BC members into the policies and their references, score them."""
        log = log or (lambda m: None)
        log(f"dynamics: fitting {self.cfg.dynamics_members} models on {len(self._require_data())} transitions "
            f"(at most {self.cfg.dynamics_max_epochs} epochs)")
        stats = self.fit_dynamics(log=lambda epoch, st: log(f"dynamics epoch {epoch}: "
                                                           + ", ".join(f"{k} {v:.4g}" for k, v in st.items())))
        log(f"dynamics: {int(stats['epochs'])} epochs, elite hold-out MSE {stats['elite_holdout_mse']:.4f}")
        self.reference = copy.deepcopy(self.members).requires_grad_(False)
        self.pi_opt = adam(self.members.parameters(), self.cfg.improve_lr)
        scores = self.ope().tolist()
        self.gates = [AcceptIfImproved(s) for s in scores]
        self.ope_history.append(scores)
        log("AM-Q of the BC members: " + ", ".join(f"{s:.2f}" for s in scores))

    def improve(self, steps: int, total_steps: int | None = None, log: Callable[[int, dict[str, float]], None] | None = None) -> None:
        """``steps`` offline improvement updates (the lr decays linearly over ``total_steps``, default
        ``cfg.improve_steps``), with AM-Q and the accept rule every ``ope_every`` updates."""
        data, cfg, n = self._require_data(), self.cfg, self.cfg.n_members
        if self.reference is None:
            self.start_improvement()
        assert self.reference is not None
        total = total_steps or cfg.improve_steps
        params = list(self.members.parameters())
        for _ in range(steps):
            for g in self.pi_opt.param_groups:
                g["lr"] = cfg.improve_lr * max(0.0, 1.0 - self.improve_done / total)
            s = data.sample(cfg.batch_size, self.generator)["obs"]
            with torch.no_grad():
                old = self.dist(s, self.reference)
                a = old.sample()  # (n, B, act)
                old_logp = old.log_prob(a)
                adv = normalized_advantage(self._q(s.expand(n, -1, -1), a), self.critics.v(s).squeeze(-1))
            logp = self.dist(s).log_prob(a)
            # every member has the same batch size, so n x the mean over (n, B) is the sum of the members' losses
            loss = n * ppo_policy_loss(logp, old_logp, adv, cfg.clip)[0]
            self.pi_opt.zero_grad(set_to_none=True)
            loss.backward()
            _clip_grad_per_member(params, n, cfg.max_grad_norm)
            self.pi_opt.step()
            self.improve_done += 1
            if self.improve_done % cfg.ope_every == 0:
                scores = self.ope().tolist()
                self.ope_history.append(scores)
                for i, sc in enumerate(scores):
                    if self.gates[i](sc):
                        self.reference.copy_member_(i, self.members)
                if log is not None:
                    log(self.improve_done, {"policy_loss": float(loss.detach()) / n, "am_q_max": max(scores),
                                            "accepted": float(sum(g.accepted for g in self.gates))})

    @property
    def selected(self) -> int:
        """The member with the best accepted AM-Q (0 before the improvement starts)."""
        return int(np.argmax([g.best for g in self.gates])) if self.gates else 0

    # ------------------------------------------------------------------ phase 4: online PPO
    def online_policy(self, action_low: np.ndarray, action_high: np.ndarray) -> UniO4ActorCritic:
        """The selected member's accepted reference (or its BC weights) and ``V_beta`` as a PPO actor-critic."""
        data = self._require_data()
        net = self.reference if self.reference is not None else self.members
        low, high = (torch.as_tensor(x, dtype=torch.float32) for x in (action_low, action_high))
        head = BoundedGaussianHead(self.act_dim, scale=(high - low) / 2, bias=(high + low) / 2)
        norm = FixedNorm(torch.as_tensor(data.mean), torch.as_tensor(data.std))
        return UniO4ActorCritic(norm, net.member(self.selected), head, copy.deepcopy(self.v_beta).requires_grad_(True)).to(self.device)

    def _make_ppo(self, observation_space: Any, action_space: Any) -> PPO:
        """The online PPO agent around :meth:`online_policy` for these single-env spaces."""
        cfg = self.cfg
        ppo_cfg = PPOConfig(num_envs=1, num_steps=cfg.online_num_steps, num_minibatches=cfg.online_minibatches,
                            update_epochs=cfg.online_epochs, learning_rate=cfg.online_lr, critic_learning_rate=cfg.online_critic_lr,
                            clip_coef=cfg.online_clip, ent_coef=cfg.online_ent_coef, gamma=cfg.gamma,
                            gae_lambda=cfg.online_gae_lambda, hidden_sizes=cfg.hidden_sizes, activation=cfg.activation)
        return PPO(ppo_cfg, observation_space, action_space, self.device,
                   policy=self.online_policy(action_space.low, action_space.high))

    def learn_online(self, env_id: str, steps: int, seed: int = 0, total_steps: int | None = None,
                     log: Callable[[int, dict[str, float]], None] | None = None, log_every: int = 0) -> None:
        """``steps`` env steps of PPO from the offline actor and value (continues across calls; the lr
        decays linearly over ``total_steps``, default ``steps``). ``log(i, metrics)`` after every rollout:
        ``i`` env steps into this call, PPO's ``rollout/``, ``train/`` and ``time/`` metrics
        (``log_every`` is accepted for the common interface: PPO logs once per rollout)."""
        from rlsuite.core.vec_env import make_vec_env

        if self.ppo is None:
            self._env = make_vec_env(env_id, num_envs=1, device=self.device, seed=seed)
            self.ppo = self._make_ppo(self._env.single_observation_space, self._env.single_action_space)
            self._online_total = total_steps or steps
        start = self.ppo.global_step
        self.ppo.learn(self._env, start + steps, _LogTo(log, start) if log is not None else None, seed=seed,
                       anneal_steps=self._online_total)

    # ------------------------------------------------------------------ acting, state
    @torch.no_grad()
    def act(self, obs: np.ndarray | torch.Tensor, deterministic: bool = True) -> np.ndarray | torch.Tensor:
        """Env-unit actions ``(B, act)`` for raw observations ``(B, obs)``: the online PPO actor once it
        exists, else the selected member (its accepted reference during improvement). A tensor for a
        tensor input, an array for an array."""
        if self.ppo is not None:
            a = self.ppo.act(torch.as_tensor(obs, dtype=torch.float32), deterministic)
            return a if isinstance(obs, torch.Tensor) else a.cpu().numpy().astype(np.float32)
        data = self._require_data()
        net = self.reference if self.reference is not None else self.members
        d = self.dist(data.norm_obs(obs), net)
        a = d.mean[self.selected] if deterministic else d.sample()[self.selected]
        return as_array_in(obs, data.unscale_action(a.clamp(-1.0, 1.0)).astype(np.float32), self.device)

    def deploy_module(self) -> nn.Module:
        """``obs (B, obs) -> actions (B, act)`` for export: the online actor once it exists, else the
        selected member's mean with the data statistics inside."""
        if self.ppo is not None:
            return self.ppo.deploy_module()
        net = self.reference if self.reference is not None else self.members
        return ScaledPolicy(self._require_data(), _MemberMean(net.member(self.selected), self.head)).eval()

    def state_dict(self) -> dict[str, Any]:
        data = self._require_data()
        out: dict[str, Any] = {
            "members": self.members.state_dict(), "q": self.critics.q.state_dict(), "v": self.critics.v.state_dict(),
            "v_beta": self.v_beta.state_dict(), "dynamics": self.dynamics.state_dict(),
            "obs_mean": torch.as_tensor(data.mean), "obs_std": torch.as_tensor(data.std), "action_low": torch.as_tensor(data.low),
            "action_high": torch.as_tensor(data.high), "reward_scale": torch.tensor(data.reward_scale),
            "steps": torch.tensor([self.offline_steps, self.improve_done]), "selected": torch.tensor(self.selected)}
        out["critics"] = self.critics.state_dict()
        out["v_beta_target"] = self.v_beta_target.state_dict()
        out["optim"] = {"bc": self.bc_opt.state_dict(), "v_beta": self.v_opt.state_dict()}
        out["generator"] = self.generator.get_state()
        if self._ope:
            out["ope_draw"] = dict(self._ope)  # AM-Q's start states and elite picks, drawn once
        if self.reference is not None:
            out["reference"] = self.reference.state_dict()
            out["ope_best"] = torch.tensor([g.best for g in self.gates])
            out["ope_counts"] = torch.tensor([[g.accepted, g.rejected] for g in self.gates])
            out["optim"]["improve"] = self.pi_opt.state_dict()
        if self.ppo is not None:
            out["online_policy"] = self.ppo.policy.state_dict()
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` saved before the online phase (call :meth:`set_data` with the
        same dataset first): the supervised phase or the improvement then continues, or
        :meth:`learn_online` starts from the restored actor and value. A state saved during the online
        phase restores the online actor-critic for acting and export; training continues from the
        offline checkpoint (the online phase starts again). Without data the saved statistics are used:
        the agent can act and export, not train."""
        if self.data is None:
            self.data = OfflineData.from_state(state, self.device)
            self.critics.data = self.data
        check_same_data(self.data, state, ("critics", "v_beta_target", "optim", "generator"))
        self.members.load_state_dict(state["members"])
        self.v_beta.load_state_dict(state["v_beta"])
        self.v_beta_target.load_state_dict(state["v_beta_target"])
        self.dynamics.load_state_dict(state["dynamics"])
        self.critics.load_state_dict(state["critics"])
        self.offline_steps, self.improve_done = (int(x) for x in state["steps"])
        self.bc_opt.load_state_dict(state["optim"]["bc"])
        self.v_opt.load_state_dict(state["optim"]["v_beta"])
        self.generator.set_state(state["generator"])
        self._ope = {k: v.to(self.device) for k, v in state.get("ope_draw", {}).items()}
        self.reference, self.gates = None, []
        if "reference" in state:
            self.reference = copy.deepcopy(self.members).requires_grad_(False)
            self.reference.load_state_dict(state["reference"])
            self.pi_opt = adam(self.members.parameters(), self.cfg.improve_lr)
            self.pi_opt.load_state_dict(state["optim"]["improve"])
            for best, (acc, rej) in zip(state["ope_best"].tolist(), state["ope_counts"].tolist(), strict=True):
                gate = AcceptIfImproved(best)
                gate.accepted, gate.rejected = int(acc), int(rej)
                self.gates.append(gate)
        self.ppo = None
        if "online_policy" in state:
            import gymnasium as gym

            obs_space = gym.spaces.Box(-np.inf, np.inf, (self.obs_dim,), np.float32)
            act_space = gym.spaces.Box(self.data.low, self.data.high, dtype=np.float32)
            self.ppo = self._make_ppo(obs_space, act_space)
            self.ppo.policy.load_state_dict(state["online_policy"])


class _LogTo:
    """Stands in for a run in PPO's loop: its metrics go to ``log(steps into this call, metrics)``; no
    evaluation or checkpoint (the offline-to-online driver writes those)."""

    def __init__(self, log: Callable[[int, dict[str, Any]], None], start: int) -> None:
        self.logger, self._log, self._start = self, log, start

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        self._log(step - self._start, metrics)

    def step_done(self, agent: Any, env: Any) -> None:
        pass


class _MemberMean(nn.Module):
    """One ensemble member's Gaussian mean in [-1, 1]: ``(B, obs) -> (B, act)``."""

    def __init__(self, member: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.member, self.head = member, head

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.member(obs)).mean


def _build(cfg: UniO4Config, observation_space: Any, action_space: Any, device: torch.device, seed: int) -> UniO4:
    return offline_build(UniO4)(cfg, observation_space, action_space, device, seed)


AGENTS.register("uni-o4", AgentSpec(
    name="uni-o4", config_cls=UniO4Config, agent_cls=UniO4, learns_from="dataset", build=_build,
    summary="Uni-O4: BC ensemble, offline policy improvement with AM-Q, then online PPO (offline-to-online)",
))
