"""Greedy and random order dispatch through the agent protocol, and the dispatch env contract the dispatch agents share.

The baselines of OSPO (:mod:`rlsuite.agents.ospo`) as agents, so that ``rlsuite train``, ``eval``, ``--resume`` and
the run directory's curves treat them like the learners: ``greedy-dispatch`` (nearest-vehicle dispatch) and
``random-dispatch`` (a random maximal matching). Nothing is learned: :meth:`DispatchBaseline.learn` runs the policy
for the requested env steps in whole batches of ``num_envs`` episodes of the env's ``horizon`` minutes (rounded up,
as the learners do) and logs the same ``rollout/*`` figures (``ep_return``, ``served``, ``pickup_min``, ...).

Both score every (vehicle, candidate) pair from its 28 features alone; the env matches the scores (masked pairs
are ignored there). An agent imports no env module, so the scores are written here from the env's documented
observation (candidate features 23:28, the 5th the pickup ETA / 60, 0 for an empty slot):

- greedy: ``1 + (max_pickup_minutes - ETA) / 60`` where ETA > 0, else 0, the formula of
  ``rlsuite.envs.dispatch.policies.greedy_policy``: every candidate scores > 0, so the matching takes as many
  pairs as it can and among those minimises the total pickup time. Exportable (a module without weights).
- random: scores uniform in ``(0, 1]`` in effect, a pseudo-random hash of each pair's features: the fractional
  part of ``43758.5453 sin(obs . w)`` (float64), ``w`` (28,) drawn once from a torch generator seeded with the
  run's seed and saved with the run. It is independent of the pickup ETA and new every minute (the minute is a
  feature), and, unlike draws from a generator that every call advances, a function of the observation: a loaded
  run acts exactly as the trained one and ``rlsuite eval`` gives the same figures every time. Pairs with identical
  features (two empty vehicles idle in one zone) tie; such vehicles are interchangeable, so the fleet's outcome
  is that of random scores (tests/agents/test_dispatch.py: the same return as ``random_policy`` on the same
  episodes). Not exportable (a baseline, not a policy to deploy).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import gymnasium as gym
import torch
from torch import nn

from rlsuite.agents.registry import AGENTS, AgentSpec
from rlsuite.core.checkpoint import optional_tensor, restore_optional
from rlsuite.core.horizon import check_whole_episodes, env_horizon, log_horizon_note
from rlsuite.core.seeding import resolve_device
from rlsuite.core.vec_env import TorchVecEnv

log = logging.getLogger("rlsuite")

NUM_FEATURES = 28
"""Features per (vehicle, candidate) pair (the env contract)."""
VEHICLE_FEATURES = slice(0, 8)
ONBOARD_FEATURES = slice(8, 23)
CANDIDATE_FEATURES = slice(23, 28)
STATE_FEATURES = slice(0, 23)
"""Vehicle + onboard features (repeated in every candidate row of a vehicle)."""
PICKUP_ETA = CANDIDATE_FEATURES.start + 4
"""The candidate's pickup ETA in hours (minutes / 60); 0 for an empty candidate slot."""
ENV_HINT = "rlsuite/Dispatch-Manhattan-v0 and its batched env"
"""The env the dispatch agents train on, for error messages."""


def check_dispatch_spaces(observation_space: gym.Space, action_space: gym.Space, algo: str) -> None:
    """Raise ``ValueError`` unless the spaces are the dispatch env's: Box ``(V, K, 28)`` pair features, Box ``(V, K)`` scores."""
    shape = getattr(observation_space, "shape", None)
    if not isinstance(observation_space, gym.spaces.Box) or shape is None or len(shape) != 3 or shape[-1] != NUM_FEATURES:
        raise ValueError(f"{algo} needs the dispatch env's Box observation (V, K, {NUM_FEATURES}) "
                         f"of pair features (rlsuite/Dispatch-Manhattan-v0), got {observation_space}.")
    if not isinstance(action_space, gym.spaces.Box) or tuple(action_space.shape) != tuple(shape[:-1]):
        raise ValueError(f"the dispatch action is a Box of scores {tuple(shape[:-1])} (vehicles x candidates), got {action_space}.")


def plan_batches(env: TorchVecEnv, num_envs: int, algo: str, total_steps: int, global_step: int) -> tuple[int, int]:
    """``(T, batch_steps)`` of training on ``env`` in whole batches of ``num_envs`` episodes of ``T`` minutes; logs
    how the budget is rounded when ``total_steps - global_step`` is not a whole number of batches."""
    T = dispatch_horizon(env, num_envs, algo)
    note = log_horizon_note(total_steps, global_step, T * num_envs, f"{num_envs} episodes x {T} minutes")
    if note:
        log.info(note)
    return T, T * num_envs


