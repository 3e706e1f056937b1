"""Ride-sharing order dispatch: a batched fleet simulator over city zones, one-minute steps.

``make_vec_env("rlsuite/Dispatch-Manhattan-v0", N, device="cuda")`` gives :class:`DispatchVecEnv`;
``gymnasium.make("rlsuite/Dispatch-Manhattan-v0")`` the single env and
:class:`~rlsuite.envs.dispatch.views.DispatchParallelEnv` the PettingZoo view (one agent per vehicle).
Cities and demand come from :mod:`rlsuite.envs.dispatch.city` and :mod:`rlsuite.envs.dispatch.demand`.

## Description
A fleet of ``V`` identical vehicles with ``capacity`` seats (pooling) serves the orders of a city of
``Z`` zones. Every minute the policy scores each (vehicle, candidate order) pair, the env matches
vehicles to orders with ``scipy.optimize.linear_sum_assignment`` and then moves the fleet one minute.

Position model (no routing server). A vehicle is idle at a zone ``loc`` or on a *leg* to the zone
``loc`` of its next stop, started at ``leg_from`` (a zone; -1 for a leg that began between zones),
``leg_total`` minutes long, with ``eta`` minutes left. It has travelled the fraction
``f = 1 - eta / leg_total`` of it (``f = 1`` at a zone) and is at the interpolated point
``(1 - f) * start + f * centroid(loc)`` (``start``: the centroid of ``leg_from``, or the point where a
broken-off leg was left): the observed ``x, y``. Expected minutes from there to zone ``z``
(``T = city.travel_minutes(now)``)::

    minutes(z) = (1 - f) T[leg_from, z] + f T[loc, z]

the two zones' travel-time rows interpolated linearly (a model choice: no road geometry; in the euclidean
travel model it is never below the straight-line time from the point to another zone, by the convexity
of distance). ``T``'s diagonal (> 0, the mean trip inside a zone) stays in the formula: an order is a
point somewhere in its zone, not the centroid, so ``minutes(z)`` equals an idle vehicle's
``T[leg_from, z]`` at the leg's start and ``T[loc, z]`` on arrival, continuous in time. For ``z = loc`` it
is therefore not the leg's remaining ``eta`` (which reaches the drop-off point being driven to) but
``(1 - f) T[leg_from, loc] + f T[loc, loc]``: without noise (and at an unchanged speed) the remaining
minutes plus the share ``f`` of an intra-zone trip, less than finishing the leg and then driving inside
the zone (``eta + T[loc, loc]``). A leg that began between zones always goes to a pickup, and a vehicle
with a pending pickup takes no order, so ``minutes`` is only ever taken from legs that began at a zone.

Each assigned order holds a seat in one of two states: *to pickup* or *on board*. A vehicle takes a new
order only with a free seat and no pending pickup, so at most one new order per vehicle per minute, and
it may already carry orders (pooling, up to ``capacity``). Route plan: a vehicle matched while on a
drop-off leg **breaks it off** and drives from its current point to the new pickup at once (an idle one
leaves its zone); after the pickup it serves all its drop-offs, the interrupted one included, in the
order that minimises the sum of their drop-off times (all permutations of at most 3 drop-offs; ties: the
first permutation). Without a pending pickup, the drop-off being driven to comes first. Legs are driven
one stop at a time; a leg to zone ``b`` started at episode minute ``t`` takes ``minutes(b)`` at that
minute's speed times ``exp(sigma z - sigma^2 / 2)``, ``z ~ N(0, 1)`` per leg (log-normal, mean one,
``sigma = travel_noise``). The minutes left over when a stop is reached within a minute go into the next
leg. Plans (and so the observed minutes to each drop-off) are re-evaluated at every minute's speed;
without noise a pickup happens exactly at the match minute + its observed ETA.

Orders. New orders appear every minute ``0 .. horizon - 1``: with a :class:`DemandModel`, Poisson counts
per zone at ``demand.rates_at(start_minute + t)`` and destinations drawn from the ``od`` row; with
:class:`TripRecords`, each episode keeps a random ``replay_fraction`` of the window's trips (drawn at
reset) and releases each at its minute. Open orders wait in a pool of ``max_open_orders`` slots; an
order not matched within ``order_patience`` minutes (its age, ``t - appear``, exceeds it) is lost, and
so is an order that finds the pool full (logged once per env object).

Candidates. The pickup ETA of vehicle ``i`` for order ``j`` is ``minutes_i(origin_j)`` of the position
model (expected minutes, no noise; for a vehicle on a leg, breaking it off). A vehicle that can take an
order sees the ``K = num_candidates`` open orders with the smallest ETA among those with ETA <=
``max_pickup_minutes``, nearest first (ties: the zone with the lower index, then the older order, then
the pool slot). Candidate lists are per vehicle: vehicles share a list only when their positions give
the same ETAs, i.e. when they are idle at the same zone. ``K`` limits coverage: an open order that is
among the ``K`` nearest of no available vehicle cannot be matched in that minute, however many vehicles
could reach it (in the default scenario under greedy dispatch, about 30% of the (open order, minute)
pairs within ``max_pickup_minutes`` of some available vehicle are in no list with ``K = 8``, 2% with
``K = 32``; served orders change by under 3%). ``info["pair_mask"]`` marks the feasible (vehicle,
candidate) pairs.

## Action Space
``Box(-inf, inf, (V, K), float32)`` per env: a score per (vehicle, candidate). A pair is eligible when
``pair_mask`` is True and its score is > 0 (not matching scores 0); the env maximises the total score of
the eligible pairs it matches (``linear_sum_assignment(maximize=True)`` per env, on the CPU), each vehicle
and each order at most once. Scores on masked pairs are ignored. Non-finite scores raise ``ValueError``.

## Observation Space
``Box(-inf, inf, (V, K, 28), float32)`` per env, one row per (vehicle, candidate) pair; the vehicle and
seat features repeat in the ``K`` rows of a vehicle. ``x, y`` are positions scaled to the city's
bounding box of zone centroids (``[0, 1]``), times are minutes / 60:

| Index | Feature | Unit / scaling |
|-------|---------|----------------|
| 0, 1 | vehicle ``x, y``: its zone's centroid when idle, the interpolated point on its leg when moving | ``[0, 1]`` |
| 2 | free seats / capacity | ``[0, 1]`` |
| 3 | minutes to the pending pickup (0 if none) | / 60 |
| 4 | busy flag (any seat taken) | 0 or 1 |
| 5 | minute of the episode | / 60 |
| 6 | the vehicle's cumulative reward in the episode | / 100 |
| 7 | the fleet's mean cumulative reward | / 100 |
| 8 + 5 s .. 12 + 5 s | seat ``s`` (0, 1, 2): drop-off zone ``x, y``, minutes to the drop-off (current plan), minutes on board so far, detour minutes (planned in-vehicle minutes - direct minutes: those at the pickup minute's speed once on board, at the match minute's before); zeros for an empty seat (and for ``s >= capacity``) | ``[0, 1]``, / 60 |
| 23, 24 | candidate pickup zone ``x, y`` | ``[0, 1]`` |
| 25, 26 | candidate drop-off zone ``x, y`` | ``[0, 1]`` |
| 27 | candidate pickup ETA | / 60 |

Candidate features are zero where ``pair_mask`` is False. A seat waiting for its pickup shows its planned
minutes to the drop-off, 0 minutes on board and its planned detour. Index constants:
:data:`VEHICLE_FEATURES`, :data:`ONBOARD_FEATURES`, :data:`CANDIDATE_FEATURES`, :data:`PICKUP_ETA`.

## Rewards
Per matched order (Zhao & Li 2025, beta = (3, 1, 3, 1, 3, 5), threshold 40 min, :class:`RewardConfig`)::

    r = 3 + 1 direct_km - 3 pickup_min / 60 - 1 n_over - 3 added_min / 60 - 5 max(added_min - 40, 0) / 60

- ``pickup_min``: the pair's pickup ETA (as observed);
- ``direct_km``: ``city.distance_km[origin, destination]``;
- ``added_min``: the increase of the remaining in-vehicle minutes of the orders already on board (their
  planned drop-off times after the match minus before it, summed; a break-off for the pickup delays them)
  plus the new order's planned detour (its planned in-vehicle minutes minus its direct minutes
  ``T[origin, destination]``, both at the match minute's speed);
- ``n_over`` (the paper's "# onboard orders whose total travel exceeds 40 min"): the number of orders in
  the vehicle after the match, i.e. the orders on board plus the new one (it is the only one waiting for
  a pickup: a vehicle with a pending pickup takes no order), whose planned in-vehicle minutes exceed the
  threshold. For an order on board: minutes since its pickup plus the minutes to its drop-off under the
  new plan; for the new order: its planned minutes from pickup to drop-off. The pickup wait is not
  counted (the reference code counts it for the new order; here it has its own term, ``pickup_min``).

``info["vehicle_reward"]`` ``(N, V)`` holds each vehicle's reward of the step; the env's reward is their
sum over the fleet.

## Info
After ``reset`` and every ``step``: ``pair_mask`` ``(N, V, K)`` bool and ``vehicle_available`` ``(N, V)``
bool, of the returned observation (where an episode ended, the next episode's first; the mask of
``info["final_obs"]`` is :attr:`DispatchVecEnv.final_pair_mask`). After every step also: ``vehicle_reward`` ``(N, V)`` float32,
``assigned`` ``(N, V)`` int64 (matched candidate index, -1 none), ``acted`` ``(N, V)`` bool (vehicles
with a feasible pair in the observation the action was taken on), ``vehicle_cum_reward`` ``(N, V)``
float32 (episode-cumulative, before any reset), the step's ``served`` (matched), ``lost``,
``delivered`` and ``pickup_minutes`` (sum of the matched ETAs), each ``(N,)`` float32, and the episode's
figures so far (the finished episode's where ``info["_final_obs"]``): ``episode_served``,
``episode_lost``, ``episode_delivered`` (counts), ``episode_pickup_min`` (mean ETA over matched orders),
``episode_delivery_min`` (mean minutes on board over delivered orders), ``episode_detour_min`` (mean of
minutes on board - direct minutes ``T[origin, destination]`` at the speed of the pickup minute, over
delivered orders: 0 for a direct ride without noise, > 0 when pooling adds stops), ``episode_confirmation_min`` (mean minutes from
appearance to match over matched orders), ``episode_reward_spread`` (std over vehicles of their
cumulative reward), each ``(N,)`` float32 (a mean over no orders is 0). Orders still on board when the
episode ends count as served, not delivered; orders still open are neither served nor lost.

## Starting State
Vehicles empty and idle at uniformly drawn zones (``eta = 0``), the pool empty, then minute 0's orders.
``reset(seed=s)`` seeds env ``i`` of the batch with ``s + i``: it draws exactly what a single env reset
with ``s + i`` draws (vehicle positions, replay subsample, arrivals, leg noise).

## Episode End
Never terminates; truncated after ``horizon`` steps, every env of the batch at the same step (same-step
autoreset, ``info["final_obs"]``).

## Arguments
``num_envs``, ``device``, ``city`` (a :class:`City`, ``"manhattan"`` or ``"grid<R>x<C>"``), ``demand``
(:class:`DemandModel`, :class:`TripRecords`, or None: ``synthetic_demand(city, orders_per_minute,
at_minute=start_minute)``), ``orders_per_minute`` (150), ``num_vehicles`` (1000), ``capacity`` (3, 1..3),
``num_candidates`` (8), ``horizon`` (30 minutes), ``start_minute`` (19:00 = 1140; a :class:`TripRecords`
``demand`` brings its own, ``trips=`` starts its window here), ``order_patience`` (5 minutes),
``max_pickup_minutes`` (20), ``travel_noise`` (0.1), ``replay_fraction`` (0.95), ``max_open_orders`` (2048),
``reward`` (:class:`RewardConfig` or a dict).

Real data by plain (JSON-able) keywords, for ``rlsuite train --env-kwargs`` and ``gymnasium.make``; paths are
strings, relative ones resolved against the working directory (give absolute paths to a run that is evaluated
from elsewhere: the run keeps the keywords as given), each file read once per content (a small cache):

- ``zones_csv`` (None), ``travel_csv`` (None): ``city = load_city(zones_csv, travel_csv)`` (zones
  ``zone_id,x_km,y_km`` or ``zone_id,lat,lon``; travel ``origin,destination,minutes[,km]``, optional). It
  replaces the default ``city="manhattan"``; another ``city`` with ``zones_csv``, or ``travel_csv`` without
  ``zones_csv``, is an error.
- ``trips`` (None): an NYC TLC trip-record file (CSV or parquet), with ``trips_date`` (``"YYYY-MM-DD"``,
  required with ``trips``): the trips picked up that day from ``start_minute`` to ``start_minute + horizon``
  with both zones in the city (``load_tlc_trips(trips, city, trips_date, start_minute as HH:MM, horizon)``;
  a window without any is an error). ``trips_mode`` (``"replay"``): ``"replay"`` replays them
  (``demand=records``, ``replay_fraction`` of them per episode), ``"fit"`` samples Poisson demand fitted to
  them (``demand=fit_demand(records, city)``); ``orders_per_minute`` is not used. Errors: ``trips`` without
  ``trips_date`` or together with ``demand``; ``trips_date`` or ``trips_mode="fit"`` without ``trips``. The
  loaded records are :attr:`DispatchVecEnv.trip_records` (None without ``trips``).

A missing file raises ``FileNotFoundError`` naming the keyword and the path.

## Version History
* v0: initial version.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import itertools
import logging
import math
import re
from collections import OrderedDict
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from rlsuite.core.seeding import resolve_device
from rlsuite.core.vec_env import TorchVecEnv
from rlsuite.envs.dispatch.city import City, grid_city, load_city, manhattan_city
from rlsuite.envs.dispatch.demand import (
    DemandModel,
    TripRecords,
    fit_demand,
    load_tlc_trips,
    synthetic_demand,
)

logger = logging.getLogger(__name__)

ENV_ID = "rlsuite/Dispatch-Manhattan-v0"
OBS_DIM = 28
#: observation feature blocks (last axis): vehicle 8, seats 3 x 5, candidate 5
VEHICLE_FEATURES = slice(0, 8)
ONBOARD_FEATURES = slice(8, 23)
CANDIDATE_FEATURES = slice(23, 28)
#: the candidate's pickup ETA / 60 (0 where the pair is masked)
PICKUP_ETA = 27
MAX_CAPACITY = 3
SEAT_DIM = 5
#: seat states
EMPTY, TO_PICKUP, ONBOARD = 0, 1, 2
#: city names the constructor takes besides a City (``grid<R>x<C>``: :func:`grid_city` (R, C))
CITY_NAMES = ("manhattan", "grid<R>x<C>")
#: the city of the constructor's default (``city="manhattan"``); ``zones_csv`` replaces it
DEFAULT_CITY = "manhattan"
#: what the env does with the trips of ``trips=``: replay them, or fit a Poisson :class:`DemandModel` to them
TRIPS_MODES = ("replay", "fit")
_GRID = re.compile(r"grid(\d+)x(\d+)")


@dataclasses.dataclass(frozen=True)
class RewardConfig:
    """The reward of one matched order (see the module docstring); defaults: Zhao & Li 2025."""

    base: float = 3.0
    """beta_1: paid per matched order"""
    distance: float = 1.0
    """beta_2: per km of the order's direct trip"""
    pickup: float = 3.0
    """beta_3: per hour of pickup ETA"""
    long_trips: float = 1.0
    """beta_4: per order in the vehicle after the match (those on board and the new one) whose planned in-vehicle
    minutes exceed ``threshold_min``: minutes since pickup + planned minutes to the drop-off for an order on board,
    planned pickup-to-drop-off minutes for the new one (its pickup wait excluded; see the module docstring)"""
    added: float = 3.0
    """beta_5: per hour of added in-vehicle minutes (the delay of the orders on board + the new order's detour)"""
    excess: float = 5.0
    """beta_6: per hour of added minutes beyond ``threshold_min``"""
    threshold_min: float = 40.0
    """threshold [min] of the long-trip count and of the excess term"""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if not math.isfinite(getattr(self, f.name)):
                raise ValueError(f"RewardConfig.{f.name} must be finite, got {getattr(self, f.name)}.")
        if self.threshold_min < 0:
            raise ValueError(f"RewardConfig.threshold_min must be >= 0, got {self.threshold_min}.")


