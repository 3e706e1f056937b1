"""Real data by plain keywords of the dispatch env (``zones_csv``, ``travel_csv``, ``trips``, ``trips_date``,
``trips_mode``): through ``gymnasium.make_vec``, ``make_vec_env``, the single and PettingZoo views and the CLI."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlsuite.core.vec_env import check_env_kwargs, make_vec_env
from rlsuite.envs.dispatch import DemandModel, DispatchParallelEnv, TripRecords
from tests.cli.helpers import run_cli

ENV = "rlsuite/Dispatch-Manhattan-v0"
HORIZON = 5

ZONES = "zone_id,x_km,y_km\n10,0,0\n20,1,0\n30,0,1\n40,1,1\n"
# a square of 3-minute streets; the diagonals (missing) are filled by shortest paths: 6 minutes
TRAVEL = "origin,destination,minutes\n" + "".join(
    f"{a},{b},3\n{b},{a},3\n" for a, b in ((10, 20), (10, 30), (20, 40), (30, 40))
)
# Yellow-taxi rows for 2024-07-17 19:00 + 5 min: 4 kept; 19:05:00 (the window's end), 18:59:59 and the day
# before are outside the window, zone 99 is not a zone of the city.
TLC = """VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,PULocationID,DOLocationID
2,2024-07-17 19:00:10,2024-07-17 19:10:00,1,10,40
1,2024-07-17 19:01:59,2024-07-17 19:10:00,1,20,30
1,2024-07-17 19:01:00,2024-07-17 19:10:00,2,30,30
1,2024-07-17 19:04:59,2024-07-17 19:10:00,1,40,10
1,2024-07-17 19:05:00,2024-07-17 19:10:00,1,10,20
1,2024-07-17 18:59:59,2024-07-17 19:10:00,1,10,20
1,2024-07-16 19:02:00,2024-07-16 19:10:00,1,10,20
1,2024-07-17 19:02:00,2024-07-17 19:10:00,1,99,20
"""
# (minute of the window, pickup zone id, drop-off zone id) of the kept trips
EXPECTED = [(0, 10, 40), (1, 20, 30), (1, 30, 30), (4, 40, 10)]


@pytest.fixture
def files(tmp_path):
    paths = {"zones_csv": tmp_path / "zones.csv", "travel_csv": tmp_path / "travel.csv", "trips": tmp_path / "yellow.csv"}
    for path, text in zip(paths.values(), (ZONES, TRAVEL, TLC), strict=True):
        path.write_text(text)
    return {key: str(p) for key, p in paths.items()}


@pytest.fixture
def kwargs(files):
    """JSON-able keywords: the fixture's city and day, a small fleet; every trip kept and none expiring."""
    return {**files, "trips_date": "2024-07-17", "horizon": HORIZON, "num_vehicles": 3, "num_candidates": 2,
            "replay_fraction": 1.0, "order_patience": HORIZON, "travel_noise": 0.0}


def _orders(env) -> list[list[tuple[int, int, int]]]:
    """Every order of each env's episode as (minute, pickup id, drop-off id): the env declines every pair for
    ``horizon - 1`` steps after a reset, so all of them are still open (patience >= horizon)."""
    zero = torch.zeros((env.num_envs, env.num_vehicles, env.num_candidates))
    for _ in range(env.horizon - 1):
        env.step(zero)
    ids = env.city.zone_ids
    out = []
    for e in range(env.num_envs):
        active = env.pool_active[e]
        out.append(sorted(zip(env.pool_appear[e][active].tolist(), ids[env.pool_origin[e][active].numpy()].tolist(),
                              ids[env.pool_dest[e][active].numpy()].tolist(), strict=True)))
    return out


def test_the_kwargs_are_json_and_known_to_the_cli_check(kwargs):
    assert json.loads(json.dumps(kwargs)) == kwargs
    check_env_kwargs(ENV, kwargs)  # names of the constructor signature


