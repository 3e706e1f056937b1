"""EXPO: an expressive diffusion base policy, a small edit policy and on-the-fly action selection
(Dong, Li, Sadigh, Finn, "Stable Reinforcement Learning with Expressive Policies", ICLR 2026; authors'
code pd-perry/EXPO, JAX, built on RLPD).

The pieces (:class:`EXPO`):

1. **Base policy**: a DDPM over actions (:mod:`rlsuite.core.diffusion`: T = 10 steps, variance-preserving
   schedule, MLP-ResNet denoiser with Fourier time features) trained **only by denoising** on the
   minibatches of the replay (one update per env step, on the last critic minibatch), with an EMA copy
   (rate 0.001). It never gets a gradient from the critic: it improves because the replay fills with
   the actions the selection below picks.
2. **Edit policy** ``pi_e(delta | s, a)``: a tanh-Gaussian on ``concat(s, a)``; the edited action is
   ``clip(a + beta delta, -1, 1)`` with a small bound ``beta`` (``edit_scale``, 0.05). Trained SAC-style on
   **buffer actions** as the base action (:func:`edit_policy_loss`):
   ``alpha (log pi_e(delta) - A log beta) - mean_k Q_k(s, a~)``; temperature towards ``H = -A / 2``.
3. **On-the-fly selection** (:meth:`EXPO.select`): ``N`` base samples, the first ``n_edit`` of them edited,
   and the candidate with the largest ``min_{k in K} Q'_k`` over ``K`` target critics drawn at random
   (:func:`select_best`). Acting uses the **EMA** base; the TD target ``y = r + gamma (1 - terminated)
   min_{k in K} Q'_k(s', a*)`` uses ``a* = select(s')`` with the **live** base (no entropy term), so a
   better critic changes behaviour and backups at once. All candidates of all states go through one
   denoiser call per diffusion step (``B * N`` rows; :func:`rlsuite.core.diffusion.sample_actions`).
4. **Critics and data as RLPD** (:mod:`rlsuite.agents.rlpd`): ``num_qs`` = 10 LayerNorm critics, the
   mean over heads of the squared TD error, ``utd`` critic minibatches per env step, half dataset and half
   online replay, Polyak 0.005, masks from ``terminated`` only.

Offline-to-online: with ``--offline-steps P`` the base is first pretrained by imitation on the dataset
(denoising only; critics and edit policy are not pretrained, as in the released scripts).

Ablations (the paper's): ``--no-use-edit`` (candidates are base samples only, no edit policy) and
``--no-otf-backup`` (the TD target uses one edited base sample instead of the argmax).

Deviations, each deliberate:

* Edited actions are clipped to ``[-1, 1]`` before the env and before the critics (the authors' code
  does not clip; its actions can leave the bounds).
* Deterministic acting (evaluation, export) uses a fixed bank of noise shared by all states (seeded,
  saved in the state), the edit policy's mode and the mean over all target critics: the policy is then a
  function of the observation, which an exported module and a reloaded run reproduce exactly. Training
  acts with fresh noise, sampled edits and ``K`` random critics, as the paper.
* Defaults are sized for a CPU (``utd`` 2, denoiser 2 blocks x 128, 4 base + 4 edited candidates, the base's
  learning rate constant); :data:`PAPER` has the paper's settings. Observations are standardised with the
  dataset's statistics.
* The online phase runs in chunks between evaluations (the driver's), each starting a fresh episode, so a
  run resumes from the checkpoint after any evaluation bit for bit.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from rlsuite.agents.iql import as_array_in, offline_build
from rlsuite.agents.registry import AGENTS, AgentSpec
from rlsuite.agents.rlpd import (
    Actor,
    CriticEnsemble,
    MixedData,
    check_common,
    ensemble_critic_loss,
    load_common,
    online_phase,
    random_members,
    subset_min,
    tanh_sample,
)
from rlsuite.agents.sac import sac_alpha_loss
from rlsuite.core.diffusion import DDPMSchedule, Denoiser, denoising_loss, sample_actions, vp_betas
from rlsuite.core.nets import adam, soft_update
from rlsuite.core.seeding import resolve_device


@dataclasses.dataclass(frozen=True)
class EXPOConfig:
    """EXPO hyper-parameters (defaults sized for a CPU; :data:`PAPER` has the paper's)."""

    utd: int = 2
    """Critic updates per env step (the paper: 20), each on its own minibatch."""
    batch_size: int = 256
    """Transitions per minibatch (half dataset, half online replay)."""
    offline_ratio: float = 0.5
    """Share of every minibatch drawn from the dataset."""
    num_qs: int = 10
    """Critics in the ensemble."""
    num_min_qs: int = 2
    """Target critics drawn at random for the minimum (selection and target)."""
    critic_layer_norm: bool = True
    """LayerNorm after every hidden layer of the critics."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden widths of the critics and of the edit policy (the paper: 3 x 256)."""
    learning_rate: float = 3e-4
    """Adam learning rate of critics, edit policy and temperature."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    init_temperature: float = 1.0
    """Initial temperature of the edit policy."""
    target_entropy: float | None = None
    """Entropy target of the edited action (None: -|A| / 2 + |A| log beta, or -|A| / 2 with --no-adjust-target-entropy)."""
    adjust_target_entropy: bool = True
    """Shift the default target by |A| log beta so that a beta-bounded edit can reach it (the authors' code has the option, off in their scripts: the temperature then grows without end)."""
    start_training: int = 5000
    """Online env steps with uniformly random actions before the first update (none after base pretraining)."""
    replay_capacity: int = 1_000_000
    """Online replay size (allocated for min(capacity, the online budget))."""
    reward_scale: float = 1.0
    """Rewards are multiplied by this ..."""
    reward_bias: float = 0.0
    """... and then shifted by this (the paper's AntMaze: -1), in the dataset and online."""
    diffusion_steps: int = 10
    """DDPM steps T."""
    beta_min: float = 0.1
    """Variance-preserving schedule's beta_min."""
    beta_max: float = 10.0
    """Variance-preserving schedule's beta_max."""
    denoiser_width: int = 128
    """Width of the denoiser's residual blocks (the paper: 256)."""
    denoiser_blocks: int = 2
    """Residual blocks of the denoiser (the paper: 3)."""
    time_dim: int = 64
    """Fourier time features (the paper: 128)."""
    base_learning_rate: float = 3e-4
    """AdamW learning rate of the base policy."""
    base_lr_decay_steps: int = 0
    """Cosine decay of the base's learning rate over this many updates (0: constant; the paper: 3e6)."""
    ema_rate: float = 0.001
    """Polyak rate of the EMA base used for acting."""
    num_base_samples: int = 4
    """Base samples N per state (the paper: 8)."""
    num_edit_samples: int = 4
    """How many of them are edited, n_edit <= N (the paper: 8)."""
    edit_scale: float = 0.05
    """Edit bound beta: a~ = a + beta * delta, delta in [-1, 1]^A."""
    use_edit: bool = True
    """Train and use the edit policy (False: the paper's no-edit ablation)."""
    otf_backup: bool = True
    """The TD target uses the selected action (False: one edited base sample, the paper's ablation)."""
    eval_samples: int = 16
    """Base samples of the deterministic policy (evaluation, export), each also edited by the edit policy's mode."""

    def __post_init__(self) -> None:
        for name in ("utd", "batch_size", "num_qs", "num_min_qs", "replay_capacity", "diffusion_steps", "denoiser_width",
                     "denoiser_blocks", "num_base_samples", "eval_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}.")
        if self.num_min_qs > self.num_qs:
            raise ValueError(f"--num-min-qs ({self.num_min_qs}) cannot exceed --num-qs ({self.num_qs}).")
        if not 0 <= self.num_edit_samples <= self.num_base_samples:
            raise ValueError(f"--num-edit-samples must be in [0, --num-base-samples={self.num_base_samples}], got {self.num_edit_samples}.")
        if self.use_edit and self.num_edit_samples == 0:
            raise ValueError("--num-edit-samples 0 leaves the edit policy unused; pass --no-use-edit for the no-edit ablation.")
        if not 0.0 < self.edit_scale <= 2.0:
            raise ValueError(f"--edit-scale (beta) must be in (0, 2], got {self.edit_scale}.")
        if self.time_dim < 2 or self.time_dim % 2:
            raise ValueError(f"--time-dim must be an even number >= 2, got {self.time_dim}.")
        if not 0.0 <= self.offline_ratio <= 1.0:
            raise ValueError(f"--offline-ratio must be in [0, 1], got {self.offline_ratio}.")
        if self.start_training < 0 or self.base_lr_decay_steps < 0:
            raise ValueError("--start-training and --base-lr-decay-steps must be >= 0.")
        if not 0.0 < self.ema_rate <= 1.0:
            raise ValueError(f"--ema-rate must be in (0, 1], got {self.ema_rate}.")
        check_common(self)


LOG_ALPHA_MAX = math.log(1e4)
"""Upper bound of the edit policy's log-temperature."""

#: The paper's settings (AntMaze / Robomimic scripts); pass them as flags.
PAPER: dict[str, Any] = {"utd": 20, "batch_size": 256, "num_qs": 10, "num_min_qs": 2, "hidden_sizes": (256, 256, 256),
                         "denoiser_width": 256, "denoiser_blocks": 3, "time_dim": 128, "num_base_samples": 8,
                         "num_edit_samples": 8, "edit_scale": 0.05, "base_lr_decay_steps": 3_000_000, "start_training": 5000}


# ----------------------------------------------------------------------------- pure functions


def select_best(candidates: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The candidate with the largest value per state: ``candidates (B, M, A)``, ``q (B, M)`` ->
    ``(B, A)`` and its value ``(B,)`` (the first on ties)."""
    best = q.argmax(dim=1)
    return candidates[torch.arange(candidates.shape[0], device=candidates.device), best], q.gather(1, best[:, None]).squeeze(1)


def edit_actions(base: torch.Tensor, delta: torch.Tensor, scale: float) -> torch.Tensor:
    """``clip(a + beta delta, -1, 1)``: the edited actions, shapes as ``base``."""
    return (base + scale * delta).clamp(-1.0, 1.0)


def edit_policy_loss(logp_delta: torch.Tensor, q: torch.Tensor, alpha: torch.Tensor, act_dim: int,
                     scale: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``mean(alpha (log pi_e(delta) - A log beta) - mean_k Q_k(s, a~))``: ``logp_delta (B,)``, ``q (K, B)``.
    ``log pi_e(delta) - A log beta`` is the log-density of the edit ``beta delta``."""
    logp = logp_delta - act_dim * math.log(scale)
    loss = (alpha * logp - q.mean(dim=0)).mean()
    return loss, {"edit_loss": loss.detach(), "edit_entropy": -logp.detach().mean()}


def td_target(reward: torch.Tensor, terminated: torch.Tensor, next_q: torch.Tensor, gamma: float) -> torch.Tensor:
    """``r + gamma (1 - terminated) next_q`` (EXPO's backup has no entropy term); every tensor ``(B,)``."""
    return reward + gamma * (1.0 - terminated.float()) * next_q


# ----------------------------------------------------------------------------- the deterministic policy


class SelectionPolicy(nn.Module):
    """EXPO's deterministic policy as one module: ``obs (B, obs) -> env-unit actions (B, A)``.

    Standardise, draw ``eval_samples`` base actions from the EMA denoiser with the fixed noise bank, add
    each one's edit by the edit policy's mode, score every candidate with the mean of the target critics
    and return the best, rescaled to the action bounds (what ``act(deterministic=True)`` and export use).
    """

    def __init__(self, agent: EXPO) -> None:
        super().__init__()
        data = agent.data
        assert data is not None
        self.denoiser, self.edit, self.critic = agent.ema, agent.edit, agent.critic_target
        self.schedule = agent.schedule
        self.n, self.scale, self.use_edit = agent.cfg.eval_samples, agent.cfg.edit_scale, agent.cfg.use_edit
        self.register_buffer("noise", agent.noise_bank.clone())
        for name, value in (("mean", data.mean), ("std", data.std), ("low", data.low), ("high", data.high)):
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.float32, device=agent.device).clone())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        o = (obs - self.mean) / self.std
        cands = sample_actions(self.denoiser, self.schedule, o, self.n, noise=self.noise)  # (B, N, A)
        if self.use_edit:
            delta = self.edit(torch.cat([o[:, None].expand(-1, self.n, -1), cands], -1)).mode
            cands = torch.cat([cands, edit_actions(cands, delta, self.scale)], dim=1)
        q = self.critic(o[:, None].expand(-1, cands.shape[1], -1), cands).mean(dim=0)  # (B, M)
        best, _ = select_best(cands, q)
        return self.low + (best + 1.0) * 0.5 * (self.high - self.low)


# ----------------------------------------------------------------------------- agent


class EXPO:
    """EXPO (see the module docstring): ``set_data``, ``learn_offline`` (base pretraining),
    ``learn_online``, ``act``, ``state_dict``."""

    algo = "expo"
    default_offline_steps = 0  # the online-with-offline-data setting; --offline-steps P pretrains the base
    online_resumable = True

    def __init__(self, cfg: EXPOConfig, obs_dim: int, act_dim: int, device: str | torch.device = "cpu", seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.cfg, self.device = cfg, resolve_device(device)
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.schedule = DDPMSchedule(vp_betas(cfg.diffusion_steps, cfg.beta_min, cfg.beta_max), self.device)
        self.base = Denoiser(obs_dim, act_dim, cfg.denoiser_width, cfg.denoiser_blocks, cfg.time_dim).to(self.device)
        self.ema = copy.deepcopy(self.base).requires_grad_(False)
        self.edit = Actor(obs_dim + act_dim, act_dim, cfg.hidden_sizes).to(self.device)
        self.critic = CriticEnsemble(obs_dim, act_dim, cfg.num_qs, cfg.hidden_sizes, cfg.critic_layer_norm).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(float(np.log(cfg.init_temperature)), device=self.device, requires_grad=True)
        default_target = -act_dim / 2.0 + (act_dim * math.log(cfg.edit_scale) if cfg.adjust_target_entropy else 0.0)
        self.target_entropy = cfg.target_entropy if cfg.target_entropy is not None else default_target
        self.base_opt = torch.optim.AdamW(self.base.parameters(), lr=cfg.base_learning_rate, weight_decay=1e-4)
        self.base_sched = (torch.optim.lr_scheduler.CosineAnnealingLR(self.base_opt, cfg.base_lr_decay_steps)
                           if cfg.base_lr_decay_steps else None)
        self.edit_opt, self.critic_opt = adam(self.edit.parameters(), cfg.learning_rate), adam(self.critic.parameters(), cfg.learning_rate)
        self.alpha_opt = adam([self.log_alpha], cfg.learning_rate)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        bank = torch.Generator(device="cpu").manual_seed(seed + 7919)
        #: the deterministic policy's noise ``(T + 1, eval_samples, A)``, shared by every state
        self.noise_bank = torch.randn((cfg.diffusion_steps + 1, cfg.eval_samples, act_dim), generator=bank).to(self.device)
        self.data: MixedData | None = None
        self.online_steps = 0
        self.updates = 0
        self.base_updates = 0
        self.pretrain_updates = 0  # base updates of the offline phase (imitation pretraining)
        self._policy: SelectionPolicy | None = None  # the deterministic policy, built once (it shares the live networks)

    # ------------------------------------------------------------------ data and acting
    def set_data(self, arrays: dict[str, np.ndarray], low: np.ndarray, high: np.ndarray) -> None:
        self.data = MixedData(arrays, low, high, self.device, self.cfg.reward_scale, self.cfg.reward_bias)
        self._policy = None

    @property
    def warmup_steps(self) -> int:
        """Random online steps before the first update: ``start_training``, none once the base was pretrained
        (the pretrained base acts from the first step, as the paper's offline-to-online runs)."""
        return 0 if self.pretrain_updates > 0 else self.cfg.start_training

    def _edit_sample(self, obs: torch.Tensor, base: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``delta`` and ``log pi_e(delta)`` for states ``obs (..., obs)`` and base actions ``base (..., A)``,
        drawn with the agent's generator (reparameterised)."""
        return tanh_sample(self.edit(torch.cat([obs, base], -1)), self.generator)

    def candidates(self, obs: torch.Tensor, denoiser: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """Base samples and the edited ones: ``obs (B, obs) -> (B, N + n_edit, A)`` (edits only with
        ``use_edit``), plus the base samples alone ``(B, N, A)``."""
        cfg = self.cfg
        base = sample_actions(denoiser, self.schedule, obs, cfg.num_base_samples, self.generator)
        if not cfg.use_edit:
            return base, base
        first = base[:, : cfg.num_edit_samples]
        delta, _ = self._edit_sample(obs[:, None].expand(-1, cfg.num_edit_samples, -1), first)
        return torch.cat([base, edit_actions(first, delta, cfg.edit_scale)], dim=1), base

    @torch.no_grad()
    def select(self, obs: torch.Tensor, denoiser: nn.Module, members: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """On-the-fly selection for standardised ``obs (B, obs)``: the candidate with the largest
        ``min_{k in members} Q'_k`` and that value: ``(B, A)``, ``(B,)``."""
        cands, _ = self.candidates(obs, denoiser)
        q = subset_min(self.critic_target(obs[:, None].expand(-1, cands.shape[1], -1), cands), members)  # (B, M)
        return select_best(cands, q)

    def explore(self, obs: torch.Tensor) -> torch.Tensor:
        """Training actions in ``[-1, 1]``: selection with the EMA base and ``K`` random target critics."""
        members = random_members(self.cfg.num_qs, self.cfg.num_min_qs, self.generator, self.device)
        return self.select(obs, self.ema, members)[0]

    @torch.no_grad()
    def act(self, obs: np.ndarray | torch.Tensor, deterministic: bool = True) -> np.ndarray | torch.Tensor:
        """Env-unit actions ``(B, A)`` for raw observations ``(B, obs)`` (a tensor for a tensor, else an array).
        ``deterministic``: :class:`SelectionPolicy` (a function of ``obs``); else the training rule."""
        assert self.data is not None, "set_data or load_state_dict first"
        if deterministic:
            if self._policy is None:
                self._policy = self.deploy_module()
            a = self._policy(torch.as_tensor(obs, dtype=torch.float32, device=self.device))
            return a if isinstance(obs, torch.Tensor) else a.cpu().numpy().astype(np.float32)
        a = self.explore(self.data.norm_obs(obs))
        return as_array_in(obs, self.data.unscale_action(a).astype(np.float32), self.device)

    def deploy_module(self) -> nn.Module:
        """``obs (B, obs) -> actions (B, A)``: :class:`SelectionPolicy` (EMA base, edit policy, target critics)."""
        assert self.data is not None, "set_data or load_state_dict first"
        return SelectionPolicy(self).eval()

    # ------------------------------------------------------------------ learning
    def learn_offline(self, steps: int, total_steps: int | None = None, log: Callable[[int, dict[str, float]], None] | None = None,
                      log_every: int = 1000) -> None:
        """``steps`` denoising updates of the base on dataset minibatches (imitation pretraining)."""
        if self.data is None:
            raise RuntimeError("call set_data(dataset arrays, action low, action high) before learn_offline.")
        for i in range(steps):
            stats = self.update_base(self.data.sample(self.cfg.batch_size, 1.0, self.generator))
            self.pretrain_updates += 1
            if log is not None and (i + 1) % log_every == 0:
                log(i + 1, {k: float(v) for k, v in stats.items()})

    def learn_online(self, env_id: str, steps: int, seed: int = 0, total_steps: int | None = None,
                     log: Callable[[int, dict[str, float]], None] | None = None, log_every: int = 1000) -> list[float]:
        """``steps`` env steps (:func:`rlsuite.agents.rlpd.online_phase`); returns the finished episodes' returns."""
        if self.data is None:
            raise RuntimeError("call set_data(dataset arrays, action low, action high) before learn_online.")
        return online_phase(self, env_id, steps, seed, total_steps, log, log_every)

    def update_step(self) -> dict[str, torch.Tensor]:
        """What one env step pays for: ``utd`` critic updates, then one base, edit and temperature update on
        the last minibatch."""
        assert self.data is not None
        stats: dict[str, torch.Tensor] = {}
        for _ in range(self.cfg.utd):
            batch = self.data.sample(self.cfg.batch_size, self.cfg.offline_ratio, self.generator)
            stats.update(self.update_critic(batch))
        stats.update(self.update_base(batch))
        if self.cfg.use_edit:
            stats.update(self.update_edit(batch))
        self.updates += 1
        return stats

    def update_critic(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        with torch.no_grad():
            if cfg.otf_backup:  # the argmax with one random subset, its value with another (as the authors' code)
                a_next, _ = self.select(batch["next_obs"], self.base, random_members(cfg.num_qs, cfg.num_min_qs, self.generator, self.device))
            else:  # ablation: one (edited) base sample, no argmax
                cands, _ = self.candidates(batch["next_obs"], self.base)
                a_next = cands[:, -1] if cfg.use_edit else cands[:, 0]
            members = random_members(cfg.num_qs, cfg.num_min_qs, self.generator, self.device)
            next_q = subset_min(self.critic_target(batch["next_obs"], a_next), members)
            y = td_target(batch["rewards"], batch["terminated"], next_q, cfg.gamma)
        loss, stats = ensemble_critic_loss(self.critic(batch["obs"], batch["actions"]), y)
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_opt.step()
        soft_update(self.critic_target, self.critic, cfg.tau)
        return stats

    def update_base(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One denoising step of the live base on ``batch``'s actions, then the EMA."""
        loss, stats = denoising_loss(self.base, self.schedule, batch["obs"], batch["actions"], self.generator)
        self.base_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.base_opt.step()
        if self.base_sched is not None and self.base_updates < self.cfg.base_lr_decay_steps:
            self.base_sched.step()
        self.base_updates += 1
        soft_update(self.ema, self.base, self.cfg.ema_rate)
        return stats

    def update_edit(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One step of the edit policy on the buffer's actions as base actions, and of its temperature."""
        cfg = self.cfg
        delta, logp_delta = self._edit_sample(batch["obs"], batch["actions"])
        edited = edit_actions(batch["actions"], delta, cfg.edit_scale)
        self.critic.requires_grad_(False)
        loss, stats = edit_policy_loss(logp_delta, self.critic(batch["obs"], edited), self.log_alpha.detach().exp(), self.act_dim, cfg.edit_scale)
        self.critic.requires_grad_(True)
        self.edit_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.edit_opt.step()
        a_loss, _ = sac_alpha_loss(self.log_alpha, logp_delta - self.act_dim * math.log(cfg.edit_scale), self.target_entropy)
        self.alpha_opt.zero_grad(set_to_none=True)
        a_loss.backward()
        self.alpha_opt.step()
        with torch.no_grad():  # an unreachable target (e.g. --no-adjust-target-entropy) would otherwise overflow alpha
            self.log_alpha.clamp_(max=LOG_ALPHA_MAX)
        return {**stats, "alpha": self.log_alpha.detach().exp()}

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Networks (base, EMA, edit, critics), optimizers, temperature, noise bank, generator, counters,
        data statistics and the online replay."""
        assert self.data is not None
        return {"base": self.base.state_dict(), "ema": self.ema.state_dict(), "edit": self.edit.state_dict(),
                "critic": self.critic.state_dict(), "critic_target": self.critic_target.state_dict(),
                "log_alpha": self.log_alpha.detach().clone(), "noise_bank": self.noise_bank, **self.data.stats_state(),
                "optim": {"base": self.base_opt.state_dict(), "edit": self.edit_opt.state_dict(), "critic": self.critic_opt.state_dict(),
                          "alpha": self.alpha_opt.state_dict()},
                "base_sched": self.base_sched.state_dict() if self.base_sched is not None else {},
                "generator": self.generator.get_state(), "counters": torch.tensor([self.online_steps, self.updates]),
                "base_updates": torch.tensor([self.base_updates, self.pretrain_updates]),
                "online": self.data.online.state_dict() if self.data.online is not None else {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (after :meth:`set_data` with the same dataset to continue training;
        without data the saved statistics are used: the agent can act and export, not train)."""
        load_common(self, state)
        self._policy = None
        self.base.load_state_dict(state["base"])
        self.ema.load_state_dict(state["ema"])
        self.edit.load_state_dict(state["edit"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.noise_bank = state["noise_bank"].to(self.device)
        for opt, key in ((self.base_opt, "base"), (self.edit_opt, "edit"), (self.critic_opt, "critic"), (self.alpha_opt, "alpha")):
            opt.load_state_dict(state["optim"][key])
        if self.base_sched is not None and state.get("base_sched"):
            self.base_sched.load_state_dict(state["base_sched"])
        self.base_updates, self.pretrain_updates = (int(v) for v in state["base_updates"])


AGENTS.register("expo", AgentSpec(
    name="expo", config_cls=EXPOConfig, agent_cls=EXPO, learns_from="dataset", build=offline_build(EXPO),
    summary="EXPO: diffusion base policy + edit policy with on-the-fly critic selection (online RL with offline data)",
))
