"""GreenhouseLettuce: a lettuce greenhouse (Van Henten 1994), batched in torch, one growing season per episode.

``gymnasium.make("rlsuite/Greenhouse-Lettuce-v0")`` gives the single env (CPU, float64, NumPy out);
``make_vec_env("rlsuite/Greenhouse-Lettuce-v0", N, device="cuda")`` gives :class:`GreenhouseVecEnv`.
Model, parameters and sources: :mod:`rlsuite.envs.greenhouse.model` and docs/greenhouse.md.

## Description
One square metre of a greenhouse with a lettuce crop, from planting (3.5 g m^-2 dry weight) to harvest
``season_days`` later. Every 15 minutes the agent sets CO2 supply, ventilation and heating (and LED
lighting with ``led=True``); the weather comes from the seeded generator or a file
(:mod:`rlsuite.envs.greenhouse.weather`). The model is integrated with RK4 (``substeps`` per step), the
states clamped to physical ranges.

## Action Space
``Box(-1, 1, (3,))`` (``(4,)`` with ``led=True``), mapped affinely to the control ranges:

| Num | Control | Min | Max | Unit |
|-----|---------|-----|-----|------|
| 0 | CO2 supply ``u_c`` | 0 | 1.2 | mg m^-2 s^-1 |
| 1 | ventilation ``u_v`` | 0 | 7.5 | mm s^-1 |
| 2 | heating ``u_q`` | 0 | 150 | W m^-2 |
| 3 | LED electric power ``u_L`` (``led=True``) | 0 | 100 | W m^-2 |

``-1`` is the minimum, ``1`` the maximum; actions are clipped to ``[-1, 1]``, then to the rate limit.

## Observation Space
``Box(-inf, inf, (11 + n_u + 4 k,), float32)``, ``k = forecast_hours``, ``n_u`` the number of controls:

| Num | Observation | Scaling |
|-----|-------------|---------|
| 0 | dry weight | kg m^-2 x 10 (= g m^-2 / 100) |
| 1 | indoor CO2 | ppm / 1000 |
| 2 | indoor temperature | (degC - 15) / 10 |
| 3 | indoor relative humidity | % / 100 |
| 4-7 | weather now: radiation, CO2, temperature, RH | W m^-2 / 500, ppm / 1000, (degC - 15) / 10, % / 100 |
| 8, 9 | sin, cos of 2 pi (hour of day) / 24 | |
| 10 | fraction of the season elapsed | ``t / (96 season_days)`` |
| 11 .. 10 + n_u | the previous (applied) action | normalised ``[-1, 1]`` |
| then 4 k | the weather 1, 2, ..., k hours ahead (a perfect forecast), scaled as 4-7 | |

:func:`decode_observation` turns entries 0-7 back into physical units. Sensor noise (``obs_noise``) is
added to entries 0-7.

## Rewards
Euros per square metre per step (prices and bands in :class:`Prices` and :class:`ComfortBands`):
``crop dx_d - heat u_q dt / 3.6e6 - co2 1e-6 u_c dt - electricity u_L dt / 3.6e6 - penalties``, the
penalty the weighted positive part of the temperature outside its day or night band, CO2 above
``co2_max`` and relative humidity above ``rh_max`` after the step. The terms are in ``info``
(``reward_crop``, ``reward_heat``, ``reward_co2``, ``reward_led``, ``penalty_temperature``,
``penalty_co2``, ``penalty_humidity``; all signed, they sum to the reward) with ``profit`` (the first
four). The crop is valued as it grows (no separate harvest payment: that would count it twice).

## Starting State
Dry weight 0.0035 kg m^-2, CO2 1.0e-3 kg m^-3 (about 540 ppm), 15 degC, 0.008 kg m^-3 humidity, at
midnight of the season's first day. ``scenario="random"``: each episode draws its start day and weather
seed; ``scenario="eval"``: env ``i`` runs the evaluation season ``i mod len(evaluation_set)``;
``reset(options={"start_day": ..., "weather_seed": ...})`` sets them (a number or one per env).

## Episode End
Never terminates; truncated after ``96 season_days`` steps. All envs of a batch run in lockstep.

## Robustness (perturbation parameters)
Per episode, in the constructor (``perturbation={...}``, every episode) or ``reset(options={"perturbation":
{...}})`` (this episode), a number or one value per env; ``info["perturbation"]`` echoes them:

- ``param_noise`` (0): every parameter of :data:`~rlsuite.envs.greenhouse.model.UNCERTAIN_PARAMS` is
  multiplied by ``1 + param_noise * U(-1, 1)``, drawn per env and episode;
- ``<parameter>_scale`` (1) for each of those parameters, e.g. ``c_eps_scale``, ``c_ai_ou_scale``;
- ``temp_shift`` (0 degC), ``radiation_scale`` (1), ``rh_shift`` (0 % points), ``co2_shift`` (0 ppm): the
  weather of the episode shifted;
- ``obs_noise`` (0): Gaussian noise of that std on observation entries 0-7 (scaled units);
- ``rate_limit`` (1): the largest change of each control per step as a fraction of its range (1: none;
  0.1 is the common choice).

## Arguments
``num_envs``, ``device``, ``season_days`` (40), ``substeps`` (4), ``led`` (False), ``forecast_hours`` (0),
``weather`` (``"synthetic"`` or a CSV path), ``climate`` (the synthetic weather's
:class:`~rlsuite.envs.greenhouse.weather.SyntheticClimate` or a dict), ``prices`` (:class:`Prices`, a dict
or a preset name of :data:`PRICE_PRESETS`), ``bands`` (:class:`ComfortBands` or a dict), ``params``
(:class:`~rlsuite.envs.greenhouse.model.VanHentenParams` or a dict), ``scenario`` (``"random"`` or
``"eval"``), ``perturbation``, ``dtype`` (float32; the single env float64).

## Version History
* v0: initial version.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlsuite.core.seeding import resolve_device
from rlsuite.core.vec_env import TorchVecEnv
from rlsuite.envs.greenhouse.model import (
    PARAM_NAMES,
    UNCERTAIN_PARAMS,
    VanHentenParams,
    co2_density_to_ppm,
    co2_ppm_to_density,
    rh_to_vapour_density,
    rk4_step,
    vapour_density_to_rh,
)
from rlsuite.envs.greenhouse.weather import STEPS_PER_DAY, SyntheticClimate, WeatherSource, make_weather
from rlsuite.envs.robust.feature_env import EpisodeParameters, FeatureEnvView

ENV_ID = "rlsuite/Greenhouse-Lettuce-v0"
DT = 900.0  # s, the control step
#: control ranges (physical units, see the module docstring)
CONTROL_LOW = (0.0, 0.0, 0.0, 0.0)
CONTROL_HIGH = (1.2, 7.5, 150.0, 100.0)
#: the initial state (dry weight kg m^-2, CO2 kg m^-3, temperature degC, humidity kg m^-3)
INITIAL_STATE = (0.0035, 1.0e-3, 15.0, 0.008)
#: observation entries 0-7 are ``(value - OBS_OFFSET) / OBS_SCALE`` of: dry weight [kg m^-2], CO2 [ppm],
#: temperature [degC], RH [%], radiation [W m^-2], outdoor CO2 [ppm], outdoor temperature [degC], outdoor RH [%]
OBS_SCALE = (0.1, 1000.0, 10.0, 100.0, 500.0, 1000.0, 10.0, 100.0)
OBS_OFFSET = (0.0, 0.0, 15.0, 0.0, 0.0, 0.0, 15.0, 0.0)
OBS_FIELDS = ("dry_weight", "co2_ppm", "temperature", "rh", "radiation", "outdoor_co2_ppm", "outdoor_temperature", "outdoor_rh")
N_MEASURED = 8
N_TIME = 3  # sin, cos of the hour, season fraction


@dataclasses.dataclass(frozen=True)
class Prices:
    """Prices of the reward (defaults: Van Henten 1994, converted from Dfl at 2.20371 Dfl per euro)."""

    crop: float = 7.26
    """lettuce [EUR per kg dry weight] (16 Dfl kg^-1)"""
    heat: float = 2.88e-9 * 3.6e6
    """heating energy [EUR per kWh] (2.88e-9 EUR J^-1 = 6.35e-9 Dfl J^-1, about 0.0104 EUR kWh^-1)"""
    co2: float = 0.19
    """CO2 [EUR per kg] (0.42 Dfl kg^-1)"""
    electricity: float = 0.08
    """LED electricity [EUR per kWh] (iGrow's peak price; Van Henten's model has no lamps)"""


#: named price sets: ``van-henten-1994`` (the default) and ``modern`` (mid-range values of iGrow and
#: GreenLight-Gym: heat 0.06 EUR/kWh, electricity 0.15 EUR/kWh, CO2 0.15 EUR/kg)
PRICE_PRESETS: dict[str, Prices] = {
    "van-henten-1994": Prices(),
    "modern": Prices(heat=0.06, co2=0.15, electricity=0.15),
}


@dataclasses.dataclass(frozen=True)
class ComfortBands:
    """The climate the crop should see and the price of leaving it."""

    temp_day: tuple[float, float] = (15.0, 20.0)
    """temperature band while the sun shines [degC]"""
    temp_night: tuple[float, float] = (10.0, 15.0)
    """temperature band at night [degC]"""
    day_radiation: float = 10.0
    """global radiation [W m^-2] from which the day band applies"""
    co2_max: float = 1600.0
    """highest indoor CO2 [ppm]"""
    rh_max: float = 80.0
    """highest indoor relative humidity [%]"""
    weight_temp: float = 1e-4
    """penalty [EUR m^-2 per degC outside the band per step]"""
    weight_co2: float = 1e-6
    """penalty [EUR m^-2 per ppm above co2_max per step]"""
    weight_rh: float = 2e-5
    """penalty [EUR m^-2 per % RH above rh_max per step]"""

    def __post_init__(self) -> None:
        for name in ("temp_day", "temp_night"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f"ComfortBands.{name} must be (low, high) with low <= high, got {getattr(self, name)}.")
        if min(self.weight_temp, self.weight_co2, self.weight_rh) < 0:
            raise ValueError("ComfortBands weights must be >= 0.")


def _as(cls: type, value: Any, what: str, presets: Mapping[str, Any] | None = None) -> Any:
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, str) and presets is not None:
        if value not in presets:
            raise ValueError(f"unknown {what} preset {value!r}; known: {', '.join(presets)}.")
        return presets[value]
    if isinstance(value, Mapping):
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - fields)
        if unknown:
            raise ValueError(f"unknown {what} field(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}.")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
    raise TypeError(f"{what} must be a {cls.__name__}, a dict of its fields{' or a preset name' if presets else ''}; got {type(value).__name__}.")


def perturbation_parameters() -> dict[str, float]:
    """Every perturbation parameter with its nominal value (see the module docstring)."""
    return {"param_noise": 0.0, **{f"{n}_scale": 1.0 for n in UNCERTAIN_PARAMS}, "temp_shift": 0.0, "radiation_scale": 1.0,
            "rh_shift": 0.0, "co2_shift": 0.0, "obs_noise": 0.0, "rate_limit": 1.0}


def _check(name: str, value: float) -> None:
    where = f"perturbation parameter {name!r} of {ENV_ID}"
    if name == "param_noise" and not 0.0 <= value < 1.0:
        raise ValueError(f"{where} is a relative half-width: got {value}, allowed: 0 <= value < 1.")
    if name.endswith("_scale") and name != "radiation_scale" and value <= 0.0:
        raise ValueError(f"{where} multiplies a model parameter: got {value}, must be > 0.")
    if name in ("radiation_scale", "obs_noise") and value < 0.0:
        raise ValueError(f"{where}: got {value}, must be >= 0.")
    if name == "rate_limit" and not 0.0 < value <= 1.0:
        raise ValueError(f"{where} is a fraction of each control's range per step: got {value}, allowed: 0 < value <= 1 (1: no limit).")
    if name in ("temp_shift", "rh_shift") and abs(value) > 50.0:
        raise ValueError(f"{where}: got {value}, allowed: -50 to 50.")
    if name == "co2_shift" and not -400.0 <= value <= 5000.0:
        raise ValueError(f"{where}: got {value} ppm, allowed: -400 to 5000.")


@functools.lru_cache(maxsize=16)
def _obs_scaling(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(OBS_SCALE, dtype=dtype, device=device), torch.tensor(OBS_OFFSET, dtype=dtype, device=device)


def decode_observation(obs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Entries 0-7 of observations ``(..., D)`` in physical units: ``{field: (...)}`` for the names of
    :data:`OBS_FIELDS` (dry weight kg m^-2, ppm, degC, %, W m^-2, ppm, degC, %)."""
    scale, offset = _obs_scaling(obs.dtype, obs.device)
    values = torch.addcmul(offset, obs[..., :N_MEASURED], scale)
    return dict(zip(OBS_FIELDS, values.unbind(-1), strict=True))


