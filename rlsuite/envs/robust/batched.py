"""The batched torch pendulum (``rlsuite/Pendulum-v0``) with per-env physics and noise, on any device.

Every env of the batch has its own ``gravity``, ``pole_mass``, ``pole_length``, ``max_torque``,
``action_noise``, ``obs_noise`` and ``action_delay``, held as ``(N,)`` tensors on the env's device and
used by the shared dynamics (:func:`rlsuite.envs.pendulum.pendulum_dynamics` takes tensors). The rules
are those of :class:`~rlsuite.envs.robust.wrapper.PerturbedEnv`, per env:

- ``reset(options={"perturbation": {name: number or (N,) tensor}})`` sets this episode's values;
- otherwise, with ``domain_rand=SET``, each env draws its values from the set, at reset and at each of
  its autoresets (inside ``step``, without a host sync);
- otherwise the constructor's ``perturbation`` (numbers or ``(N,)`` values), nominal where not given.

An explicit reset's values last for that episode only: at its autoreset an env goes back to the
defaults (or its next draw). ``reset``'s ``info["perturbation"]`` holds the given parameters as ``(N,)``
tensors. Action noise is Gaussian with std ``action_noise`` x 2 N m (half the action range), clipped to
the action bounds; observation noise is added to ``obs`` and to ``info["final_obs"]``; a delayed env applies
the action of ``action_delay`` steps before (zero torque until then). Draws come from generators of the
env's own, seeded by ``reset(seed=...)``; ``state_dict`` holds them and the values, so resume is exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from rlsuite.envs.pendulum import LENGTH, MASS, MAX_TORQUE, PendulumVecEnv
from rlsuite.envs.robust.params import INTEGER_PARAMETERS, NOISE_PARAMETERS, check_values, noise_defaults
from rlsuite.envs.robust.sets import UncertaintySet, check_set, get_uncertainty_set

_STREAMS = (0x5EED1, 0x5EED2)  # domain-randomisation and noise generators, apart from the start-state one


class PerturbedPendulumVecEnv(PendulumVecEnv):
    """``num_envs`` pendulums with per-env parameters (see the module docstring).

    Args:
        num_envs, device, g, max_episode_steps, dtype: as :class:`~rlsuite.envs.pendulum.PendulumVecEnv`
            (``g`` is the nominal gravity).
        perturbation: default values, ``{name: number or (num_envs,) values}``.
        domain_rand: an uncertainty set (name, inline text or :class:`UncertaintySet`) drawn per episode.
        action_noise, obs_noise, action_delay: defaults of the noise parameters (0: off).
    """

    def __init__(
        self,
        num_envs: int = 1,
        device: torch.device | str = "cpu",
        g: float = 10.0,
        max_episode_steps: int | None = 200,
        dtype: torch.dtype = torch.float32,
        perturbation: Mapping[str, float | Sequence[float] | torch.Tensor] | None = None,
        domain_rand: str | UncertaintySet | None = None,
        action_noise: float = 0.0,
        obs_noise: float = 0.0,
        action_delay: int = 0,
    ) -> None:
        super().__init__(num_envs=num_envs, device=device, g=g, max_episode_steps=max_episode_steps, dtype=dtype)
        self.env_id = "rlsuite/Pendulum-v0"
        #: every parameter this env takes, with its nominal value
        self.perturbation_parameters: dict[str, float] = {
            "gravity": float(g), "pole_mass": MASS, "pole_length": LENGTH, "max_torque": MAX_TORQUE, **NOISE_PARAMETERS}
        given = noise_defaults(action_noise, obs_noise, action_delay, perturbation)
        self._default = self._full(self._as_tensors(given))
        self._default_names = tuple(given)
        self.domain_rand = get_uncertainty_set(domain_rand, self.env_id) if domain_rand is not None else None
        if self.domain_rand is not None:
            check_set(self.domain_rand, self.perturbation_parameters, self.env_id)
        self._dr_gen = torch.Generator(device=self.device)
        self._noise_gen = torch.Generator(device=self.device)
        self._seed_streams(int(np.random.SeedSequence().generate_state(1)[0]))
        self._given_names: tuple[str, ...] = self._default_names
        self._values = {k: v.clone() for k, v in self._default.items()}
        self._buffer = torch.zeros((num_envs, 1, 1), device=self.device, dtype=dtype)
        self._action_noisy = self._obs_noisy = False
        self._install()

    # --------------------------------------------------------------------------------------- values
    def _seed_streams(self, seed: int) -> None:
        self._dr_gen.manual_seed(seed ^ _STREAMS[0])
        self._noise_gen.manual_seed(seed ^ _STREAMS[1])

    def _as_tensors(self, values: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """``{name: (N,) tensor}`` from numbers or per-env values, checked (names, finiteness, signs, whole delays)."""
        out = {}
        for name, value in values.items():
            v = torch.as_tensor(value, dtype=torch.float64).to(self.device)
            if v.ndim == 0:
                v = v.expand(self.num_envs)
            if v.shape != (self.num_envs,):
                raise ValueError(f"perturbation[{name!r}] has shape {tuple(v.shape)}; give one number, or one per env ({self.num_envs},).")
            lo, hi = float(v.min()), float(v.max())  # one host sync per reset: checks are worth it there
            check_values({name: lo}, self.perturbation_parameters, self.env_id)
            check_values({name: hi}, self.perturbation_parameters, self.env_id)
            if name in INTEGER_PARAMETERS and not torch.equal(v, v.round()):
                raise ValueError(f"perturbation parameter {name!r} of {self.env_id} must be whole numbers of steps.")
            out[name] = v.to(self.dtype).clone()
        return out

    def _full(self, values: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every parameter as ``(N,)``: ``values`` where given, nominal elsewhere."""
        return {k: values[k] if k in values else torch.full((self.num_envs,), v, device=self.device, dtype=self.dtype)
                for k, v in self.perturbation_parameters.items()}

    def _draw(self) -> dict[str, torch.Tensor]:
        """One point of the domain-randomisation set per env."""
        out = {}
        for d in self.domain_rand.dims:
            if d.integer:
                x = torch.randint(int(d.low), int(d.high) + 1, (self.num_envs,), generator=self._dr_gen, device=self.device)
                out[d.name] = x.to(self.dtype)
            else:
                u = torch.rand(self.num_envs, generator=self._dr_gen, device=self.device, dtype=torch.float64)
                out[d.name] = (d.low + (d.high - d.low) * u).to(self.dtype)
        return out

    def _next_values(self) -> dict[str, torch.Tensor]:
        """What a new episode (without explicit values) gets: a draw over the defaults, or the defaults."""
        return {**self._default, **self._draw()} if self.domain_rand is not None else self._default

    def _install(self) -> None:
        v = self._values
        self.g, self.mass, self.length, self.max_torque = v["gravity"], v["pole_mass"], v["pole_length"], v["max_torque"]
        self._delay_steps = v["action_delay"].long()

    def _noise_flags(self) -> None:
        """Decide once per reset whether noise can be on (no per-step host sync)."""
        def possible(name: str) -> bool:
            in_set = self.domain_rand is not None and any(d.name == name and d.high > 0 for d in self.domain_rand.dims)
            return in_set or bool((self._default[name] > 0).any()) or bool((self._values[name] > 0).any())

        self._action_noisy, self._obs_noisy = possible("action_noise"), possible("obs_noise")
        longest = int(max(self._default["action_delay"].max(), self._values["action_delay"].max()))
        if self.domain_rand is not None:
            longest = max([longest] + [int(d.high) for d in self.domain_rand.dims if d.name == "action_delay"])
        self._buffer = torch.zeros((self.num_envs, longest + 1, 1), device=self.device, dtype=self.dtype)

    @property
    def perturbation(self) -> dict[str, torch.Tensor]:
        """Every parameter's ``(N,)`` values in the current episodes."""
        return {k: v.clone() for k, v in self._values.items()}

    # ------------------------------------------------------------------------------------------ env
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict]:
        options = dict(options or {})
        explicit = options.pop("perturbation", None)
        obs, info = super().reset(seed=seed, options=options or None)
        if seed is not None:
            self._seed_streams(int(seed))
        if explicit is not None:
            given = self._as_tensors(explicit)
            self._values = {**self._default, **given}
            self._given_names = tuple(dict.fromkeys((*self._default_names, *given)))
        else:
            self._values = dict(self._next_values())
            dr = self.domain_rand.names if self.domain_rand is not None else ()
            self._given_names = tuple(dict.fromkeys((*self._default_names, *dr)))
        self._values = {k: v.clone() for k, v in self._values.items()}
        self._install()
        self._noise_flags()
        info = dict(info)
        info["perturbation"] = {k: self._values[k].clone() for k in self._given_names}
        return self._noisy(obs), info

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        a = torch.as_tensor(action, device=self.device).reshape(self.num_envs, 1).to(self.dtype)
        if self._buffer.shape[1] > 1:  # column k holds the action of k steps ago
            self._buffer = torch.cat([a[:, None], self._buffer[:, :-1]], dim=1)
            a = self._buffer[torch.arange(self.num_envs, device=self.device), self._delay_steps]
        if self._action_noisy:
            noise = torch.randn(a.shape, generator=self._noise_gen, device=self.device, dtype=self.dtype)
            a = (a + self._values["action_noise"][:, None] * MAX_TORQUE * noise).clamp(-MAX_TORQUE, MAX_TORQUE)
        obs, reward, terminated, truncated, info = super().step(a)
        done = terminated | truncated
        ended_noise = self._values["obs_noise"]
        nxt = self._next_values()  # the next episode's values where one ended (drawn for every env: no sync)
        self._values = {k: torch.where(done, nxt[k], v) for k, v in self._values.items()}
        self._install()
        if self._buffer.shape[1] > 1:
            self._buffer = torch.where(done[:, None, None], torch.zeros_like(self._buffer), self._buffer)
        if self._obs_noisy:  # the last observation of an ended episode with its noise, the new one with the next's
            final = torch.where(done[:, None], self._noisy(info["final_obs"], ended_noise), info["final_obs"])
            obs = self._noisy(obs)
            info["final_obs"] = torch.where(done[:, None], final, obs)
        return obs, reward, terminated, truncated, info

    def _noisy(self, obs: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        if not self._obs_noisy:
            return obs
        sigma = self._values["obs_noise"] if sigma is None else sigma
        noise = torch.randn(obs.shape, generator=self._noise_gen, device=self.device, dtype=torch.float32)
        return obs + sigma.to(torch.float32)[:, None] * noise

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "perturbation": {k: v.clone() for k, v in self._values.items()},
            "given": list(self._given_names),
            "delay_buffer": self._buffer.clone(),
            "dr_generator": self._dr_gen.get_state(),
            "noise_generator": self._noise_gen.get_state(),
            "noise_flags": [self._action_noisy, self._obs_noisy],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._values = {k: v.to(self.device, self.dtype).clone() for k, v in state["perturbation"].items()}
        self._given_names = tuple(state["given"])
        self._buffer = state["delay_buffer"].to(self.device, self.dtype).clone()
        self._dr_gen.set_state(state["dr_generator"].cpu().to(torch.uint8))
        self._noise_gen.set_state(state["noise_generator"].cpu().to(torch.uint8))
        self._action_noisy, self._obs_noisy = (bool(x) for x in state["noise_flags"])
        self._install()