def dispatch_horizon(env: TorchVecEnv, num_envs: int, algo: str) -> int:
    """The env's fixed episode length, after checking that it runs ``num_envs`` (the config's) parallel episodes."""
    if env.num_envs != num_envs:
        raise ValueError(f"the env has {env.num_envs} parallel envs but config.num_envs={num_envs}; make them "
                         f"equal (--num-envs {env.num_envs}, or build the env with {num_envs}).")
    return env_horizon(env, algo, ENV_HINT)


def episode_metrics(info: dict[str, Any], num_envs: int) -> dict[str, float]:
    """``rollout/ep_return``, ``rollout/episodes`` and ``rollout/<name>`` for each of the env's ``episode_<name>``
    figures, averaged over the ``num_envs`` episodes that ended at the step of ``info``."""
    return {"rollout/ep_return": float(info["episode_return"].float().mean()), "rollout/episodes": float(num_envs),
            **{f"rollout/{k[len('episode_'):]}": float(v.float().mean()) for k, v in info.items()
               if k.startswith("episode_") and k not in ("episode_return", "episode_length") and isinstance(v, torch.Tensor)}}


@dataclasses.dataclass(frozen=True)
class GreedyDispatchConfig:
    """Greedy nearest-vehicle dispatch (nothing is learned)."""

    num_envs: int = 1
    """Parallel episodes per logged batch."""
    max_pickup_minutes: float = 20.0
    """Scores are 1 + (max_pickup_minutes - ETA) / 60: > 0 for every candidate the env offers."""

    def __post_init__(self) -> None:
        if self.num_envs < 1 or not self.max_pickup_minutes > 0:
            raise ValueError(f"num_envs >= 1 and max_pickup_minutes > 0 are required; got {self.num_envs}, {self.max_pickup_minutes}.")


@dataclasses.dataclass(frozen=True)
class RandomDispatchConfig:
    """Random dispatch (nothing is learned; the scores' projection is drawn from the run's seed)."""

    num_envs: int = 1
    """Parallel episodes per logged batch."""

    def __post_init__(self) -> None:
        if self.num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {self.num_envs}.")


class GreedyScorer(nn.Module):
    """``pair features (*, 28) -> greedy score (*)``: ``1 + (max_pickup_minutes - ETA) / 60`` where ETA > 0, else 0."""

    def __init__(self, max_pickup_minutes: float) -> None:
        super().__init__()
        self.max_pickup_minutes = float(max_pickup_minutes)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        eta_hours = obs[..., PICKUP_ETA]
        return torch.where(eta_hours > 0, 1.0 + (self.max_pickup_minutes - 60.0 * eta_hours) / 60.0, 0.0).to(torch.float32)


