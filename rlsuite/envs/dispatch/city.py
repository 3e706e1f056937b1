"""Cities for the dispatch environment: zones, their centroids and the travel between them.

A :class:`City` holds ``Z`` zones, each with an external id (``zone_ids``, e.g. the NYC TLC
LocationID) and a centroid in km (``xy_km``, x east, y north), the road distance ``distance_km`` and the
free-flow travel time ``travel_min`` between every pair of centroids, and a relative speed by hour of
day (``speed_profile``). Arrays are indexed by the zone *index* ``0 .. Z-1``; :meth:`City.zone_index`
maps external ids to indices.

Builders:

- :func:`manhattan_city`: the 69 Manhattan taxi zones of the NYC TLC with their real LocationIDs and
  **synthetic centroids**. No shapefile ships with the suite, so the centroids are laid out by hand in
  rows across a long narrow island about 3.5 km wide and 20 km long, turned 29 degrees east of north
  like Manhattan's street grid, the zones in roughly their real south-to-north and west-to-east order
  (Battery Park at the southern tip, Marble Hill at the northern end; the harbour islands 103/104/105,
  Roosevelt Island 202 and Randalls Island 194 off the shore). Distances come out at the right scale,
  not at the real values. For real centroids export the TLC taxi-zone shapefile's polygon centroids to
  a CSV (``zone_id,lat,lon``) and build the city with :func:`load_city`.
- :func:`grid_city`: a ``rows x cols`` grid of square blocks (small cities for tests).
- :func:`load_city`: centroids from a CSV (km or lat/lon), travel times optionally from a second CSV
  (``speed_profile=``: by default flat with a travel CSV, :data:`NYC_SPEED_PROFILE` without).

Travel models (``travel=``), both with a detour factor (road km per straight-line km, default 1.3) and
a free-flow speed (``speed_kmh``, default 18 km/h), ``travel_min = distance_km / speed_kmh * 60``:

- ``"euclidean"``: ``distance_km = straight-line km * detour``;
- ``"graph"``: shortest paths (networkx) over a road graph between neighbouring zones, edge length =
  straight-line km * detour. The graph is the Gabriel graph of the centroids: zones ``i`` and ``j`` are
  joined when no other centroid lies in the closed disc whose diameter is the segment ``ij``. It holds
  every Euclidean minimum spanning tree, so it is connected, and on a grid it is the 4-neighbour street
  grid.

The diagonal (a trip that starts and ends in the same zone) is ``max(0.5, 0.5 * mean nearest-neighbour
km * detour)`` km in both models, so every entry is positive. Off the diagonal both models satisfy the
triangle inequality ``d[i, j] <= d[i, k] + d[k, j]``.

The travel time at a minute of the day is ``travel_min / speed_factor(minute)``; :data:`NYC_SPEED_PROFILE`
is the default speed profile (a stylised shape, not fitted to data) of the built-in cities and of
:func:`load_city` without a travel CSV.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import networkx

log = logging.getLogger(__name__)

TRAVEL_MODES = ("euclidean", "graph")
"""The travel models of :func:`manhattan_city` and :func:`grid_city`."""

MINUTES_PER_DAY = 24 * 60

EARTH_RADIUS_KM = 6371.0088
"""Mean earth radius (IUGG) used to turn lat/lon into km."""

MIN_INTRA_ZONE_KM = 0.5
"""Shortest trip inside a zone (km) for the diagonal of ``distance_km``."""

# fmt: off
NYC_SPEED_PROFILE = np.array([
    0.85, 0.90, 0.95, 1.00, 1.00, 0.95,   # 00-05 h: free flow before dawn
    0.85, 0.70, 0.60, 0.58, 0.58, 0.57,   # 06-11 h: morning rush, slow midday
    0.56, 0.56, 0.55, 0.55, 0.55, 0.55,   # 12-17 h: slowest in the afternoon and evening rush
    0.57, 0.62, 0.68, 0.72, 0.76, 0.80,   # 18-23 h: recovering through the evening
], dtype=np.float64)
# fmt: on
"""Relative speed by hour of day in Manhattan (``(24,)``; entry ``h`` is the value at ``h``:00, 1 = free
flow). A stylised shape of NYC's taxi speeds by hour (fastest around 3-5 am, roughly half of that from
late morning through the evening rush, recovering at night), not fitted to data. At the default 18 km/h
free flow it gives about 10 km/h in the afternoon and 11 km/h at 19:00."""
NYC_SPEED_PROFILE.setflags(write=False)

# fmt: off
MANHATTAN_ZONE_IDS = np.array([
    4, 12, 13, 24, 41, 42, 43, 45, 48, 50, 68, 74, 75, 79, 87, 88, 90, 100, 103, 104, 105, 107, 113, 114,
    116, 120, 125, 127, 128, 137, 140, 141, 142, 143, 144, 148, 151, 152, 153, 158, 161, 162, 163, 164,
    166, 170, 186, 194, 202, 209, 211, 224, 229, 230, 231, 232, 233, 234, 236, 237, 238, 239, 243, 244,
    246, 249, 261, 262, 263,
], dtype=np.int64)
# fmt: on
"""The 69 NYC TLC taxi-zone LocationIDs of the borough of Manhattan, ascending (the zone order of
:func:`manhattan_city`)."""
MANHATTAN_ZONE_IDS.setflags(write=False)

MANHATTAN_ROTATION_DEG = 29.0
"""Angle of Manhattan's street grid (and of the synthetic island's long axis) east of true north."""

# fmt: off
# Synthetic layout: rows across the island from the southern tip, (km along the axis, width of the island
# there in km, zones from west to east), spread evenly across the width.
_MANHATTAN_ROWS: tuple[tuple[float, float, tuple[int, ...]], ...] = (
    (0.4, 0.6, (12,)),                            # Battery Park
    (1.2, 1.5, (13, 88, 209)),                    # Battery Park City, FiDi South, Seaport
    (2.1, 1.9, (261, 87, 232)),                   # World Trade Center, FiDi North, Two Bridges
    (3.0, 2.4, (231, 45, 148)),                   # TriBeCa, Chinatown, Lower East Side
    (3.9, 3.0, (125, 211, 144, 4)),               # Hudson Sq, SoHo, Little Italy, Alphabet City
    (4.8, 3.3, (158, 249, 113, 114, 79)),         # Meatpacking, West Village, Greenwich Village, East Village
    (5.7, 3.5, (246, 68, 90, 234, 107, 224)),     # Chelsea, Flatiron, Union Sq, Gramercy, Stuy Town
    (6.6, 3.5, (186, 100, 164, 170, 137)),        # Penn Station, Garment District, Midtown South, Kips Bay
    (7.5, 3.5, (50, 48, 230, 161, 162, 233)),     # Clinton, Times Sq, Midtown Center/East, Turtle Bay
    (8.4, 3.4, (143, 142, 163, 229)),             # Lincoln Square, Midtown North, Sutton Place
    (9.4, 3.3, (239, 141, 140)),                  # Upper West Side South, Lenox Hill
    (10.5, 3.2, (238, 43, 237, 263, 262)),        # Upper West Side North, Central Park, Upper East Side, Yorkville
    (11.6, 3.1, (24, 151, 236, 75)),              # Bloomingdale, Manhattan Valley, UES North, East Harlem South
    (12.8, 3.0, (166, 41, 74)),                   # Morningside Heights, Central Harlem, East Harlem North
    (14.0, 2.8, (152, 42)),                       # Manhattanville, Central Harlem North
    (15.3, 2.6, (116, 120)),                      # Hamilton Heights, Highbridge Park
    (16.6, 2.3, (244,)),                          # Washington Heights South
    (17.8, 2.0, (243,)),                          # Washington Heights North
    (19.0, 1.6, (128, 127)),                      # Inwood Hill Park, Inwood
    (19.9, 0.8, (153,)),                          # Marble Hill
)
# Zones off the shore: (km across the axis, east positive; km along the axis).
_MANHATTAN_OFFSHORE: dict[int, tuple[float, float]] = {
    103: (0.6, -1.0),   # Governors Island
    104: (-2.4, 1.0),   # Ellis Island
    105: (-2.3, -1.4),  # Liberty Island
    202: (2.1, 8.9),    # Roosevelt Island
    194: (2.5, 13.6),   # Randalls Island
}
# fmt: on


def readonly_copy(a: np.ndarray) -> np.ndarray:
    """A copy of ``a`` that cannot be written to (the arrays of the frozen dataclasses)."""
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def interpolate_hourly(profile: np.ndarray, minute_of_day: float | np.ndarray) -> float | np.ndarray:
    """Linear interpolation of an hourly ``(24,)`` profile at a minute of the day.

    ``profile[h]`` is the value at ``h``:00; between two hours the value is linear, and the day wraps
    (23:30 lies halfway between ``profile[23]`` and ``profile[0]``). ``minute_of_day`` may be any finite
    float or array of floats (taken modulo 1440). Returns a float for a scalar, else an array of the same
    shape.
    """
    profile = np.asarray(profile, dtype=np.float64)
    if profile.shape != (24,):
        raise ValueError(f"an hourly profile has shape (24,); got {profile.shape}.")
    m = np.asarray(minute_of_day, dtype=np.float64)
    if not np.all(np.isfinite(m)):
        raise ValueError(f"minute_of_day must be finite; got {minute_of_day!r}.")
    hours = np.mod(m, MINUTES_PER_DAY) / 60.0
    lo = np.floor(hours).astype(np.int64) % 24
    w = hours - np.floor(hours)
    out = (1.0 - w) * profile[lo] + w * profile[(lo + 1) % 24]
    return float(out) if out.ndim == 0 else out


@dataclasses.dataclass(frozen=True, eq=False)
class City:
    """Zones of a city and the travel between them (arrays are read-only copies)."""

    name: str
    """short name (``"manhattan"``, ``"grid3x4"``, the CSV's file stem)"""
    zone_ids: np.ndarray
    """``(Z,)`` int64 external zone ids, unique (TLC LocationIDs for Manhattan, ``0 .. Z-1`` for a grid)"""
    xy_km: np.ndarray
    """``(Z, 2)`` float64 zone centroids in km (x east, y north)"""
    distance_km: np.ndarray
    """``(Z, Z)`` float64 road km from centroid i to centroid j (diagonal: a trip inside the zone, > 0)"""
    travel_min: np.ndarray
    """``(Z, Z)`` float64 free-flow minutes from zone i to zone j at speed factor 1 (all > 0)"""
    speed_profile: np.ndarray = dataclasses.field(default_factory=lambda: NYC_SPEED_PROFILE.copy())
    """``(24,)`` float64 relative speed by hour of day, entry h at h:00 (1 = free flow)"""

    def __post_init__(self) -> None:
        ids = np.asarray(self.zone_ids)
        if ids.ndim != 1 or ids.size < 2:
            raise ValueError(
                f"City {self.name!r}: zone_ids has shape {ids.shape}; expected (Z,) with Z >= 2."
            )
        if not np.issubdtype(ids.dtype, np.integer):
            as_float = np.asarray(ids, dtype=np.float64)
            if not np.all(np.isfinite(as_float)) or np.any(as_float != np.round(as_float)):
                raise ValueError(f"City {self.name!r}: zone_ids must be integers; got dtype {ids.dtype}.")
        ids = ids.astype(np.int64)
        uniq, counts = np.unique(ids, return_counts=True)
        if np.any(counts > 1):
            raise ValueError(
                f"City {self.name!r}: zone ids {uniq[counts > 1][:10].tolist()} appear more than once; "
                "expected unique ids; fix: give each zone one row."
            )
        z = ids.size
        arrays = {}
        for field, shape in (
            ("xy_km", (z, 2)),
            ("distance_km", (z, z)),
            ("travel_min", (z, z)),
            ("speed_profile", (24,)),
        ):
            a = np.asarray(getattr(self, field), dtype=np.float64)
            if a.shape != shape:
                raise ValueError(
                    f"City {self.name!r}: {field} has shape {a.shape}; expected {shape} for {z} zones."
                )
            if not np.all(np.isfinite(a)):
                raise ValueError(
                    f"City {self.name!r}: {field} has non-finite entries; expected finite values."
                )
            arrays[field] = a
        for field in ("distance_km", "travel_min", "speed_profile"):
            a = arrays[field]
            if np.any(a <= 0):
                where = np.argwhere(a <= 0)[0].tolist()
                raise ValueError(
                    f"City {self.name!r}: {field} must be > 0 everywhere; got {a[tuple(where)]} at {where}; "
                    "fix: zones need distinct centroids and positive times."
                )
        object.__setattr__(self, "zone_ids", readonly_copy(ids))
        for field, a in arrays.items():
            object.__setattr__(self, field, readonly_copy(a))

    @property
    def num_zones(self) -> int:
        """``Z``, the number of zones."""
        return int(self.zone_ids.size)

    def speed_factor(self, minute_of_day: float) -> float:
        """Relative speed at a minute of the day: ``speed_profile`` interpolated linearly, wrapping at 24 h."""
        return float(interpolate_hourly(self.speed_profile, float(minute_of_day)))

    def travel_minutes(self, minute_of_day: float) -> np.ndarray:
        """``(Z, Z)`` float64 travel minutes at that minute of the day: ``travel_min / speed_factor(minute)``."""
        return self.travel_min / self.speed_factor(minute_of_day)

    def zone_index(self, zone_ids) -> np.ndarray:
        """External zone ids (scalar or array of any shape) -> int64 zone indices ``0 .. Z-1``, same shape.

        Raises ValueError naming the ids that are not zones of this city.
        """
        index, known = self.lookup(zone_ids)
        if not np.all(known):
            unknown = np.unique(np.asarray(zone_ids)[~known])
            raise ValueError(
                f"City {self.name!r}: unknown zone ids {unknown[:10].tolist()}"
                f"{' ...' if unknown.size > 10 else ''}; expected ids of this city "
                f"({self.zone_ids[:8].tolist()}{' ...' if self.num_zones > 8 else ''}, {self.num_zones} zones)."
            )
        return index

    def lookup(self, zone_ids) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`zone_index` without raising: ``(index, known)`` of the ids' shape, int64 indices (0
        where unknown) and a bool mask of the ids that are zones of this city (NaN and non-integers are not)."""
        q = np.asarray(zone_ids)
        if q.dtype.kind not in "iuf":
            raise ValueError(f"zone ids must be numbers; got dtype {q.dtype}.")
        qf = q.astype(np.float64)
        integral = np.isfinite(qf) & (qf == np.round(qf))
        qi = np.where(integral, qf, -1).astype(np.int64)
        order = np.argsort(self.zone_ids, kind="stable")
        sorted_ids = self.zone_ids[order]
        pos = np.clip(np.searchsorted(sorted_ids, qi), 0, self.num_zones - 1)
        known = integral & (sorted_ids[pos] == qi)
        index = np.where(known, order[pos], 0).astype(np.int64)
        return index, known


# ----------------------------------------------------------------------------- builders


def _check_travel_params(travel: str | None, detour: float, speed_kmh: float) -> None:
    if travel is not None and travel not in TRAVEL_MODES:
        raise ValueError(
            f"unknown travel mode {travel!r}; expected one of {', '.join(map(repr, TRAVEL_MODES))}."
        )
    if not (math.isfinite(detour) and detour >= 1.0):
        raise ValueError(f"detour must be a finite road/straight-line ratio >= 1; got {detour}.")
    if not (math.isfinite(speed_kmh) and speed_kmh > 0):
        raise ValueError(f"speed_kmh must be finite and > 0; got {speed_kmh}.")


def _pairwise_km(xy: np.ndarray) -> np.ndarray:
    """``(Z, Z)`` straight-line km between centroids."""
    d = xy[:, None, :] - xy[None, :, :]
    return np.sqrt((d**2).sum(-1))


def _intra_zone_km(euclid: np.ndarray, detour: float) -> float:
    """Diagonal of ``distance_km``: ``max(0.5, 0.5 * mean nearest-neighbour km * detour)``."""
    off = euclid + np.diag(np.full(euclid.shape[0], np.inf))
    return max(MIN_INTRA_ZONE_KM, 0.5 * float(off.min(axis=1).mean()) * detour)


def _import_networkx():
    try:
        import networkx
    except ImportError as e:  # pragma: no cover - networkx is in the dispatch and dev extras
        raise ImportError(
            "graph travel times need networkx; fix: pip install 'rlsuite[dispatch]' (or pip install networkx)."
        ) from e
    return networkx


def gabriel_edges(xy: np.ndarray) -> np.ndarray:
    """``(E, 2)`` int64 pairs ``i < j`` of the Gabriel graph of the points ``xy`` ``(Z, 2)``.

    ``i`` and ``j`` are joined when no other point lies in the closed disc with diameter ``ij`` (a relative
    tolerance of 1e-9 counts points on the circle as inside, so a square grid gives its 4-neighbour edges).
    The candidates are the Delaunay edges (all pairs when the points are collinear or fewer than 4).
    """
    xy = np.asarray(xy, dtype=np.float64)
    z = xy.shape[0]
    cand = None
    if z >= 4:
        from scipy.spatial import Delaunay, QhullError

        try:
            simplices = Delaunay(xy).simplices
            e = np.concatenate([simplices[:, [0, 1]], simplices[:, [1, 2]], simplices[:, [0, 2]]])
            cand = np.unique(np.sort(e, axis=1), axis=0)
        except QhullError:
            cand = None
    if cand is None:
        i, j = np.triu_indices(z, k=1)
        cand = np.stack([i, j], axis=1)
    centre = 0.5 * (xy[cand[:, 0]] + xy[cand[:, 1]])
    r2 = 0.25 * ((xy[cand[:, 0]] - xy[cand[:, 1]]) ** 2).sum(-1)
    d2 = ((xy[None, :, :] - centre[:, None, :]) ** 2).sum(-1)  # (E, Z)
    inside = d2 <= r2[:, None] * (1.0 + 1e-9)
    inside[np.arange(len(cand)), cand[:, 0]] = False
    inside[np.arange(len(cand)), cand[:, 1]] = False
    return cand[~inside.any(axis=1)].astype(np.int64)


def _travel_matrices(
    xy: np.ndarray, travel: str, detour: float, speed_kmh: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(distance_km, travel_min)`` of the euclidean or graph model (see the module docstring)."""
    euclid = _pairwise_km(xy)
    if travel == "euclidean":
        dist = euclid * detour
    else:
        nx = _import_networkx()
        g = nx.Graph()
        g.add_nodes_from(range(xy.shape[0]))
        for i, j in gabriel_edges(xy):
            g.add_edge(int(i), int(j), weight=float(euclid[i, j] * detour))
        dist = np.asarray(
            nx.floyd_warshall_numpy(g, nodelist=range(xy.shape[0]), weight="weight"), dtype=np.float64
        )
    np.fill_diagonal(dist, _intra_zone_km(euclid, detour))
    return dist, dist / speed_kmh * 60.0


