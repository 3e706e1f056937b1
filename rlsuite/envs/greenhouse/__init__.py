"""Greenhouse climate control: the Van Henten (1994) lettuce greenhouse, batched in torch.

- :mod:`~rlsuite.envs.greenhouse.model`: the model as pure torch functions (right-hand side, RK4 with
  sub-steps, clamping, unit conversions);
- :mod:`~rlsuite.envs.greenhouse.weather`: the seeded weather generator and the KNMI-style CSV loader;
- :mod:`~rlsuite.envs.greenhouse.env`: :class:`GreenhouseVecEnv` and the single env
  (``gymnasium.make("rlsuite/Greenhouse-Lettuce-v0")``), prices, comfort bands, robustness knobs;
- :mod:`~rlsuite.envs.greenhouse.rules`: the rule-based climate controller;
- :mod:`~rlsuite.envs.greenhouse.evaluate`: profit, return and penalties over the evaluation seasons.

See docs/greenhouse.md.
"""

from rlsuite.envs.greenhouse.env import (
    ENV_ID,
    PRICE_PRESETS,
    ComfortBands,
    GreenhouseEnv,
    GreenhouseVecEnv,
    Prices,
    decode_observation,
    perturbation_parameters,
)
from rlsuite.envs.greenhouse.evaluate import season_figures
from rlsuite.envs.greenhouse.model import VanHentenParams, rk4_step
from rlsuite.envs.greenhouse.rules import RuleConfig, rule_controls, rule_policy
from rlsuite.envs.greenhouse.weather import (
    EVALUATION_SET,
    CSVWeather,
    SyntheticClimate,
    SyntheticWeather,
    load_knmi_csv,
)

__all__ = [
    "ENV_ID",
    "EVALUATION_SET",
    "PRICE_PRESETS",
    "CSVWeather",
    "ComfortBands",
    "GreenhouseEnv",
    "GreenhouseVecEnv",
    "Prices",
    "RuleConfig",
    "SyntheticClimate",
    "SyntheticWeather",
    "VanHentenParams",
    "decode_observation",
    "load_knmi_csv",
    "perturbation_parameters",
    "rk4_step",
    "rule_controls",
    "rule_policy",
    "season_figures",
]
