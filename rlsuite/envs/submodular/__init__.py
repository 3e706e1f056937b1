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

__all__ = [
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
