"""Demand of the dispatch env: demand models, gravity OD, synthetic demand, TLC loading and fitting."""

from __future__ import annotations

import importlib.util
import logging
import math

import numpy as np
import pytest

from rlsuite.envs.dispatch import demand as demand_mod
from rlsuite.envs.dispatch.city import grid_city, manhattan_city
from rlsuite.envs.dispatch.demand import (
    HOURLY_PROFILE,
    DemandModel,
    TripRecords,
    fit_demand,
    gravity_od,
    load_tlc_trips,
    synthetic_demand,
)


@pytest.fixture(scope="module")
def manhattan():
    return manhattan_city()


# Yellow-taxi rows for 2024-07-17 19:00 + 30 min: 4 kept, 3 outside the window, 2 with a zone outside
# Manhattan (1 = Newark Airport, 132 = JFK), 1 with an unreadable time.
YELLOW = """VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,PULocationID,DOLocationID
2,2024-07-17 19:00:00,2024-07-17 19:10:00,1,1.2,4,12
2,2024-07-17 19:29:59,2024-07-17 19:50:00,1,5.0,263,4
1,2024-07-17 19:30:00,2024-07-17 19:40:00,1,0.5,4,4
1,2024-07-17 18:59:59,2024-07-17 19:10:00,2,0.7,12,13
1,2024-07-16 19:10:00,2024-07-16 19:20:00,1,0.7,12,13
2,2024-07-17 19:05:30,2024-07-17 19:55:00,1,15.0,1,4
2,2024-07-17 19:06:00,2024-07-17 19:56:00,1,17.0,4,132
1,2024-07-17 19:12:45,2024-07-17 19:20:00,1,2.0,161,236
1,2024-07-17 19:12:10,2024-07-17 19:20:00,3,2.0,236,161
1,not a time,2024-07-17 19:20:00,1,1.0,4,12
"""
# Manhattan zone indices (ascending LocationIDs): 4 -> 0, 12 -> 1, 161 -> 40, 236 -> 58, 263 -> 68;
# ordered by pickup time: 19:00:00, 19:12:10, 19:12:45, 19:29:59.
EXPECTED_MINUTE = [0, 12, 12, 29]
EXPECTED_ORIGIN = [0, 58, 40, 68]
EXPECTED_DESTINATION = [1, 40, 58, 0]


def test_demand_model_rates_and_validation():
    od = np.array([[0.5, 0.5], [0.25, 0.75]])
    profile = np.arange(24, dtype=np.float64)  # h at h:00
    m = DemandModel(rate=np.array([2.0, 1.0]), od=od, profile=profile)
    np.testing.assert_allclose(m.rates_at(18 * 60 + 30), [37.0, 18.5])  # profile 18.5 at 18:30
    assert m.total_at(60) == pytest.approx(3.0) and m.num_zones == 2
    assert m.rates_at(60).dtype == np.float64
    with pytest.raises(ValueError, match=r"od row 1 sums to 0.9; expected every row to sum to 1"):
        DemandModel(rate=np.ones(2), od=np.array([[0.5, 0.5], [0.2, 0.7]]))
    with pytest.raises(ValueError, match=r"od has shape \(3, 3\); expected \(2, 2\)"):
        DemandModel(rate=np.ones(2), od=np.full((3, 3), 1 / 3))
    with pytest.raises(ValueError, match="rate must be finite and >= 0"):
        DemandModel(rate=np.array([1.0, -1.0]), od=od)
    with pytest.raises(ValueError, match=r"profile has shape \(12,\)"):
        DemandModel(rate=np.ones(2), od=od, profile=np.ones(12))
    assert DemandModel(rate=np.ones(2), od=od).profile.tolist() == HOURLY_PROFILE.tolist()


def test_hourly_profile_shape():
    assert HOURLY_PROFILE.shape == (24,) and HOURLY_PROFILE.max() == 1.0
    assert HOURLY_PROFILE[18] == HOURLY_PROFILE[19] == 1.0
    assert int(np.argmin(HOURLY_PROFILE)) in (4, 5)


def test_gravity_od_by_hand():
    c = grid_city(1, 2)  # minutes: inside 2.1667, across 4.3333
    od = gravity_od(c, np.array([1.0, 3.0]), beta=0.3)
    # row 0: [exp(-0.3 * 2.1667), 3 exp(-0.3 * 4.3333)] / sum = [0.522046, 0.817595] / 1.339641
    np.testing.assert_allclose(od[0], [0.389691, 0.610309], atol=1e-6)
    np.testing.assert_allclose(od.sum(axis=1), 1.0)
    np.testing.assert_allclose(gravity_od(c, np.array([1.0, 3.0]), beta=0.0), [[0.25, 0.75], [0.25, 0.75]])
    with pytest.raises(ValueError, match="mass"):
        gravity_od(c, np.zeros(2))
    with pytest.raises(ValueError, match="expected 2 for city"):
        gravity_od(c, np.ones(3))