def _city_from_xy(
    name: str, zone_ids: np.ndarray, xy: np.ndarray, travel: str, detour: float, speed_kmh: float
) -> City:
    dist, minutes = _travel_matrices(xy, travel, detour, speed_kmh)
    return City(
        name=name,
        zone_ids=zone_ids,
        xy_km=xy,
        distance_km=dist,
        travel_min=minutes,
        speed_profile=NYC_SPEED_PROFILE.copy(),
    )


def manhattan_xy_km() -> np.ndarray:
    """``(69, 2)`` float64 synthetic centroids (km, x east, y north) of :data:`MANHATTAN_ZONE_IDS`, in that order.

    The southern tip of the island is at the origin; the island's long axis points
    :data:`MANHATTAN_ROTATION_DEG` east of north. Synthetic, see the module docstring.
    """
    uv: dict[int, tuple[float, float]] = dict(_MANHATTAN_OFFSHORE)
    for along, width, ids in _MANHATTAN_ROWS:
        n = len(ids)
        for k, zid in enumerate(ids):
            uv[zid] = (-0.5 * width + width * (k + 0.5) / n, along)
    assert sorted(uv) == MANHATTAN_ZONE_IDS.tolist(), "layout must place each Manhattan zone once"
    theta = math.radians(MANHATTAN_ROTATION_DEG)
    across = np.array([math.cos(theta), -math.sin(theta)])  # towards the east side
    along_axis = np.array([math.sin(theta), math.cos(theta)])  # up the island
    u = np.array([uv[int(z)][0] for z in MANHATTAN_ZONE_IDS])
    v = np.array([uv[int(z)][1] for z in MANHATTAN_ZONE_IDS])
    return u[:, None] * across[None, :] + v[:, None] * along_axis[None, :]