def resolve_city(city: City | str) -> City:
    """A :class:`City` from a City or a name of :data:`CITY_NAMES` (``"manhattan"``, ``"grid3x4"``)."""
    if isinstance(city, City):
        return city
    if isinstance(city, str):
        name = city.strip().lower()
        if name == "manhattan":
            return manhattan_city()
        m = _GRID.fullmatch(name)
        if m:
            return grid_city(int(m.group(1)), int(m.group(2)))
        raise ValueError(f"unknown city {city!r}; allowed: a City object or one of {', '.join(CITY_NAMES)} (e.g. 'grid3x3').")
    raise TypeError(f"city must be a City or a name ({', '.join(CITY_NAMES)}), got {type(city).__name__}.")


def _reward_config(value: RewardConfig | Mapping[str, float] | None) -> RewardConfig:
    if value is None:
        return RewardConfig()
    if isinstance(value, RewardConfig):
        return value
    if isinstance(value, Mapping):
        fields = {f.name for f in dataclasses.fields(RewardConfig)}
        unknown = sorted(set(value) - fields)
        if unknown:
            raise ValueError(f"unknown reward field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(fields))}.")
        return RewardConfig(**{k: float(v) for k, v in value.items()})
    raise TypeError(f"reward must be a RewardConfig or a dict of its fields, got {type(value).__name__}.")


