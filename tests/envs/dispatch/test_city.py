"""Cities of the dispatch env: travel models against hand-computed numbers, CSV loading, validation."""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import pytest

from rlsuite.envs.dispatch.city import (
    EARTH_RADIUS_KM,
    MANHATTAN_ROTATION_DEG,
    MANHATTAN_ZONE_IDS,
    NYC_SPEED_PROFILE,
    City,
    gabriel_edges,
    grid_city,
    interpolate_hourly,
    load_city,
    manhattan_city,
    zone_graph,
)

# The 69 Manhattan LocationIDs as the TLC lists them.
MANHATTAN_IDS = {
    4, 12, 13, 24, 41, 42, 43, 45, 48, 50, 68, 74, 75, 79, 87, 88, 90, 100, 103, 104, 105, 107, 113, 114, 116,
    120, 125, 127, 128, 137, 140, 141, 142, 143, 144, 148, 151, 152, 153, 158, 161, 162, 163, 164, 166, 170,
    186, 194, 202, 209, 211, 224, 229, 230, 231, 232, 233, 234, 236, 237, 238, 239, 243, 244, 246, 249, 261,
    262, 263,
}  # fmt: skip


def assert_triangle_inequality(d: np.ndarray) -> None:
    """``d[i, j] <= d[i, k] + d[k, j]`` for every ``i != j`` and every ``k``."""
    via = (d[:, :, None] + d[None, :, :]).min(axis=1)  # [i, j] = min_k d[i, k] + d[k, j]
    off = ~np.eye(d.shape[0], dtype=bool)
    assert np.all(d[off] <= via[off] + 1e-9)


def test_grid_2x2_euclidean_by_hand():
    c = grid_city(2, 2, block_km=1.0, travel="euclidean", detour=1.3, speed_kmh=18.0)
    # zones 0 (0,0), 1 (1,0), 2 (0,1), 3 (1,1); neighbours 1 km * 1.3; opposite corners sqrt(2) * 1.3
    # = 1.838478 km; inside a zone max(0.5, 0.5 * mean nearest neighbour 1 km * 1.3) = 0.65 km
    n, x, s = 1.3, math.sqrt(2) * 1.3, 0.65
    np.testing.assert_allclose(c.distance_km, [[s, n, n, x], [n, s, x, n], [n, x, s, n], [x, n, n, s]])
    # minutes = km / 18 * 60: 1.3 km -> 4.3333, 1.838478 -> 6.128259, 0.65 -> 2.1667
    np.testing.assert_allclose(c.travel_min[0], [2.1666667, 4.3333333, 4.3333333, 6.1282588], rtol=1e-7)
    np.testing.assert_allclose(c.xy_km, [[0, 0], [1, 0], [0, 1], [1, 1]])
    assert c.num_zones == 4 and c.zone_ids.tolist() == [0, 1, 2, 3] and c.name == "grid2x2"
    assert c.distance_km.dtype == c.travel_min.dtype == c.xy_km.dtype == np.float64
    assert c.zone_ids.dtype == np.int64


def test_grid_2x2_graph_uses_the_street_grid():
    c = grid_city(2, 2, travel="graph")
    # only 4-neighbour streets: opposite corners 2 blocks * 1.3 = 2.6 km = 8.6667 min
    assert c.distance_km[0, 3] == pytest.approx(2.6)
    assert c.travel_min[0, 3] == pytest.approx(2.6 / 18 * 60)
    assert c.distance_km[1, 2] == pytest.approx(2.6)
    assert c.distance_km[0, 1] == pytest.approx(1.3) and c.distance_km[0, 0] == pytest.approx(0.65)


def test_collinear_graph_and_small_intra_zone_floor():
    c = grid_city(1, 3, block_km=0.2, travel="graph", detour=1.5, speed_kmh=30.0)
    # collinear points (no Delaunay): 0-2 passes zone 1, so 0.2 * 2 * 1.5 = 0.6 km; intra-zone
    # 0.5 * 0.2 * 1.5 = 0.15 km is below the 0.5 km floor -> 0.5 km = 1 min at 30 km/h
    assert c.distance_km[0, 2] == pytest.approx(0.6)
    assert np.allclose(np.diag(c.distance_km), 0.5) and np.allclose(np.diag(c.travel_min), 1.0)


def test_gabriel_graph_of_a_grid_is_the_street_grid():
    xy = grid_city(2, 3).xy_km  # 0 1 2 / 3 4 5
    edges = {tuple(e) for e in gabriel_edges(xy).tolist()}
    assert edges == {(0, 1), (1, 2), (3, 4), (4, 5), (0, 3), (1, 4), (2, 5)}