def manhattan_city(travel: str = "euclidean", detour: float = 1.3, speed_kmh: float = 18.0) -> City:
    """The 69 Manhattan TLC taxi zones with **synthetic** centroids (see the module docstring).

    ``zone_ids`` are the real LocationIDs (:data:`MANHATTAN_ZONE_IDS`, ascending); ``travel`` is
    ``"euclidean"`` or ``"graph"``; the speed profile is :data:`NYC_SPEED_PROFILE`. Deterministic. For real
    centroids use :func:`load_city` with the taxi-zone shapefile's centroids exported to CSV.
    """
    _check_travel_params(travel, detour, speed_kmh)
    return _city_from_xy("manhattan", MANHATTAN_ZONE_IDS.copy(), manhattan_xy_km(), travel, detour, speed_kmh)


def grid_city(
    rows: int,
    cols: int,
    block_km: float = 1.0,
    travel: str = "euclidean",
    detour: float = 1.3,
    speed_kmh: float = 18.0,
) -> City:
    """A ``rows x cols`` grid of zones ``block_km`` apart (``rows * cols >= 2``).

    Zone ``r * cols + c`` (id = index) sits at ``x = c * block_km``, ``y = r * block_km``. With
    ``travel="graph"`` the road graph is the 4-neighbour grid, so distances are Manhattan distances times
    ``detour``. Example: a 2x2 grid, 1 km blocks, detour 1.3, 18 km/h: neighbours 1.3 km = 4.333 min;
    opposite corners 1.838 km (euclidean) or 2.6 km (graph); inside a zone 0.65 km = 2.167 min.
    """
    if int(rows) != rows or int(cols) != cols or rows < 1 or cols < 1 or rows * cols < 2:
        raise ValueError(
            f"grid_city needs integers rows, cols >= 1 with rows * cols >= 2; got rows={rows}, cols={cols}."
        )
    if not (math.isfinite(block_km) and block_km > 0):
        raise ValueError(f"block_km must be finite and > 0; got {block_km}.")
    _check_travel_params(travel, detour, speed_kmh)
    r, c = np.divmod(np.arange(rows * cols), cols)
    xy = np.stack([c * block_km, r * block_km], axis=1).astype(np.float64)
    return _city_from_xy(
        f"grid{rows}x{cols}", np.arange(rows * cols, dtype=np.int64), xy, travel, detour, speed_kmh
    )