@pytest.mark.parametrize("build", ["make_vec", "make_vec_env"])
def test_replayed_orders_are_the_fixture_trips(kwargs, build):
    if build == "make_vec":
        env = gym.make_vec(ENV, num_envs=2, vectorization_mode="vector_entry_point", **kwargs)
    else:
        env = make_vec_env(ENV, 2, seed=0, **kwargs)
    assert env.city.name == "zones" and env.city.zone_ids.tolist() == [10, 20, 30, 40]
    assert env.city.travel_min[0, 1] == 3.0 and env.city.travel_min[0, 3] == 6.0  # the travel CSV, diagonal filled
    assert isinstance(env.demand, TripRecords) and env.trip_records is env.demand
    assert env.start_minute == 19 * 60 and env.demand.start_minute == 19 * 60 and env.demand.minutes == HORIZON
    env.reset(seed=0)
    assert _orders(env) == [EXPECTED, EXPECTED]
    assert int(env.n_appeared.sum()) == 2 * len(EXPECTED)


def test_a_parquet_file_replays_the_same_trips(kwargs, tmp_path):
    pytest.importorskip("pyarrow")
    import pandas as pd

    frame = pd.read_csv(kwargs["trips"], parse_dates=["tpep_pickup_datetime", "tpep_dropoff_datetime"])
    path = tmp_path / "yellow_tripdata_2024-07.parquet"
    frame.to_parquet(path)
    env = make_vec_env(ENV, 1, seed=0, **{**kwargs, "trips": str(path)})
    env.reset(seed=0)
    assert _orders(env) == [EXPECTED]


def test_the_window_follows_start_minute_and_horizon(kwargs):
    env = make_vec_env(ENV, 1, seed=0, **{**kwargs, "start_minute": 19 * 60 + 1, "horizon": 3, "order_patience": 3})
    assert env.start_minute == 19 * 60 + 1 and env.trip_records.minutes == 3
    env.reset(seed=0)
    assert _orders(env) == [[(0, 20, 30), (0, 30, 30)]]  # 19:01 .. 19:04; minutes counted from 19:01


def test_fit_mode_samples_poisson_demand_fitted_to_the_day(kwargs):
    env = make_vec_env(ENV, 1, seed=0, **{**kwargs, "trips_mode": "fit"})
    assert isinstance(env.demand, DemandModel) and env.trip_records.num_trips == 4
    np.testing.assert_allclose(env.demand.rate, [0.2, 0.2, 0.2, 0.2])  # one trip per zone in 5 minutes
    np.testing.assert_allclose(env.demand.rates_at(19 * 60), env.demand.rate)
    env.reset(seed=0)
    env.step(torch.zeros((1, 3, 2)))


def test_single_and_pettingzoo_views_take_the_kwargs(kwargs):
    env = gym.make(ENV, **kwargs)
    obs, info = env.reset(seed=0)
    assert obs.shape == (3, 2, 28) and env.unwrapped.vec.trip_records.num_trips == 4
    pz = DispatchParallelEnv(**kwargs)
    pz.reset(seed=0)
    assert pz.vec.city.zone_ids.tolist() == [10, 20, 30, 40] and len(pz.possible_agents) == 3


def test_batched_equals_single_and_exact_resume(kwargs):
    kw = {**kwargs, "replay_fraction": 0.5, "travel_noise": 0.2, "order_patience": 2}
    batched = make_vec_env(ENV, 2, **kw)
    singles = [make_vec_env(ENV, 1, **kw) for _ in range(2)]
    batched.reset(seed=7)
    for i, s in enumerate(singles):
        s.reset(seed=7 + i)
    g = torch.Generator().manual_seed(0)
    resumed = None
    for t in range(2 * HORIZON + 2):  # across an autoreset
        if t == 3:
            resumed = make_vec_env(ENV, 2, **kw)
            resumed.load_state_dict(batched.state_dict())
        a = torch.rand((2, 3, 2), generator=g) - 0.3
        obs, r, _, _, info = batched.step(a)
        for i, s in enumerate(singles):
            o1, r1, _, _, i1 = s.step(a[i : i + 1])
            assert torch.equal(obs[i], o1[0]) and torch.equal(r[i], r1[0])
            assert torch.equal(info["assigned"][i], i1["assigned"][0])
        if resumed is not None:
            o2, r2, _, _, _ = resumed.step(a)
            assert torch.equal(obs, o2) and torch.equal(r, r2)


