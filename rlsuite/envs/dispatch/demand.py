"""Demand for the dispatch environment: where and when orders appear, and where they go.

A :class:`DemandModel` is a non-homogeneous Poisson process per zone: at minute ``m`` of the day zone ``i``
emits orders at ``rate[i] * profile(m)`` per minute (``profile`` interpolated from 24 hourly values, see
:func:`~rlsuite.envs.dispatch.city.interpolate_hourly`), and an order from zone ``i`` goes to zone ``j``
with probability ``od[i, j]``.

Sources:

- :func:`synthetic_demand`: zone masses from a seeded draw weighted towards the city's centre, a gravity
  OD (:func:`gravity_od`), the time-of-day shape :data:`HOURLY_PROFILE`, scaled so that the whole city
  emits ``orders_per_minute`` at a chosen minute;
- :func:`load_tlc_trips` reads NYC TLC trip records (yellow, green or FHV; CSV, or parquet with pyarrow)
  into :class:`TripRecords` (one window of one day, zone indices of a city) that a simulator can replay;
- :func:`fit_demand` turns such records into a :class:`DemandModel`.

Arrays are numpy float64 (int64 for indices and minutes).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.util
import logging
import math
from os import PathLike
from pathlib import Path

import numpy as np

from rlsuite.envs.dispatch.city import MINUTES_PER_DAY, City, interpolate_hourly, readonly_copy

log = logging.getLogger(__name__)

# fmt: off
HOURLY_PROFILE = np.array([
    0.55, 0.40, 0.29, 0.21, 0.16, 0.16,   # 00-05 h: night trough around 4-5 am
    0.32, 0.55, 0.70, 0.72, 0.70, 0.72,   # 06-11 h: morning rise
    0.76, 0.77, 0.80, 0.80, 0.80, 0.92,   # 12-17 h: afternoon plateau
    1.00, 1.00, 0.92, 0.88, 0.85, 0.72,   # 18-23 h: evening peak at 18-19 h, then late evening
], dtype=np.float64)
# fmt: on
"""Relative number of orders by hour of day (``(24,)``; entry ``h`` is the value at ``h``:00, peak 1.0 at
18:00 and 19:00). A stylised shape of NYC yellow-taxi pickups by hour (trough around 4-5 am at about a
sixth of the peak, morning rise, afternoon plateau, evening peak), not fitted to data."""
HOURLY_PROFILE.setflags(write=False)


def _check_minute(minute_of_day: float, name: str = "minute_of_day") -> float:
    m = float(minute_of_day)
    if not math.isfinite(m):
        raise ValueError(f"{name} must be finite; got {minute_of_day!r}.")
    return m


@dataclasses.dataclass(frozen=True, eq=False)
class DemandModel:
    """Poisson order arrivals per zone with an hourly profile and an origin-destination matrix."""

    rate: np.ndarray
    """``(Z,)`` float64 orders per minute starting in each zone when the profile is 1 (>= 0)"""
    od: np.ndarray
    """``(Z, Z)`` float64 destination probabilities, row i = zone i's orders (rows sum to 1)"""
    profile: np.ndarray = dataclasses.field(default_factory=lambda: HOURLY_PROFILE.copy())
    """``(24,)`` float64 relative demand by hour of day, entry h at h:00 (>= 0)"""

    def __post_init__(self) -> None:
        rate = np.asarray(self.rate, dtype=np.float64)
        if rate.ndim != 1 or rate.size < 1:
            raise ValueError(f"DemandModel: rate has shape {rate.shape}; expected (Z,).")
        z = rate.size
        od = np.asarray(self.od, dtype=np.float64)
        profile = np.asarray(self.profile, dtype=np.float64)
        if od.shape != (z, z):
            raise ValueError(
                f"DemandModel: od has shape {od.shape}; expected ({z}, {z}) to match rate {rate.shape}."
            )
        if profile.shape != (24,):
            raise ValueError(
                f"DemandModel: profile has shape {profile.shape}; expected (24,), one value per hour."
            )
        for name, a in (("rate", rate), ("od", od), ("profile", profile)):
            if not np.all(np.isfinite(a)) or np.any(a < 0):
                raise ValueError(
                    f"DemandModel: {name} must be finite and >= 0; got min {np.nanmin(a)}, "
                    f"{int((~np.isfinite(a)).sum())} non-finite entries."
                )
        rows = od.sum(axis=1)
        bad = np.abs(rows - 1.0) > 1e-6
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"DemandModel: od row {i} sums to {rows[i]:.6g}; expected every row to sum to 1; "
                "fix: divide each row by its sum (od / od.sum(1, keepdims=True))."
            )
        object.__setattr__(self, "rate", readonly_copy(rate))
        object.__setattr__(self, "od", readonly_copy(od / rows[:, None]))
        object.__setattr__(self, "profile", readonly_copy(profile))

    @property
    def num_zones(self) -> int:
        """``Z``, the number of zones."""
        return int(self.rate.size)

    def rates_at(self, minute_of_day: float) -> np.ndarray:
        """``(Z,)`` float64 orders per minute by origin zone at that minute of the day (``rate * profile(m)``)."""
        return self.rate * interpolate_hourly(self.profile, _check_minute(minute_of_day))

    def total_at(self, minute_of_day: float) -> float:
        """Orders per minute over the whole city at that minute of the day."""
        return float(self.rates_at(minute_of_day).sum())


