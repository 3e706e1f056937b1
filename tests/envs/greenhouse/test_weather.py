"""Weather for the greenhouse: the seeded generator (seasons, days and nights, seeding, batch independence) and
the KNMI-style CSV loader on a small file written here."""

import numpy as np
import pytest

from rlsuite.envs.greenhouse.weather import (
    EVALUATION_SET,
    CSVWeather,
    SyntheticClimate,
    SyntheticWeather,
    clear_sky_radiation,
    load_knmi_csv,
    make_weather,
    to_steps,
)

DAY = 96


def test_clear_sky_radiation_follows_the_sun():
    # 52.1 N at the June solstice (day 171), noon: elevation 90 - 52.1 + 23.44 = 61.3 deg -> 910 sin(61.3) - 30 = 768 W m^-2
    assert clear_sky_radiation(np.array(171.0), np.array(12.0), 52.1) == pytest.approx(768.0, abs=2.0)
    # December solstice (day 354), noon: 14.5 deg -> 910 * 0.250 - 30 = 198 W m^-2; dark at midnight
    assert clear_sky_radiation(np.array(354.0), np.array(12.0), 52.1) == pytest.approx(198.0, abs=3.0)
    assert clear_sky_radiation(np.array(171.0), np.array(0.0), 52.1) == 0.0
    # the June day is longer: hours with sun at 52 N, about 16 in June against 8 in December
    hours = np.arange(0, 24, 0.25)
    june = (clear_sky_radiation(171.0, hours, 52.1) > 0).sum() / 4
    december = (clear_sky_radiation(354.0, hours, 52.1) > 0).sum() / 4
    assert 15.0 <= june <= 17.5 and 6.5 <= december <= 8.5


def test_synthetic_seasons_days_nights_and_ranges():
    w = SyntheticWeather()
    seeds = np.arange(8)
    summer = w.season(np.full(8, 160), seeds, 30 * DAY)
    winter = w.season(np.full(8, 340), seeds, 30 * DAY)
    assert summer.shape == (8, 30 * DAY, 4)
    # daily radiation sums (kWh m^-2 day^-1): De Bilt has about 5.5 in June and 0.6 in December
    def kwh_per_day(s):
        return s[..., 0].mean() * 24 / 1000

    assert 4.0 < kwh_per_day(summer) < 7.0 and 0.3 < kwh_per_day(winter) < 1.2
    assert summer[..., 2].mean() > winter[..., 2].mean() + 8.0  # about 17 against 4 degC
    midnight = summer[:, ::DAY]  # 00:00 of every day: dark
    assert (midnight[..., 0] == 0).all()
    assert (summer[..., 3] >= 20).all() and (summer[..., 3] <= 100).all()
    assert np.abs(summer[..., 1] - 420).max() <= 15.0 + 1e-9
    # afternoons are warmer than nights on average (daily cycle peaking at 15:00, low at 03:00)
    assert summer[:, 15 * 4::DAY, 2].mean() > summer[:, 3 * 4::DAY, 2].mean() + 3.0


def test_each_season_depends_only_on_its_own_start_day_and_seed():
    w = SyntheticWeather()
    both = w.season(np.array([10, 200]), np.array([7, 8]), 2 * DAY)
    one = w.season(np.array([200]), np.array([8]), 2 * DAY)
    assert np.array_equal(both[1], one[0])
    assert np.array_equal(w.season(np.array([10]), np.array([7]), DAY), both[:1, :DAY])  # a longer season starts the same
    assert not np.array_equal(w.season(np.array([10]), np.array([9]), DAY), both[:1, :DAY])  # another seed, another weather
    warmer = SyntheticWeather(SyntheticClimate(temp_mean=14.5)).season(np.array([10]), np.array([7]), DAY)
    assert warmer[..., 2] == pytest.approx(both[:1, :DAY, 2] + 4.0)
    assert len(EVALUATION_SET) == 12 and all(s >= 2**31 for _, s in EVALUATION_SET)  # apart from training draws (< 2^31)
    with pytest.raises(ValueError, match="latitude"):
        SyntheticClimate(latitude=80.0)


def test_hourly_values_are_interpolated_to_the_15_minute_step():
    hourly = np.array([[0.0], [4.0], [8.0]])
    assert to_steps(hourly, 8)[:, 0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    with pytest.raises(ValueError, match="cannot cover"):
        to_steps(hourly, 9)


def write_knmi(path, days=2, hours=None, columns="STN,YYYYMMDD,   HH,   DD,    T,    Q,    U"):
    """A KNMI-style hourly file: T = 5.0 + 0.5 HH degC, Q = 36 J cm^-2 (100 W m^-2) from HH 8 to 17, U = 80 %."""
    lines = ["# BRON: KONINKLIJK NEDERLANDS METEOROLOGISCH INSTITUUT (KNMI)", "# ", f"# {columns}", "#"]
    for day in range(days):
        for hh in hours or range(1, 25):
            q = 36 if 8 <= hh <= 17 else 0
            lines.append(f"  260,2024040{day + 1},{hh:>5},  200,{50 + 5 * hh:>5},{q:>5},   80")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_knmi_csv_units_placement_and_interpolation(tmp_path):
    record = load_knmi_csv(write_knmi(tmp_path / "knmi.csv"))
    assert record.n_days == 2 and record.first_date == "20240401"
    steps = record.steps()
    assert steps.shape == (2 * DAY, 4)
    # T of HH belongs to the end of its hour: 01:00 -> 5.5 degC; 01:30 halfway to 6.0; before 01:00 held at 5.5
    assert steps[4, 2] == pytest.approx(5.5) and steps[6, 2] == pytest.approx(5.75) and steps[0, 2] == pytest.approx(5.5)
    # Q of HH = 8 (07:00-08:00) is 36e4 / 3600 = 100 W m^-2 at 07:30; 07:00 lies halfway from the dark hour before
    assert steps[30, 0] == pytest.approx(100.0) and steps[28, 0] == pytest.approx(50.0) and steps[0, 0] == 0.0
    assert (steps[:, 3] == 80.0).all() and (steps[:, 1] == 420.0).all()  # RH in %, CO2 absent: 420 ppm
    source = CSVWeather(tmp_path / "knmi.csv", DAY + 1)
    assert source.n_start_days == 1 and source.evaluation_set() == ((0, 0),)
    season = source.season(np.array([0]), np.array([123]), DAY + 1)
    assert np.array_equal(season[0], steps[: DAY + 1])
    assert isinstance(make_weather(str(tmp_path / "knmi.csv"), DAY), CSVWeather)


def test_bad_weather_files_are_refused_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match="missing column.*Q"):
        load_knmi_csv(write_knmi(tmp_path / "a.csv", columns="STN,YYYYMMDD,   HH,   DD,    T,    X,    U"))
    with pytest.raises(ValueError, match="whole days"):
        load_knmi_csv(write_knmi(tmp_path / "b.csv", days=1, hours=[h for h in range(1, 25) if h != 5]))
    with pytest.raises(FileNotFoundError, match="no weather file"):
        load_knmi_csv(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="a season needs 3"):
        CSVWeather(write_knmi(tmp_path / "c.csv"), 2 * DAY + 1)
    with pytest.raises(ValueError, match="'synthetic' or the path of a .csv"):
        make_weather("knmi.txt", DAY)
    bad = tmp_path / "d.csv"
    bad.write_text("YYYYMMDD,HH,T,Q,U\n20240101,1,abc,0,80\n")
    with pytest.raises(ValueError, match="line 2: column T holds 'abc'"):
        load_knmi_csv(bad)