class GreenhouseVecEnv(TorchVecEnv):
    """``num_envs`` greenhouses stepped together on ``device`` (see the module docstring)."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1,
        device: torch.device | str = "cpu",
        season_days: int = 40,
        substeps: int = 4,
        led: bool = False,
        forecast_hours: int = 0,
        weather: str | WeatherSource = "synthetic",
        climate: SyntheticClimate | dict | None = None,
        prices: Prices | dict | str | None = None,
        bands: ComfortBands | dict | None = None,
        params: VanHentenParams | dict | None = None,
        scenario: str = "random",
        perturbation: dict[str, Any] | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
        if season_days < 1 or substeps < 1 or forecast_hours < 0:
            raise ValueError(f"need season_days >= 1, substeps >= 1, forecast_hours >= 0; got {season_days}, {substeps}, {forecast_hours}.")
        if scenario not in ("random", "eval"):
            raise ValueError(f"scenario must be 'random' or 'eval', got {scenario!r}.")
        self.num_envs, self.device, self.dtype = num_envs, resolve_device(device), dtype
        self.season_days, self.substeps, self.led, self.forecast_hours = int(season_days), int(substeps), bool(led), int(forecast_hours)
        self.season_steps = self.season_days * STEPS_PER_DAY
        self.prices = _as(Prices, prices, "prices", PRICE_PRESETS)
        self.bands = _as(ComfortBands, bands, "bands")
        self.model_params = _as(VanHentenParams, params, "params")
        self.scenario = scenario
        self.weather_steps = self.season_steps + 4 * self.forecast_hours + 1  # the last for the final observation
        self.weather_source = make_weather(weather, self.weather_steps, climate)
        self.n_controls = 4 if self.led else 3
        #: every perturbation parameter with its nominal value (what the robust-evaluation harness sweeps)
        self.perturbation_parameters = perturbation_parameters()
        self.params = EpisodeParameters(self.perturbation_parameters, _check, num_envs, self.device, torch.float64, perturbation, ENV_ID)
        obs_dim = N_MEASURED + N_TIME + self.n_controls + 4 * self.forecast_hours
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, (self.n_controls,), np.float32)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        kw = {"device": self.device, "dtype": dtype}
        self._low = torch.tensor(CONTROL_LOW[: self.n_controls], **kw)
        self._span = torch.tensor(CONTROL_HIGH[: self.n_controls], **kw) - self._low
        self._nominal = torch.tensor([getattr(self.model_params, n) for n in PARAM_NAMES], dtype=torch.float64)
        self._uncertain = torch.tensor([PARAM_NAMES.index(n) for n in UNCERTAIN_PARAMS])
        self._forecast_offsets = torch.arange(1, self.forecast_hours + 1, device=self.device) * 4
        self._episode_gen = torch.Generator()  # CPU: start days, weather seeds and parameter noise are device-independent
        self._episode_gen.manual_seed(int(np.random.SeedSequence().generate_state(1)[0]))
        self._noise_gen = torch.Generator(device=self.device)
        self._noise_gen.manual_seed(int(np.random.SeedSequence().generate_state(1)[0]))
        self._init_episode_stats()
        self._start_episodes({})

    # ------------------------------------------------------------------ episodes
    @property
    def evaluation_set(self) -> tuple[tuple[int, int], ...]:
        """The weather source's fixed ``(start_day, weather_seed)`` evaluation seasons."""
        return self.weather_source.evaluation_set()

    def _per_env(self, value: Any, name: str) -> torch.Tensor:
        v = torch.as_tensor(np.asarray(value, dtype=np.int64)).reshape(-1)
        if v.numel() == 1:
            v = v.expand(self.num_envs)
        if v.numel() != self.num_envs:
            raise ValueError(f"{name} has {v.numel()} values; give one number, or one per env ({self.num_envs},).")
        return v.clone()

    def _start_episodes(self, options: Mapping[str, Any]) -> None:
        """Every env starts a season: perturbation values, start day, weather seed, parameter noise, weather."""
        self.params.reset(options.get("perturbation"))
        n, g = self.num_envs, self._episode_gen
        if self.scenario == "eval":
            pairs = self.evaluation_set
            start = torch.tensor([pairs[i % len(pairs)][0] for i in range(n)], dtype=torch.int64)
            seed = torch.tensor([pairs[i % len(pairs)][1] for i in range(n)], dtype=torch.int64)
        else:
            start = torch.randint(0, self.weather_source.n_start_days, (n,), generator=g)
            seed = torch.randint(0, 2**31, (n,), generator=g)
        noise = 2.0 * torch.rand((n, len(UNCERTAIN_PARAMS)), generator=g, dtype=torch.float64) - 1.0  # drawn always: common random numbers
        if "start_day" in options:
            start = self._per_env(options["start_day"], "start_day")
            if (start < 0).any() or (start >= self.weather_source.n_start_days).any():
                raise ValueError(f"start_day must lie in [0, {self.weather_source.n_start_days - 1}], got {start.tolist()}.")
        if "weather_seed" in options:
            seed = self._per_env(options["weather_seed"], "weather_seed")
        self.start_day, self.weather_seed = start, seed
        values = {k: v.cpu() for k, v in self.params.values.items()}
        mult = torch.ones((n, len(PARAM_NAMES)), dtype=torch.float64)
        mult[:, self._uncertain] = 1.0 + values["param_noise"][:, None] * noise
        mult[:, self._uncertain] *= torch.stack([values[f"{p}_scale"] for p in UNCERTAIN_PARAMS], dim=-1)
        self.model_values = (self._nominal * mult).to(self.device, self.dtype)  # (N, P)
        self._make_weather()
        self.x = torch.tensor(INITIAL_STATE, device=self.device, dtype=self.dtype).expand(n, 4).clone()
        self.prev_action = torch.full((n, self.n_controls), -1.0, device=self.device, dtype=self.dtype)
        self.t = 0
        self._noise_on = bool((values["obs_noise"] > 0).any())
        self._rate_limited = bool((values["rate_limit"] < 1).any())

    def _make_weather(self) -> None:
        """The season's weather of every env with its shifts, in model units and as observed, ``(N, S + 4k + 1, 4)``."""
        raw = self.weather_source.season(self.start_day.numpy(), self.weather_seed.numpy(), self.weather_steps)
        raw = torch.as_tensor(raw, dtype=torch.float64)
        v = {k: x.cpu()[:, None] for k, x in self.params.values.items()}
        radiation = raw[..., 0] * v["radiation_scale"]
        ppm = (raw[..., 1] + v["co2_shift"]).clamp_min(0.0)
        temp = raw[..., 2] + v["temp_shift"]
        rh = (raw[..., 3] + v["rh_shift"]).clamp(0.0, 100.0)
        model = torch.stack([radiation, co2_ppm_to_density(ppm, temp), temp, rh_to_vapour_density(rh, temp)], dim=-1)
        observed = torch.stack([radiation, ppm, temp, rh], dim=-1)
        observed = (observed - torch.tensor(OBS_OFFSET[4:], dtype=torch.float64)) / torch.tensor(OBS_SCALE[4:], dtype=torch.float64)
        self.weather_model = model.to(self.device, self.dtype)
        self.weather_obs = observed.to(self.device, self.dtype)

    # ------------------------------------------------------------------ observation and step
    def _obs(self, ppm: torch.Tensor | None = None, rh: torch.Tensor | None = None) -> torch.Tensor:
        """The observation of the current state (``ppm`` and ``rh`` ``(N,)`` of it when already computed)."""
        x_d, x_c, x_t, x_h = self.x.unbind(-1)
        ppm = co2_density_to_ppm(x_c, x_t) if ppm is None else ppm
        rh = vapour_density_to_rh(x_h, x_t) if rh is None else rh
        measured = torch.stack([x_d * 10.0, ppm / 1000.0, (x_t - 15.0) / 10.0, rh / 100.0], dim=-1)
        t = self.t
        hour = 2.0 * math.pi * (t % STEPS_PER_DAY) / STEPS_PER_DAY
        time = torch.tensor([math.sin(hour), math.cos(hour), t / self.season_steps], device=self.device, dtype=self.dtype)
        parts = [measured, self.weather_obs[:, t], time.expand(self.num_envs, 3), self.prev_action]
        if self.forecast_hours:
            parts.append(self.weather_obs[:, t + self._forecast_offsets].reshape(self.num_envs, -1))
        obs = torch.cat(parts, dim=-1)
        if self._noise_on:
            noise = torch.randn((self.num_envs, N_MEASURED), generator=self._noise_gen, device=self.device, dtype=self.dtype)
            obs = torch.cat([obs[:, :N_MEASURED] + self.params.values["obs_noise"].to(self.dtype)[:, None] * noise, obs[:, N_MEASURED:]], -1)
        return obs.to(torch.float32)

    def _info(self) -> dict[str, Any]:
        # no copies: these tensors are replaced at an episode start, never changed in place
        return {"perturbation": dict(self.params.values), "start_day": self.start_day, "weather_seed": self.weather_seed}

    def controls(self, action: torch.Tensor) -> torch.Tensor:
        """Normalised actions ``(N, n_u)`` in ``[-1, 1]`` -> physical controls ``(N, n_u)`` (clipped, no rate limit)."""
        a = torch.as_tensor(action, device=self.device).reshape(self.num_envs, self.n_controls).to(self.dtype).clamp(-1.0, 1.0)
        return self._low + (a + 1.0) * 0.5 * self._span

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict]:
        """Start a season in every env; ``options``: ``perturbation``, ``start_day``, ``weather_seed`` (see the module docstring)."""
        if seed is not None:
            self._episode_gen.manual_seed(int(seed))
            self._noise_gen.manual_seed(int(seed) + 1)
        unknown = set(options or {}) - {"perturbation", "start_day", "weather_seed"}
        if unknown:
            raise ValueError(f"unknown reset option(s) {', '.join(sorted(unknown))}; allowed: perturbation, start_day, weather_seed.")
        self._start_episodes(options or {})
        self._init_episode_stats()
        return self._obs(), self._info()

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        a = torch.as_tensor(action, device=self.device).reshape(self.num_envs, self.n_controls).to(self.dtype).clamp(-1.0, 1.0)
        if self._rate_limited:
            limit = (2.0 * self.params.values["rate_limit"]).to(self.dtype)[:, None]
            a = self.prev_action + torch.minimum(torch.maximum(a - self.prev_action, -limit), limit)
        u = self._low + (a + 1.0) * 0.5 * self._span
        d = self.weather_model[:, self.t]
        p = dict(zip(PARAM_NAMES, self.model_values.unbind(-1), strict=True))
        x0 = self.x
        x1 = rk4_step(x0, u, d, p, DT, self.substeps)
        ppm, rh = co2_density_to_ppm(x1[:, 1], x1[:, 2]), vapour_density_to_rh(x1[:, 3], x1[:, 2])
        terms = self._reward_terms(x0, x1, u, d, ppm, rh)
        reward = sum(terms.values()).to(torch.float32)
        self.x, self.prev_action = x1, a
        self.t += 1
        truncated = torch.full((self.num_envs,), self.t >= self.season_steps, device=self.device)
        terminated = torch.zeros_like(truncated)
        info = self._info()
        info.update(terms)
        info["profit"] = terms["reward_crop"] + terms["reward_heat"] + terms["reward_co2"] + terms["reward_led"]
        info.update(state=x1, co2_ppm=ppm, rh=rh, controls=u)
        final_obs = self._obs(ppm, rh)
        if self.t >= self.season_steps:  # lockstep: every env ends here (a Python int: no host sync); defaults again
            self._start_episodes({})
        info["final_obs"] = final_obs
        info["_final_obs"] = truncated
        self._track_episodes(reward, truncated, info)
        obs = self._obs() if self.t == 0 else final_obs
        return obs, reward, terminated, truncated, info

    def _reward_terms(self, x0: torch.Tensor, x1: torch.Tensor, u: torch.Tensor, d: torch.Tensor, ppm: torch.Tensor,
                      rh: torch.Tensor) -> dict[str, torch.Tensor]:
        """The signed reward terms ``(N,)`` [EUR m^-2] of a step from ``x0`` to ``x1`` (CO2 ``ppm`` and ``rh`` [%]
        ``(N,)`` at ``x1``) under controls ``u`` and weather ``d``."""
        pr, b = self.prices, self.bands
        kwh = DT / 3.6e6
        led = -pr.electricity * kwh * u[:, 3] if self.led else torch.zeros_like(u[:, 0])
        temp, day = x1[:, 2], d[:, 0] >= b.day_radiation
        low = torch.where(day, b.temp_day[0], b.temp_night[0])
        high = torch.where(day, b.temp_day[1], b.temp_night[1])
        too_hot_cold = (low - temp).clamp_min(0.0) + (temp - high).clamp_min(0.0)
        return {
            "reward_crop": pr.crop * (x1[:, 0] - x0[:, 0]),
            "reward_heat": (-pr.heat * kwh) * u[:, 2],
            "reward_co2": (-pr.co2 * 1e-6 * DT) * u[:, 0],
            "reward_led": led,
            "penalty_temperature": -b.weight_temp * too_hot_cold,
            "penalty_co2": -b.weight_co2 * (ppm - b.co2_max).clamp_min(0.0),
            "penalty_humidity": -b.weight_rh * (rh - b.rh_max).clamp_min(0.0),
        }

    # ------------------------------------------------------------------ exact resume
    def state_dict(self) -> dict[str, Any]:
        return {"x": self.x.clone(), "t": int(self.t), "prev_action": self.prev_action.clone(), "start_day": self.start_day.clone(),
                "weather_seed": self.weather_seed.clone(), "model_values": self.model_values.clone(), "params": self.params.state_dict(),
                "episode_generator": self._episode_gen.get_state(), "noise_generator": self._noise_gen.get_state(),
                "noise_on": bool(self._noise_on), **self._episode_stats_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.params.load_state_dict(state["params"])
        self.start_day = state["start_day"].cpu().to(torch.int64).clone()
        self.weather_seed = state["weather_seed"].cpu().to(torch.int64).clone()
        self._make_weather()  # deterministic in (start day, seed, perturbation): regenerated, not stored
        self.x = state["x"].to(self.device, self.dtype).clone()
        self.t = int(state["t"])
        self.prev_action = state["prev_action"].to(self.device, self.dtype).clone()
        self.model_values = state["model_values"].to(self.device, self.dtype).clone()
        self._episode_gen.set_state(state["episode_generator"].cpu().to(torch.uint8))
        self._noise_gen.set_state(state["noise_generator"].cpu().to(torch.uint8))
        self._noise_on = bool(state["noise_on"])
        self._rate_limited = bool((self.params.values["rate_limit"] < 1).any())
        self._load_episode_stats_state(state)


class GreenhouseEnv(FeatureEnvView):
    """Single-env Gymnasium view of :class:`GreenhouseVecEnv` (CPU, float64 dynamics, NumPy float32 out).

    Same keyword arguments without ``num_envs``/``device``. ``info`` holds the reward terms and ``profit``
    (floats), ``state`` (the physical state, 4 floats), ``co2_ppm``, ``rh``, ``controls`` and
    ``perturbation`` (``{name: float}``). At the end of a season the batched env has already started the
    next one: the view returns the final observation with ``truncated=True``.
    """

    vec_cls = GreenhouseVecEnv
    action_dtype = torch.float64
    action_shape = (1, -1)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", torch.float64)
        super().__init__(**kwargs)


__all__ = ["CONTROL_HIGH", "CONTROL_LOW", "ENV_ID", "INITIAL_STATE", "OBS_FIELDS", "PRICE_PRESETS", "ComfortBands", "GreenhouseEnv",
           "GreenhouseVecEnv", "Prices", "decode_observation", "perturbation_parameters"]