def test_gravity_od_decays_with_distance_and_does_not_underflow():
    c = grid_city(1, 5)
    od = gravity_od(c, np.ones(5))
    assert np.all(np.diff(od[0]) < 0)  # from zone 0, farther zones are less likely
    np.testing.assert_allclose(od.sum(axis=1), 1.0)
    far = grid_city(1, 3, block_km=500.0)  # exp(-0.3 * 2000 min) underflows without the log-space form
    od = gravity_od(far, np.array([0.0, 1.0, 1.0]))
    assert np.all(np.isfinite(od)) and od[0, 0] == 0.0
    np.testing.assert_allclose(od.sum(axis=1), 1.0)


def test_synthetic_demand_total_and_determinism(manhattan):
    m = synthetic_demand(manhattan)
    assert m.total_at(19 * 60) == pytest.approx(150.0)
    m2 = synthetic_demand(manhattan, orders_per_minute=37.5, at_minute=8 * 60 + 15, seed=3)
    assert m2.total_at(8 * 60 + 15) == pytest.approx(37.5)
    np.testing.assert_array_equal(synthetic_demand(manhattan).rate, m.rate)
    assert not np.allclose(synthetic_demand(manhattan, seed=1).rate, m.rate)
    np.testing.assert_allclose(m.od.sum(axis=1), 1.0)
    assert m.rate.shape == (69,) and m.od.shape == (69, 69) and np.all(m.rate > 0)
    # busier near the centre than at the ends of the island
    d = np.linalg.norm(manhattan.xy_km - manhattan.xy_km.mean(axis=0), axis=1)
    order = np.argsort(d)
    assert m.rate[order[:10]].mean() > 2 * m.rate[order[-10:]].mean()
    with pytest.raises(ValueError, match="orders_per_minute"):
        synthetic_demand(manhattan, orders_per_minute=0.0)


def test_trip_records_validation():
    t = TripRecords(minute=[0, 2], origin=[1, 0], destination=[0, 0], minutes=3, start_minute=600)
    assert t.num_trips == 2 and t.minute.dtype == np.int64
    with pytest.raises(ValueError, match=r"minute spans \[0, 3\]; expected 0 .. 2"):
        TripRecords(minute=[0, 3], origin=[1, 0], destination=[0, 0], minutes=3, start_minute=600)
    with pytest.raises(ValueError, match="differ in length"):
        TripRecords(minute=[0], origin=[1, 0], destination=[0, 0], minutes=3, start_minute=600)
    with pytest.raises(ValueError, match="start_minute"):
        TripRecords(minute=[0], origin=[1], destination=[0], minutes=3, start_minute=1440)


@pytest.mark.parametrize("time_column", ["tpep_pickup_datetime", "lpep_pickup_datetime"])
def test_load_tlc_trips_yellow_and_green(tmp_path, caplog, manhattan, time_column):
    p = tmp_path / "trips.csv"
    p.write_text(YELLOW.replace("tpep_", time_column[:5]))
    with caplog.at_level(logging.INFO, logger="rlsuite.envs.dispatch.demand"):
        t = load_tlc_trips(p, manhattan, "2024-07-17", start="19:00", minutes=30)
    assert t.minute.tolist() == EXPECTED_MINUTE
    assert t.origin.tolist() == EXPECTED_ORIGIN
    assert t.destination.tolist() == EXPECTED_DESTINATION
    assert t.origin.tolist() == manhattan.zone_index([4, 236, 161, 263]).tolist()
    assert (t.minutes, t.start_minute) == (30, 19 * 60)
    assert "kept 4 of 10 trips" in caplog.text
    assert "dropped 3 outside the window, 2 with a pickup or drop-off zone outside" in caplog.text
    assert "1 with an unreadable pickup time" in caplog.text


