"""Robust model-based RL with sample dropout: MBPO-style SAC on model rollouts, the most optimistic dropped.

Paper: Zhang, Cao, Yao, An, Xiao, Luo, "Robust Model-based Reinforcement Learning for Autonomous
Greenhouse Control", ACML 2021 (arXiv:2108.11645). The schedule follows MBPO (Janner et al., "When to
Trust Your Model", NeurIPS 2019); the dropout rule follows the same group's MBDP ("rollout dropout",
arXiv:2108.01295), which links it to a CVaR objective. No official code was published; the steps below
are our reading of the papers (docs/greenhouse.md lists what is not verified).

Steps (every vector env step from ``learning_starts`` on, then SAC's ``gradient_steps`` updates):

1. Real transitions go to the real replay, as in SAC.
2. Every ``model_every`` env steps the probabilistic dynamics ensemble
   (:class:`rlsuite.core.dynamics.DynamicsEnsemble`: ``ensemble_size`` Gaussian MLPs of ``(s' - s, r)``,
   hold-out early stopping, ``elites`` kept) is refitted on all real transitions.
3. Every ``rollout_every`` env steps, ``rollout_batch`` real states start model rollouts of
   ``rollout_length`` steps under the current policy; each step of each rollout uses the mean prediction
   of an elite member drawn at random (:func:`model_rollout`).
4. **Sample dropout** (:func:`sample_dropout`): the rollouts are ranked by their model return (the sum of
   their predicted rewards) and the top ``dropout`` fraction is dropped; the transitions of the lower
   ``1 - dropout`` fraction go to the model replay (it holds ``model_retain`` rounds). ``dropout = 0``
   is plain MBPO (the ablation). Training on the lower tail of the model's outcomes makes the policy
   pessimistic where the ensemble disagrees or the weather is bad: a CVaR-style objective.
5. Each SAC update draws ``real_ratio`` of its batch from the real replay and the rest from the model
   replay.

Deviations and choices (documented in docs/greenhouse.md): imagined transitions never terminate (the
greenhouse never does; for envs with terminal states this agent has no termination model, so prefer
SAC there); rollouts whose prediction is not finite are discarded before the ranking; the model
predicts every observation entry, exogenous ones (weather, time) included; rollouts use the drawn member's
mean prediction, not a sample of its Gaussian (MBPO samples it): the spread comes from the members. The
model replay holds ``model_retain`` rounds when no rollout diverges (more, when some do).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import torch

from rlsuite.agents.registry import AGENTS, AgentSpec
from rlsuite.agents.sac import SAC, SACConfig
from rlsuite.core.dynamics import DynamicsEnsemble
from rlsuite.core.replay import MixedSampler, ReplayBuffer
from rlsuite.core.vec_env import TorchVecEnv

GREENHOUSE = "rlsuite/Greenhouse-Lettuce-v0"


@dataclasses.dataclass(frozen=True)
class RobustMBRLConfig(SACConfig):
    """SAC's hyper-parameters plus the model's, the rollouts' and the dropout's."""

    dropout: float = 0.2
    """Sample dropout delta: the fraction of model rollouts with the highest model return that is dropped (0: MBPO)."""
    ensemble_size: int = 7
    """Members of the dynamics ensemble."""
    elites: int = 5
    """Members used for rollouts (lowest hold-out error)."""
    model_hidden: tuple[int, ...] = (200, 200, 200)
    """Hidden layer sizes of each dynamics member."""
    model_every: int = 250
    """Refit the dynamics model every this many env steps."""
    model_max_epochs: int = 30
    """Epochs per refit at most (early stopping on the hold-out set usually ends it sooner)."""
    model_patience: int = 5
    """Refit epochs without hold-out improvement before stopping."""
    rollout_every: int = 250
    """Start a round of model rollouts every this many env steps."""
    rollout_batch: int = 2000
    """Real start states per round of rollouts."""
    rollout_length: int = 5
    """Model steps per rollout."""
    model_retain: int = 4
    """Rounds of rollouts the model replay holds."""
    real_ratio: float = 0.1
    """Share of each SAC batch drawn from real transitions (the rest from model rollouts)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1) (the fraction of rollouts dropped), got {self.dropout}.")
        if self.learning_starts < 10:
            raise ValueError(f"learning_starts must be >= 10 (the dynamics model's first fit needs 10 transitions), got {self.learning_starts}.")
        if not 0.0 <= self.real_ratio <= 1.0:
            raise ValueError(f"real_ratio must be in [0, 1], got {self.real_ratio}.")
        if not 1 <= self.elites <= self.ensemble_size:
            raise ValueError(f"elites must be in [1, ensemble_size={self.ensemble_size}], got {self.elites}.")
        for name in ("model_every", "model_max_epochs", "model_patience", "rollout_every", "rollout_batch", "rollout_length", "model_retain"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")


# ----------------------------------------------------------------------------- pure functions


def sample_dropout(returns: torch.Tensor, dropout: float) -> torch.Tensor:
    """Indices of the rollouts kept: the ``R - floor(dropout R)`` lowest of ``returns`` ``(R,)``, in
    ascending order of return (ties: the earlier rollout first). ``dropout = 0`` keeps all."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
    n = returns.shape[0]
    n_keep = n - math.floor(dropout * n + 1e-9)
    return torch.argsort(returns, stable=True)[:n_keep]


@torch.no_grad()
def model_rollout(model: DynamicsEnsemble, policy: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor, length: int,
                  generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Roll ``policy`` through ``model`` from ``start`` ``(R, obs)`` for ``length`` steps, an elite member
    drawn per step and rollout.

    Returns:
        ``obs, next_obs (length, R, obs)``, ``actions (length, R, act)``, ``rewards (length, R)`` and
        ``returns (R,)`` (the sum of the predicted rewards; ``nan`` for a rollout that left the finite numbers).
    """
    obs = start
    steps: dict[str, list[torch.Tensor]] = {"obs": [], "actions": [], "rewards": [], "next_obs": []}
    elites = model.elites.to(start.device)
    for _ in range(length):
        act = policy(obs)
        pick = torch.randint(0, elites.numel(), (obs.shape[0],), generator=generator).to(start.device)  # CPU stream: any device
        next_obs, rew = model.step(obs, act, elites[pick])
        for key, value in (("obs", obs), ("actions", act), ("rewards", rew), ("next_obs", next_obs)):
            steps[key].append(value)
        obs = torch.where(torch.isfinite(next_obs), next_obs, 0.0)  # a diverged row stays finite; it is discarded below
    out = {k: torch.stack(v) for k, v in steps.items()}
    finite = torch.isfinite(out["next_obs"]).all(-1).all(0) & torch.isfinite(out["rewards"]).all(0)
    out["returns"] = torch.where(finite, out["rewards"].sum(0), float("nan"))
    return out


# ----------------------------------------------------------------------------- agent


class RobustMBRL(SAC):
    """SAC trained on kept model rollouts plus real data (see the module docstring); same interface as SAC.

    Args:
        config: hyper-parameters.
        observation_space: single-env Box observation space.
        action_space: single-env bounded Box action space.
        device: where the networks, the model and both replays live.
        seed: seeds the model's random stream (start states, members, hold-out splits).
    """

    algo = "robust-mbrl"

    def __init__(self, config: RobustMBRLConfig, observation_space: gym.Space, action_space: gym.Space,
                 device: str | torch.device = "cpu", seed: int = 0) -> None:
        super().__init__(config, observation_space, action_space, device)
        if len(observation_space.shape) != 1:
            raise ValueError(f"robust-mbrl models flat observations; got the shape {observation_space.shape}.")
        self.model = DynamicsEnsemble(self.obs_dim, self.act_dim, config.ensemble_size, config.elites, config.model_hidden).to(self.device)
        kept = config.rollout_batch - math.floor(config.dropout * config.rollout_batch + 1e-9)  # rollouts kept per round
        capacity = kept * config.rollout_length * config.model_retain
        self.model_buffer = ReplayBuffer(capacity, observation_space.shape, (self.act_dim,), self.device)
        self.sampler = MixedSampler(self.buffer, self.model_buffer, config.real_ratio)
        self.model_gen = torch.Generator()  # CPU: the same draws on every device
        self.model_gen.manual_seed(seed)
        self.model_fits = 0
        self._last_fit = self._last_rollout = -(10**12)
        self._model_stats: dict[str, float] = {}

    # ------------------------------------------------------------------ model
    def fit_model(self) -> dict[str, float]:
        """Refit the ensemble on every real transition; returns the fit's epochs and elite hold-out error."""
        cfg, n = self.config, self.buffer.size
        b = self.buffer
        stats = self.model.fit(b.obs[:n], b.actions[:n], b.next_obs[:n], b.rewards[:n], self.model_gen,
                               max_epochs=cfg.model_max_epochs, patience=cfg.model_patience)
        self.model_fits += 1
        return stats

    def imagine(self) -> dict[str, float]:
        """One round of model rollouts from real states; the kept transitions go to the model replay."""
        cfg = self.config
        idx = torch.randint(0, self.buffer.size, (cfg.rollout_batch,), generator=self.model_gen).to(self.device)
        start = self.buffer.obs[idx]

        def policy(obs: torch.Tensor) -> torch.Tensor:
            return self.actor.dist(obs).sample()

        out = model_rollout(self.model, policy, start, cfg.rollout_length, self.model_gen)
        finite = torch.isfinite(out["returns"]).nonzero().flatten()
        kept = finite[sample_dropout(out["returns"][finite], cfg.dropout)]
        n_steps = cfg.rollout_length * kept.numel()
        if n_steps:
            self.model_buffer.add(
                out["obs"][:, kept].reshape(n_steps, -1), out["actions"][:, kept].reshape(n_steps, -1),
                out["rewards"][:, kept].reshape(n_steps), out["next_obs"][:, kept].reshape(n_steps, -1),
                torch.zeros(n_steps, dtype=torch.bool, device=self.device),
            )
        ret = out["returns"][finite]
        return {
            "train/model/rollouts_kept": float(kept.numel()),
            "train/model/rollouts_diverged": float(cfg.rollout_batch - finite.numel()),
            "train/model/return_mean": float(ret.mean()) if ret.numel() else float("nan"),
            "train/model/return_kept_mean": float(out["returns"][kept].mean()) if kept.numel() else float("nan"),
        }

    # ------------------------------------------------------------------ SAC's hooks
    def before_updates(self) -> None:
        cfg = self.config
        if self.global_step - self._last_fit >= cfg.model_every:
            fit = self.fit_model()
            self._model_stats.update({"train/model/epochs": fit["epochs"], "train/model/holdout_mse": fit["elite_holdout_mse"]})
            self._last_fit = self.global_step
            self._last_rollout = -(10**12)  # a fresh model rolls out at once
        if self.global_step - self._last_rollout >= cfg.rollout_every:
            self._model_stats.update(self.imagine())
            self._last_rollout = self.global_step

    def sample_batch(self, batch_size: int) -> dict[str, torch.Tensor]:
        return self.sampler.sample(batch_size)

    def extra_metrics(self) -> dict[str, float]:
        """The latest fit's and rollout round's figures (each logged once), the fits so far and the model replay's size."""
        stats, self._model_stats = self._model_stats, {}
        return {**stats, "train/model/fits": float(self.model_fits), "train/model/replay": float(self.model_buffer.size)}

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["weights"]["model"] = self.model.state_dict()
        state["counters"].update(model_fits=self.model_fits, last_fit=self._last_fit, last_rollout=self._last_rollout)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.model.load_state_dict(state["weights"]["model"])
        counters = state.get("counters", {})
        self.model_fits = int(counters.get("model_fits", 0))
        self._last_fit = int(counters.get("last_fit", -(10**12)))
        self._last_rollout = int(counters.get("last_rollout", -(10**12)))

    def training_state(self, env: TorchVecEnv) -> dict[str, Any]:
        """SAC's, plus the model replay and the model's random stream."""
        return {**super().training_state(env), "model_replay": self.model_buffer.state_dict(), "model_gen": self.model_gen.get_state()}

    def load_training_state(self, state: dict[str, Any], env: TorchVecEnv) -> None:
        super().load_training_state(state, env)
        self.model_buffer.load_state_dict(state["model_replay"])
        self.model_gen.set_state(state["model_gen"].cpu())


def _build(config: RobustMBRLConfig, observation_space: gym.Space, action_space: gym.Space, device: torch.device, seed: int) -> RobustMBRL:
    return RobustMBRL(config, observation_space, action_space, device, seed)


AGENTS.register(
    "robust-mbrl",
    AgentSpec(
        name="robust-mbrl",
        config_cls=RobustMBRLConfig,
        agent_cls=RobustMBRL,
        summary="Robust model-based RL: MBPO-style SAC on model rollouts with sample dropout (greenhouse control)",
        default_env=GREENHOUSE,
        build=_build,
        presets={GREENHOUSE: dict(reward_scale=1000.0, learning_starts=1000, gradient_steps=5)},
    ),
)
