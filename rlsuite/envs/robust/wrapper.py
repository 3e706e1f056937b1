"""Perturbed environments: any Gymnasium env with its physics set per episode, plus action and
observation noise and action delay.

``PerturbedEnv(env, perturbation=..., domain_rand=..., action_noise=..., obs_noise=..., action_delay=...)``
(``gymnasium.make("rlsuite/Perturbed-v0", env="Hopper-v5", ...)``) holds the env and, at every reset,
sets its parameters:

1. ``reset(options={"perturbation": {"torso_mass": 5.0, ...}})`` sets those for this episode;
2. otherwise, with ``domain_rand=SET``, a point drawn uniformly from the uncertainty set;
3. otherwise nothing: the nominal parameters, restored from the copy taken at construction.

The constructor's ``perturbation`` (and ``action_noise``, ``obs_noise``, ``action_delay``) sit under all
three: they are the env's own defaults, which a reset's values add to. The parameters of the episode
(those given, with their values) are echoed as ``info["perturbation"]`` by ``reset`` and ``step``.
Draws (domain randomisation, noise) come from the wrapper's own generator, seeded by ``reset(seed=...)``
apart from the env's, so the same seed and parameters give the same episode, bit for bit.

Which parameters exist depends on the env (:mod:`rlsuite.envs.robust.params`); ``env.perturbation_parameters``
maps each to its nominal value. An unknown name is refused with the allowed names.

:func:`make_perturbed_vec` is the batched entry point (``make_vec_env("rlsuite/Perturbed-v0", N, env=...)``):
the torch batched pendulum for ``rlsuite/Pendulum-v0`` (:mod:`rlsuite.envs.robust.batched`), else ``N``
perturbed single envs behind the suite's vector adapter.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlsuite.envs.robust.params import NOISE_PARAMETERS, backend_for, check_values, merged, noise_defaults
from rlsuite.envs.robust.sets import UncertaintySet, check_set, get_uncertainty_set

_STREAM = 0x70E27  # keeps the wrapper's generator apart from the env's, which reset seeds with the same seed


class PerturbedEnv(gym.Env):
    """An env whose physics and noise are set per episode (see the module docstring).

    Args:
        env: a Gymnasium id (made with ``env_kwargs`` and ``render_mode``) or an env instance.
        env_kwargs: keyword arguments of the env (with an id).
        perturbation: the env's default parameters, ``{name: value}`` (nominal for the others).
        domain_rand: an uncertainty set (name, inline text or :class:`UncertaintySet`) to draw every
            episode's parameters from, unless the reset gives them.
        action_noise, obs_noise, action_delay: defaults of the noise parameters (0: off).
        render_mode: passed to the env (with an id).
    """

    def __init__(
        self,
        env: str | gym.Env = "Pendulum-v1",
        env_kwargs: dict[str, Any] | None = None,
        perturbation: Mapping[str, float] | None = None,
        domain_rand: str | UncertaintySet | None = None,
        action_noise: float = 0.0,
        obs_noise: float = 0.0,
        action_delay: int = 0,
        render_mode: str | None = None,
    ) -> None:
        if isinstance(env, str):
            from rlsuite.core.vec_env import check_env_id

            check_env_id(env)
            self.env_id = env
            extra = {"render_mode": render_mode} if render_mode is not None else {}  # envs without rendering take no render_mode
            self.env = gym.make(env, **extra, **(env_kwargs or {}))
        else:
            self.env = env
            self.env_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        self.observation_space = self.env.observation_space
        self.action_space = self.env.action_space
        self.metadata = dict(self.env.metadata)
        self.render_mode = self.env.render_mode
        self.backend = backend_for(self.env)
        #: every parameter this env takes, with its nominal value
        self.perturbation_parameters: dict[str, float] = {**self.backend.nominal, **NOISE_PARAMETERS}
        self.default_perturbation = self._check(noise_defaults(action_noise, obs_noise, action_delay, perturbation))
        self.domain_rand = get_uncertainty_set(domain_rand, self.env_id) if domain_rand is not None else None
        if self.domain_rand is not None:
            check_set(self.domain_rand, self.perturbation_parameters, self.env_id)
        self._np_random = np.random.Generator(np.random.PCG64(np.random.SeedSequence()))
        self._given: dict[str, float] = {}
        self._values: dict[str, float] = dict(self.perturbation_parameters)
        self._delay: deque[Any] = deque()

    def _check(self, values: Mapping[str, Any]) -> dict[str, float]:
        out = check_values(values, self.perturbation_parameters, self.env_id)
        if out.get("obs_noise", 0.0) > 0 and not isinstance(self.observation_space, gym.spaces.Box):
            raise ValueError(f"obs_noise needs a Box observation space; {self.env_id} has {self.observation_space}.")
        discrete = isinstance(self.action_space, gym.spaces.Discrete | gym.spaces.MultiDiscrete)
        if discrete and out.get("action_noise", 0.0) > 1:
            raise ValueError(f"action_noise on {self.env_id}'s discrete actions is a probability; got {out['action_noise']}, "
                             "allowed: 0 to 1.")
        return out

    @property
    def perturbation(self) -> dict[str, float]:
        """Every parameter's value in the current episode."""
        return dict(self._values)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            self._np_random = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), _STREAM])))
        options = dict(options or {})
        explicit = options.pop("perturbation", None)
        if explicit is not None:
            episode = self._check(explicit)
        elif self.domain_rand is not None:
            episode = self.domain_rand.point(self.domain_rand.sample(1, self._np_random)[0])
        else:
            episode = {}
        self._given = {**self.default_perturbation, **episode}
        self._values = merged(self.perturbation_parameters, self._given)
        self.backend.apply({k: self._values[k] for k in self.backend.nominal})
        obs, info = self.env.reset(seed=seed, options=options or None)
        self._delay = deque([self._neutral_action()] * int(self._values["action_delay"]))
        info = dict(info)
        info["perturbation"] = dict(self._given)
        return self._noisy_obs(obs), info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self._delay:
            self._delay.append(action.copy() if isinstance(action, np.ndarray) else action)  # the caller may reuse its array
            action = self._delay.popleft()
        obs, reward, terminated, truncated, info = self.env.step(self._noisy_action(action))
        info = dict(info)
        info["perturbation"] = dict(self._given)
        return self._noisy_obs(obs), reward, terminated, truncated, info

    def render(self) -> Any:
        return self.env.render()

    def close(self) -> None:
        self.env.close()

    # ------------------------------------------------------------------------------------------ noise
    def _neutral_action(self) -> Any:
        """What a delayed env applies before the first action arrives: zero (clipped into a Box), the first
        action of a discrete space."""
        space = self.action_space
        if isinstance(space, gym.spaces.Box):
            return np.clip(np.zeros(space.shape, dtype=space.dtype), space.low, space.high)
        if isinstance(space, gym.spaces.Discrete):
            return int(space.start)
        if isinstance(space, gym.spaces.MultiDiscrete):
            return np.asarray(space.start, dtype=space.dtype).copy()
        raise ValueError(f"action_delay needs a Box, Discrete or MultiDiscrete action space; {self.env_id} has {space}.")

    def _noisy_action(self, action: Any) -> Any:
        sigma = self._values["action_noise"]
        if sigma <= 0:
            return action
        space, rng = self.action_space, self._np_random
        if isinstance(space, gym.spaces.Box):
            a = np.asarray(action, dtype=np.float64)
            half = (space.high.astype(np.float64) - space.low.astype(np.float64)) / 2.0
            scale = np.where(np.isfinite(half), half, 1.0)
            return np.clip(a + sigma * scale * rng.standard_normal(a.shape), space.low, space.high).astype(space.dtype)
        if isinstance(space, gym.spaces.Discrete):
            return int(space.start + rng.integers(space.n)) if rng.random() < sigma else action
        if isinstance(space, gym.spaces.MultiDiscrete):
            a = np.asarray(action).copy()
            swap = rng.random(a.shape) < sigma
            a[swap] = (space.start + rng.integers(0, space.nvec))[swap]
            return a
        raise ValueError(f"action_noise needs a Box, Discrete or MultiDiscrete action space; {self.env_id} has {space}.")

    def _noisy_obs(self, obs: Any) -> Any:
        sigma = self._values["obs_noise"]
        if sigma <= 0:
            return obs
        o = np.asarray(obs)
        return (o + sigma * self._np_random.standard_normal(o.shape)).astype(o.dtype)


