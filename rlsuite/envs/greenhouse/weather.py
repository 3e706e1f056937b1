"""Weather for the greenhouse: a seeded synthetic generator and a loader for KNMI-style hourly CSV files.

Both produce hourly values that are interpolated linearly to the 15-minute control step. A season is a
``(n_steps, 4)`` float64 array in *raw* units, one row per control step from midnight of its first day:

| column | quantity | unit |
|---|---|---|
| 0 | global radiation | W m^-2 |
| 1 | outdoor CO2 | ppm |
| 2 | outdoor temperature | degC |
| 3 | outdoor relative humidity | % |

(the env converts CO2 and humidity to densities with :mod:`rlsuite.envs.greenhouse.model`). A source
answers ``season(start_days, seeds, n_steps) -> (N, n_steps, 4)``: ``start_days`` picks where each season
starts (a day of the year for the generator, a day of the record for a file), ``seeds`` the random
weather (ignored by a file). Each row depends only on its own ``(start_day, seed)``: a batch of seasons
equals the same seasons made one by one.

Synthetic weather (:class:`SyntheticWeather`, parameters in :class:`SyntheticClimate`, defaults for a
Dutch climate at 52 degN):

- clear-sky radiation from the sun's elevation ``alpha`` (declination and hour angle at the latitude):
  ``910 sin(alpha) - 30`` W m^-2 (Kasten and Czeplak 1980), times ``1 - 0.75 n^3.4`` for cloud cover
  ``n`` in ``[0, 1]``; ``n`` is a daily Beta draw plus hourly AR(1) noise, clipped;
- temperature ``T_mean - A_year cos(2 pi (doy - coldest) / 365) + A_day(n) sin(2 pi (h - 9) / 24)`` plus
  hourly AR(1) noise (stationary std ``temp_noise_std``), the daily amplitude larger on clear days;
- relative humidity: a daily level drawn from ``U(rh_low, rh_high)`` minus a daily swing in phase with
  the temperature (humid nights, drier afternoons), clipped to ``[20, 100]``;
- CO2: ``co2_ppm`` with a daily swing of ``co2_daily_amp`` (highest before dawn).

CSV files (:func:`load_knmi_csv`, :class:`CSVWeather`): KNMI's hourly station records ("uurgegevens")
or any file with the same columns. Comment lines start with ``#``; the header is the first line (or the
last comment line) that names the columns, separated by commas, spaces around values ignored:

| column | meaning | unit |
|---|---|---|
| ``YYYYMMDD`` | date | |
| ``HH`` | hour, 1..24: the hour ending at ``HH``:00 | |
| ``T`` | temperature at the end of the hour | 0.1 degC |
| ``Q`` | global radiation summed over the hour | J cm^-2 |
| ``U`` | relative humidity at the end of the hour | % |
| ``CO2`` (optional) | outdoor CO2 | ppm (420 when absent) |

Other columns are ignored. The records must cover whole days (``HH`` 1 to 24) without gaps. ``Q`` is an
hour's mean ``Q 1e4 / 3600`` W m^-2 placed at the middle of its hour, ``T``, ``U`` and ``CO2`` at the end
of theirs; all four are interpolated linearly to the 15-minute grid (held flat before the first value).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy.signal import lfilter

STEPS_PER_HOUR = 4
STEPS_PER_DAY = 96
COLUMNS = ("radiation", "co2", "temperature", "rh")


class WeatherSource(Protocol):
    """What the env needs from a weather source."""

    n_start_days: int
    """``start_days`` take the values ``0 .. n_start_days - 1``"""

    def season(self, start_days: np.ndarray, seeds: np.ndarray, n_steps: int) -> np.ndarray:
        """``(N, n_steps, 4)`` float64 raw weather (see the module docstring)."""

    def evaluation_set(self) -> tuple[tuple[int, int], ...]:
        """Fixed ``(start_day, seed)`` pairs for evaluation."""


@dataclasses.dataclass(frozen=True)
class SyntheticClimate:
    """Parameters of the synthetic weather (defaults: a Dutch climate, De Bilt-like)."""

    latitude: float = 52.1
    """degrees north (sets day length and the sun's elevation)"""
    temp_mean: float = 10.5
    """annual mean temperature [degC]"""
    temp_year_amp: float = 7.0
    """seasonal amplitude [degC]: coldest-day mean ``temp_mean - temp_year_amp``"""
    coldest_day: int = 15
    """day of the year (0 = 1 January) of the lowest seasonal mean"""
    temp_day_amp_clear: float = 5.0
    """daily amplitude on a clear day [degC] (peak at 15:00, low at 03:00)"""
    temp_day_amp_overcast: float = 1.5
    """daily amplitude on an overcast day [degC]"""
    temp_noise_std: float = 2.5
    """stationary std of the hourly AR(1) temperature noise [degC]"""
    temp_noise_phi: float = 0.97
    """AR(1) coefficient per hour (correlation time about 33 h)"""
    cloud_beta: tuple[float, float] = (2.0, 1.2)
    """Beta(a, b) of the daily mean cloud cover (mean 0.63)"""
    cloud_noise_std: float = 0.15
    """stationary std of the hourly AR(1) cloud-cover noise"""
    cloud_noise_phi: float = 0.8
    """its AR(1) coefficient per hour"""
    rh_low: float = 60.0
    """lowest daily mean relative humidity [%]"""
    rh_high: float = 90.0
    """highest daily mean relative humidity [%]"""
    rh_day_amp: float = 10.0
    """daily swing of the relative humidity [%], opposite to the temperature's"""
    co2_ppm: float = 420.0
    """mean outdoor CO2 [ppm]"""
    co2_daily_amp: float = 15.0
    """daily swing of outdoor CO2 [ppm] (highest at 03:00)"""

    def __post_init__(self) -> None:
        if not -66.0 <= self.latitude <= 66.0:
            raise ValueError(f"latitude must lie within the polar circles, [-66, 66] degrees; got {self.latitude}.")
        if not 0.0 <= self.temp_noise_phi < 1.0 or not 0.0 <= self.cloud_noise_phi < 1.0:
            raise ValueError(f"AR(1) coefficients must lie in [0, 1); got {self.temp_noise_phi}, {self.cloud_noise_phi}.")
        if min(self.cloud_beta) <= 0:
            raise ValueError(f"cloud_beta needs two positive numbers, got {self.cloud_beta}.")
        if not 0.0 <= self.rh_low <= self.rh_high <= 100.0:
            raise ValueError(f"need 0 <= rh_low <= rh_high <= 100, got {self.rh_low}, {self.rh_high}.")


def clear_sky_radiation(day_of_year: np.ndarray, hour: np.ndarray, latitude: float) -> np.ndarray:
    """Clear-sky global radiation [W m^-2] at ``day_of_year`` (0 = 1 January) and solar ``hour`` (any
    broadcastable shapes): ``max(0, 910 sin(alpha) - 30)`` with the sun's elevation ``alpha`` from the
    declination ``23.44 sin(2 pi (284 + doy + 1) / 365)`` degrees (Cooper 1969) and the hour angle."""
    decl = np.radians(23.44) * np.sin(2.0 * np.pi * (284.0 + day_of_year + 1.0) / 365.0)
    lat = math.radians(latitude)
    omega = np.radians(15.0 * (hour - 12.0))
    sin_alpha = math.sin(lat) * np.sin(decl) + math.cos(lat) * np.cos(decl) * np.cos(omega)
    return np.maximum(0.0, 910.0 * sin_alpha - 30.0)


def _ar1(rng: np.random.Generator, n: int, phi: float, std: float) -> np.ndarray:
    """A stationary AR(1) path of length ``n``: ``y0 ~ N(0, std^2)``, ``y_t = phi y_{t-1} + e_t``; a longer path
    starts with the same values (one standard normal per hour, in order)."""
    e = rng.standard_normal(n) * (std * math.sqrt(1.0 - phi * phi))
    e[:1] *= 1.0 / math.sqrt(1.0 - phi * phi)
    return lfilter([1.0], [1.0, -phi], e)


def to_steps(hourly: np.ndarray, n_steps: int) -> np.ndarray:
    """Hourly values ``(..., H, k)`` at hours ``0 .. H-1`` -> ``(..., n_steps, k)`` at every 15 minutes from
    hour 0, linearly interpolated (needs ``H >= n_steps / 4 + 1``)."""
    hours = hourly.shape[-2]
    if hours < math.ceil(n_steps / STEPS_PER_HOUR) + 1:
        raise ValueError(f"{hours} hourly values cannot cover {n_steps} steps of 15 minutes (need {math.ceil(n_steps / 4) + 1}).")
    t = np.arange(n_steps) / STEPS_PER_HOUR
    i = np.floor(t).astype(np.int64)
    w = (t - i)[:, None]
    return hourly[..., i, :] * (1.0 - w) + hourly[..., i + 1, :] * w


class SyntheticWeather:
    """The seeded weather generator (see the module docstring); ``start_days`` are days of the year (0..364)."""

    n_start_days = 365

    def __init__(self, climate: SyntheticClimate | None = None) -> None:
        self.climate = climate if climate is not None else SyntheticClimate()

    def hourly(self, start_day: int, seed: int, n_hours: int) -> np.ndarray:
        """``(n_hours, 4)`` raw weather at hours ``0 .. n_hours - 1`` from midnight of ``start_day``."""
        c = self.climate
        # one generator per random stream, each drawn in time order: a longer season starts like a shorter one
        cloud_day, cloud_hour, temp_noise, rh_day = (np.random.default_rng([int(seed), 0x6E4, k]) for k in range(4))
        n_days = n_hours // 24 + 2
        hours = np.arange(n_hours, dtype=np.float64)
        day = (hours // 24).astype(np.int64)
        hod = hours % 24.0
        doy = (start_day + hours / 24.0) % 365.0
        cloud = np.clip(cloud_day.beta(*c.cloud_beta, size=n_days)[day] + _ar1(cloud_hour, n_hours, c.cloud_noise_phi, c.cloud_noise_std), 0.0, 1.0)
        radiation = clear_sky_radiation(np.floor(doy), hod, c.latitude) * (1.0 - 0.75 * cloud**3.4)
        daily_cycle = np.sin(2.0 * np.pi * (hod - 9.0) / 24.0)
        amp = c.temp_day_amp_overcast + (c.temp_day_amp_clear - c.temp_day_amp_overcast) * (1.0 - cloud)
        seasonal = c.temp_mean - c.temp_year_amp * np.cos(2.0 * np.pi * (doy - c.coldest_day) / 365.0)
        temperature = seasonal + amp * daily_cycle + _ar1(temp_noise, n_hours, c.temp_noise_phi, c.temp_noise_std)
        rh = np.clip(rh_day.uniform(c.rh_low, c.rh_high, size=n_days)[day] - c.rh_day_amp * daily_cycle, 20.0, 100.0)
        co2 = c.co2_ppm + c.co2_daily_amp * np.cos(2.0 * np.pi * (hod - 3.0) / 24.0)
        return np.stack([radiation, co2, temperature, rh], axis=-1)

    def season(self, start_days: np.ndarray, seeds: np.ndarray, n_steps: int) -> np.ndarray:
        n_hours = math.ceil(n_steps / STEPS_PER_HOUR) + 1
        hourly = np.stack([self.hourly(int(d), int(s), n_hours) for d, s in zip(np.ravel(start_days), np.ravel(seeds), strict=True)])
        return to_steps(hourly, n_steps)

    def evaluation_set(self) -> tuple[tuple[int, int], ...]:
        return EVALUATION_SET


#: the fixed evaluation seasons of the synthetic weather: ``(start day of the year, weather seed)``, one
#: season starting in each month (the 1st, 0 = 1 January), seeds apart from any training draw's range
EVALUATION_SET: tuple[tuple[int, int], ...] = tuple(
    (d, 2**31 + k) for k, d in enumerate((0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)))


# ------------------------------------------------------------------------------------------- CSV files
@dataclasses.dataclass(frozen=True)
class HourlyRecord:
    """Hourly weather read from a file: ``values`` ``(H, 4)`` raw units at the hours the module docstring says."""

    first_date: str
    """``YYYYMMDD`` of the first day"""
    radiation: np.ndarray
    """``(H,)`` hourly mean global radiation [W m^-2], the value of hour ``k`` belonging to time ``k + 0.5`` h"""
    co2: np.ndarray
    """``(H,)`` [ppm] at time ``k + 1`` h"""
    temperature: np.ndarray
    """``(H,)`` [degC] at time ``k + 1`` h"""
    rh: np.ndarray
    """``(H,)`` [%] at time ``k + 1`` h"""

    @property
    def n_days(self) -> int:
        return len(self.temperature) // 24

    def steps(self) -> np.ndarray:
        """The whole record at the 15-minute step from midnight of the first day: ``(96 n_days, 4)``."""
        t = np.arange(self.n_days * STEPS_PER_DAY) / STEPS_PER_HOUR
        k = np.arange(len(self.temperature), dtype=np.float64)
        return np.stack([np.interp(t, k + 0.5, self.radiation), np.interp(t, k + 1.0, self.co2),
                         np.interp(t, k + 1.0, self.temperature), np.interp(t, k + 1.0, self.rh)], axis=-1)


REQUIRED = ("YYYYMMDD", "HH", "T", "Q", "U")


def load_knmi_csv(path: str | Path) -> HourlyRecord:
    """Read a KNMI-style hourly CSV file (layout in the module docstring).

    Raises:
        ValueError: a missing column (the message lists the required ones and those found), a value that is
            not a number (with its line), hours that are not whole consecutive days.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weather file at {str(path)!r}; give the path of a KNMI-style hourly CSV (docs/greenhouse.md).")
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    with open(path, newline="", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            text = line.strip()
            if not text:
                continue
            if text.startswith("#"):
                names = [c.strip().upper() for c in text.lstrip("#").split(",")]
                if "YYYYMMDD" in names:
                    header = names
                continue
            parts = [c.strip() for c in next(csv.reader([text]))]
            if header is None:
                header = [c.upper() for c in parts]
                continue
            rows.append((lineno, parts))
    if header is None:
        raise ValueError(f"{path}: no header line naming the columns {', '.join(REQUIRED)}.")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; required: {', '.join(REQUIRED)} (CO2 optional); "
                         f"found: {', '.join(header)}.")
    if not rows:
        raise ValueError(f"{path}: no records after the header.")
    col = {name: header.index(name) for name in (*REQUIRED, "CO2") if name in header}

    def number(lineno: int, parts: list[str], name: str) -> float:
        try:
            return float(parts[col[name]])
        except (IndexError, ValueError):
            got = parts[col[name]] if col[name] < len(parts) else "nothing"
            raise ValueError(f"{path}, line {lineno}: column {name} holds {got!r}, expected a number.") from None

    dates, hours, t, q, u, co2 = [], [], [], [], [], []
    for lineno, parts in rows:
        dates.append(int(number(lineno, parts, "YYYYMMDD")))
        hours.append(int(number(lineno, parts, "HH")))
        t.append(number(lineno, parts, "T") / 10.0)
        q.append(number(lineno, parts, "Q") * 1e4 / 3600.0)
        u.append(number(lineno, parts, "U"))
        co2.append(number(lineno, parts, "CO2") if "CO2" in col else 420.0)
    expected = np.tile(np.arange(1, 25), len(hours) // 24 + 1)[: len(hours)]
    if len(hours) % 24 or not np.array_equal(np.asarray(hours), expected):
        bad = next((i for i, (h, e) in enumerate(zip(hours, expected, strict=True)) if h != e), len(hours))
        where = f"record {bad + 1} has HH={hours[bad]}, expected {expected[bad]}" if bad < len(hours) else f"{len(hours)} records"
        raise ValueError(f"{path}: the records must be whole days of hours HH = 1..24 in order ({where}).")
    day_dates = np.asarray(dates)[::24]
    if not all((np.asarray(dates[i * 24:(i + 1) * 24]) == day_dates[i]).all() for i in range(len(day_dates))):
        raise ValueError(f"{path}: a day's 24 records carry different dates.")
    return HourlyRecord(str(dates[0]), np.asarray(q), np.asarray(co2), np.asarray(t), np.clip(np.asarray(u), 0.0, 100.0))


class CSVWeather:
    """Seasons cut from a weather file (:func:`load_knmi_csv`); ``start_days`` count days from the file's
    first day, ``seeds`` are ignored. ``n_steps`` of a season (plus forecast) must fit into the record."""

    def __init__(self, path: str | Path, season_steps: int) -> None:
        self.path = str(path)
        self.record = load_knmi_csv(path)
        self._steps = self.record.steps()
        need = math.ceil(season_steps / STEPS_PER_DAY)
        self.n_start_days = self.record.n_days - need + 1
        if self.n_start_days < 1:
            raise ValueError(f"{path} holds {self.record.n_days} days; a season needs {need} (season_days plus the forecast).")

    def season(self, start_days: np.ndarray, seeds: np.ndarray, n_steps: int) -> np.ndarray:
        start = np.ravel(start_days).astype(np.int64)
        if (start < 0).any() or (start >= self.n_start_days).any():
            raise ValueError(f"start days of {self.path} must lie in [0, {self.n_start_days - 1}]; got {start.tolist()}.")
        idx = start[:, None] * STEPS_PER_DAY + np.arange(n_steps)[None, :]
        return self._steps[idx]

    def evaluation_set(self) -> tuple[tuple[int, int], ...]:
        """Up to 12 seasons spread evenly over the record (seed 0)."""
        k = min(12, self.n_start_days)
        return tuple((int(d), 0) for d in np.unique(np.linspace(0, self.n_start_days - 1, k).round().astype(np.int64)))


def make_weather(weather: str | WeatherSource, season_steps: int, climate: SyntheticClimate | dict | None = None) -> WeatherSource:
    """``"synthetic"`` (with ``climate``), a CSV path, or a ready source."""
    if not isinstance(weather, str):
        return weather
    if weather == "synthetic":
        if isinstance(climate, dict):
            climate = SyntheticClimate(**{k: tuple(v) if isinstance(v, list) else v for k, v in climate.items()})
        return SyntheticWeather(climate)
    if climate is not None:
        raise ValueError("climate= sets the synthetic weather; it does not apply to a weather file.")
    if not weather.lower().endswith(".csv"):
        raise ValueError(f"weather must be 'synthetic' or the path of a .csv file, got {weather!r}.")
    return CSVWeather(weather, season_steps)


__all__ = ["COLUMNS", "EVALUATION_SET", "CSVWeather", "HourlyRecord", "SyntheticClimate", "SyntheticWeather", "WeatherSource",
           "clear_sky_radiation", "load_knmi_csv", "make_weather", "to_steps"]
