"""An American put option on a binomial price, with normalised RBF features of the price.

``gymnasium.make("rlsuite/PutOption-v0")`` (single env) and ``make_vec_env("rlsuite/PutOption-v0", N,
device=...)`` (:class:`PutOptionVecEnv`, batched in torch). The holder of the option decides at each step
whether to exercise it (receive ``max(0, K - x)``) or to hold; the price moves up by ``up`` with probability
``p`` and down by ``down`` otherwise. The robust-RL literature uses this optimal-stopping problem as its
large-state domain (Tamar, Mannor and Xu, "Scaling up robust MDPs using function approximation", 2014,
and the linear-function-approximation DRMDP papers after it); the constants below are ours.

With ``p = 0.5`` (the default) the price is a martingale (``0.5 x 1.02 + 0.5 x 0.98 = 1``) and, without
discounting, holding to the last step is optimal; when the price drifts up (``p > 0.5``) the put loses
value by waiting, and exercising early pays. A policy trained at ``p = 0.5`` under a TV uncertainty set
learns to exercise early; one trained without it holds and loses when ``p`` grows.

## Action Space
``Discrete(2)``: 0 hold, 1 exercise (after exercising, every action does nothing).

## Observation Space
The linear-feature observation of :mod:`rlsuite.core.linear_rl`: ``phi(s, hold)``, ``r(s, hold) = 0``,
``phi(s, exercise)``, ``r(s, exercise)`` (the payoff, 0 once exercised), then the step index ``h``:
``Box(0, ., (2 d + 3,))``, ``d = 2 n_centers + 1`` (rewards bounded by ``strike / payoff_scale``). With ``psi(x)`` the ``n_centers``
Gaussian radial basis functions of the price (centres evenly spaced over ``[price_low, price_high]``, width
the spacing) divided by their sum (so ``psi`` lies in the simplex):

| action | phi(s, a) before exercising | after exercising |
|---|---|---|
| hold | ``(psi(x), 0, 0)`` | ``(0, 0, 1)`` |
| exercise | ``(0, psi(x), 0)`` | ``(0, 0, 1)`` |

The step index makes the features of time unnecessary: the linear agents fit one model per step.

## Rewards
Exercising at price ``x`` pays ``max(0, strike - x) / payoff_scale`` (default ``(100 - x) / 20``: the
payoff in units of 20); everything else pays 0.

## Starting State
``x ~ U(start_low, start_high)`` (90 to 110), not exercised.

## Episode End
Never terminates; truncated after ``horizon`` steps (20), every env of a batch in lockstep. An option not
exercised by then expires worthless.

## Perturbation
``p`` (nominal ``p_up`` = 0.5), the probability of an up move, per episode through
``reset(options={"perturbation": {"p": 0.7}})`` or for every episode with ``perturbation={"p": 0.7}``; in
``[0, 1]``. Uncertainty set ``put-option-p``: ``p`` in ``[0.3, 0.7]``.

## Arguments
``num_envs``, ``device``, ``horizon`` (20), ``strike`` (100), ``up`` (1.02), ``down`` (0.98), ``p_up`` (0.5),
``start_low``, ``start_high`` (90, 110), ``n_centers`` (10), ``price_low``, ``price_high`` (60, 140),
``payoff_scale`` (20), ``perturbation``. ``info``: ``price``, ``exercised`` and ``perturbation``.

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

HOLD, EXERCISE = 0, 1


def _check(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"perturbation parameter {name!r} of rlsuite/PutOption-v0 is a probability: got {value}, allowed: 0 to 1.")


def rbf_features(price: torch.Tensor, centers: torch.Tensor, width: float) -> torch.Tensor:
    """Normalised Gaussian RBFs: ``price`` ``(N,)`` -> ``(N, m)`` in the simplex (each row sums to 1)."""
    logits = -0.5 * ((price[:, None] - centers[None, :]) / width) ** 2
    return torch.softmax(logits, dim=-1)  # exp(.) / sum exp(.): the normalisation, computed stably


class PutOptionVecEnv(TorchVecEnv):
    """``num_envs`` American put options on ``device`` (see the module docstring)."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, device: torch.device | str = "cpu", horizon: int = 20, strike: float = 100.0,
                 up: float = 1.02, down: float = 0.98, p_up: float = 0.5, start_low: float = 90.0, start_high: float = 110.0,
                 n_centers: int = 10, price_low: float = 60.0, price_high: float = 140.0, payoff_scale: float = 20.0,
                 perturbation: dict[str, Any] | None = None) -> None:
        if num_envs < 1 or horizon < 1 or n_centers < 2:
            raise ValueError(f"need num_envs >= 1, horizon >= 1 and n_centers >= 2; got {num_envs}, {horizon}, {n_centers}.")
        if not (0 < down < up and strike > 0 and payoff_scale > 0 and 0 < start_low <= start_high and price_low < price_high):
            raise ValueError(f"need 0 < down < up, strike > 0, payoff_scale > 0, 0 < start_low <= start_high and price_low < "
                             f"price_high; got down={down}, up={up}, strike={strike}, payoff_scale={payoff_scale}, "
                             f"start {start_low}..{start_high}, centres {price_low}..{price_high}.")
        _check("p_up", p_up)
        self.num_envs, self.device = num_envs, resolve_device(device)
        self.horizon, self.strike, self.up, self.down = int(horizon), float(strike), float(up), float(down)
        self.start_low, self.start_high, self.payoff_scale = float(start_low), float(start_high), float(payoff_scale)
        self.m = int(n_centers)
        self.dim = 2 * self.m + 1
        self.centers = torch.linspace(price_low, price_high, self.m, dtype=torch.float64, device=self.device)
        self.width = (price_high - price_low) / (self.m - 1)
        #: the parameter the robust-evaluation harness sweeps, with its nominal value
        self.perturbation_parameters = {"p": float(p_up)}
        self.params = EpisodeParameters(self.perturbation_parameters, _check, num_envs, self.device, torch.float64,
                                        perturbation, "rlsuite/PutOption-v0")
        self.single_observation_space = feature_observation_space(2, self.dim, self.horizon, reward_high=self.strike / self.payoff_scale)
        self.single_action_space = gym.spaces.Discrete(2)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(int(np.random.SeedSequence().generate_state(1)[0]))  # reset(seed=...) seeds it
        self.price = torch.full((num_envs,), self.strike, dtype=torch.float64, device=self.device)
        self.exercised = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
        self.t = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self._init_episode_stats()

    # ------------------------------------------------------------------ the model
    def features(self, price: torch.Tensor, exercised: torch.Tensor) -> torch.Tensor:
        """``(N, 2, d)`` float64: ``phi(s, hold)`` and ``phi(s, exercise)`` for prices ``(N,)`` and flags ``(N,)``."""
        psi = rbf_features(price.to(torch.float64), self.centers, self.width)
        n = price.shape[0]
        phi = torch.zeros(n, 2, self.dim, dtype=torch.float64, device=price.device)
        phi[:, HOLD, : self.m] = psi
        phi[:, EXERCISE, self.m : 2 * self.m] = psi
        done = exercised.to(torch.bool)
        phi[done] = 0.0
        phi[done, :, -1] = 1.0
        return phi

    def payoff(self, price: torch.Tensor) -> torch.Tensor:
        """The reward of exercising at ``price``: ``max(0, strike - price) / payoff_scale``."""
        return (self.strike - price).clamp_min(0.0) / self.payoff_scale

    def lattice_value(self, x0: float, p: float, policy: Any = None) -> float:
        """The exact value of the option from price ``x0`` at step 0 (binomial lattice backward induction).

        ``policy(h, prices (h + 1,), exercise (h + 1,), hold (h + 1,)) -> (h + 1,) bool`` (exercise) evaluates a
        rule; ``None`` takes the optimal one. Returns the expected return in reward units."""
        hold = np.zeros(self.horizon + 1)
        for h in reversed(range(self.horizon)):
            j = np.arange(h + 1)
            prices = x0 * self.up ** j * self.down ** (h - j)
            ex = np.maximum(0.0, self.strike - prices) / self.payoff_scale
            cont = p * hold[1 : h + 2] + (1 - p) * hold[: h + 1]
            take = ex > cont if policy is None else np.asarray(policy(h, prices, ex, cont), dtype=bool)
            hold = np.where(take, ex, cont)
        return float(hold[0])

    # ------------------------------------------------------------------ the env
    def action_rewards(self, price: torch.Tensor, exercised: torch.Tensor) -> torch.Tensor:
        """``(N, 2)``: the reward of holding (0) and of exercising (the payoff; 0 once exercised)."""
        pay = torch.where(exercised.to(torch.bool), torch.zeros_like(price), self.payoff(price))
        return torch.stack([torch.zeros_like(pay), pay], dim=-1)

    def _obs(self) -> torch.Tensor:
        return feature_observation(self.features(self.price, self.exercised), self.action_rewards(self.price, self.exercised), self.t)

    def _info(self) -> dict[str, Any]:
        return {"price": self.price.clone(), "exercised": self.exercised.clone(), "perturbation": self.params.echo()}

    def _start_prices(self) -> torch.Tensor:
        u = torch.rand(self.num_envs, generator=self._gen, device=self.device, dtype=torch.float64)
        return self.start_low + (self.start_high - self.start_low) * u

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict]:
        """Fresh options at prices drawn from ``[start_low, start_high]``; ``options={"perturbation": {"p": v}}``
        sets the up-move probability for these episodes."""
        if seed is not None:
            self._gen.manual_seed(int(seed))
        self.params.reset((options or {}).get("perturbation"))
        self.price = self._start_prices()
        self.exercised.zero_()
        self.t.zero_()
        self._init_episode_stats()
        return self._obs(), self._info()

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        a = torch.as_tensor(action, device=self.device).reshape(self.num_envs).to(torch.int64)
        exercise = (a == EXERCISE) & ~self.exercised
        reward = torch.where(exercise, self.payoff(self.price), torch.zeros_like(self.price)).to(torch.float32)
        u = torch.rand(self.num_envs, generator=self._gen, device=self.device, dtype=torch.float64)
        move = torch.where(u < self.params.values["p"], self.up, self.down)
        self.exercised = self.exercised | exercise
        self.price = torch.where(self.exercised, self.price, self.price * move)
        self.t = self.t + 1
        truncated = self.t >= self.horizon
        terminated = torch.zeros_like(truncated)
        info = self._info()
        info["final_obs"] = self._obs()
        info["_final_obs"] = truncated
        starts = self._start_prices()  # drawn for every env, kept where an episode ended (no host sync)
        self.price = torch.where(truncated, starts, self.price)
        self.exercised = self.exercised & ~truncated
        self.t = torch.where(truncated, torch.zeros_like(self.t), self.t)
        self.params.autoreset(truncated)
        self._track_episodes(reward, truncated, info)
        return self._obs(), reward, terminated, truncated, info

    def state_dict(self) -> dict[str, Any]:
        return {"price": self.price.clone(), "exercised": self.exercised.clone(), "t": self.t.clone(),
                "generator": self._gen.get_state(), "params": self.params.state_dict(), **self._episode_stats_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.price = state["price"].to(self.device, torch.float64).clone()
        self.exercised = state["exercised"].to(self.device, torch.bool).clone()
        self.t = state["t"].to(self.device).clone()
        self._gen.set_state(state["generator"].cpu().to(torch.uint8))
        self.params.load_state_dict(state["params"])
        self._load_episode_stats_state(state)


class PutOptionEnv(FeatureEnvView):
    """Single-env Gymnasium view of :class:`PutOptionVecEnv` (same keyword arguments, without ``num_envs``/``device``)."""

    vec_cls = PutOptionVecEnv


__all__ = ["EXERCISE", "HOLD", "PutOptionEnv", "PutOptionVecEnv", "rbf_features"]