# ------------------------------------------------------------------ data files named by keyword (CLI, gymnasium.make)
def _data_file(value: Any, name: str, what: str) -> Path:
    """The path of keyword ``name`` (a str or PathLike naming an existing file), or a clear error."""
    if not isinstance(value, str | PathLike):
        raise TypeError(f"{name} = {value!r} is a {type(value).__name__}; {name} must be the path of {what} (a string).")
    path = Path(value).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{name} = {str(value)!r}: no such file ({path.absolute()}); fix: pass the path of {what}; "
                                f"a relative path is resolved against the working directory, {Path.cwd()}.")
    return path


def _file_key(path: Path) -> tuple[str, int, int]:
    """``(resolved path, mtime_ns, size)``: a cache key that changes when the file does."""
    st = path.stat()
    return str(path.resolve()), st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=4)
def _cached_city(zones: tuple[str, int, int], travel: tuple[str, int, int] | None) -> City:
    return load_city(zones[0], None if travel is None else travel[0])


_TRIPS_CACHE: OrderedDict[tuple, TripRecords] = OrderedDict()


def _cached_trips(path: Path, city: City, date: str, start: str, minutes: int) -> TripRecords:
    """:func:`load_tlc_trips`, kept for the last 4 (file content, city zone ids, window): a month's parquet file is
    read once, not once per env an evaluation builds (the records are read-only)."""
    key = (_file_key(path), city.zone_ids.tobytes(), date, start, minutes)
    if key in _TRIPS_CACHE:
        _TRIPS_CACHE.move_to_end(key)
        return _TRIPS_CACHE[key]
    records = _TRIPS_CACHE[key] = load_tlc_trips(path, city, date=date, start=start, minutes=minutes)
    while len(_TRIPS_CACHE) > 4:
        _TRIPS_CACHE.popitem(last=False)
    return records


def city_from_args(city: City | str, zones_csv: str | PathLike | None, travel_csv: str | PathLike | None) -> City:
    """The env's city: :func:`resolve_city` of ``city``, or :func:`load_city` ``(zones_csv, travel_csv)`` (which
    replaces the default ``city="manhattan"``; any other ``city`` with ``zones_csv`` is an error). Files are read
    once per content (an LRU cache keyed on path, size and modification time)."""
    if zones_csv is None:
        if travel_csv is not None:
            raise ValueError(f"travel_csv = {str(travel_csv)!r} without zones_csv; a travel table is over the zones of a zone "
                             "table; fix: pass zones_csv (zone_id,x_km,y_km or zone_id,lat,lon) too.")
        return resolve_city(city)
    if not (isinstance(city, str) and city.strip().lower() == DEFAULT_CITY):
        given = f"City {city.name!r}" if isinstance(city, City) else repr(city)
        raise ValueError(f"city = {given} and zones_csv = {str(zones_csv)!r} both choose the city; allowed: one of them "
                         f"(zones_csv loads the city from CSV in place of the default city={DEFAULT_CITY!r}); fix: drop city "
                         "or zones_csv.")
    zones = _file_key(_data_file(zones_csv, "zones_csv", "a zone table CSV (zone_id,x_km,y_km or zone_id,lat,lon)"))
    travel = None if travel_csv is None else _file_key(
        _data_file(travel_csv, "travel_csv", "a travel-time CSV (origin,destination,minutes[,km])"))
    return _cached_city(zones, travel)


def demand_from_args(city: City, demand: DemandModel | TripRecords | None, trips: str | PathLike | None, trips_date: str | None,
                     trips_mode: str, start_minute: int, horizon: int) -> tuple[DemandModel | TripRecords | None, TripRecords | None]:
    """``(demand, trip records)`` of the env: ``demand`` as given when ``trips`` is None; else the TLC trips of
    ``trips`` (a file) picked up on ``trips_date`` from ``start_minute`` to ``start_minute + horizon`` inside
    ``city`` (:func:`load_tlc_trips`), replayed (``trips_mode="replay"``: the records) or fitted
    (``"fit"``: :func:`fit_demand` of them). Files are read once per content and window (an LRU cache)."""
    if trips_mode not in TRIPS_MODES:
        raise ValueError(f"trips_mode = {trips_mode!r}; allowed: {', '.join(map(repr, TRIPS_MODES))} (replay the day's trips, "
                         "or fit Poisson demand to them).")
    if trips is None:
        if trips_date is not None:
            raise ValueError(f"trips_date = {trips_date!r} without trips; fix: pass trips (a TLC trip-record CSV or parquet file) "
                             "too, or drop trips_date.")
        if trips_mode != "replay":
            raise ValueError(f"trips_mode = {trips_mode!r} without trips; trips_mode says what to do with the trips of trips=; "
                             "fix: pass trips (a TLC trip-record file) and trips_date, or drop trips_mode.")
        return demand, None
    if demand is not None:
        raise ValueError(f"demand = {type(demand).__name__} and trips = {str(trips)!r} both set the demand; allowed: one of them; "
                         "fix: drop demand (trips loads the TLC records) or trips.")
    path = _data_file(trips, "trips", "an NYC TLC trip-record file (.csv or .parquet)")
    if trips_date is None:
        raise ValueError(f"trips = {str(trips)!r} without trips_date; a TLC file holds many days; fix: pass trips_date, the day "
                         "to replay as YYYY-MM-DD (e.g. \"trips_date\": \"2024-07-17\"); the window is start_minute .. "
                         "start_minute + horizon of that day.")
    try:
        day = dt.date.fromisoformat(trips_date) if isinstance(trips_date, str) else None
    except ValueError:
        day = None
    if day is None:
        raise ValueError(f"trips_date = {trips_date!r}; expected a day as YYYY-MM-DD, e.g. '2024-07-17'.")
    start = f"{start_minute // 60:02d}:{start_minute % 60:02d}"
    records = _cached_trips(path, city, day.isoformat(), start, horizon)
    if records.num_trips == 0:
        raise ValueError(f"trips = {str(trips)!r}: no trips on {day.isoformat()} {start} + {horizon} min with both zones in the city "
                         f"{city.name!r}; fix: check trips_date (a day the file covers), start_minute and horizon (the window), "
                         "and that the city's zone ids are the file's PULocationID/DOLocationID (the log says what was dropped).")
    return (records if trips_mode == "replay" else fit_demand(records, city)), records


#: every tensor of the state (the episode's state; the rest is fixed by the constructor)
_STATE = (
    # vehicles (N, V); leg_xy (N, V, 2)
    "loc", "eta", "target", "leg_from", "leg_total", "leg_xy", "cum_reward",
    # seats (N, V, C)
    "seat_status", "seat_origin", "seat_dest", "seat_uid", "seat_picked", "seat_direct",
    # the open-order pool (N, O)
    "pool_active", "pool_origin", "pool_dest", "pool_appear", "pool_uid",
    # counters (N,)
    "next_uid", "n_appeared", "n_served", "n_lost", "n_delivered", "sum_pickup", "sum_confirm", "sum_delivery", "sum_detour",
    # replay subsample (N, M)
    "replay_keep",
)


