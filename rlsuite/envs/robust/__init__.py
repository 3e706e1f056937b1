"""Robust RL: perturbed environments, uncertainty sets, domain randomisation and robust evaluation.

- :class:`PerturbedEnv` (``gymnasium.make("rlsuite/Perturbed-v0", env="Hopper-v5", ...)``): any
  Gymnasium env whose physics (MuJoCo masses, friction, damping, gear, gravity; CartPole and Pendulum
  constants) and noise (action noise, observation noise, action delay) are set per episode through
  ``reset(options={"perturbation": {...}})``, drawn from an uncertainty set (``domain_rand=``), or left
  nominal; ``info["perturbation"]`` echoes them.
- :class:`PerturbedPendulumVecEnv`: the batched torch pendulum with per-env parameters, on any device
  (``make_vec_env("rlsuite/Perturbed-v0", N, env="rlsuite/Pendulum-v0", device="cuda")``).
- :class:`UncertaintySet` and the named sets (:func:`list_sets`, :func:`get_uncertainty_set`,
  :func:`register_uncertainty_set`): 1- to 3-dimensional boxes per env family.
- :func:`robust_evaluate` (:mod:`rlsuite.envs.robust.evaluate`): a policy over a grid or sample of a set:
  nominal return, mean, worst case, CVaR, area under the curve, heat map; any env that declares
  ``perturbation_parameters`` can be evaluated. ``rlsuite eval RUN --robust`` runs it on a run.

``rlsuite train ALGO --env ID --domain-rand SET`` trains any agent under domain randomisation.
See docs/robust.md.
"""

from rlsuite.envs.robust.batched import PerturbedPendulumVecEnv
from rlsuite.envs.robust.evaluate import RobustResult, cvar, grid_auc, plot_robust, robust_evaluate
from rlsuite.envs.robust.params import NOISE_PARAMETERS
from rlsuite.envs.robust.sets import (
    UNCERTAINTY_SETS,
    Dim,
    UncertaintySet,
    default_set,
    get_uncertainty_set,
    list_sets,
    parse_inline,
    register_uncertainty_set,
    sets_for,
)
from rlsuite.envs.robust.wrapper import PerturbedEnv, make_perturbed_vec

__all__ = [
    "NOISE_PARAMETERS",
    "UNCERTAINTY_SETS",
    "Dim",
    "PerturbedEnv",
    "PerturbedPendulumVecEnv",
    "RobustResult",
    "UncertaintySet",
    "cvar",
    "default_set",
    "get_uncertainty_set",
    "grid_auc",
    "list_sets",
    "make_perturbed_vec",
    "parse_inline",
    "plot_robust",
    "register_uncertainty_set",
    "robust_evaluate",
    "sets_for",
]