@pytest.mark.parametrize("travel", ["euclidean", "graph"])
def test_triangle_inequality_and_positivity(travel):
    for c in (grid_city(3, 4, travel=travel), manhattan_city(travel=travel)):
        assert_triangle_inequality(c.distance_km)
        assert_triangle_inequality(c.travel_min)
        assert np.all(c.distance_km > 0) and np.all(c.travel_min > 0)
        np.testing.assert_allclose(c.distance_km, c.distance_km.T)
        np.testing.assert_allclose(c.travel_min, c.distance_km / 18.0 * 60.0)


def test_manhattan_zones_and_shape():
    c = manhattan_city()
    assert c.num_zones == 69 and set(c.zone_ids.tolist()) == MANHATTAN_IDS
    assert MANHATTAN_ZONE_IDS.tolist() == sorted(MANHATTAN_IDS) and not MANHATTAN_ZONE_IDS.flags.writeable
    assert np.all(np.diff(c.zone_ids) > 0)  # ascending LocationIDs
    # coordinates along and across the island's axis (29 degrees east of north)
    th = math.radians(MANHATTAN_ROTATION_DEG)
    along = c.xy_km @ np.array([math.sin(th), math.cos(th)])
    across = c.xy_km @ np.array([math.cos(th), -math.sin(th)])
    mainland = ~np.isin(c.zone_ids, [103, 104, 105, 194, 202])
    assert 18.0 <= np.ptp(along[mainland]) <= 21.0
    assert np.ptp(across[mainland]) <= 3.6
    # roughly south to north: Battery Park, Midtown Center, Inwood
    i = c.zone_index([12, 161, 127])
    assert along[i[0]] < along[i[1]] < along[i[2]]
    # graph routes are never shorter than the straight line * detour; deterministic
    g = manhattan_city(travel="graph")
    off = ~np.eye(69, dtype=bool)
    assert np.all(g.distance_km[off] >= c.distance_km[off] - 1e-9)
    np.testing.assert_array_equal(manhattan_city().xy_km, c.xy_km)
    assert c.speed_profile.tolist() == NYC_SPEED_PROFILE.tolist()


def test_speed_interpolation():
    profile = np.arange(24, dtype=np.float64) + 1.0  # 1 at 00:00 ... 24 at 23:00
    c = dataclasses.replace(grid_city(1, 2), speed_profile=profile)
    assert c.speed_factor(0) == 1.0
    assert c.speed_factor(90) == pytest.approx(2.5)  # 01:30 halfway between 2 and 3
    assert c.speed_factor(23 * 60 + 30) == pytest.approx(12.5)  # 23:30 halfway between 24 and 1 (wraps)
    assert c.speed_factor(24 * 60 + 90) == pytest.approx(2.5) and c.speed_factor(-30) == pytest.approx(12.5)
    np.testing.assert_allclose(c.travel_minutes(90), c.travel_min / 2.5)
    np.testing.assert_allclose(interpolate_hourly(profile, np.array([0.0, 15.0])), [1.0, 1.25])
    nyc = grid_city(1, 2)
    assert nyc.speed_factor(19 * 60) == NYC_SPEED_PROFILE[19] < 1.0 == nyc.speed_factor(4 * 60)
    with pytest.raises(ValueError, match="finite"):
        c.speed_factor(float("nan"))


def test_zone_index():
    c = manhattan_city()
    np.testing.assert_array_equal(c.zone_index([4, 263, 12]), [0, 68, 1])
    assert c.zone_index(4) == 0 and c.zone_index(np.array([[13, 4]])).shape == (1, 2)
    with pytest.raises(ValueError, match=r"unknown zone ids \[1, 132\]"):
        c.zone_index([4, 1, 132])
    with pytest.raises(ValueError, match="unknown zone ids"):
        c.zone_index(4.5)
    with pytest.raises(ValueError, match="numbers"):
        c.zone_index(["4"])
    # ids that are not sorted
    u = City("u", np.array([30, 10, 20]), np.zeros((3, 2)), np.ones((3, 3)), np.ones((3, 3)))
    np.testing.assert_array_equal(u.zone_index([10, 20, 30]), [1, 2, 0])