class DispatchVecEnv(TorchVecEnv):
    """``num_envs`` copies of the dispatch problem stepped together on ``device`` (see the module docstring).

    Shapes: ``N = num_envs``, ``V = num_vehicles``, ``C = capacity``, ``K = num_candidates``,
    ``O = max_open_orders``, ``Z`` zones. Arguments: the module docstring's "Arguments" (``zones_csv``,
    ``travel_csv``, ``trips``, ``trips_date``, ``trips_mode``: cities and TLC trips from files by name).
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1,
        device: torch.device | str = "cpu",
        city: City | str = "manhattan",
        demand: DemandModel | TripRecords | None = None,
        orders_per_minute: float = 150.0,
        num_vehicles: int = 1000,
        capacity: int = 3,
        num_candidates: int = 8,
        horizon: int = 30,
        start_minute: int = 19 * 60,
        order_patience: int = 5,
        max_pickup_minutes: float = 20.0,
        travel_noise: float = 0.1,
        replay_fraction: float = 0.95,
        max_open_orders: int = 2048,
        reward: RewardConfig | Mapping[str, float] | None = None,
        zones_csv: str | PathLike | None = None,
        travel_csv: str | PathLike | None = None,
        trips: str | PathLike | None = None,
        trips_date: str | None = None,
        trips_mode: str = "replay",
    ) -> None:
        self._check_args(num_envs, num_vehicles, capacity, num_candidates, horizon, start_minute, order_patience,
                         max_pickup_minutes, travel_noise, replay_fraction, max_open_orders, orders_per_minute)
        self.num_envs, self.device = int(num_envs), resolve_device(device)
        self.city = city_from_args(city, zones_csv, travel_csv)
        demand, self.trip_records = demand_from_args(self.city, demand, trips, trips_date, trips_mode, int(start_minute), int(horizon))
        self.num_vehicles, self.capacity, self.num_candidates = int(num_vehicles), int(capacity), int(num_candidates)
        self.horizon, self.order_patience = int(horizon), int(order_patience)
        self.max_pickup_minutes, self.travel_noise = float(max_pickup_minutes), float(travel_noise)
        self.replay_fraction, self.max_open_orders = float(replay_fraction), int(max_open_orders)
        self.orders_per_minute = float(orders_per_minute)
        self.reward_config = _reward_config(reward)
        self.demand = synthetic_demand(self.city, self.orders_per_minute, at_minute=start_minute) if demand is None else demand
        self.replay = isinstance(self.demand, TripRecords)
        self.start_minute = int(self.demand.start_minute) if self.replay else int(start_minute)
        if self.replay and self.start_minute != start_minute:
            logger.info("trip records start at minute %d of the day; the env's clock follows them (start_minute=%d ignored).",
                        self.start_minute, start_minute)

        n, v, c, k, z, o = self.num_envs, self.num_vehicles, self.capacity, self.num_candidates, self.city.num_zones, self.max_open_orders
        dev = self.device
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (v, k, OBS_DIM), np.float32)
        self.single_action_space = gym.spaces.Box(-np.inf, np.inf, (v, k), np.float32)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, n)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, n)

        # the city on the device
        xy = np.asarray(self.city.xy_km, dtype=np.float64)
        lo, span = xy.min(0), xy.max(0) - xy.min(0)
        span[span <= 0] = 1.0
        self._xy = torch.tensor((xy - lo) / span, dtype=torch.float32, device=dev)  # (Z, 2) in [0, 1]
        self._distance_km = torch.tensor(self.city.distance_km, dtype=torch.float32, device=dev)  # (Z, Z)
        self._travel = torch.tensor(self.city.travel_min, dtype=torch.float32, device=dev)  # (Z, Z) free flow
        self._speed = [self.city.speed_factor(self.start_minute + t) for t in range(self.horizon + 1)]
        perms = list(itertools.permutations(range(c)))
        self._perms = torch.tensor(perms, dtype=torch.int64, device=dev)  # (P, C): seat at each position
        self._inv_perms = torch.tensor(np.array([np.argsort(p) for p in perms]), dtype=torch.int64, device=dev)  # (P, C): position of each seat
        self._arange_o = torch.arange(o, device=dev)
        self._arange_k = torch.arange(k, device=dev)
        self._arange_z = torch.arange(z, device=dev)
        self._arange_c = torch.arange(c, device=dev)

        # demand on the device
        if self.replay:
            trips = self.demand
            if trips.num_trips and (max(trips.origin.max(), trips.destination.max()) >= z):
                raise ValueError(f"trip records hold zone indices up to {max(trips.origin.max(), trips.destination.max())}; "
                                 f"the city {self.city.name!r} has {z} zones (indices 0 .. {z - 1}).")
            if trips.minutes < self.horizon:
                logger.warning("trip records cover %d minutes, the episode %d: the last minutes bring no orders.",
                               trips.minutes, self.horizon)
            order = np.argsort(trips.minute, kind="stable")
            minute = trips.minute[order]
            self._trip_origin = torch.tensor(trips.origin[order], dtype=torch.int64, device=dev)
            self._trip_dest = torch.tensor(trips.destination[order], dtype=torch.int64, device=dev)
            self._trip_offsets = np.searchsorted(minute, np.arange(self.horizon + 1), side="left")  # trips of minute t: [off[t], off[t+1])
            self._num_trips = int(trips.num_trips)
        elif isinstance(self.demand, DemandModel):
            if self.demand.num_zones != z:
                raise ValueError(f"the demand model has {self.demand.num_zones} zones, the city {self.city.name!r} {z}.")
            rates = np.stack([self.demand.rates_at(self.start_minute + t) for t in range(self.horizon)])
            self._rates = torch.tensor(rates, dtype=torch.float32, device=dev)  # (H, Z) orders per minute
            self._od = torch.tensor(self.demand.od, dtype=torch.float32, device=dev)  # (Z, Z)
            self._num_trips = 0
        else:
            raise TypeError(f"demand must be a DemandModel, TripRecords or None, got {type(self.demand).__name__}.")

        self._gens = [torch.Generator(device=dev) for _ in range(n)]
        base = int(np.random.SeedSequence().generate_state(1)[0])
        for i, g in enumerate(self._gens):
            g.manual_seed(base + i)
        self._overflow_logged = False
        self._init_episode_stats()
        self._start_episodes()
        self._final_pair_mask = self._pair_mask  # (N, V, K) of the last step's returned observation before any reset

    @staticmethod
    def _check_args(num_envs, num_vehicles, capacity, num_candidates, horizon, start_minute, order_patience,
                    max_pickup_minutes, travel_noise, replay_fraction, max_open_orders, orders_per_minute) -> None:
        checks = (
            ("num_envs", num_envs, isinstance(num_envs, int | np.integer) and num_envs >= 1, "an integer >= 1"),
            ("num_vehicles", num_vehicles, isinstance(num_vehicles, int | np.integer) and num_vehicles >= 1, "an integer >= 1"),
            ("capacity", capacity, isinstance(capacity, int | np.integer) and 1 <= capacity <= MAX_CAPACITY,
             f"an integer in 1..{MAX_CAPACITY} (the observation has {MAX_CAPACITY} seat slots)"),
            ("num_candidates", num_candidates, isinstance(num_candidates, int | np.integer) and num_candidates >= 1, "an integer >= 1"),
            ("horizon", horizon, isinstance(horizon, int | np.integer) and horizon >= 1, "an integer >= 1 (minutes)"),
            ("start_minute", start_minute, isinstance(start_minute, int | np.integer) and 0 <= start_minute < 24 * 60,
             "an integer minute of the day in 0..1439"),
            ("order_patience", order_patience, isinstance(order_patience, int | np.integer) and order_patience >= 0,
             "an integer >= 0 (minutes)"),
            ("max_pickup_minutes", max_pickup_minutes, math.isfinite(max_pickup_minutes) and max_pickup_minutes > 0, "a number > 0"),
            ("travel_noise", travel_noise, math.isfinite(travel_noise) and travel_noise >= 0, "a number >= 0 (log-normal sigma)"),
            ("replay_fraction", replay_fraction, 0 < replay_fraction <= 1, "a number in (0, 1]"),
            ("max_open_orders", max_open_orders, isinstance(max_open_orders, int | np.integer) and max_open_orders >= 1,
             "an integer >= 1"),
            ("orders_per_minute", orders_per_minute, math.isfinite(orders_per_minute) and orders_per_minute > 0, "a number > 0"),
        )
        for name, value, ok, allowed in checks:
            if not ok:
                raise ValueError(f"{name} = {value!r} is not allowed; {name} must be {allowed}.")

    # ------------------------------------------------------------------ episodes
    def _travel_now(self) -> torch.Tensor:
        """``(Z, Z)`` float32 expected travel minutes at the current minute."""
        return self._travel / self._speed[min(self.t, self.horizon)]

    def _start_episodes(self) -> None:
        """Every env starts an episode: empty vehicles at random zones, an empty pool, minute 0's orders."""
        n, v, c, o, z, dev = self.num_envs, self.num_vehicles, self.capacity, self.max_open_orders, self.city.num_zones, self.device
        i64, f32 = {"dtype": torch.int64, "device": dev}, {"dtype": torch.float32, "device": dev}
        self.t = 0
        self.loc = torch.stack([torch.randint(0, z, (v,), generator=g, device=dev) for g in self._gens])
        self.eta = torch.zeros((n, v), **f32)
        self.target = torch.full((n, v), -1, **i64)
        self.leg_from = self.loc.clone()
        self.leg_total = torch.zeros((n, v), **f32)
        self.leg_xy = self._xy[self.loc]
        self.cum_reward = torch.zeros((n, v), **f32)
        self.seat_status = torch.zeros((n, v, c), **i64)
        self.seat_origin = torch.zeros((n, v, c), **i64)
        self.seat_dest = torch.zeros((n, v, c), **i64)
        self.seat_uid = torch.full((n, v, c), -1, **i64)
        self.seat_picked = torch.zeros((n, v, c), **f32)
        self.seat_direct = torch.zeros((n, v, c), **f32)
        self.pool_active = torch.zeros((n, o), dtype=torch.bool, device=dev)
        self.pool_origin = torch.zeros((n, o), **i64)
        self.pool_dest = torch.zeros((n, o), **i64)
        self.pool_appear = torch.zeros((n, o), **i64)
        self.pool_uid = torch.full((n, o), -1, **i64)
        for name in ("next_uid", "n_appeared", "n_served", "n_lost", "n_delivered"):
            setattr(self, name, torch.zeros(n, **i64))
        for name in ("sum_pickup", "sum_confirm", "sum_delivery", "sum_detour"):
            setattr(self, name, torch.zeros(n, dtype=torch.float64, device=dev))
        self.replay_keep = torch.zeros((n, self._num_trips), dtype=torch.bool, device=dev)
        if self.replay and self._num_trips:
            kept = int(round(self.replay_fraction * self._num_trips))
            for e, g in enumerate(self._gens):
                self.replay_keep[e, torch.randperm(self._num_trips, generator=g, device=dev)[:kept]] = True
        self._arrivals()
        self._last_obs = self._observe()

    def _new_orders(self, e: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Origins and destinations ``(n,)`` of env ``e``'s orders appearing at the current minute."""
        g, t = self._gens[e], self.t
        if self.replay:
            lo, hi = int(self._trip_offsets[t]), int(self._trip_offsets[t + 1])
            keep = self.replay_keep[e, lo:hi]
            return self._trip_origin[lo:hi][keep], self._trip_dest[lo:hi][keep]
        counts = torch.poisson(self._rates[t], generator=g).to(torch.int64)  # (Z,)
        origin = torch.repeat_interleave(self._arange_z, counts)
        if origin.numel() == 0:
            return origin, origin.clone()
        dest = torch.multinomial(self._od[origin], 1, replacement=True, generator=g).squeeze(1)
        return origin, dest

    def _arrivals(self) -> torch.Tensor:
        """Put the current minute's new orders into the pool; returns the orders lost to a full pool ``(N,)``."""
        overflow = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        if self.t >= self.horizon:
            return overflow
        for e in range(self.num_envs):
            origin, dest = self._new_orders(e)
            m = int(origin.numel())
            if m == 0:
                continue
            free = torch.nonzero(~self.pool_active[e]).squeeze(1)[:m]
            placed = int(free.numel())
            if placed < m:
                overflow[e] = m - placed
                if not self._overflow_logged:
                    logger.warning("the order pool is full (max_open_orders=%d): %d new orders of env %d at minute %d are lost; "
                                   "raise max_open_orders (logged once).", self.max_open_orders, m - placed, e, self.t)
                    self._overflow_logged = True
            uid = self.next_uid[e] + torch.arange(placed, device=self.device)
            self.pool_active[e, free] = True
            self.pool_origin[e, free] = origin[:placed]
            self.pool_dest[e, free] = dest[:placed]
            self.pool_appear[e, free] = self.t
            self.pool_uid[e, free] = uid
            self.next_uid[e] += m
            self.n_appeared[e] += m
        self.n_lost += overflow
        return overflow

    def _expire(self) -> torch.Tensor:
        """Remove the open orders older than ``order_patience``; returns how many per env ``(N,)``."""
        expired = self.pool_active & (self.t - self.pool_appear > self.order_patience)
        self.pool_active = self.pool_active & ~expired
        lost = expired.sum(-1)
        self.n_lost += lost
        return lost

    # ------------------------------------------------------------------ positions and routes
    @staticmethod
    def _progress(eta: torch.Tensor, leg_total: torch.Tensor) -> torch.Tensor:
        """Fraction ``f`` of the current leg travelled: ``1 - eta / leg_total`` on a leg, 1 at a zone (``eta <= 0``)."""
        return torch.where(eta > 0, 1.0 - eta / torch.maximum(leg_total, eta), 1.0)

    @staticmethod
    def _minutes_from(travel: torch.Tensor, start: torch.Tensor, end: torch.Tensor, f: torch.Tensor, zone: torch.Tensor) -> torch.Tensor:
        """Expected minutes from the point ``f`` of the way from zone ``start`` to zone ``end`` to zone ``zone``:
        ``(1 - f) T[start, zone] + f T[end, zone]`` (the position model of the module docstring); any shape
        (``zone`` broadcasts against the others). ``start`` < 0 (a leg that began between zones) counts as zone 0;
        it is used only where ``f = 1``."""
        z = travel.shape[0]
        flat = travel.reshape(-1)
        return (1.0 - f) * flat[start.clamp(min=0) * z + zone] + f * flat[end * z + zone]

    def _plan(self, travel: torch.Tensor, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Route plans from now, of every vehicle or of the vehicles ``rows``.

        With a pending pickup the vehicle drives there first: it is on that leg already (``target`` is the
        pickup), or it leaves its position now (an idle vehicle, or one breaking off its drop-off leg: the
        position model of the module docstring). Without one, the drop-off being driven to (``target``)
        comes first, reached in ``eta`` minutes. Then the remaining drop-offs (the interrupted one
        included) in the order minimising the sum of their drop-off times (every permutation of the seats,
        empty ones skipped; ties: the first permutation).

        Args:
            travel: ``(Z, Z)`` expected minutes.
            rows: ``(M,)`` int64 flat vehicle indices ``e * V + i``, or None for the whole fleet.

        Returns:
            ``drop`` ``(N, V, C)`` (``(M, C)`` with ``rows``) float32 minutes from now to each assigned
            order's drop-off (0 for an empty seat), ``pick`` ``(N, V)`` (``(M,)``) minutes to the pending
            pickup (0 if none), ``first`` ``(N, V)`` (``(M,)``) int64 the seat of the next stop (-1 none).
        """
        c = self.capacity

        def take(x: torch.Tensor) -> torch.Tensor:
            x = x.reshape(-1, *x.shape[2:])
            return x if rows is None else x[rows]

        status, origin, dest = take(self.seat_status), take(self.seat_origin), take(self.seat_dest)
        loc, t0, target = take(self.loc), take(self.eta), take(self.target)
        f = self._progress(t0, take(self.leg_total))
        m = status.shape[0]
        z = travel.shape[0]
        flat = travel.reshape(-1)
        pending = status == TO_PICKUP
        has_pick = pending.any(-1)
        p_seat = pending.to(torch.uint8).argmax(-1)
        has_target = target >= 0
        tgt_status = torch.where(has_target, status.gather(-1, target.clamp(min=0)[:, None]).squeeze(-1), EMPTY)
        tgt_pick = tgt_status == TO_PICKUP
        go_pick = has_pick & ~tgt_pick  # leaves its position for the new pickup now
        keep_leg = has_target & ~has_pick  # finishes the drop-off leg it is on first
        p_origin = origin.gather(-1, p_seat[:, None]).squeeze(-1)
        pick = torch.where(go_pick, self._minutes_from(travel, take(self.leg_from), loc, f, p_origin), torch.where(tgt_pick, t0, 0.0))
        time = torch.where(has_pick, pick, t0)
        pos = torch.where(has_pick, p_origin, loc)
        leg_seat = keep_leg[:, None] & (self._arange_c == target[:, None])  # (M, C)
        in_route = (status != EMPTY) & ~leg_seat
        perms = self._perms
        p = perms.shape[0]
        inc = in_route[:, perms]  # (M, P, C): whether the seat at position j of perm p is a stop
        seat_dest = dest[:, perms]  # (M, P, C)
        time_p = time[:, None].expand(m, p)
        pos_p = pos[:, None].expand(m, p)
        times = []
        for j in range(c):
            d = seat_dest[..., j]
            time_p = time_p + torch.where(inc[..., j], flat[pos_p * z + d], 0.0)
            times.append(time_p)
            pos_p = torch.where(inc[..., j], d, pos_p)
        at_pos = torch.stack(times, -1)  # (M, P, C) drop-off time at each position
        cost = (at_pos * inc).sum(-1)  # (M, P)
        best = cost.argmin(-1)  # (M,); ties: the first permutation
        by_seat = at_pos.gather(-1, self._inv_perms.expand(m, p, c))  # (M, P, C) drop-off time of each seat
        drop = by_seat.gather(1, best[:, None, None].expand(m, 1, c)).squeeze(1)
        drop = torch.where(leg_seat, t0[:, None], drop)
        drop = torch.where(status != EMPTY, drop, 0.0)
        best_inc = inc.gather(1, best[:, None, None].expand(m, 1, c)).squeeze(1)  # (M, C) by position
        best_seats = perms[best]  # (M, C)
        first_pos = best_inc.to(torch.uint8).argmax(-1, keepdim=True)
        first_drop = torch.where(best_inc.any(-1), best_seats.gather(-1, first_pos).squeeze(-1), -1)
        first = torch.where(has_pick, p_seat, torch.where(has_target, target, first_drop))
        if rows is None:
            n, v = self.num_envs, self.num_vehicles
            return drop.reshape(n, v, c), pick.reshape(n, v), first.reshape(n, v)
        return drop, pick, first

    def _start_legs(self, travel: torch.Tensor, factor: torch.Tensor | None, where: torch.Tensor) -> None:
        """Vehicles in ``where`` ``(N, V)`` without a current leg start one to their next stop (or idle at eta 0).

        A vehicle at a zone (``eta <= 0``: idle, or it has just reached a stop; ``-eta`` minutes of the minute
        are left over and go into the new leg) leaves from that zone; one with ``eta > 0`` (breaking off its
        leg for a new pickup) leaves from its interpolated position. Only the vehicles that start a leg are
        planned (``_plan`` on those rows).
        """
        c = self.capacity
        has_stop = (self.seat_status != EMPTY).any(-1)
        rest = where & ~has_stop & (self.target < 0)
        self.eta = torch.where(rest, 0.0, self.eta)
        self.leg_total = torch.where(rest, 0.0, self.leg_total)
        need = where & (self.target < 0) & has_stop
        rows = need.reshape(-1).nonzero().squeeze(1)
        if rows.numel() == 0:
            return
        _, _, first = self._plan(travel, rows)
        seat = first.clamp(min=0)[:, None]
        status = self.seat_status.reshape(-1, c)[rows].gather(-1, seat).squeeze(-1)
        zone = torch.where(status == TO_PICKUP, self.seat_origin.reshape(-1, c)[rows].gather(-1, seat).squeeze(-1),
                           self.seat_dest.reshape(-1, c)[rows].gather(-1, seat).squeeze(-1))
        eta, loc = self.eta.reshape(-1)[rows], self.loc.reshape(-1)[rows]
        f = self._progress(eta, self.leg_total.reshape(-1)[rows])
        leg = self._minutes_from(travel, self.leg_from.reshape(-1)[rows], loc, f, zone)
        if factor is not None:
            leg = leg * factor.reshape(-1)[rows]
        here = torch.lerp(self.leg_xy.reshape(-1, 2)[rows], self._xy[loc], f[:, None])
        self.leg_xy.view(-1, 2)[rows] = here
        self.leg_from.view(-1)[rows] = torch.where(eta <= 0, loc, -1)
        self.leg_total.view(-1)[rows] = leg
        self.eta.view(-1)[rows] = leg + eta.clamp(max=0.0)
        self.loc.view(-1)[rows] = zone
        self.target.view(-1)[rows] = first

    def _leg_noise(self) -> torch.Tensor | None:
        """``(N, C + 2, V)`` mean-one log-normal factors for the legs started this minute (None without noise)."""
        if self.travel_noise == 0:
            return None
        s = self.travel_noise
        z = torch.stack([torch.randn((self.capacity + 2, self.num_vehicles), generator=g, device=self.device) for g in self._gens])
        return torch.exp(s * z - 0.5 * s * s)

    def _advance(self, noise: torch.Tensor | None) -> torch.Tensor:
        """Move the fleet through the current minute; returns the deliveries per env ``(N,)``."""
        travel = self._travel_now()
        z = travel.shape[0]
        now = float(self.t)
        delivered = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        # a vehicle matched while on a drop-off leg breaks it off: its next leg goes to the new pickup
        pending = (self.seat_status == TO_PICKUP).any(-1)
        on_drop_leg = (self.target >= 0) & (self.seat_status.gather(-1, self.target.clamp(min=0)[..., None]).squeeze(-1) == ONBOARD)
        self.target = torch.where(pending & on_drop_leg, -1, self.target)
        self._start_legs(travel, None if noise is None else noise[:, 0], self.target < 0)  # vehicles with a new order
        self.eta = torch.where(self.target >= 0, self.eta - 1.0, self.eta)
        direct = travel.reshape(-1)[self.seat_origin * z + self.seat_dest]  # (N, V, C) direct minutes at this minute's speed
        for it in range(self.capacity + 1):  # at most C drop-offs and one pickup per minute
            arrived = (self.target >= 0) & (self.eta <= 0)
            if not bool(arrived.any()):
                break
            at = (self._arange_c == self.target[..., None]) & arrived[..., None]  # (N, V, C)
            picking = at & (self.seat_status == TO_PICKUP)
            dropping = at & (self.seat_status == ONBOARD)
            event = (now + 1.0 + self.eta)[..., None]  # (N, V, 1) the minute of the arrival
            on_board = event - self.seat_picked
            delivered += dropping.sum((-1, -2))
            self.sum_delivery += (on_board * dropping).sum((-1, -2)).to(torch.float64)
            self.sum_detour += ((on_board - self.seat_direct) * dropping).sum((-1, -2)).to(torch.float64)
            self.seat_status = torch.where(dropping, EMPTY, torch.where(picking, ONBOARD, self.seat_status))
            self.seat_uid = torch.where(dropping, -1, self.seat_uid)
            self.seat_picked = torch.where(picking, event, self.seat_picked)
            self.seat_direct = torch.where(picking, direct, self.seat_direct)
            self.target = torch.where(arrived, -1, self.target)
            self._start_legs(travel, None if noise is None else noise[:, it + 1], arrived)
        idle = self.target < 0
        self.leg_from = torch.where(idle, self.loc, self.leg_from)
        self.leg_xy = torch.where(idle[..., None], self._xy[self.loc], self.leg_xy)
        self.n_delivered += delivered
        return delivered

    # ------------------------------------------------------------------ candidates and observation
    def _candidates(self, travel: torch.Tensor, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each vehicle's ``K`` nearest open orders: pool slots, pickup ETAs and validity ``(N, V, K)``.

        ETA to an order in zone ``z``: ``(1 - f) T[leg_from, z] + f T[loc, z]`` (``f``: the leg's progress,
        1 at a zone; the same arithmetic as :meth:`_minutes_from`). Zones are ranked per vehicle by that
        ETA, ties by the lower zone index (a unique integer key: the float's bits * Z + zone), orders
        within a zone by (appearance minute, pool slot). The ``K`` nearest orders lie in the ``min(K, Z)``
        nearest zones that hold open orders, so only those are selected (``topk``, no full sort). Not cut at
        ``max_pickup_minutes`` (the caller masks).
        """
        n, v, z, o, k = self.num_envs, self.num_vehicles, self.city.num_zones, self.max_open_orders, self.num_candidates
        w = f[..., None]
        eta = (1.0 - w) * travel[self.leg_from.clamp(min=0)] + w * travel[self.loc]  # (N, V, Z)
        # the pool sorted by (origin zone, appearance minute, slot); inactive slots last
        key = self.pool_origin * ((self.horizon + 1) * o) + self.pool_appear * o + self._arange_o
        key = torch.where(self.pool_active, key, torch.iinfo(torch.int64).max)
        sorted_slots = key.argsort(dim=1)  # (N, O); keys are unique
        counts = torch.zeros((n, z), dtype=torch.int64, device=self.device).scatter_add_(1, self.pool_origin, self.pool_active.long())
        start = counts.cumsum(1) - counts  # (N, Z) first sorted position of each zone's orders
        # ETAs are >= 0, so their float32 bit patterns sort like the values
        zone_key = eta.contiguous().view(torch.int32).to(torch.int64) * z + self._arange_z
        zone_key = torch.where((counts > 0)[:, None, :], zone_key, torch.iinfo(torch.int64).max)
        kz = min(k, z)
        near_zone = zone_key.topk(kz, dim=-1, largest=False, sorted=True).indices  # (N, V, kz) nearest zones with orders first
        near = counts.gather(1, near_zone.reshape(n, -1)).reshape(n, v, kz)  # (empty zones: 0)
        cum = near.cumsum(-1)
        kk = self._arange_k.expand(n, v, k).contiguous()
        p = torch.searchsorted(cum, kk, right=True)  # (N, V, K) position of the zone holding the k-th order
        valid = p < kz
        p = p.clamp(max=kz - 1)
        zone = near_zone.gather(-1, p)
        within = kk - (cum.gather(-1, p) - near.gather(-1, p))
        pos = (start.gather(1, zone.reshape(n, -1)).reshape(n, v, k) + within).clamp(0, o - 1)
        slot = sorted_slots.gather(1, pos.reshape(n, -1)).reshape(n, v, k)
        return slot, eta.gather(-1, zone), valid

    def _observe(self) -> torch.Tensor:
        """The observation ``(N, V, K, 28)`` of the current state; caches the candidates, masks and plan."""
        n, v, c, k = self.num_envs, self.num_vehicles, self.capacity, self.num_candidates
        travel = self._travel_now()
        status = self.seat_status
        drop, pick, _ = self._plan(travel)
        free = status == EMPTY
        pending = (status == TO_PICKUP).any(-1)
        available = free.any(-1) & ~pending
        f = self._progress(self.eta, self.leg_total)
        cand_slot, cand_eta, valid = self._candidates(travel, f)
        mask = valid & available[..., None] & (cand_eta <= self.max_pickup_minutes)
        self._cand_slot, self._cand_eta, self._pair_mask, self._available = cand_slot, cand_eta, mask, mask.any(-1)
        self._plan_drop = drop
        self._mask_np = mask.cpu().numpy()
        self._slot_np = cand_slot.cpu().numpy()

        xy = self._xy
        t = float(self.t)
        vehicle = torch.cat([
            torch.lerp(self.leg_xy, xy[self.loc], f[..., None]),  # the interpolated position
            torch.stack([
                free.sum(-1).float() / c,
                torch.where(pending, pick, 0.0) / 60.0,
                (~free).any(-1).float(),
                torch.full((n, v), t / 60.0, device=self.device),
                self.cum_reward / 100.0,
                (self.cum_reward.mean(-1, keepdim=True) / 100.0).expand(n, v),
            ], -1),
        ], -1)  # (N, V, 8)
        taken = (~free)[..., None]
        onboard = status == ONBOARD
        elapsed = torch.where(onboard, t - self.seat_picked, 0.0)
        in_vehicle = torch.where(onboard, elapsed + drop, drop - pick[..., None])
        seats = torch.cat([xy[self.seat_dest], torch.stack([drop, elapsed, in_vehicle - self.seat_direct], -1) / 60.0], -1)
        seats = torch.where(taken, seats, 0.0)  # (N, V, C, 5)
        if c < MAX_CAPACITY:
            seats = torch.cat([seats, seats.new_zeros((n, v, MAX_CAPACITY - c, SEAT_DIM))], 2)
        c_origin = self.pool_origin.gather(1, cand_slot.reshape(n, -1)).reshape(n, v, k)
        c_dest = self.pool_dest.gather(1, cand_slot.reshape(n, -1)).reshape(n, v, k)
        cand = torch.cat([xy[c_origin], xy[c_dest], (cand_eta / 60.0)[..., None]], -1)
        cand = torch.where(mask[..., None], cand, 0.0)  # (N, V, K, 5)
        return torch.cat([
            vehicle[:, :, None, :].expand(n, v, k, 8),
            seats.reshape(n, v, 1, MAX_CAPACITY * SEAT_DIM).expand(n, v, k, MAX_CAPACITY * SEAT_DIM),
            cand,
        ], -1)

    # ------------------------------------------------------------------ matching and reward
    def _check_action(self, action: Any) -> torch.Tensor:
        shape = (self.num_envs, self.num_vehicles, self.num_candidates)
        a = action if isinstance(action, torch.Tensor) else torch.as_tensor(np.asarray(action))
        if tuple(a.shape) != shape:
            raise ValueError(f"the action has shape {tuple(a.shape)}; expected (num_envs, num_vehicles, num_candidates) = {shape} "
                             "scores.")
        if not a.dtype.is_floating_point:
            raise ValueError(f"the action has dtype {a.dtype}; expected floating-point scores (float32).")
        a = a.detach().to("cpu", torch.float64)
        if not torch.isfinite(a).all():
            bad = (~torch.isfinite(a)).nonzero()[0].tolist()
            raise ValueError(f"the action holds non-finite scores (first at {bad}: {a[tuple(bad)].item()}); scores must be finite "
                             "(a pair is matched only with a score > 0; use a large finite score to force a pair).")
        return a

    def _match(self, scores: torch.Tensor) -> torch.Tensor:
        """The assignment of each env: matched candidate index per vehicle ``(N, V)`` int64 (-1 none).

        Eligible pairs: ``pair_mask`` and score > 0. ``linear_sum_assignment(maximize=True)`` runs on the
        (vehicles with an eligible pair) x (orders in some eligible pair) matrix, ineligible entries 0 (the
        value of not matching), and matches of value 0 are dropped: a maximum-score matching.
        """
        s = scores.numpy()
        assigned = np.full((self.num_envs, self.num_vehicles), -1, dtype=np.int64)
        for e in range(self.num_envs):
            vi, ki = np.nonzero(self._mask_np[e] & (s[e] > 0))
            if vi.size == 0:
                continue
            oj = self._slot_np[e, vi, ki]
            rows, ri = np.unique(vi, return_inverse=True)
            cols, ci = np.unique(oj, return_inverse=True)
            w = np.zeros((rows.size, cols.size))
            w[ri, ci] = s[e, vi, ki]
            kidx = np.zeros((rows.size, cols.size), dtype=np.int64)
            kidx[ri, ci] = ki
            r, col = linear_sum_assignment(w, maximize=True)
            good = w[r, col] > 0
            assigned[e, rows[r[good]]] = kidx[r[good], col[good]]
        return torch.from_numpy(assigned).to(self.device)

    def _assign(self, assigned: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Seat the matched orders; returns the vehicle rewards ``(N, V)`` and the matched ETAs ``(N, V)`` (0 none)."""
        rc = self.reward_config
        n = self.num_envs
        matched = assigned >= 0
        kk = assigned.clamp(min=0)[..., None]
        slot = self._cand_slot.gather(-1, kk).squeeze(-1)  # (N, V)
        eta = torch.where(matched, self._cand_eta.gather(-1, kk).squeeze(-1), 0.0)
        origin, dest = self.pool_origin.gather(1, slot), self.pool_dest.gather(1, slot)
        appear, uid = self.pool_appear.gather(1, slot), self.pool_uid.gather(1, slot)
        travel = self._travel_now()
        z = travel.shape[0]
        direct_min = travel.reshape(-1)[origin * z + dest]
        direct_km = self._distance_km.reshape(-1)[origin * z + dest]
        was_onboard = self.seat_status == ONBOARD
        seat = (self.seat_status == EMPTY).to(torch.uint8).argmax(-1)  # the first free seat
        new = (self._arange_c == seat[..., None]) & matched[..., None]  # (N, V, C)
        self.seat_status = torch.where(new, TO_PICKUP, self.seat_status)
        self.seat_origin = torch.where(new, origin[..., None], self.seat_origin)
        self.seat_dest = torch.where(new, dest[..., None], self.seat_dest)
        self.seat_uid = torch.where(new, uid[..., None], self.seat_uid)
        self.seat_picked = torch.where(new, 0.0, self.seat_picked)
        self.seat_direct = torch.where(new, direct_min[..., None], self.seat_direct)
        gone = torch.zeros((n, self.max_open_orders + 1), dtype=torch.bool, device=self.device)
        gone.scatter_(1, torch.where(matched, slot, self.max_open_orders), True)
        self.pool_active = self.pool_active & ~gone[:, : self.max_open_orders]

        # the new plans of the matched vehicles (the others keep theirs)
        rows = matched.reshape(-1).nonzero().squeeze(1)
        drop = self._plan_drop.clone()
        pick = torch.zeros_like(eta)
        if rows.numel():
            drop_m, pick_m, _ = self._plan(travel, rows)
            drop.view(-1, self.capacity)[rows] = drop_m
            pick.view(-1)[rows] = pick_m
        onboard = self.seat_status == ONBOARD
        in_vehicle = torch.where(onboard, float(self.t) - self.seat_picked + drop, drop - pick[..., None])
        n_over = ((in_vehicle > rc.threshold_min) & (self.seat_status != EMPTY)).sum(-1).float()
        delay = ((drop - self._plan_drop) * was_onboard).sum(-1)
        added = delay + (in_vehicle * new).sum(-1) - direct_min
        r = (rc.base + rc.distance * direct_km - rc.pickup * eta / 60.0 - rc.long_trips * n_over - rc.added * added / 60.0
             - rc.excess * (added - rc.threshold_min).clamp(min=0.0) / 60.0)
        r = torch.where(matched, r, 0.0)
        self.cum_reward = self.cum_reward + r
        self.n_served += matched.sum(-1)
        self.sum_pickup += eta.sum(-1).to(torch.float64)
        self.sum_confirm += torch.where(matched, self.t - appear, 0).sum(-1).to(torch.float64)
        return r, eta

    # ------------------------------------------------------------------ the Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict]:
        """Start an episode in every env; ``seed`` seeds env ``i`` with ``seed + i``. The env has no reset options."""
        if options:
            raise ValueError(f"unknown reset option(s) {', '.join(sorted(options))}; {ENV_ID} takes none.")
        if seed is not None:
            for i, g in enumerate(self._gens):
                g.manual_seed(int(seed) + i)
        self._start_episodes()
        self._init_episode_stats()
        obs = self._last_obs
        return obs, {"pair_mask": self._pair_mask, "vehicle_available": self._available}

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        scores = self._check_action(action)
        acted = self._available
        assigned = self._match(scores)
        vehicle_reward, eta = self._assign(assigned)
        delivered = self._advance(self._leg_noise())
        self.t += 1
        lost = self._expire() + self._arrivals()
        obs = self._last_obs = self._observe()
        reward = vehicle_reward.sum(-1)
        f32 = torch.float32
        info: dict[str, Any] = {
            "vehicle_reward": vehicle_reward,
            "assigned": assigned,
            "acted": acted,
            "vehicle_cum_reward": self.cum_reward.clone(),
            "served": (assigned >= 0).sum(-1).to(f32),
            "lost": lost.to(f32),
            "delivered": delivered.to(f32),
            "pickup_minutes": eta.sum(-1),
            **self.episode_figures(),
        }
        done = self.t >= self.horizon
        truncated = torch.full((self.num_envs,), done, device=self.device)
        info["final_obs"] = obs
        info["_final_obs"] = truncated
        self._final_pair_mask = self._pair_mask
        if done:
            self._start_episodes()
            obs = self._last_obs
        info["pair_mask"] = self._pair_mask
        info["vehicle_available"] = self._available
        self._track_episodes(reward, truncated, info)
        return obs, reward, torch.zeros_like(truncated), truncated, info

    @property
    def last_observation(self) -> torch.Tensor:
        """``(N, V, K, 28)`` the observation returned last (after any reset)."""
        return self._last_obs

    @property
    def final_pair_mask(self) -> torch.Tensor:
        """``(N, V, K)`` bool: the pair mask of ``info["final_obs"]`` of the last step (``info["pair_mask"]`` describes
        the returned observation, which is the next episode's first where an episode ended)."""
        return self._final_pair_mask

    def episode_figures(self) -> dict[str, torch.Tensor]:
        """The current episode's figures so far, ``(N,)`` float32 each (names and meaning: the module docstring)."""
        f32 = torch.float32
        served = self.n_served.to(torch.float64).clamp(min=1.0)
        delivered = self.n_delivered.to(torch.float64).clamp(min=1.0)
        return {
            "episode_served": self.n_served.to(f32),
            "episode_lost": self.n_lost.to(f32),
            "episode_delivered": self.n_delivered.to(f32),
            "episode_pickup_min": (self.sum_pickup / served).to(f32),
            "episode_delivery_min": (self.sum_delivery / delivered).to(f32),
            "episode_detour_min": (self.sum_detour / delivered).to(f32),
            "episode_confirmation_min": (self.sum_confirm / served).to(f32),
            "episode_reward_spread": self.cum_reward.std(-1, correction=0),
        }

    def order_counts(self) -> dict[str, torch.Tensor]:
        """Where this episode's orders are, ``(N,)`` int64 each: ``appeared`` = ``open`` + ``waiting`` (matched,
        not picked up) + ``onboard`` + ``delivered`` + ``lost``."""
        return {
            "appeared": self.n_appeared.clone(),
            "open": self.pool_active.sum(-1),
            "waiting": (self.seat_status == TO_PICKUP).sum((-1, -2)),
            "onboard": (self.seat_status == ONBOARD).sum((-1, -2)),
            "delivered": self.n_delivered.clone(),
            "lost": self.n_lost.clone(),
        }

    # ------------------------------------------------------------------ exact resume
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {name: getattr(self, name).clone() for name in _STATE}
        state["t"] = int(self.t)
        state["generators"] = torch.stack([g.get_state() for g in self._gens])
        state["overflow_logged"] = bool(self._overflow_logged)
        state.update(self._episode_stats_state())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = [name for name in (*_STATE, "t", "generators") if name not in state]
        if missing:
            raise ValueError(f"the dispatch env state lacks {', '.join(missing)}; was it saved by DispatchVecEnv.state_dict()?")
        for name in _STATE:
            mine, theirs = getattr(self, name), state[name]
            if tuple(theirs.shape) != tuple(mine.shape):
                raise ValueError(f"the saved state's {name} has shape {tuple(theirs.shape)}, this env's {tuple(mine.shape)}: "
                                 "num_envs, num_vehicles, capacity, max_open_orders or the trip records differ.")
            setattr(self, name, theirs.to(self.device, mine.dtype).clone())
        gens = state["generators"]
        if gens.shape[0] != self.num_envs:
            raise ValueError(f"the saved state has {gens.shape[0]} generators, this env {self.num_envs} envs.")
        for g, s in zip(self._gens, gens, strict=True):
            g.set_state(s.cpu().to(torch.uint8).clone())
        self.t = int(state["t"])
        self._overflow_logged = bool(state.get("overflow_logged", False))
        self._load_episode_stats_state(state)
        self._last_obs = self._observe()


__all__ = ["CANDIDATE_FEATURES", "CITY_NAMES", "DEFAULT_CITY", "EMPTY", "ENV_ID", "MAX_CAPACITY", "OBS_DIM", "ONBOARD", "ONBOARD_FEATURES", "PICKUP_ETA",
           "TO_PICKUP", "TRIPS_MODES", "VEHICLE_FEATURES", "DispatchVecEnv", "RewardConfig", "city_from_args", "demand_from_args",
           "resolve_city"]
