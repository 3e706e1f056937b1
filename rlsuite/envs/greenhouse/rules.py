"""The rule-based climate controller: what growers run, as a plain policy on the env's observations.

Set-points switch between day and night (day: the measured global radiation at least
``day_radiation``, the same rule as the comfort bands), and each control follows its set-point with a
proportional rule:

- heating ``u_q = heat_gain (T_heat - T)`` (``T_heat`` = ``heat_day`` or ``heat_night``);
- ventilation ``u_v = max(vent_gain (T - T_vent), rh_gain (RH - rh_vent))`` (``T_vent`` =
  ``vent_day`` or ``vent_night``): open for heat and for humidity;
- CO2 ``u_c = co2_gain (co2_target - CO2)`` by day and only while the vents are (nearly) closed
  (``u_v <= vent_closed``): dosing into open vents feeds the outside air;
- LED (if the env has it) off;

each clipped to its range. The gains are near dead-beat for the 15-minute step: heating 25 W m^-2 per
degC against a one-step response of about 0.027 degC per W m^-2 (``(1 - exp(-900 / 4918)) / 6.1``), CO2
0.005 mg m^-2 s^-1 per ppm against about 120 ppm per mg m^-2 s^-1 over a closed step.

``act = rule_policy()`` (or ``rule_policy(n_controls=4)`` with LED) is an ``act(obs) -> action`` function
for :func:`rlsuite.core.evaluate.evaluate_policy` and :func:`rlsuite.envs.robust.robust_evaluate`;
:func:`rule_controls` gives the physical controls.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from rlsuite.envs.greenhouse.env import CONTROL_HIGH, CONTROL_LOW, decode_observation


@dataclasses.dataclass(frozen=True)
class RuleConfig:
    """Set-points and gains of the rule-based controller."""

    heat_day: float = 17.0
    """heating set-point by day [degC] (day band 15-20)"""
    heat_night: float = 12.0
    """heating set-point at night [degC] (night band 10-15)"""
    vent_day: float = 19.0
    """ventilation set-point by day [degC]"""
    vent_night: float = 14.0
    """ventilation set-point at night [degC]"""
    rh_vent: float = 75.0
    """relative humidity above which the vents open [%]"""
    co2_target: float = 1000.0
    """CO2 set-point while dosing [ppm]"""
    day_radiation: float = 10.0
    """global radiation from which it is day [W m^-2]"""
    heat_gain: float = 25.0
    """[W m^-2 per degC]"""
    vent_gain: float = 2.0
    """[mm s^-1 per degC]"""
    rh_gain: float = 0.5
    """[mm s^-1 per % RH]"""
    co2_gain: float = 0.005
    """[mg m^-2 s^-1 per ppm]"""
    vent_closed: float = 0.5
    """ventilation up to which the vents count as closed for CO2 dosing [mm s^-1]"""


def rule_controls(obs: torch.Tensor, config: RuleConfig | None = None, n_controls: int = 3) -> torch.Tensor:
    """Physical controls ``(N, n_controls)`` (CO2 mg m^-2 s^-1, ventilation mm s^-1, heating W m^-2, LED W m^-2)
    for observations ``(N, D)`` of ``rlsuite/Greenhouse-Lettuce-v0``."""
    c = config if config is not None else RuleConfig()
    if n_controls not in (3, 4):
        raise ValueError(f"n_controls must be 3 (CO2, ventilation, heating) or 4 (with LED), got {n_controls}.")
    o = decode_observation(obs)
    day = o["radiation"] >= c.day_radiation
    temp, rh, ppm = o["temperature"], o["rh"], o["co2_ppm"]
    heat_sp = torch.where(day, c.heat_day, c.heat_night)
    vent_sp = torch.where(day, c.vent_day, c.vent_night)
    heating = (c.heat_gain * (heat_sp - temp)).clamp(CONTROL_LOW[2], CONTROL_HIGH[2])
    vent = torch.maximum(c.vent_gain * (temp - vent_sp), c.rh_gain * (rh - c.rh_vent)).clamp(CONTROL_LOW[1], CONTROL_HIGH[1])
    dosing = day & (vent <= c.vent_closed)
    co2 = torch.where(dosing, c.co2_gain * (c.co2_target - ppm), torch.zeros_like(ppm)).clamp(CONTROL_LOW[0], CONTROL_HIGH[0])
    out = [co2, vent, heating]
    if n_controls == 4:
        out.append(torch.full_like(co2, CONTROL_LOW[3]))
    return torch.stack(out, dim=-1)


def normalise_controls(u: torch.Tensor) -> torch.Tensor:
    """Physical controls ``(N, n)`` -> the env's actions in ``[-1, 1]`` (the inverse of its affine map)."""
    n = u.shape[-1]
    low = torch.tensor(CONTROL_LOW[:n], dtype=u.dtype, device=u.device)
    high = torch.tensor(CONTROL_HIGH[:n], dtype=u.dtype, device=u.device)
    return 2.0 * (u - low) / (high - low) - 1.0


def rule_policy(config: RuleConfig | None = None, n_controls: int = 3) -> Callable[..., torch.Tensor]:
    """``act(obs, mask=None) -> actions (N, n_controls)`` in ``[-1, 1]``: the rule-based controller as a policy."""

    def act(obs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return normalise_controls(rule_controls(obs, config, n_controls))

    return act


__all__ = ["RuleConfig", "normalise_controls", "rule_controls", "rule_policy"]
