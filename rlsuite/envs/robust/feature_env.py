"""What the linear-feature robust envs share: per-episode perturbation values and the single-env view.

The batched envs of :mod:`rlsuite.envs.robust.linear_mdp` and :mod:`rlsuite.envs.robust.put_option` are
:class:`~rlsuite.core.vec_env.TorchVecEnv` s whose episodes all last ``horizon`` steps, in lockstep; their
observations are the linear-feature observations of :mod:`rlsuite.core.linear_rl`. Each declares
``perturbation_parameters`` (``{name: nominal}``) and takes ``perturbation={name: value}`` (a number, or one
value per env) in its constructor (every episode's default) and in ``reset(options={"perturbation": ...})``
(the episodes that reset starts; at their autoreset the envs go back to the defaults), which is what the
robust-evaluation harness (:func:`rlsuite.envs.robust.robust_evaluate`) needs.

- :class:`EpisodeParameters`: the ``(N,)`` values of each parameter, per env, with those rules;
- :class:`FeatureEnvView`: the single-env Gymnasium view of such a batched env (``num_envs = 1``, CPU,
  NumPy out), echoing ``info["perturbation"]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlsuite.core.registry import unknown_name_message


class EpisodeParameters:
    """Per-env perturbation values of a batched env.

    Args:
        nominal: ``{name: nominal value}`` (the env's ``perturbation_parameters``).
        check: ``check(name, value)`` raises ``ValueError`` for a value out of range.
        num_envs, device, dtype: the batch.
        defaults: the constructor's ``perturbation`` (numbers or ``(N,)`` values).
        where: the env's name, for messages.
    """

    def __init__(self, nominal: Mapping[str, float], check: Callable[[str, float], None], num_envs: int,
                 device: torch.device, dtype: torch.dtype, defaults: Mapping[str, Any] | None, where: str) -> None:
        self.nominal, self.check, self.where = dict(nominal), check, where
        self.num_envs, self.device, self.dtype = num_envs, device, dtype
        base = {k: torch.full((num_envs,), float(v), device=device, dtype=dtype) for k, v in self.nominal.items()}
        self.defaults = {**base, **self.parse(defaults)}
        self.values = {k: v.clone() for k, v in self.defaults.items()}

    def parse(self, values: Mapping[str, Any] | None) -> dict[str, torch.Tensor]:
        """``{name: number or (N,) values}`` -> ``{name: (N,) tensor}``, names and values checked."""
        out: dict[str, torch.Tensor] = {}
        for name, value in (values or {}).items():
            if name not in self.nominal:
                raise ValueError(unknown_name_message(f"perturbation parameter of {self.where}", str(name), self.nominal))
            v = torch.as_tensor(value.detach().cpu() if isinstance(value, torch.Tensor) else np.asarray(value, dtype=np.float64),
                                dtype=torch.float64)
            if v.ndim == 0:
                v = v.expand(self.num_envs)
            if tuple(v.shape) != (self.num_envs,):
                raise ValueError(f"perturbation[{name!r}] of {self.where} has shape {tuple(v.shape)}; give one number, or one per "
                                 f"env ({self.num_envs},).")
            for x in v.unique().tolist():
                if not math.isfinite(x):
                    raise ValueError(f"perturbation parameter {name!r} of {self.where}: got {x}, expected a finite number.")
                self.check(name, x)
            out[name] = v.to(self.device, self.dtype).clone()
        return out

    def reset(self, explicit: Mapping[str, Any] | None) -> None:
        """Every env starts an episode: the defaults, overridden by ``explicit`` for this episode."""
        given = self.parse(explicit)
        self.values = {k: given.get(k, v).clone() for k, v in self.defaults.items()}

    def autoreset(self, done: torch.Tensor) -> None:
        """The envs in ``done`` ``(N,)`` start new episodes with the defaults."""
        self.values = {k: torch.where(done, self.defaults[k], v) for k, v in self.values.items()}

    def echo(self) -> dict[str, torch.Tensor]:
        """``{name: (N,) value}`` of the current episodes."""
        return {k: v.clone() for k, v in self.values.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"defaults": {k: v.clone() for k, v in self.defaults.items()}, "values": self.echo()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.defaults = {k: state["defaults"][k].to(self.device, self.dtype).clone() for k in self.nominal}
        self.values = {k: state["values"][k].to(self.device, self.dtype).clone() for k in self.nominal}


class FeatureEnvView(gym.Env):
    """Single-env Gymnasium view of a batched env (``num_envs = 1`` on the CPU, NumPy out): the
    linear-feature envs and the greenhouse use it.

    ``reset(options={"perturbation": {...}})`` sets this episode's parameters; ``info["perturbation"]``
    echoes every parameter's value on reset and step. At the episode's end the batched env has already
    started the next one: the view returns the final observation with ``truncated=True``.
    Subclasses set ``vec_cls`` (keyword arguments go to it) and, for continuous actions,
    ``action_dtype = torch.float64`` and ``action_shape = (1, -1)``.
    """

    metadata = {"render_modes": []}
    vec_cls: type = type(None)
    action_dtype: torch.dtype = torch.int64
    action_shape: tuple[int, ...] = (1,)

    def __init__(self, **kwargs: Any) -> None:
        self._vec = self.vec_cls(num_envs=1, device="cpu", **kwargs)
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space
        self.horizon = getattr(self._vec, "horizon", None)
        self.perturbation_parameters: dict[str, float] = dict(self._vec.perturbation_parameters)

    @property
    def vec(self) -> Any:
        """The batched env of one behind this view."""
        return self._vec

    @staticmethod
    def _info(info: Mapping[str, Any]) -> dict[str, Any]:
        """The batched env's ``info`` for env 0: floats and ints, arrays for per-env vectors."""
        out: dict[str, Any] = {}
        for k, v in info.items():
            if k in ("final_obs", "_final_obs", "episode_return", "episode_length"):
                continue
            if k == "perturbation":
                out[k] = {name: float(x[0]) for name, x in v.items()}
            elif v.ndim > 1:
                out[k] = v[0].numpy().astype(np.float64)
            else:
                out[k] = float(v[0]) if v.dtype.is_floating_point else int(v[0])
        return out

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        obs, info = self._vec.reset(seed=int(self.np_random.integers(0, 2**63 - 1)), options=options)
        return obs[0].numpy(), self._info(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        a = torch.as_tensor(np.asarray(action)).to(self.action_dtype).reshape(self.action_shape)
        _, reward, terminated, truncated, info = self._vec.step(a)
        return info["final_obs"][0].numpy(), float(reward[0]), bool(terminated[0]), bool(truncated[0]), self._info(info)