# ----------------------------------------------------------------------------- CSV


def _read_csv_rows(path: str | PathLike, what: str) -> tuple[list[str], list[list[str]]]:
    """Header (lower-case, stripped) and data rows of a small CSV file."""
    path = Path(path)
    with path.open(newline="") as f:
        rows = [row for row in csv.reader(f) if row and any(cell.strip() for cell in row)]
    if not rows:
        raise ValueError(f"{what} {path}: the file is empty; expected a header line and one row per entry.")
    header = [h.strip().lower() for h in rows[0]]
    return header, [[cell.strip() for cell in row] for row in rows[1:]]


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    for n in names:
        if n in header:
            return header.index(n)
    return None


def _numbers(path, what: str, rows: list[list[str]], col: int, name: str) -> np.ndarray:
    out = np.empty(len(rows), dtype=np.float64)
    for k, row in enumerate(rows):
        try:
            out[k] = float(row[col])
        except (ValueError, IndexError):
            cell = row[col] if col < len(row) else "<missing>"
            raise ValueError(
                f"{what} {path}, data row {k + 1}: {name} = {cell!r}; expected a number."
            ) from None
        if not math.isfinite(out[k]):
            raise ValueError(
                f"{what} {path}, data row {k + 1}: {name} = {row[col]!r}; expected a finite number."
            )
    return out