class DispatchBaseline:
    """A fixed dispatch policy through the agent protocol (module docstring); subclasses define :meth:`scores`.

    Args:
        config: :class:`GreedyDispatchConfig` or :class:`RandomDispatchConfig`.
        observation_space: single-env Box ``(V, K, 28)``.
        action_space: single-env Box ``(V, K)`` of scores.
        device: where the scores are computed.
    """

    algo = "dispatch-baseline"

    def __init__(self, config: Any, observation_space: gym.Space, action_space: gym.Space, device: str | torch.device = "cpu") -> None:
        check_dispatch_spaces(observation_space, action_space, self.algo)
        self.config, self.observation_space, self.action_space = config, observation_space, action_space
        self.device = resolve_device(device)
        self.obs_dim = NUM_FEATURES  # acts on pair features (*, 28)
        self.global_step = 0
        self._obs: torch.Tensor | None = None

    def scores(self, obs: torch.Tensor) -> torch.Tensor:
        """``(*, 28)`` float32 pair features on :attr:`device` -> ``(*)`` scores."""
        raise NotImplementedError

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Scores ``(*)`` for pair features ``(*, 28)`` (``(N, V, K, 28)`` gives ``(N, V, K)``); the same either way."""
        return self.scores(obs.to(self.device, torch.float32))

    def check_env(self, env: TorchVecEnv) -> None:
        """Raise ``ValueError`` unless ``env`` has a fixed episode length and ``config.num_envs`` parallel envs."""
        dispatch_horizon(env, self.config.num_envs, self.algo)

    def learn(self, env: TorchVecEnv, total_steps: int, run: Any = None, seed: int = 0) -> DispatchBaseline:
        """Run the policy until ``global_step >= total_steps``, whole batches of episodes; log each batch's figures."""
        T, batch_steps = plan_batches(env, self.config.num_envs, self.algo, total_steps, self.global_step)
        if self._obs is None:
            self._obs = env.reset(seed=seed)[0].to(self.device, torch.float32)
        while self.global_step < total_steps:
            t0, ended = time.perf_counter(), []
            for _ in range(T):
                obs, _, _, _, info = env.step(self.act(self._obs))
                self._obs = obs.to(self.device, torch.float32)
                ended.append(info["_final_obs"])
            check_whole_episodes(torch.stack(ended), env, self.algo)
            self.global_step += batch_steps
            if run is not None:
                run.logger.log(self.global_step, {**episode_metrics(info, self.config.num_envs),
                                                  "time/sps": batch_steps / (time.perf_counter() - t0)})
                run.step_done(self, env)
        return self

    def state_dict(self) -> dict[str, Any]:
        """``weights`` (none) and ``counters`` (the env steps run)."""
        return {"weights": {}, "counters": {"global_step": self.global_step}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` wrote."""
        self.global_step = int(state.get("counters", {}).get("global_step", 0))

    def training_state(self, env: TorchVecEnv) -> dict[str, Any]:
        """The env's state and its current observation (for exact resume)."""
        return {"obs": optional_tensor(self._obs), "env": env.state_dict()}

    def load_training_state(self, state: dict[str, Any], env: TorchVecEnv) -> None:
        """Restore :meth:`training_state` into the agent and ``env``."""
        env.load_state_dict(state["env"])
        self._obs = restore_optional(state["obs"], self.device)


class GreedyDispatch(DispatchBaseline):
    """Nearest-vehicle dispatch (:class:`GreedyScorer`)."""

    algo = "greedy-dispatch"

    def __init__(self, config: GreedyDispatchConfig, observation_space: gym.Space, action_space: gym.Space,
                 device: str | torch.device = "cpu") -> None:
        super().__init__(config, observation_space, action_space, device)
        self.scorer = GreedyScorer(config.max_pickup_minutes)

    def scores(self, obs: torch.Tensor) -> torch.Tensor:
        return self.scorer(obs)

    def deploy_module(self) -> nn.Module:
        """``pair features (B, 28) -> score (B,)`` for export (score each pair, then match them as the env does)."""
        return self.scorer.eval()


class RandomDispatch(DispatchBaseline):
    """Random dispatch: ``frac(43758.5453 sin(obs . w))``, ``w`` (28,) float64 drawn from ``seed`` (module docstring)."""

    algo = "random-dispatch"
    export_unavailable = ("random-dispatch is a baseline that scores pairs at random, not a policy to deploy, so it has no "
                          "export module; evaluate it with: rlsuite eval RUN")

    def __init__(self, config: RandomDispatchConfig, observation_space: gym.Space, action_space: gym.Space,
                 device: str | torch.device = "cpu", seed: int = 0) -> None:
        super().__init__(config, observation_space, action_space, device)
        gen = torch.Generator().manual_seed(int(seed))
        self.projection = (1000.0 * torch.rand(NUM_FEATURES, generator=gen, dtype=torch.float64)).to(self.device)

    def scores(self, obs: torch.Tensor) -> torch.Tensor:
        u = torch.remainder(torch.sin(obs.to(torch.float64) @ self.projection) * 43758.5453, 1.0).to(torch.float32)
        return u.clamp_min(torch.finfo(torch.float32).tiny)  # (0, 1]: a zero score would mean "no order"

    def state_dict(self) -> dict[str, Any]:
        """``weights`` (the projection) and ``counters``."""
        return {**super().state_dict(), "weights": {"projection": self.projection}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` wrote."""
        super().load_state_dict(state)
        self.projection = state["weights"]["projection"].to(self.device, torch.float64)


def _build_random(cfg: RandomDispatchConfig, obs_space: gym.Space, act_space: gym.Space, device: torch.device,
                  seed: int) -> RandomDispatch:
    return RandomDispatch(cfg, obs_space, act_space, device, seed)


AGENTS.register("greedy-dispatch", AgentSpec(
    name="greedy-dispatch", config_cls=GreedyDispatchConfig, agent_cls=GreedyDispatch, default_env="rlsuite/Dispatch-Manhattan-v0",
    summary="greedy nearest-vehicle dispatch (no learning): OSPO's baseline through the agent protocol",
))
AGENTS.register("random-dispatch", AgentSpec(
    name="random-dispatch", config_cls=RandomDispatchConfig, agent_cls=RandomDispatch, build=_build_random,
    default_env="rlsuite/Dispatch-Manhattan-v0",
    summary="random dispatch (no learning): uniform pseudo-random pair scores, OSPO's lower baseline",
))