def test_validation():
    with pytest.raises(ValueError, match=r"unknown travel mode 'osrm'; expected one of 'euclidean', 'graph'"):
        grid_city(2, 2, travel="osrm")
    with pytest.raises(ValueError, match="detour"):
        manhattan_city(detour=0.9)
    with pytest.raises(ValueError, match="speed_kmh"):
        grid_city(2, 2, speed_kmh=0.0)
    with pytest.raises(ValueError, match="rows"):
        grid_city(1, 1)
    ok = dict(name="x", zone_ids=np.array([1, 2]), xy_km=np.zeros((2, 2)), distance_km=np.ones((2, 2)),
              travel_min=np.ones((2, 2)))  # fmt: skip
    City(**ok)
    with pytest.raises(ValueError, match="more than once"):
        City(**{**ok, "zone_ids": np.array([1, 1])})
    with pytest.raises(ValueError, match=r"travel_min has shape \(2, 3\); expected \(2, 2\)"):
        City(**{**ok, "travel_min": np.ones((2, 3))})
    with pytest.raises(ValueError, match="distance_km must be > 0"):
        City(**{**ok, "distance_km": np.eye(2)})
    with pytest.raises(ValueError, match="speed_profile has shape"):
        City(**ok, speed_profile=np.ones(12))
    c = City(**ok)
    with pytest.raises(ValueError, match="read-only"):
        c.travel_min[0, 1] = 5.0


def test_load_city_xy(tmp_path):
    p = tmp_path / "toy.csv"
    p.write_text("zone_id,name,x_km,y_km\n10,a,0,0\n30,c,3,0\n20,b,3,4\n")
    c = load_city(p, detour=1.0, speed_kmh=60.0)
    assert c.name == "toy" and c.zone_ids.tolist() == [10, 30, 20]  # file order
    # 3-4-5 triangle, detour 1, 60 km/h: minutes = km
    np.testing.assert_allclose(c.distance_km[0, 1:], [3.0, 5.0])
    np.testing.assert_allclose(c.travel_min[1, 2], 4.0)
    # intra-zone: nearest neighbours 3, 3, 4 -> 0.5 * 10/3 * 1.0 = 1.6667 km
    np.testing.assert_allclose(np.diag(c.distance_km), 5.0 / 3.0)
    assert c.zone_index(20) == 2


def test_load_city_latlon(tmp_path):
    p = tmp_path / "ll.csv"
    p.write_text("LocationID,lat,lon\n1,40.00,-74.00\n2,40.01,-74.00\n3,40.005,-73.99\n")
    c = load_city(p, detour=1.0)
    # 0.01 deg of latitude = 6371.0088 * 0.01 * pi / 180 = 1.111950 km
    assert c.distance_km[0, 1] == pytest.approx(EARTH_RADIUS_KM * math.radians(0.01))
    assert c.distance_km[0, 1] == pytest.approx(1.111950, abs=1e-6)
    # x east: zone 3 east of the others by 0.01 deg lon * cos(mean lat 40.005 deg)
    dx = EARTH_RADIUS_KM * math.radians(0.01) * math.cos(math.radians(40.005))
    assert c.xy_km[2, 0] - c.xy_km[0, 0] == pytest.approx(dx)
    np.testing.assert_allclose(c.xy_km.mean(axis=0), 0.0, atol=1e-12)


def test_load_city_travel_csv_fills_missing_pairs(tmp_path, caplog):
    zones = tmp_path / "z.csv"
    zones.write_text("zone_id,x_km,y_km\n1,0,0\n2,1,0\n3,2,0\n")
    travel = tmp_path / "t.csv"
    # 1 -> 3 is missing: 1 -> 2 -> 3 = 5 + 7 min, 2 + 3 km; 3 -> 2 is given as 20 min but 3 -> 1 -> 2 takes
    # 4 + 5 = 9 min (1.5 + 2 km); 1 -> 1 is given, 2 -> 2 and 3 -> 3 take the default
    travel.write_text(
        "origin,destination,minutes,km\n1,2,5,2\n2,3,7,3\n3,1,4,1.5\n2,1,5,2\n3,2,20,9\n1,1,3,0.8\n"
    )
    with caplog.at_level(logging.INFO, logger="rlsuite.envs.dispatch.city"):
        c = load_city(zones, travel, detour=1.3, speed_kmh=18.0)
    assert c.travel_min[0, 2] == pytest.approx(12.0) and c.distance_km[0, 2] == pytest.approx(5.0)
    assert c.travel_min[2, 1] == pytest.approx(9.0) and c.distance_km[2, 1] == pytest.approx(3.5)
    assert c.travel_min[0, 1] == 5.0 and c.distance_km[1, 2] == 3.0
    assert c.travel_min[0, 0] == 3.0 and c.distance_km[0, 0] == 0.8
    # default intra-zone: max(0.5, 0.5 * 1 km * 1.3) = 0.65 km = 2.1667 min
    assert c.distance_km[1, 1] == pytest.approx(0.65) and c.travel_min[2, 2] == pytest.approx(0.65 / 18 * 60)
    assert_triangle_inequality(c.travel_min)
    assert "1 missing pairs filled" in caplog.text and "1 given pairs shortened" in caplog.text