def _per_env(perturbation: Mapping[str, Any] | None, num_envs: int) -> list[dict[str, Any] | None]:
    """Split ``{name: scalar or sequence of num_envs}`` into one dict per env."""
    if not perturbation:
        return [None] * num_envs
    out: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    for name, value in perturbation.items():
        v = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value, dtype=np.float64)
        if v.ndim == 0:
            for d in out:
                d[name] = float(v)
        elif v.shape == (num_envs,):
            for d, x in zip(out, v, strict=True):
                d[name] = float(x)
        else:
            raise ValueError(f"perturbation[{name!r}] has shape {v.shape}; give one number, or one per env ({num_envs},).")
    return out


def make_perturbed_vec(
    num_envs: int = 1,
    device: torch.device | str = "cpu",
    env: str = "Pendulum-v1",
    env_kwargs: dict[str, Any] | None = None,
    perturbation: Mapping[str, float | Sequence[float] | torch.Tensor] | None = None,
    domain_rand: str | UncertaintySet | None = None,
    action_noise: float = 0.0,
    obs_noise: float = 0.0,
    action_delay: int = 0,
    render_mode: str | None = None,
) -> Any:
    """``num_envs`` perturbed copies of ``env`` as a :class:`rlsuite.core.vec_env.TorchVecEnv` on ``device``.

    ``perturbation`` values may be one number (every env) or one per env. ``rlsuite/Pendulum-v0`` runs
    batched in torch (:class:`~rlsuite.envs.robust.batched.PerturbedPendulumVecEnv`); any other env runs
    as ``num_envs`` :class:`PerturbedEnv` in a synchronous vector env behind the suite's adapter (exact
    resume holds: the episodes are replayed from their seeds).
    """
    from rlsuite.core.vec_env import GymVecAdapter, check_env_id

    check_env_id(env)
    if env == "rlsuite/Pendulum-v0":
        if render_mode is not None:
            raise ValueError("rlsuite/Pendulum-v0 does not render; drop render_mode (or perturb Pendulum-v1, which does).")
        from rlsuite.envs.robust.batched import PerturbedPendulumVecEnv

        return PerturbedPendulumVecEnv(num_envs=num_envs, device=device, perturbation=perturbation, domain_rand=domain_rand,
                                       action_noise=action_noise, obs_noise=obs_noise, action_delay=action_delay,
                                       **(env_kwargs or {}))
    per_env = _per_env(perturbation, num_envs)

    def factory(p: dict[str, Any] | None) -> Any:
        return lambda: PerturbedEnv(env, env_kwargs, p, domain_rand, action_noise, obs_noise, action_delay, render_mode)

    venv = gym.vector.SyncVectorEnv([factory(p) for p in per_env], autoreset_mode=gym.vector.AutoresetMode.DISABLED)
    return GymVecAdapter(venv, device=device)


make_perturbed_vec.builds_torch_vec_env = True  # type: ignore[attr-defined]  (read by rlsuite.core.vec_env)
