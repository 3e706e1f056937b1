"""Submodular rewards on grids: set functions, batched grid environments and reference planners."""

from rlsuite.envs.submodular.functions import (
    FacilityLocation,
    GPInformationGain,
    ItemCollection,
    SetFunction,
    SumOf,
    WeightedCoverage,
    bimodal_weights,
    disc_footprint,
    gp_density,
    gp_posterior_kernel,
    grid_xy,
    matern52_kernel,
    nest_density,
)
from rlsuite.envs.submodular.grid import TASKS, SubmodularGridEnv, SubmodularGridVecEnv, make_task
from rlsuite.envs.submodular.planners import beam_plan, greedy_plan

__all__ = [
    "TASKS",
    "SubmodularGridEnv",
    "SubmodularGridVecEnv",
    "beam_plan",
    "greedy_plan",
    "make_task",
    "FacilityLocation",
    "GPInformationGain",
    "ItemCollection",
    "SetFunction",
    "SumOf",
    "WeightedCoverage",
    "bimodal_weights",
    "disc_footprint",
    "gp_density",
    "gp_posterior_kernel",
    "grid_xy",
    "matern52_kernel",
    "nest_density",
]