def _check_city_size(city: City, n: int, what: str) -> None:
    if n != city.num_zones:
        raise ValueError(f"{what} has {n} zones; expected {city.num_zones} for city {city.name!r}.")


def gravity_od(city: City, mass: np.ndarray, beta: float = 0.3) -> np.ndarray:
    """``(Z, Z)`` float64 gravity OD: ``od[i, j]`` proportional to ``mass[j] * exp(-beta * travel_min[i, j])``.

    ``mass`` ``(Z,)`` >= 0 with a positive sum (attraction of each destination); ``beta`` >= 0 per
    free-flow minute (0: proportional to mass). The diagonal (trips inside a zone) is included. Rows sum
    to 1 (computed in log space, so long trips do not underflow a row to zero).
    """
    mass = np.asarray(mass, dtype=np.float64)
    _check_city_size(city, mass.shape[0] if mass.ndim == 1 else -1, f"mass {mass.shape}")
    if not np.all(np.isfinite(mass)) or np.any(mass < 0) or mass.sum() <= 0:
        raise ValueError(
            "gravity_od: mass must be finite, >= 0 and not all zero; got "
            f"min {np.nanmin(mass)}, sum {np.nansum(mass)}."
        )
    if not (math.isfinite(beta) and beta >= 0):
        raise ValueError(f"gravity_od: beta must be finite and >= 0 (per minute); got {beta}.")
    with np.errstate(divide="ignore"):
        logits = np.log(mass)[None, :] - beta * city.travel_min
    logits -= logits.max(axis=1, keepdims=True)
    w = np.exp(logits)
    return w / w.sum(axis=1, keepdims=True)


def synthetic_demand(
    city: City, orders_per_minute: float = 150.0, at_minute: float = 19 * 60, beta: float = 0.3, seed: int = 0
) -> DemandModel:
    """A synthetic demand whose city-wide arrival rate is ``orders_per_minute`` at minute ``at_minute``.

    Zone masses: ``g_i * exp(-0.5 * (d_i / s)^2)`` with ``g_i ~ Gamma(4, 1/4)`` (mean 1, coefficient of
    variation 0.5) drawn with ``numpy.random.default_rng(seed)``, ``d_i`` the km from zone i's centroid to
    the mean centroid and ``s`` the root-mean-square of those distances: busy in the middle (midtown for
    Manhattan), quieter at the ends. Origins: ``rate = orders_per_minute * mass / mass.sum() /
    HOURLY_PROFILE(at_minute)``; destinations: :func:`gravity_od` with the same masses and ``beta``;
    profile: :data:`HOURLY_PROFILE`. Deterministic for a seed.
    """
    if not (math.isfinite(orders_per_minute) and orders_per_minute > 0):
        raise ValueError(
            f"synthetic_demand: orders_per_minute must be finite and > 0; got {orders_per_minute}."
        )
    at_minute = _check_minute(at_minute, "at_minute")
    rng = np.random.default_rng(seed)
    g = rng.gamma(shape=4.0, scale=0.25, size=city.num_zones)
    d = np.linalg.norm(city.xy_km - city.xy_km.mean(axis=0), axis=1)
    s = math.sqrt(float((d**2).mean()))
    mass = g * np.exp(-0.5 * (d / s) ** 2)
    rate = orders_per_minute * mass / mass.sum() / interpolate_hourly(HOURLY_PROFILE, at_minute)
    return DemandModel(rate=rate, od=gravity_od(city, mass, beta), profile=HOURLY_PROFILE.copy())


