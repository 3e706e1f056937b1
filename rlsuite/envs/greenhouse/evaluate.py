"""Profit over the greenhouse's fixed evaluation seasons: what the benchmark and the learning tests compare.

:func:`season_figures` runs a policy through the evaluation seasons of ``rlsuite/Greenhouse-Lettuce-v0``
(``scenario="eval"``: one env per ``(start day, weather seed)`` pair of the weather source's
evaluation set), optionally at one perturbation point, and returns per season the profit (crop value
minus heating, CO2 and LED costs), the return (profit minus the comfort penalties) and the penalties.
For returns over a whole uncertainty set use :func:`rlsuite.envs.robust.robust_evaluate`
(``rlsuite eval RUN --robust``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rlsuite.core.vec_env import make_vec_env
from rlsuite.envs.greenhouse.env import ENV_ID


@torch.no_grad()
def season_figures(act: Callable[[torch.Tensor], torch.Tensor], season_days: int = 40, perturbation: dict[str, Any] | None = None,
                   seed: int = 0, device: torch.device | str = "cpu", **env_kwargs: Any) -> dict[str, np.ndarray]:
    """``{"profit", "return", "penalty"}``, each ``(S,)`` EUR m^-2 for the ``S`` evaluation seasons.

    Args:
        act: ``act(obs (S, D)) -> actions (S, n_controls)`` in ``[-1, 1]`` (e.g. ``lambda o: agent.act(o, deterministic=True)``
            or :func:`rlsuite.envs.greenhouse.rules.rule_policy`).
        season_days: days per season.
        perturbation: one point of the env's perturbation parameters (default: nominal).
        seed: seeds the episode noise (parameter noise, sensor noise); the seasons themselves are fixed.
        device: where the env runs.
        **env_kwargs: further arguments of the env (prices, bands, ``led``, ...).
    """
    probe = make_vec_env(ENV_ID, 1, device=device, seed=seed, season_days=season_days, **env_kwargs)
    n = len(probe.evaluation_set)
    probe.close()
    env = make_vec_env(ENV_ID, n, device=device, seed=seed, season_days=season_days, scenario="eval", perturbation=perturbation,
                       **env_kwargs)
    obs, _ = env.reset(seed=seed)
    profit = torch.zeros(n, dtype=torch.float64, device=env.device)
    ret = torch.zeros(n, dtype=torch.float64, device=env.device)
    while True:
        obs, reward, _, truncated, info = env.step(act(obs))
        ret += reward.double()
        profit += info["profit"].double()
        if bool(truncated.all()):
            break
    env.close()
    return {"profit": profit.cpu().numpy(), "return": ret.cpu().numpy(), "penalty": (profit - ret).cpu().numpy()}