def _integer_ids(path, what: str, values: np.ndarray, name: str) -> np.ndarray:
    if np.any(values != np.round(values)):
        bad = values[values != np.round(values)][0]
        raise ValueError(f"{what} {path}: {name} {bad} is not an integer; expected integer zone ids.")
    return values.astype(np.int64)


def latlon_to_km(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """``(Z, 2)`` km (x east, y north) from degrees: equirectangular projection about the mean lat/lon."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    lat0, lon0 = math.radians(float(lat.mean())), math.radians(float(lon.mean()))
    x = EARTH_RADIUS_KM * (np.radians(lon) - lon0) * math.cos(lat0)
    y = EARTH_RADIUS_KM * (np.radians(lat) - lat0)
    return np.stack([x, y], axis=1)


def load_city(
    zones_csv: str | PathLike,
    travel_csv: str | PathLike | None = None,
    *,
    detour: float = 1.3,
    speed_kmh: float = 18.0,
    speed_profile: np.ndarray | list[float] | None = None,
) -> City:
    """A city from CSV files.

    ``zones_csv``: a header and one row per zone, columns ``zone_id,x_km,y_km`` or ``zone_id,lat,lon``
    (degrees, projected to km about their mean, equirectangular); ``LocationID`` is accepted for
    ``zone_id``, column names are case-insensitive and other columns are ignored. Zones keep the file's
    order.

    ``travel_csv`` (optional): long format ``origin,destination,minutes[,km]`` over zone ids, free-flow
    minutes (speed factor 1). The given pairs form a directed road graph; every pair's time is the
    shortest path over it (networkx), which fills the missing pairs and also shortens a given pair when
    a route through other zones is faster (logged). ``km`` is summed along that fastest route when the
    column is present, else it is straight-line km * ``detour``. A diagonal entry (origin = destination)
    sets that zone's intra-zone trip; otherwise the default of the module docstring applies to both km
    and minutes. Without ``travel_csv`` the euclidean model with ``detour`` and ``speed_kmh``.

    ``speed_profile``: the city's relative speed by hour of day, 24 positive numbers (entry ``h`` at
    ``h``:00), which divides the travel minutes at each minute of the day. None (the default) picks the
    least surprising one: with ``travel_csv``, a flat profile (``np.ones(24)``), so the given minutes are
    used as they are at every hour (a table measured at some hour, or already an average, is not scaled
    again); without it, :data:`NYC_SPEED_PROFILE`, like :func:`manhattan_city` and :func:`grid_city`
    (the free-flow ``speed_kmh`` model slowed down by NYC-like congestion). Pass
    ``NYC_SPEED_PROFILE`` to scale a loaded table by time of day, or ``np.ones(24)`` to keep the
    euclidean minutes constant. The choice is logged at INFO.
    """
    _check_travel_params(None, detour, speed_kmh)
    if speed_profile is None:
        profile = np.ones(24) if travel_csv is not None else NYC_SPEED_PROFILE.copy()
        log.info(
            "load_city %s: speed profile %s (speed_profile=None; pass speed_profile= to choose).",
            Path(zones_csv).name,
            "flat (1.0 at every hour: the travel CSV's minutes as given)"
            if travel_csv is not None
            else "NYC_SPEED_PROFILE (travel minutes from speed_kmh, slowed by time of day)",
        )
    else:
        profile = np.asarray(speed_profile, dtype=np.float64)
        if profile.shape != (24,) or not np.all(np.isfinite(profile)) or np.any(profile <= 0):
            raise ValueError(
                f"load_city: speed_profile must be 24 finite numbers > 0 (relative speed at 0:00 .. 23:00); got "
                f"{profile.tolist() if profile.size <= 24 else f'shape {profile.shape}'}. Use np.ones(24) for "
                "constant travel times or NYC_SPEED_PROFILE."
            )
    what = "zones CSV"
    header, rows = _read_csv_rows(zones_csv, what)
    id_col = _column(header, ("zone_id", "locationid"))
    x_col, y_col = _column(header, ("x_km",)), _column(header, ("y_km",))
    lat_col, lon_col = _column(header, ("lat", "latitude")), _column(header, ("lon", "longitude"))
    if id_col is None or not (
        (x_col is not None and y_col is not None) or (lat_col is not None and lon_col is not None)
    ):
        raise ValueError(
            f"{what} {zones_csv}: found columns {header}; expected zone_id,x_km,y_km or zone_id,lat,lon; "
            "fix: rename the columns."
        )
    if len(rows) < 2:
        raise ValueError(f"{what} {zones_csv}: {len(rows)} zone rows; expected at least 2 zones.")
    ids = _integer_ids(zones_csv, what, _numbers(zones_csv, what, rows, id_col, "zone_id"), "zone_id")
    if x_col is not None and y_col is not None:
        xy = np.stack(
            [_numbers(zones_csv, what, rows, x_col, "x_km"), _numbers(zones_csv, what, rows, y_col, "y_km")],
            1,
        )
    else:
        lat = _numbers(zones_csv, what, rows, lat_col, "lat")
        lon = _numbers(zones_csv, what, rows, lon_col, "lon")
        if np.any(np.abs(lat) > 90) or np.any(np.abs(lon) > 180):
            raise ValueError(f"{what} {zones_csv}: lat must lie in [-90, 90] and lon in [-180, 180] degrees.")
        xy = latlon_to_km(lat, lon)
    name = Path(zones_csv).name.split(".")[0]
    if travel_csv is None:
        return dataclasses.replace(
            _city_from_xy(name, ids, xy, "euclidean", detour, speed_kmh), speed_profile=profile
        )
    city0 = City(
        name=name,
        zone_ids=ids,
        xy_km=xy,
        distance_km=np.ones((ids.size, ids.size)),
        travel_min=np.ones((ids.size, ids.size)),
    )  # validates ids and centroids; gives zone_index
    dist, minutes = _travel_from_csv(city0, travel_csv, detour, speed_kmh)
    return City(
        name=name,
        zone_ids=ids,
        xy_km=xy,
        distance_km=dist,
        travel_min=minutes,
        speed_profile=profile,
    )


def _travel_from_csv(
    city: City, travel_csv, detour: float, speed_kmh: float
) -> tuple[np.ndarray, np.ndarray]:
    what = "travel CSV"
    header, rows = _read_csv_rows(travel_csv, what)
    o_col, d_col = _column(header, ("origin",)), _column(header, ("destination",))
    m_col, k_col = _column(header, ("minutes",)), _column(header, ("km",))
    if o_col is None or d_col is None or m_col is None:
        raise ValueError(
            f"{what} {travel_csv}: found columns {header}; expected origin,destination,minutes[,km]; "
            "fix: rename the columns."
        )
    if not rows:
        raise ValueError(f"{what} {travel_csv}: no rows; expected one row per origin-destination pair.")
    o = city.zone_index(
        _integer_ids(travel_csv, what, _numbers(travel_csv, what, rows, o_col, "origin"), "origin")
    )
    d = city.zone_index(
        _integer_ids(travel_csv, what, _numbers(travel_csv, what, rows, d_col, "destination"), "destination")
    )
    mins = _numbers(travel_csv, what, rows, m_col, "minutes")
    kms = _numbers(travel_csv, what, rows, k_col, "km") if k_col is not None else None
    if np.any(mins <= 0) or (kms is not None and np.any(kms <= 0)):
        raise ValueError(f"{what} {travel_csv}: minutes and km must be > 0; fix: drop or correct those rows.")
    pair = o * city.num_zones + d
    uniq, counts = np.unique(pair, return_counts=True)
    if np.any(counts > 1):
        p = int(uniq[counts > 1][0])
        raise ValueError(
            f"{what} {travel_csv}: pair {city.zone_ids[p // city.num_zones]} -> {city.zone_ids[p % city.num_zones]} "
            "is given more than once; expected one row per pair."
        )
    z = city.num_zones
    euclid = _pairwise_km(city.xy_km)
    intra_km = _intra_zone_km(euclid, detour)
    nx = _import_networkx()
    g = nx.DiGraph()
    g.add_nodes_from(range(z))
    given = {}
    for k in range(len(rows)):
        i, j = int(o[k]), int(d[k])
        if i != j:
            km = float(kms[k]) if kms is not None else float(euclid[i, j] * detour)
            g.add_edge(i, j, minutes=float(mins[k]), km=km)
            given[(i, j)] = float(mins[k])
    dist = np.zeros((z, z))
    minutes = np.zeros((z, z))
    shortened = 0
    for i, (lengths, paths) in nx.all_pairs_dijkstra(g, weight="minutes"):
        for j, t in lengths.items():
            if j == i:
                continue
            minutes[i, j] = t
            path = paths[j]
            dist[i, j] = sum(g.edges[a, b]["km"] for a, b in zip(path[:-1], path[1:], strict=False))
            if (i, j) in given and t < given[(i, j)] - 1e-12:
                shortened += 1
    off = ~np.eye(z, dtype=bool)
    missing = off & (minutes == 0)
    if missing.any():
        i, j = np.argwhere(missing)[0]
        raise ValueError(
            f"{what} {travel_csv}: no route from zone {city.zone_ids[i]} to zone {city.zone_ids[j]} over the given "
            f"pairs ({int(missing.sum())} pairs unreachable); fix: add pairs so that every zone reaches every other."
        )
    filled = int(off.sum()) - len(given)
    if filled or shortened:
        log.info(
            "load_city %s: %d missing pairs filled by shortest paths, %d given pairs shortened by a faster route",
            city.name,
            filled,
            shortened,
        )
    np.fill_diagonal(dist, intra_km)
    np.fill_diagonal(minutes, intra_km / speed_kmh * 60.0)
    diag = o == d
    dist[o[diag], d[diag]] = kms[diag] if kms is not None else intra_km
    minutes[o[diag], d[diag]] = mins[diag]
    return dist, minutes


def zone_graph(city: City) -> networkx.DiGraph:
    """The city as a complete directed graph: nodes are zone indices ``0 .. Z-1`` (attributes ``zone_id``,
    ``xy_km``), an edge ``i -> j`` for every ``i != j`` with ``weight`` = ``travel_min[i, j]`` and
    ``km`` = ``distance_km[i, j]``. Needs networkx."""
    nx = _import_networkx()
    g = nx.DiGraph(name=city.name)
    for i in range(city.num_zones):
        g.add_node(i, zone_id=int(city.zone_ids[i]), xy_km=tuple(float(v) for v in city.xy_km[i]))
    i, j = np.nonzero(~np.eye(city.num_zones, dtype=bool))
    g.add_edges_from(
        (int(a), int(b), {"weight": float(city.travel_min[a, b]), "km": float(city.distance_km[a, b])})
        for a, b in zip(i, j, strict=True)
    )
    return g
