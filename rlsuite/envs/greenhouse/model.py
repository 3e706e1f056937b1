"""The Van Henten (1994) lettuce greenhouse model as pure, batched torch functions.

Per square metre of greenhouse floor. Shapes: ``(..., k)`` means any leading batch shape (the env uses
``(N, k)``); parameters are a mapping ``name -> float or tensor`` broadcastable against the leading
shape (the env passes ``(N,)`` columns, one value per env).

State ``x`` ``(..., 4)``:

| index | symbol | quantity | unit |
|---|---|---|---|
| 0 | ``x_d`` | lettuce structural dry weight | kg m^-2 |
| 1 | ``x_c`` | indoor CO2 density | kg m^-3 |
| 2 | ``x_T`` | indoor air temperature | degC |
| 3 | ``x_h`` | indoor absolute humidity (vapour density) | kg m^-3 |

Controls ``u`` ``(..., 3)`` or ``(..., 4)``: ``u_c`` CO2 supply [mg m^-2 s^-1], ``u_v`` ventilation
[mm s^-1], ``u_q`` heating [W m^-2], optionally ``u_L`` LED electric power [W m^-2].

Weather ``d`` ``(..., 4)``: ``d_I`` global radiation [W m^-2], ``d_c`` outdoor CO2 [kg m^-3], ``d_T``
outdoor temperature [degC], ``d_h`` outdoor absolute humidity [kg m^-3].

Dynamics (continuous time, per second), with ``f = 1 - exp(-c_lar x_d)`` (canopy cover),
``g(T) = max(0, -c_co2_1 T^2 + c_co2_2 T - c_co2_3)`` (canopy CO2 conductance, m s^-1),
``c* = max(0, x_c - c_gamma)``, ``I = c_eps (d_I + led_par u_L)`` and ``rho(T) = 2^(0.1 T - 2.5)``:

- photosynthesis ``phi = f I g c* / (I + g c*)`` [kg CO2 m^-2 s^-1]
- ``dx_d/dt = c_alpha_beta phi - c_resp_d x_d rho``
- ``dx_c/dt = (-phi + c_resp_c x_d rho + 1e-6 u_c - (1e-3 u_v + c_leak)(x_c - d_c)) / c_cap_c``
- ``dx_T/dt = (u_q + led_heat u_L - (c_cap_qv 1e-3 u_v + c_ai_ou)(x_T - d_T) + c_rad d_I) / c_cap_q``
- ``dx_h/dt = (f c_v_pl (c_v1 / (c_r (x_T + 273.15)) exp(c_v2 x_T / (x_T + c_v3)) - x_h)
  - (1e-3 u_v + c_leak)(x_h - d_h)) / c_cap_h``

:func:`rk4_step` integrates one control step with the weather and the controls held, in ``substeps``
RK4 sub-steps, clamping the state to physical ranges (:func:`clamp_state`) after each. Unit
conversions: :func:`co2_ppm_to_density` / :func:`co2_density_to_ppm`, :func:`rh_to_vapour_density` /
:func:`vapour_density_to_rh`. Parameter values and sources: docs/greenhouse.md.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import NamedTuple

import torch

Param = float | torch.Tensor

# physical constants of the unit conversions
R_UNIVERSAL = 8.314  # J mol^-1 K^-1
PRESSURE = 101325.0  # Pa
M_CO2 = 0.04401  # kg mol^-1
M_WATER = 0.018015  # kg mol^-1
KELVIN = 273.15

STATE_NAMES = ("dry_weight", "co2", "temperature", "humidity")
CONTROL_NAMES = ("co2_supply", "ventilation", "heating", "led")
WEATHER_NAMES = ("radiation", "co2", "temperature", "humidity")

#: smallest and largest value of each state after a sub-step (the humidity is also capped at saturation)
STATE_LOW = (0.0, 0.0, -40.0, 0.0)
STATE_HIGH = (1.0, 0.03, 70.0, 0.2)


@dataclasses.dataclass(frozen=True)
class VanHentenParams:
    """The model's parameters (Van Henten 1994; values as reproduced by Boersma and van Mourik; sources in
    docs/greenhouse.md)."""

    c_alpha_beta: float = 0.544
    """yield factor: dry matter per CO2 assimilated [-]"""
    c_resp_d: float = 2.65e-7
    """maintenance respiration, in dry matter [s^-1] (at 25 degC)"""
    c_resp_c: float = 4.87e-7
    """maintenance respiration, in CO2 released [s^-1] (at 25 degC)"""
    c_lar: float = 53.0
    """effective canopy surface per dry weight [m^2 kg^-1]"""
    c_eps: float = 3.55e-9
    """light use efficiency [kg CO2 J^-1]"""
    c_co2_1: float = 5.11e-6
    """canopy CO2 conductance, quadratic coefficient [m s^-1 degC^-2]"""
    c_co2_2: float = 2.3e-4
    """canopy CO2 conductance, linear coefficient [m s^-1 degC^-1]"""
    c_co2_3: float = 6.29e-4
    """canopy CO2 conductance, constant [m s^-1]"""
    c_gamma: float = 5.2e-5
    """CO2 compensation point [kg m^-3]"""
    c_cap_c: float = 4.1
    """volumetric capacity of the greenhouse air for CO2 (mean height) [m]"""
    c_cap_h: float = 4.1
    """volumetric capacity of the greenhouse air for vapour [m]"""
    c_cap_q: float = 3.0e4
    """heat capacity of the greenhouse air (and what exchanges heat with it fast) [J m^-2 degC^-1]"""
    c_cap_qv: float = 1290.0
    """heat capacity per volume of air [J m^-3 degC^-1]"""
    c_ai_ou: float = 6.1
    """heat transmission through the cover [W m^-2 degC^-1]"""
    c_rad: float = 0.2
    """fraction of the global radiation that heats the air [-]"""
    c_leak: float = 0.75e-4
    """leakage through the cover [m s^-1]"""
    c_v_pl: float = 3.6e-3
    """mass transfer coefficient of transpiration [m s^-1]"""
    c_v1: float = 9348.0
    """saturation vapour density, constant [J m^-3]"""
    c_v2: float = 17.4
    """saturation vapour density, exponent coefficient [-]"""
    c_v3: float = 239.0
    """saturation vapour density, exponent offset [degC]"""
    c_r: float = 8314.0
    """gas constant [J kmol^-1 K^-1]"""
    led_par: float = 0.55
    """LED light added to the radiation term per W of electric power (PAR efficiency) [-]"""
    led_heat: float = 0.7
    """LED electric power that heats the air [-]"""

    def as_dict(self) -> dict[str, float]:
        """``{name: value}`` in field order."""
        return dataclasses.asdict(self)


#: every parameter name, in field order
PARAM_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(VanHentenParams))
#: the parameters that per-episode noise and the ``<name>_scale`` perturbations act on: the empirical
#: ones (not the gas constant, the saturation-curve constants or the LED hardware)
UNCERTAIN_PARAMS: tuple[str, ...] = tuple(n for n in PARAM_NAMES if n not in ("c_r", "c_v1", "c_v2", "c_v3", "led_par", "led_heat"))


# ------------------------------------------------------------------------------------------- conversions
def co2_density_to_ppm(x_c: torch.Tensor, temperature: Param) -> torch.Tensor:
    """CO2 density [kg m^-3] at ``temperature`` [degC] -> volume fraction [ppm] (ideal gas at 101325 Pa).

    ``ppm = 1e6 R (T + 273.15) x_c / (P M_CO2)``: 1e-3 kg m^-3 at 15 degC is 537.3 ppm.
    """
    return x_c * (1e6 * R_UNIVERSAL / (PRESSURE * M_CO2)) * (temperature + KELVIN)


def co2_ppm_to_density(ppm: torch.Tensor, temperature: Param) -> torch.Tensor:
    """Inverse of :func:`co2_density_to_ppm`: [ppm] at [degC] -> [kg m^-3]."""
    return ppm * (PRESSURE * M_CO2 / (1e6 * R_UNIVERSAL)) / (temperature + KELVIN)


def saturation_vapour_pressure(temperature: torch.Tensor) -> torch.Tensor:
    """Magnus formula [Pa]: ``610.78 exp(17.2694 T / (T + 238.3))`` (T in degC)."""
    return 610.78 * torch.exp(17.2694 * temperature / (temperature + 238.3))


def saturation_vapour_density(temperature: torch.Tensor) -> torch.Tensor:
    """Vapour density at saturation [kg m^-3]: Magnus pressure through the ideal gas law (17.3e-3 at 20 degC)."""
    return saturation_vapour_pressure(temperature) * (M_WATER / R_UNIVERSAL) / (temperature + KELVIN)


def vapour_density_to_rh(x_h: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """Absolute humidity [kg m^-3] at [degC] -> relative humidity [%]."""
    return 100.0 * x_h / saturation_vapour_density(temperature)


def rh_to_vapour_density(rh: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """Relative humidity [%] at [degC] -> absolute humidity [kg m^-3]."""
    return rh / 100.0 * saturation_vapour_density(temperature)


# ------------------------------------------------------------------------------------------- dynamics
class StepInputs(NamedTuple):
    """What stays fixed over one control step (controls, weather and parameters combined), each ``(...)``."""

    light: torch.Tensor
    """``c_eps (d_I + led_par u_L)`` [kg m^-2 s^-1]"""
    exchange: torch.Tensor
    """air exchange with outside ``1e-3 u_v + c_leak`` [m s^-1]"""
    co2_in: torch.Tensor
    """``1e-6 u_c + exchange d_c`` [kg m^-2 s^-1]"""
    heat_in: torch.Tensor
    """``u_q + led_heat u_L + c_rad d_I + heat_loss d_T`` [W m^-2]"""
    heat_loss: torch.Tensor
    """``c_cap_qv 1e-3 u_v + c_ai_ou`` [W m^-2 degC^-1]"""
    vapour_in: torch.Tensor
    """``exchange d_h`` [kg m^-2 s^-1]"""


def step_inputs(u: torch.Tensor, d: torch.Tensor, p: Mapping[str, Param]) -> StepInputs:
    """Combine controls ``u`` ``(..., 3 | 4)``, weather ``d`` ``(..., 4)`` and parameters into :class:`StepInputs`."""
    u_c, u_v, u_q = u[..., 0], u[..., 1], u[..., 2]
    d_i, d_c, d_t, d_h = d.unbind(-1)
    radiation = d_i
    heat = u_q + p["c_rad"] * d_i
    if u.shape[-1] > 3:
        u_l = u[..., 3]
        radiation = d_i + p["led_par"] * u_l
        heat = heat + p["led_heat"] * u_l
    exchange = 1e-3 * u_v + p["c_leak"]
    heat_loss = p["c_cap_qv"] * 1e-3 * u_v + p["c_ai_ou"]
    return StepInputs(light=p["c_eps"] * radiation, exchange=exchange, co2_in=1e-6 * u_c + exchange * d_c,
                      heat_in=heat + heat_loss * d_t, heat_loss=heat_loss, vapour_in=exchange * d_h)


def photosynthesis(x: torch.Tensor, light: torch.Tensor, p: Mapping[str, Param]) -> torch.Tensor:
    """Canopy gross photosynthesis ``phi`` ``(...)`` [kg CO2 m^-2 s^-1] of states ``x`` ``(..., 4)`` under
    ``light = c_eps * radiation`` ``(...)`` (0 in the dark or without CO2 above the compensation point)."""
    x_d, x_c, x_t = x[..., 0], x[..., 1], x[..., 2]
    cover = 1.0 - torch.exp(-p["c_lar"] * x_d)
    g = (p["c_co2_2"] * x_t - p["c_co2_1"] * x_t * x_t - p["c_co2_3"]).clamp_min(0.0)
    gc = g * (x_c - p["c_gamma"]).clamp_min(0.0)
    return cover * light * gc / (light + gc).clamp_min(1e-30)


def _rhs(x: torch.Tensor, s: StepInputs, p: Mapping[str, Param]) -> torch.Tensor:
    x_d, x_c, x_t, x_h = x.unbind(-1)
    cover = 1.0 - torch.exp(-p["c_lar"] * x_d)
    g = (p["c_co2_2"] * x_t - p["c_co2_1"] * x_t * x_t - p["c_co2_3"]).clamp_min(0.0)
    gc = g * (x_c - p["c_gamma"]).clamp_min(0.0)
    phi = cover * s.light * gc / (s.light + gc).clamp_min(1e-30)
    resp = x_d * torch.exp2(0.1 * x_t - 2.5)
    dx_d = p["c_alpha_beta"] * phi - p["c_resp_d"] * resp
    dx_c = (p["c_resp_c"] * resp - phi + s.co2_in - s.exchange * x_c) / p["c_cap_c"]
    dx_t = (s.heat_in - s.heat_loss * x_t) / p["c_cap_q"]
    sat = p["c_v1"] / (p["c_r"] * (x_t + KELVIN)) * torch.exp(p["c_v2"] * x_t / (x_t + p["c_v3"]))
    dx_h = (p["c_v_pl"] * cover * (sat - x_h) + s.vapour_in - s.exchange * x_h) / p["c_cap_h"]
    return torch.stack((dx_d, dx_c, dx_t, dx_h), dim=-1)


def derivatives(x: torch.Tensor, u: torch.Tensor, d: torch.Tensor, p: Mapping[str, Param]) -> torch.Tensor:
    """``dx/dt`` ``(..., 4)`` [state units per second] at state ``x`` ``(..., 4)``, controls ``u`` ``(..., 3 | 4)``,
    weather ``d`` ``(..., 4)`` and parameters ``p`` (see the module docstring)."""
    return _rhs(x, step_inputs(u, d, p), p)


@functools.lru_cache(maxsize=16)
def _bounds(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.tensor(STATE_LOW, dtype=dtype, device=device), torch.tensor(STATE_HIGH, dtype=dtype, device=device))


def clamp_state(x: torch.Tensor) -> torch.Tensor:
    """``x`` ``(..., 4)`` clamped to :data:`STATE_LOW` / :data:`STATE_HIGH`, the humidity also to saturation
    at the clamped temperature (vapour above it condenses)."""
    low, high = _bounds(x.dtype, x.device)
    x = x.clamp(low, high)
    return torch.cat((x[..., :3], torch.minimum(x[..., 3:], saturation_vapour_density(x[..., 2:3]))), dim=-1)


def rk4_step(x: torch.Tensor, u: torch.Tensor, d: torch.Tensor, p: Mapping[str, Param], dt: float = 900.0,
             substeps: int = 4, clamp: bool = True) -> torch.Tensor:
    """The state ``(..., 4)`` after ``dt`` seconds: ``substeps`` classical RK4 steps with ``u`` and ``d`` held.

    Args:
        x: state ``(..., 4)``.
        u: controls ``(..., 3 | 4)`` in physical units (see the module docstring).
        d: weather ``(..., 4)`` in model units.
        p: parameters (floats or tensors broadcastable to ``x[..., 0]``).
        dt: the control step [s].
        substeps: RK4 steps per control step (the fastest time constant, CO2 at full ventilation, is about
            9 minutes: RK4 is stable up to about 2.8 of them per sub-step; 4 sub-steps of 225 s are accurate).
        clamp: clamp to physical ranges after each sub-step (:func:`clamp_state`).
    """
    if substeps < 1:
        raise ValueError(f"substeps must be >= 1, got {substeps}.")
    s = step_inputs(u, d, p)
    h = dt / substeps
    for _ in range(substeps):
        k1 = _rhs(x, s, p)
        k2 = _rhs(x + (0.5 * h) * k1, s, p)
        k3 = _rhs(x + (0.5 * h) * k2, s, p)
        k4 = _rhs(x + h * k3, s, p)
        x = x + (h / 6.0) * (k1 + 2.0 * (k2 + k3) + k4)
        if clamp:
            x = clamp_state(x)
    return x


def heating_steady_state(heating: Param, outdoor_temperature: Param, radiation: Param = 0.0, ventilation: Param = 0.0,
                         p: Mapping[str, Param] | None = None) -> Param:
    """The temperature where ``dx_T/dt = 0`` [degC] under constant heating [W m^-2], outdoor temperature,
    radiation [W m^-2] and ventilation [mm s^-1]: ``d_T + (u_q + c_rad d_I) / (c_ai_ou + c_cap_qv 1e-3 u_v)``."""
    p = p if p is not None else VanHentenParams().as_dict()
    return outdoor_temperature + (heating + p["c_rad"] * radiation) / (p["c_ai_ou"] + p["c_cap_qv"] * 1e-3 * ventilation)


def time_constants(ventilation: float = 7.5, cover: float = 1.0, p: Mapping[str, float] | None = None) -> dict[str, float]:
    """Time constants [s] of the linear parts at ventilation [mm s^-1] and canopy cover ``f`` (for choosing
    sub-steps): temperature ``c_cap_q / (c_ai_ou + c_cap_qv 1e-3 u_v)``, CO2 ``c_cap_c / (1e-3 u_v + c_leak)``,
    humidity ``c_cap_h / (c_v_pl f + 1e-3 u_v + c_leak)``."""
    p = p if p is not None else VanHentenParams().as_dict()
    exchange = 1e-3 * ventilation + p["c_leak"]
    return {"temperature": p["c_cap_q"] / (p["c_ai_ou"] + p["c_cap_qv"] * 1e-3 * ventilation),
            "co2": p["c_cap_c"] / exchange, "humidity": p["c_cap_h"] / (p["c_v_pl"] * cover + exchange)}


__all__ = [
    "CONTROL_NAMES", "PARAM_NAMES", "STATE_HIGH", "STATE_LOW", "STATE_NAMES", "UNCERTAIN_PARAMS", "WEATHER_NAMES",
    "StepInputs", "VanHentenParams", "clamp_state", "co2_density_to_ppm", "co2_ppm_to_density", "derivatives",
    "heating_steady_state", "photosynthesis", "rh_to_vapour_density", "rk4_step", "saturation_vapour_density",
    "saturation_vapour_pressure", "step_inputs", "time_constants", "vapour_density_to_rh",
]
