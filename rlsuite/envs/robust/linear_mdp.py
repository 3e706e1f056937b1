"""A simulated d-rectangular linear MDP (5 states, d = 4) whose risky transition a magnitude q perturbs.

``gymnasium.make("rlsuite/LinearMDP-v0")`` (single env) and ``make_vec_env("rlsuite/LinearMDP-v0", N,
device=...)`` (:class:`LinearMDPVecEnv`, batched in torch). The robust linear agents (DR-RPO, LSVI-UCB,
DR-LSVI-UCB) train on it; ``rlsuite eval RUN --robust --set linear-mdp-q`` sweeps ``q``.

This is our construction in the style of the simulated linear MDPs of the online DRMDP papers (a
start state, a fail state and a goal state, features in the simplex of R^4, a perturbation of the
transition toward the rewarding states at test time); it is not the papers' instance. It is built so that
the nominal optimum and the robust optimum differ: a sure, smaller reward against a larger one behind a
transition that the perturbation moves toward the fail state.

## Model
States ``x1`` (0, start), ``x2`` (1, safe), ``x3`` (2, near the goal), ``x4`` (3, fail), ``x5`` (4, goal).
Factors (``d = 4``): ``P(.|s, a) = sum_i phi_i(s, a) mu_i``, ``r(s, a) = phi(s, a)^T theta``:

| i | factor | mu_i (next state) | theta_i |
|---|---|---|---|
| 0 | safe | ``x2`` | ``safe_reward`` (0.33) |
| 1 | risky | ``x3`` w.p. ``p_success`` (0.5), else ``x4`` | 0 |
| 2 | fail | ``x4`` | 0 |
| 3 | goal | ``x5`` | 1 |

Features: in ``x1`` action ``a`` of ``A = n_actions`` takes the risk ``w = a / (A - 1)``,
``phi(x1, a) = (1 - w) e_safe + w e_risky``; in ``x2`` every action has ``e_safe``, in ``x3`` and ``x5``
``e_goal``, in ``x4`` ``e_fail``. So ``x2`` pays ``safe_reward`` per step, ``x3`` and ``x5`` pay 1, ``x4`` 0.
With the defaults (``H = 6``): all-safe returns ``6 x 0.33 = 1.98``, all-risky ``5 x 0.5 = 2.5`` (the nominal
optimum); under a TV uncertainty of radius ``rho >= 0.13`` per factor the robust optimum is all-safe
(``rlsuite.core.linear_rl.robust_dp``).

## Perturbation
``q`` (nominal 0) moves probability mass of the risky factor from ``x3`` to the fail state ``x4``:
``mu_risky^q = max(p - q, 0) x3 + (1 - max(p - q, 0)) x4``, a TV distance of ``min(q, p)`` from the nominal
factor; the other factors are unchanged. Set per episode with ``reset(options={"perturbation": {"q": 0.3}})``
or for every episode with ``perturbation={"q": 0.3}``; ``q`` in ``[0, 1]``. Uncertainty set ``linear-mdp-q``:
``q`` in ``[0, 0.5]`` (all-risky returns ``5 (0.5 - q)``, all-safe ``1.98`` whatever ``q``).

## Action Space
``Discrete(n_actions)`` (default 4): the risk taken in ``x1``; the same in every other state.

## Observation Space
The linear-feature observation of :mod:`rlsuite.core.linear_rl`: ``phi(s, a)`` and ``r(s, a)`` of every action,
then the step index ``h``: ``Box(0, 1, (5 n_actions + 1,))`` with the last entry in ``[0, H - 1]``.

## Rewards
``phi(s, a)^T theta`` in ``[0, 1]`` (deterministic).

## Starting State
``x1``.

## Episode End
Never terminates; truncated after ``horizon`` steps (every env of a batch in lockstep).

## Arguments
``num_envs``, ``device``, ``horizon`` (6), ``p_success`` (0.5), ``safe_reward`` (0.33), ``n_actions`` (4),
``perturbation`` (``{"q": value}``, a number or one per env). ``info``: ``state`` (the state index) and
``perturbation`` (``{"q": (N,)}``).

## Version History
* v0: initial version.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlsuite.core.linear_rl import feature_observation, feature_observation_space
from rlsuite.core.seeding import resolve_device
from rlsuite.core.vec_env import TorchVecEnv
from rlsuite.envs.robust.feature_env import EpisodeParameters, FeatureEnvView

N_STATES, DIM = 5, 4
START, SAFE, NEAR, FAIL, GOAL = range(N_STATES)
F_SAFE, F_RISKY, F_FAIL, F_GOAL = range(DIM)
STATE_NAMES = ("x1 start", "x2 safe", "x3 near goal", "x4 fail", "x5 goal")


def _check(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"perturbation parameter {name!r} of rlsuite/LinearMDP-v0 is a probability mass: got {value}, allowed: 0 to 1.")


class LinearMDPVecEnv(TorchVecEnv):
    """``num_envs`` copies of the linear MDP on ``device`` (see the module docstring)."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, device: torch.device | str = "cpu", horizon: int = 6, p_success: float = 0.5,
                 safe_reward: float = 0.33, n_actions: int = 4, perturbation: dict[str, Any] | None = None) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
        if horizon < 1 or n_actions < 2:
            raise ValueError(f"need horizon >= 1 and n_actions >= 2, got horizon={horizon}, n_actions={n_actions}.")
        if not (0.0 <= p_success <= 1.0 and 0.0 <= safe_reward <= 1.0):
            raise ValueError(f"p_success and safe_reward must lie in [0, 1], got {p_success}, {safe_reward}.")
        self.num_envs, self.device = num_envs, resolve_device(device)
        self.horizon, self.p_success, self.safe_reward, self.n_actions = int(horizon), float(p_success), float(safe_reward), int(n_actions)
        #: the parameter the robust-evaluation harness sweeps, with its nominal value
        self.perturbation_parameters = {"q": 0.0}
        self.params = EpisodeParameters(self.perturbation_parameters, _check, num_envs, self.device, torch.float64,
                                        perturbation, "rlsuite/LinearMDP-v0")
        self.phi = self.features()  # (S, A, d)
        self.theta = torch.tensor([self.safe_reward, 0.0, 0.0, 1.0], dtype=torch.float64, device=self.device)
        self.single_observation_space = feature_observation_space(self.n_actions, DIM, self.horizon)
        self.single_action_space = gym.spaces.Discrete(self.n_actions)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(int(np.random.SeedSequence().generate_state(1)[0]))  # reset(seed=...) seeds it
        self.state = torch.full((num_envs,), START, dtype=torch.int64, device=self.device)
        self.t = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self._init_episode_stats()

    # ------------------------------------------------------------------ the model
    def features(self) -> torch.Tensor:
        """``(S, A, d)`` float64: ``phi(s, a)``, every row in the simplex."""
        A = self.n_actions
        phi = torch.zeros(N_STATES, A, DIM, dtype=torch.float64, device=self.device)
        w = torch.arange(A, dtype=torch.float64, device=self.device) / (A - 1)
        phi[START, :, F_SAFE], phi[START, :, F_RISKY] = 1.0 - w, w
        phi[SAFE, :, F_SAFE] = 1.0
        phi[NEAR, :, F_GOAL] = 1.0
        phi[FAIL, :, F_FAIL] = 1.0
        phi[GOAL, :, F_GOAL] = 1.0
        return phi

    def factors(self, q: float | torch.Tensor = 0.0) -> torch.Tensor:
        """``(d, S)`` (``q`` a number) or ``(N, d, S)`` (``q`` ``(N,)``): the factor distributions ``mu_i`` under ``q``."""
        q = torch.as_tensor(q, dtype=torch.float64, device=self.device)
        success = (self.p_success - q).clamp_min(0.0)
        mu = torch.zeros(*q.shape, DIM, N_STATES, dtype=torch.float64, device=self.device)
        mu[..., F_SAFE, SAFE] = 1.0
        mu[..., F_RISKY, NEAR] = success
        mu[..., F_RISKY, FAIL] = 1.0 - success
        mu[..., F_FAIL, FAIL] = 1.0
        mu[..., F_GOAL, GOAL] = 1.0
        return mu

    def kernel(self, q: float = 0.0) -> torch.Tensor:
        """``(S, A, S)``: ``P_q(s' | s, a) = sum_i phi_i(s, a) mu_i^q(s')``."""
        return self.phi @ self.factors(q)

    def rewards(self) -> torch.Tensor:
        """``(S, A)``: ``r(s, a) = phi(s, a)^T theta``."""
        return self.phi @ self.theta

    # ------------------------------------------------------------------ the env
    def _obs(self) -> torch.Tensor:
        phi = self.phi[self.state]
        return feature_observation(phi, phi @ self.theta, self.t)

    def _info(self) -> dict[str, Any]:
        return {"state": self.state.clone(), "perturbation": self.params.echo()}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict]:
        """Start every env in ``x1``; ``options={"perturbation": {"q": value}}`` sets ``q`` for these episodes."""
        if seed is not None:
            self._gen.manual_seed(int(seed))
        self.params.reset((options or {}).get("perturbation"))
        self.state.fill_(START)
        self.t.zero_()
        self._init_episode_stats()
        return self._obs(), self._info()

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        a = torch.as_tensor(action, device=self.device).reshape(self.num_envs).to(torch.int64).clamp(0, self.n_actions - 1)
        phi = self.phi[self.state, a]  # (N, d)
        reward = (phi @ self.theta).to(torch.float32)
        probs = torch.einsum("nd,nds->ns", phi, self.factors(self.params.values["q"]))  # (N, S)
        u = torch.rand(self.num_envs, generator=self._gen, device=self.device, dtype=torch.float64)
        nxt = (probs.cumsum(-1) < u[:, None]).sum(-1).clamp_max(N_STATES - 1)
        self.state = nxt
        self.t = self.t + 1
        truncated = self.t >= self.horizon
        terminated = torch.zeros_like(truncated)
        info = self._info()
        info["final_obs"] = self._obs()
        info["_final_obs"] = truncated
        self.state = torch.where(truncated, torch.full_like(self.state, START), self.state)
        self.t = torch.where(truncated, torch.zeros_like(self.t), self.t)
        self.params.autoreset(truncated)
        self._track_episodes(reward, truncated, info)
        return self._obs(), reward, terminated, truncated, info

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.state.clone(), "t": self.t.clone(), "generator": self._gen.get_state(), "params": self.params.state_dict(),
                **self._episode_stats_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = state["state"].to(self.device).clone()
        self.t = state["t"].to(self.device).clone()
        self._gen.set_state(state["generator"].cpu().to(torch.uint8))
        self.params.load_state_dict(state["params"])
        self._load_episode_stats_state(state)


class LinearMDPEnv(FeatureEnvView):
    """Single-env Gymnasium view of :class:`LinearMDPVecEnv` (same keyword arguments, without ``num_envs``/``device``)."""

    vec_cls = LinearMDPVecEnv