def test_load_tlc_trips_fhv_layout(tmp_path, manhattan):
    p = tmp_path / "fhv.csv"
    p.write_text(
        "dispatching_base_num,pickup_datetime,dropOff_datetime,PUlocationID,DOlocationID,SR_Flag\n"
        "B00001,2024-07-17 08:00:05,2024-07-17 08:20:00,161,4,\n"
        "B00001,2024-07-17 08:09:59,2024-07-17 08:20:00,,4,\n"  # no pickup zone
        "B00002,07/17/2024 08:03:00 AM,2024-07-17 08:20:00,12,263,\n"  # Open Data time format
        "B00002,2024-07-17 08:10:00,2024-07-17 08:20:00,12,263,\n"  # window end is exclusive
    )
    t = load_tlc_trips(p, manhattan, "2024-07-17", start="08:00", minutes=10)
    assert t.minute.tolist() == [0, 3]
    assert t.origin.tolist() == [40, 1] and t.destination.tolist() == [0, 68]
    assert t.start_minute == 480


def test_load_tlc_trips_errors(tmp_path, manhattan, monkeypatch):
    p = tmp_path / "bad.csv"
    p.write_text("pickup_time,PU,DO\n2024-07-17 19:00:00,4,12\n")
    with pytest.raises(ValueError, match=r"found columns \['pickup_time', 'PU', 'DO'\]; expected a pickup time"):
        load_tlc_trips(p, manhattan, "2024-07-17")
    with pytest.raises(ValueError, match="unknown file type"):
        load_tlc_trips(tmp_path / "trips.json", manhattan, "2024-07-17")
    good = tmp_path / "trips.csv"
    good.write_text(YELLOW)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        load_tlc_trips(good, manhattan, "17/07/2024")
    with pytest.raises(ValueError, match="HH:MM"):
        load_tlc_trips(good, manhattan, "2024-07-17", start="25:00")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        demand_mod.importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real_find_spec(name, *a)
    )
    with pytest.raises(ImportError, match="pip install pyarrow"):
        load_tlc_trips(tmp_path / "yellow_tripdata_2024-07.parquet", manhattan, "2024-07-17")


def test_load_tlc_trips_empty_window_warns(tmp_path, caplog, manhattan):
    p = tmp_path / "trips.csv"
    p.write_text(YELLOW)
    with caplog.at_level(logging.WARNING, logger="rlsuite.envs.dispatch.demand"):
        t = load_tlc_trips(p, manhattan, "2024-07-18")
    assert t.num_trips == 0 and "no trips" in caplog.text


def test_fit_demand(tmp_path, manhattan):
    p = tmp_path / "trips.csv"
    p.write_text(YELLOW)
    t = load_tlc_trips(p, manhattan, "2024-07-17", start="19:00", minutes=30)
    m = fit_demand(t, manhattan, smoothing=0.5)
    expected_rate = np.zeros(69)
    expected_rate[[0, 40, 58, 68]] = 1.0 / 30.0  # one trip each from 4, 161, 236, 263 in 30 min
    np.testing.assert_allclose(m.rate, expected_rate)
    np.testing.assert_allclose(m.rates_at(19 * 60), expected_rate)  # profile is 1 at the window's start
    assert m.total_at(19 * 60) == pytest.approx(4 / 30)
    # later hours follow the hourly shape: 20:00 / 19:00 = 0.92
    np.testing.assert_allclose(m.rates_at(20 * 60), expected_rate * HOURLY_PROFILE[20] / HOURLY_PROFILE[19])
    # zone 4 (index 0) went once to 12 (index 1): (1 + 0.5) / (1 + 0.5 * 69) = 1.5 / 35.5, else 0.5 / 35.5
    assert m.od[0, 1] == pytest.approx(1.5 / 35.5) and m.od[0, 5] == pytest.approx(0.5 / 35.5)
    np.testing.assert_allclose(m.od[2], 1 / 69)  # no trips from zone 13: uniform
    np.testing.assert_allclose(m.od.sum(axis=1), 1.0)
    # without smoothing a zone without trips gets the city-wide destinations: 12, 161, 236, 4 once each
    m0 = fit_demand(t, manhattan, smoothing=0.0)
    assert m0.od[0, 1] == 1.0
    expected_row = np.zeros(69)
    expected_row[[1, 40, 58, 0]] = 0.25
    np.testing.assert_allclose(m0.od[2], expected_row)


def test_fit_demand_errors(manhattan):
    empty = TripRecords(minute=[], origin=[], destination=[], minutes=30, start_minute=1140)
    with pytest.raises(ValueError, match="no trips"):
        fit_demand(empty, manhattan)
    t = TripRecords(minute=[0], origin=[5], destination=[1], minutes=30, start_minute=1140)
    with pytest.raises(ValueError, match="zone index 5 in the trips; expected indices below 4"):
        fit_demand(t, grid_city(2, 2))
    with pytest.raises(ValueError, match="smoothing"):
        fit_demand(t, manhattan, smoothing=-1.0)
    assert math.isclose(fit_demand(t, manhattan).rate[5], 1 / 30)