# ----------------------------------------------------------------------------- TLC trip records


@dataclasses.dataclass(frozen=True, eq=False)
class TripRecords:
    """Orders of one time window: when each appears and its origin and destination zone indices."""

    minute: np.ndarray
    """``(M,)`` int64 minute of the window in which the order appears, ``0 .. minutes - 1``"""
    origin: np.ndarray
    """``(M,)`` int64 pickup zone index (``0 .. Z-1`` of the city it was loaded for)"""
    destination: np.ndarray
    """``(M,)`` int64 drop-off zone index"""
    minutes: int
    """window length in minutes (>= 1)"""
    start_minute: int
    """minute of the day of the window's start, ``0 .. 1439``"""

    def __post_init__(self) -> None:
        if int(self.minutes) != self.minutes or self.minutes < 1:
            raise ValueError(f"TripRecords: minutes = {self.minutes}; expected an integer >= 1.")
        if int(self.start_minute) != self.start_minute or not 0 <= self.start_minute < MINUTES_PER_DAY:
            raise ValueError(
                f"TripRecords: start_minute = {self.start_minute}; expected an integer in [0, 1440)."
            )
        arrays = {}
        for name in ("minute", "origin", "destination"):
            a = np.asarray(getattr(self, name))
            if a.ndim != 1:
                raise ValueError(f"TripRecords: {name} has shape {a.shape}; expected (M,).")
            if a.size and (a.dtype.kind not in "iu" and np.any(a != np.round(a))):
                raise ValueError(f"TripRecords: {name} must hold integers; got dtype {a.dtype}.")
            arrays[name] = a.astype(np.int64)
        sizes = {name: a.size for name, a in arrays.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(
                f"TripRecords: minute, origin and destination differ in length {sizes}; expected (M,) each."
            )
        m = arrays["minute"]
        if m.size and (m.min() < 0 or m.max() >= self.minutes):
            raise ValueError(
                f"TripRecords: minute spans [{m.min()}, {m.max()}]; expected 0 .. {self.minutes - 1}."
            )
        for name in ("origin", "destination"):
            if arrays[name].size and arrays[name].min() < 0:
                raise ValueError(f"TripRecords: {name} has negative zone indices; expected indices 0 .. Z-1.")
        for name, a in arrays.items():
            object.__setattr__(self, name, readonly_copy(a))
        object.__setattr__(self, "minutes", int(self.minutes))
        object.__setattr__(self, "start_minute", int(self.start_minute))

    @property
    def num_trips(self) -> int:
        """``M``, the number of orders."""
        return int(self.minute.size)


TIME_COLUMNS = {"tpep_pickup_datetime": "yellow", "lpep_pickup_datetime": "green", "pickup_datetime": "FHV"}
"""Pickup time columns of the TLC layouts (matched case-insensitively)."""
PICKUP_ZONE_COLUMN = "pulocationid"
"""Pickup zone column, case-insensitive (``PULocationID``; FHV files spell it ``PUlocationID``)."""
DROPOFF_ZONE_COLUMN = "dolocationid"
"""Drop-off zone column, case-insensitive (``DOLocationID``; FHV: ``DOlocationID``)."""


def _tlc_columns(path, columns: list[str]) -> tuple[str, str, str]:
    """``(time, pickup zone, drop-off zone)`` column names of a TLC file, or a ValueError naming what is missing."""
    lower = {c.lower(): c for c in columns}
    time_col = next((lower[c] for c in TIME_COLUMNS if c in lower), None)
    pu, do = lower.get(PICKUP_ZONE_COLUMN), lower.get(DROPOFF_ZONE_COLUMN)
    if time_col is None or pu is None or do is None:
        raise ValueError(
            f"TLC trips {path}: found columns {list(columns)}; expected a pickup time column "
            "(tpep_pickup_datetime for yellow, lpep_pickup_datetime for green, pickup_datetime for FHV) and "
            "PULocationID, DOLocationID (FHV: PUlocationID, DOlocationID); fix: pass a TLC trip-record file."
        )
    return time_col, pu, do


def _read_tlc(path: Path):
    """The pickup time, pickup zone and drop-off zone columns of a TLC file as a pandas DataFrame."""
    try:
        import pandas as pd
    except ImportError as e:  # pragma: no cover - pandas is in the dispatch and dev extras
        raise ImportError(
            "load_tlc_trips needs pandas; fix: pip install 'rlsuite[dispatch]' (or pip install pandas)."
        ) from e
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        if importlib.util.find_spec("pyarrow") is None:
            raise ImportError(
                f"TLC trips {path}: reading parquet needs pyarrow, which is not installed; "
                "fix: pip install pyarrow (or convert the file to CSV)."
            )
        import pyarrow.parquet as pq

        cols = _tlc_columns(path, pq.read_schema(path).names)
        return pd.read_parquet(path, columns=list(cols)), cols
    if name.endswith((".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz")):
        cols = _tlc_columns(path, list(pd.read_csv(path, nrows=0).columns))
        return pd.read_csv(path, usecols=list(cols), dtype={cols[0]: str}), cols
    raise ValueError(
        f"TLC trips {path}: unknown file type; expected a .csv (optionally compressed) or .parquet file."
    )


def _parse_window(date: str, start: str, minutes: int) -> tuple[dt.datetime, int]:
    try:
        day = dt.date.fromisoformat(str(date))
    except ValueError:
        raise ValueError(f"date = {date!r}; expected YYYY-MM-DD, e.g. '2024-07-17'.") from None
    try:
        hh, mm = (int(p) for p in str(start).split(":"))
        if not (0 <= hh < 24 and 0 <= mm < 60):
            raise ValueError
    except ValueError:
        raise ValueError(f"start = {start!r}; expected HH:MM on a 24-hour clock, e.g. '19:00'.") from None
    if int(minutes) != minutes or minutes < 1:
        raise ValueError(f"minutes = {minutes}; expected an integer >= 1.")
    return dt.datetime.combine(day, dt.time(hh, mm)), hh * 60 + mm


US_TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
"""Second time format tried after ISO 8601 (``07/17/2024 07:05:12 PM``, as in NYC Open Data CSV exports)."""


def _parse_times(col):
    """Pickup times as naive pandas datetimes (NaT where unreadable): ISO 8601, then :data:`US_TIME_FORMAT`."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(col):
        t = col
    else:
        text = col.astype("string").str.strip()
        t = pd.to_datetime(text, format="ISO8601", errors="coerce")
        retry = t.isna() & text.notna()
        if retry.any():
            t = t.where(~retry, pd.to_datetime(text[retry], format=US_TIME_FORMAT, errors="coerce"))
    if getattr(t.dt, "tz", None) is not None:
        t = t.dt.tz_localize(None)
    return t


def load_tlc_trips(
    path: str | PathLike, city: City, date: str, start: str = "19:00", minutes: int = 30
) -> TripRecords:
    """Orders of one window from an NYC TLC trip-record file (yellow, green or FHV layout).

    ``path``: a CSV (optionally compressed) or a parquet file (needs pyarrow). Columns, matched
    case-insensitively: the pickup time ``tpep_pickup_datetime`` (yellow), ``lpep_pickup_datetime``
    (green) or ``pickup_datetime`` (FHV), and ``PULocationID`` / ``DOLocationID``; other columns are
    ignored. Keeps the trips picked up at ``date`` (``YYYY-MM-DD``) ``start`` (``HH:MM``) or later and
    before ``start + minutes`` whose pickup and drop-off zones are both zones of ``city``; the rest is
    dropped and the counts logged (unreadable pickup time, outside the window, a zone outside the city
    or missing). Times are read as ISO 8601 (``2024-07-17 19:05:12``, the TLC files) or, failing that,
    ``07/17/2024 07:05:12 PM``; time zones are dropped (TLC times are New York local time). Returns the kept trips ordered by pickup time, ``minute`` = whole minutes since the
    window's start, origins and destinations as zone indices of ``city``.
    """
    path = Path(path)
    t0, start_minute = _parse_window(date, start, minutes)
    frame, (time_col, pu_col, do_col) = _read_tlc(path)
    import pandas as pd

    n = len(frame)
    t = _parse_times(frame[time_col])
    readable = t.notna().to_numpy()
    offset_s = (t - pd.Timestamp(t0)).dt.total_seconds().to_numpy()
    in_window = readable & (offset_s >= 0) & (offset_s < minutes * 60)
    pu = pd.to_numeric(frame[pu_col], errors="coerce").to_numpy(dtype=np.float64)
    do = pd.to_numeric(frame[do_col], errors="coerce").to_numpy(dtype=np.float64)
    o_idx, o_known = city.lookup(pu)
    d_idx, d_known = city.lookup(do)
    keep = in_window & o_known & d_known
    n_unreadable = int((~readable).sum())
    n_outside = int((readable & ~in_window).sum())
    n_zone = int((in_window & ~(o_known & d_known)).sum())
    log.info(
        "load_tlc_trips %s: kept %d of %d trips for %s %s + %d min; dropped %d outside the window, "
        "%d with a pickup or drop-off zone outside %r (or missing), %d with an unreadable pickup time",
        path.name,
        int(keep.sum()),
        n,
        date,
        start,
        minutes,
        n_outside,
        n_zone,
        city.name,
        n_unreadable,
    )
    if not keep.any():
        log.warning(
            "load_tlc_trips %s: no trips in %s %s + %d min inside %r",
            path.name,
            date,
            start,
            minutes,
            city.name,
        )
    order = np.argsort(offset_s[keep], kind="stable")
    return TripRecords(
        minute=np.floor(offset_s[keep][order] / 60.0).astype(np.int64),
        origin=o_idx[keep][order],
        destination=d_idx[keep][order],
        minutes=int(minutes),
        start_minute=start_minute,
    )


def fit_demand(trips: TripRecords, city: City, smoothing: float = 0.5) -> DemandModel:
    """A :class:`DemandModel` fitted to one window of trips.

    ``rate[i]`` = trips starting in zone i / ``trips.minutes`` (the window's mean rate); ``od[i, j]`` =
    ``(count[i, j] + smoothing) / (count[i] + smoothing * Z)`` (additive smoothing; with ``smoothing = 0``
    a zone without trips gets the city-wide destination frequencies); ``profile`` = :data:`HOURLY_PROFILE`
    divided by its value at the window's start, so ``rates_at(start) == rate`` reproduces the observed
    mean rate and other times follow the hourly shape.
    """
    z = city.num_zones
    if trips.num_trips == 0:
        raise ValueError(
            "fit_demand: no trips; expected at least one (check the date and window given to load_tlc_trips)."
        )
    top = int(max(trips.origin.max(), trips.destination.max()))
    if top >= z:
        raise ValueError(
            f"fit_demand: zone index {top} in the trips; expected indices below {z} for city {city.name!r}; "
            "fix: fit with the city the trips were loaded for."
        )
    if not (math.isfinite(smoothing) and smoothing >= 0):
        raise ValueError(f"fit_demand: smoothing must be finite and >= 0; got {smoothing}.")
    counts = np.zeros((z, z), dtype=np.float64)
    np.add.at(counts, (trips.origin, trips.destination), 1.0)
    rate = counts.sum(axis=1) / trips.minutes
    od = counts + smoothing
    empty = od.sum(axis=1) == 0
    od[empty] = counts.sum(axis=0)
    od /= od.sum(axis=1, keepdims=True)
    profile = HOURLY_PROFILE / interpolate_hourly(HOURLY_PROFILE, trips.start_minute)
    return DemandModel(rate=rate, od=od, profile=profile)