def test_errors_name_what_was_given_and_what_to_do(kwargs, files, tmp_path):
    def build(**kw):
        return make_vec_env(ENV, 1, **{**kwargs, **kw})

    missing = str(tmp_path / "nope.csv")
    with pytest.raises(FileNotFoundError, match=r"zones_csv = '.*nope\.csv': no such file"):
        build(zones_csv=missing)
    with pytest.raises(FileNotFoundError, match=r"trips = '.*nope\.csv': no such file"):
        build(trips=missing)
    with pytest.raises(FileNotFoundError, match=r"travel_csv = '.*nope\.csv': no such file"):
        build(travel_csv=missing)
    with pytest.raises(ValueError, match="without trips_date; .*fix: pass trips_date"):
        build(trips_date=None)
    with pytest.raises(ValueError, match=r"trips_date = '17/07/2024'; expected a day as YYYY-MM-DD"):
        build(trips_date="17/07/2024")
    with pytest.raises(ValueError, match=r"no trips on 2024-07-18 19:00 \+ 5 min .*fix: check trips_date"):
        build(trips_date="2024-07-18")
    with pytest.raises(ValueError, match=r"trips_mode = 'sample'; allowed: 'replay', 'fit'"):
        build(trips_mode="sample")
    with pytest.raises(ValueError, match="city = 'grid3x3' and zones_csv = .* both choose the city; allowed: one of them"):
        build(city="grid3x3")
    with pytest.raises(ValueError, match="travel_csv = .* without zones_csv; .*fix: pass zones_csv"):
        make_vec_env(ENV, 1, travel_csv=files["travel_csv"])
    with pytest.raises(ValueError, match="trips_date = '2024-07-17' without trips"):
        make_vec_env(ENV, 1, city="grid2x2", trips_date="2024-07-17")
    with pytest.raises(ValueError, match="trips_mode = 'fit' without trips"):
        make_vec_env(ENV, 1, city="grid2x2", trips_mode="fit")
    city = make_vec_env(ENV, 1, **kwargs).city
    with pytest.raises(ValueError, match="demand = TripRecords and trips = .* both set the demand"):
        build(demand=TripRecords(np.zeros(1), np.zeros(1), np.zeros(1), minutes=5, start_minute=1140))
    assert make_vec_env(ENV, 1, **{**kwargs, "city": "manhattan"}).city is city  # the default city: no conflict; cached


def test_cli_trains_and_evaluates_on_the_files(capsys, kwargs, tmp_path):
    d = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "ospo", "--env", ENV, "--total-steps", HORIZON, "--env-kwargs", json.dumps(kwargs),
                             "--run-dir", d, "--no-progress", "--no-tensorboard", "--eval-episodes", "1", "--device", "cpu",
                             "--minibatch-size", "8", "--num-minibatches", "1", "--hidden-sizes", "8")
    assert code == 0, err
    assert json.loads((d / "config.json").read_text())["env_kwargs"] == kwargs
    code, out, err = run_cli(capsys, "eval", d, "--episodes", "1")
    assert code == 0, err
    assert "mean_served=" in out
    code, _, err = run_cli(capsys, "train", "ospo", "--env", ENV, "--total-steps", HORIZON, "--run-dir", tmp_path / "bad",
                           "--env-kwargs", json.dumps({**kwargs, "trips_date": None}), "--no-progress", "--no-tensorboard")
    assert code == 2 and "pass trips_date" in " ".join(err.split()) and not (tmp_path / "bad").exists()