def test_load_city_travel_csv_without_km_and_errors(tmp_path):
    zones = tmp_path / "z.csv"
    zones.write_text("zone_id,x_km,y_km\n1,0,0\n2,1,0\n")
    t = tmp_path / "t.csv"
    t.write_text("origin,destination,minutes\n1,2,5\n2,1,6\n")
    c = load_city(zones, t, detour=1.3)
    assert c.distance_km[0, 1] == pytest.approx(1.3) and c.travel_min[1, 0] == 6.0
    t.write_text("origin,destination,minutes\n1,2,5\n")
    with pytest.raises(ValueError, match="no route from zone 2 to zone 1"):
        load_city(zones, t)
    t.write_text("origin,destination,minutes\n1,7,5\n2,1,6\n")
    with pytest.raises(ValueError, match=r"unknown zone ids \[7\]"):
        load_city(zones, t)
    t.write_text("from,to,minutes\n1,2,5\n")
    with pytest.raises(ValueError, match=r"found columns \['from', 'to', 'minutes'\]; expected origin,destination"):
        load_city(zones, t)
    t.write_text("origin,destination,minutes\n1,2,5\n1,2,6\n2,1,6\n")
    with pytest.raises(ValueError, match="more than once"):
        load_city(zones, t)
    zones.write_text("zone,x,y\n1,0,0\n2,1,0\n")
    with pytest.raises(ValueError, match="expected zone_id,x_km,y_km or zone_id,lat,lon"):
        load_city(zones)
    zones.write_text("zone_id,x_km,y_km\n1,0,0\n2,abc,0\n")
    with pytest.raises(ValueError, match=r"data row 2: x_km = 'abc'; expected a number"):
        load_city(zones)


def test_load_city_speed_profile_flat_with_travel_csv_nyc_without_and_the_keyword_overrides(tmp_path, caplog):
    zones = tmp_path / "z.csv"
    zones.write_text("zone_id,x_km,y_km\n1,0,0\n2,1,0\n")
    t = tmp_path / "t.csv"
    t.write_text("origin,destination,minutes\n1,2,5\n2,1,6\n")
    with caplog.at_level(logging.INFO, logger="rlsuite.envs.dispatch.city"):
        measured = load_city(zones, t)
    # a loaded table is used as given at every hour: 5 minutes at 03:00 and at 19:00
    assert np.array_equal(measured.speed_profile, np.ones(24)) and "speed profile flat" in caplog.text
    assert measured.travel_minutes(3 * 60)[0, 1] == 5.0 and measured.travel_minutes(19 * 60)[0, 1] == 5.0
    modelled = load_city(zones)  # minutes from speed_kmh: NYC-like congestion like the built-in cities
    assert np.array_equal(modelled.speed_profile, NYC_SPEED_PROFILE)
    scaled = load_city(zones, t, speed_profile=NYC_SPEED_PROFILE)
    assert scaled.travel_minutes(19 * 60)[0, 1] == pytest.approx(5.0 / NYC_SPEED_PROFILE[19])
    flat = load_city(zones, speed_profile=[1.0] * 24)
    assert np.array_equal(flat.speed_profile, np.ones(24)) and flat.speed_profile.dtype == np.float64
    with pytest.raises(ValueError, match="speed_profile must be 24 finite numbers > 0"):
        load_city(zones, t, speed_profile=np.ones(12))
    with pytest.raises(ValueError, match="speed_profile must be 24 finite numbers > 0"):
        load_city(zones, speed_profile=np.r_[np.ones(23), 0.0])


def test_zone_graph():
    c = grid_city(2, 2)
    g = zone_graph(c)
    assert g.number_of_nodes() == 4 and g.number_of_edges() == 12
    assert g.nodes[3]["zone_id"] == 3 and g.nodes[3]["xy_km"] == (1.0, 1.0)
    assert g.edges[0, 3]["weight"] == pytest.approx(c.travel_min[0, 3])
    assert g.edges[0, 3]["km"] == pytest.approx(c.distance_km[0, 3])
