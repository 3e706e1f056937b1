"""Ride-sharing order dispatch: a batched fleet simulator over city zones (OSPO, GRPO).

- :mod:`~rlsuite.envs.dispatch.city`: cities of zones with travel distances and times (the Manhattan
  taxi zones, grids, CSV files), no routing server;
- :mod:`~rlsuite.envs.dispatch.demand`: Poisson demand with an hourly profile and an OD matrix, the NYC
  TLC trip-record loader and replay windows;
- :mod:`~rlsuite.envs.dispatch.env`: :class:`DispatchVecEnv`, the batched torch simulator
  (``rlsuite/Dispatch-Manhattan-v0``), its observation layout and :class:`RewardConfig`;
- :mod:`~rlsuite.envs.dispatch.views`: the single Gymnasium env and the PettingZoo ``ParallelEnv``;
- :mod:`~rlsuite.envs.dispatch.policies`: greedy (nearest vehicle) and random dispatch.

See docs/dispatch.md.
"""

from rlsuite.envs.dispatch.city import City, grid_city, load_city, manhattan_city, zone_graph
from rlsuite.envs.dispatch.demand import (
    HOURLY_PROFILE,
    DemandModel,
    TripRecords,
    fit_demand,
    gravity_od,
    load_tlc_trips,
    synthetic_demand,
)
from rlsuite.envs.dispatch.env import (
    CANDIDATE_FEATURES,
    ENV_ID,
    OBS_DIM,
    ONBOARD_FEATURES,
    PICKUP_ETA,
    VEHICLE_FEATURES,
    DispatchVecEnv,
    RewardConfig,
)
from rlsuite.envs.dispatch.policies import greedy_policy, random_policy
from rlsuite.envs.dispatch.views import DispatchEnv, DispatchParallelEnv

__all__ = [
    "CANDIDATE_FEATURES",
    "ENV_ID",
    "HOURLY_PROFILE",
    "OBS_DIM",
    "ONBOARD_FEATURES",
    "PICKUP_ETA",
    "VEHICLE_FEATURES",
    "City",
    "DemandModel",
    "DispatchEnv",
    "DispatchParallelEnv",
    "DispatchVecEnv",
    "RewardConfig",
    "TripRecords",
    "fit_demand",
    "gravity_od",
    "greedy_policy",
    "grid_city",
    "load_city",
    "load_tlc_trips",
    "manhattan_city",
    "random_policy",
    "synthetic_demand",
    "zone_graph",
]
