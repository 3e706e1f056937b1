"""The Van Henten lettuce greenhouse model (rlsuite.envs.greenhouse.model): the reference's sanity checks
against analytic solutions, RK4 against a fine-step reference, unit conversions, clamping."""

import math

import pytest
import torch

from rlsuite.envs.greenhouse.model import (
    VanHentenParams,
    clamp_state,
    co2_density_to_ppm,
    co2_ppm_to_density,
    derivatives,
    heating_steady_state,
    photosynthesis,
    rh_to_vapour_density,
    rk4_step,
    saturation_vapour_density,
    time_constants,
    vapour_density_to_rh,
)

P = VanHentenParams().as_dict()
F64 = torch.float64


def state(x_d=0.05, x_c=1e-3, x_t=15.0, x_h=0.008, n=1):
    return torch.tensor([[x_d, x_c, x_t, x_h]] * n, dtype=F64)


def weather(radiation=0.0, co2=7e-4, temp=5.0, hum=0.005, n=1):
    return torch.tensor([[radiation, co2, temp, hum]] * n, dtype=F64)


def controls(u_c=0.0, u_v=0.0, u_q=0.0, n=1):
    return torch.tensor([[u_c, u_v, u_q]] * n, dtype=F64)


def simulate(x, u, d, seconds):
    """Long runs to a steady state: hour-long steps of four 900 s sub-steps (every time constant here is >= 1000 s)."""
    for _ in range(int(seconds // 3600)):
        x = rk4_step(x, u, d, P, 3600.0, 4)
    return x


def test_zero_input_cools_towards_outdoor_temperature_at_the_analytic_rate():
    # no heating, no sun, closed vents: dT/dt = -c_ai_ou (T - d_T) / c_cap_q, so T(t) = d_T + (T0 - d_T) exp(-6.1 t / 3e4);
    # after 2 h from 20 degC with 5 degC outside: 5 + 15 exp(-1.464) = 8.470 degC
    x = state(x_t=20.0)
    temps = [20.0]
    for _ in range(8):
        x = rk4_step(x, controls(), weather(temp=5.0), P, 900.0, 4)
        temps.append(float(x[0, 2]))
    assert all(b < a for a, b in zip(temps, temps[1:], strict=False)) and temps[-1] > 5.0
    assert temps[-1] == pytest.approx(5.0 + 15.0 * math.exp(-6.1 * 7200 / 3e4), abs=1e-6)
    assert temps[-1] == pytest.approx(8.470, abs=1e-3)
    x = simulate(x, controls(), weather(temp=5.0), 2 * 86400)  # two more days: 35 time constants
    assert float(x[0, 2]) == pytest.approx(5.0, abs=1e-9)


def test_heating_settles_where_heat_input_equals_the_losses():
    # u_v = 0: T* = d_T + (u_q + c_rad d_I) / c_ai_ou = 5 + (100 + 0.2 * 200) / 6.1 = 27.9508 degC
    expected = heating_steady_state(100.0, 5.0, radiation=200.0)
    assert expected == pytest.approx(5.0 + 140.0 / 6.1) and expected == pytest.approx(27.9508, abs=1e-4)
    x = simulate(state(x_d=0.0), controls(u_q=100.0), weather(radiation=200.0, temp=5.0), 3 * 86400)
    assert float(x[0, 2]) == pytest.approx(expected, abs=1e-9)
    # with ventilation the loss coefficient grows by c_cap_qv 1e-3 u_v: 6.1 + 1.29 * 4 = 11.26 W m^-2 K^-1
    x = simulate(state(x_d=0.0), controls(u_v=4.0, u_q=100.0), weather(radiation=200.0, temp=5.0), 2 * 86400)
    assert float(x[0, 2]) == pytest.approx(5.0 + 140.0 / 11.26, abs=1e-9)
    assert float(x[0, 2]) == pytest.approx(heating_steady_state(100.0, 5.0, 200.0, ventilation=4.0), abs=1e-9)


def test_co2_rises_at_the_dosing_rate_then_leakage_caps_it():
    # no canopy (no uptake, no respiration), closed vents, indoor = outdoor CO2: dx_c/dt = 1e-6 u_c / c_cap_c
    d_c, u_c = 7e-4, 1.2
    x = state(x_d=0.0, x_c=d_c)
    rate = derivatives(x, controls(u_c=u_c), weather(co2=d_c), P)[0, 1].item()
    assert rate == pytest.approx(1e-6 * 1.2 / 4.1, rel=1e-12)  # 2.927e-7 kg m^-3 s^-1
    after = rk4_step(x, controls(u_c=u_c), weather(co2=d_c), P, 60.0, 1)
    assert (after[0, 1].item() - d_c) / 60.0 == pytest.approx(rate, rel=1e-3)  # leakage slows it by 60 c_leak / 2 / 4.1 ~ 5e-4
    # the leakage then caps it at d_c + 1e-6 u_c / c_leak = 7e-4 + 0.016 kg m^-3 (time constant 4.1 / 0.75e-4 s = 15 h)
    x = simulate(x, controls(u_c=u_c), weather(co2=d_c), 12 * 86400)
    assert x[0, 1].item() == pytest.approx(d_c + 1.2e-6 / 0.75e-4, rel=1e-6)


def test_photosynthesis_needs_light_co2_above_compensation_and_a_living_temperature():
    x = state(x_d=0.05, x_c=1e-3, x_t=20.0)
    light = torch.tensor([P["c_eps"] * 300.0], dtype=F64)
    phi = photosynthesis(x, light, P)
    assert phi.item() > 0
    # bounded by the light-limited and the CO2-limited rates, times the canopy cover 1 - exp(-53 * 0.05) = 0.929
    cover = 1.0 - math.exp(-53.0 * 0.05)
    g = -5.11e-6 * 400 + 2.3e-4 * 20 - 6.29e-4
    assert phi.item() < cover * min(light.item(), g * (1e-3 - 5.2e-5))
    assert photosynthesis(x, torch.zeros(1, dtype=F64), P).item() == 0.0  # dark
    assert photosynthesis(state(x_c=4e-5, x_t=20.0), light, P).item() == 0.0  # CO2 below the compensation point
    for cold_or_hot in (2.0, 43.0, -10.0):  # g(T) < 0 outside about 2.9 to 42 degC: clamped at 0
        assert photosynthesis(state(x_t=cold_or_hot), light, P).item() == 0.0
    assert photosynthesis(state(x_d=0.0, x_t=20.0), light, P).item() == 0.0  # no canopy


def test_rk4_matches_a_fine_step_reference():
    g = torch.Generator().manual_seed(0)
    n = 16
    x0 = torch.cat([torch.full((n, 1), 0.1), torch.full((n, 1), 1e-3), torch.full((n, 1), 15.0), torch.full((n, 1), 0.008)], 1).double()
    high = torch.tensor([1.2, 7.5, 150.0], dtype=F64)
    us = [torch.rand(n, 3, generator=g, dtype=F64) * high for _ in range(24)]
    ds = [weather(radiation=max(0.0, 600 * math.sin(math.pi * (6 + k / 4 - 6) / 12)), temp=8.0 + k / 8, hum=0.006, n=n) for k in range(24)]

    def run(substeps):
        x = x0
        for u, d in zip(us, ds, strict=True):
            x = rk4_step(x, u, d, P, 900.0, substeps)
        return x

    ref, four, one = run(64), run(4), run(1)
    # per state: dry weight [kg m^-2], CO2 [kg m^-3], temperature [degC], humidity [kg m^-3]; the fastest mode
    # (humidity at full ventilation and cover: 4.1 / 0.0112 = 367 s) is 1.6 sub-steps of 225 s
    err4 = (four - ref).abs().amax(0)
    assert (err4 < torch.tensor([1e-7, 1e-7, 1e-4, 1e-5], dtype=F64)).all(), err4
    err1 = (one - ref).abs().amax(0)
    assert err1[3] > 10 * err4[3]  # a single 900 s step is visibly worse on the fast humidity mode
    assert time_constants()["humidity"] == pytest.approx(4.1 / (3.6e-3 + 7.5e-3 + 0.75e-4))


def test_unit_conversions_hand_values_and_round_trips():
    # 1e-3 kg m^-3 at 15 degC: 1e6 * 8.314 * 288.15 / (101325 * 0.04401) * 1e-3 = 537.23 ppm
    assert co2_density_to_ppm(torch.tensor(1e-3, dtype=F64), 15.0).item() == pytest.approx(537.23, abs=0.01)
    # saturation at 20 degC: 610.78 exp(17.2694 * 20 / 258.3) = 2326.0 Pa -> 2326.0 * 0.018015 / (8.314 * 293.15) = 0.017193 kg m^-3
    sat = saturation_vapour_density(torch.tensor(20.0, dtype=F64)).item()
    assert sat == pytest.approx(0.017193, abs=2e-6)
    assert vapour_density_to_rh(torch.tensor(sat / 2, dtype=F64), torch.tensor(20.0, dtype=F64)).item() == pytest.approx(50.0)
    g = torch.Generator().manual_seed(1)
    temps = torch.rand(1000, generator=g, dtype=F64) * 50 - 10
    ppm = torch.rand(1000, generator=g, dtype=F64) * 3000
    rh = torch.rand(1000, generator=g, dtype=F64) * 100
    torch.testing.assert_close(co2_density_to_ppm(co2_ppm_to_density(ppm, temps), temps), ppm, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(vapour_density_to_rh(rh_to_vapour_density(rh, temps), temps), rh, rtol=1e-12, atol=1e-9)


def test_clamping_keeps_states_physical_and_humidity_below_saturation():
    x = torch.tensor([[-0.01, -1e-4, 100.0, 0.5], [0.1, 1e-3, 10.0, 0.02]], dtype=F64)
    c = clamp_state(x)
    assert c[0, :3].tolist() == [0.0, 0.0, 70.0]
    assert c[0, 3].item() == pytest.approx(saturation_vapour_density(torch.tensor(70.0, dtype=F64)).item())
    assert c[1, :3].tolist() == [0.1, 1e-3, 10.0] and c[1, 3].item() == pytest.approx(saturation_vapour_density(torch.tensor(10.0)).item(), rel=1e-6)
    # cold outside air saturates a cooling greenhouse: the vapour above saturation condenses (RH stays <= 100 %)
    x = simulate(state(x_t=20.0, x_h=0.017), controls(u_v=7.5), weather(temp=-5.0, hum=0.003), 6 * 3600)
    assert vapour_density_to_rh(x[0, 3], x[0, 2]).item() <= 100.0 + 1e-9
    with pytest.raises(ValueError, match="substeps"):
        rk4_step(x, controls(), weather(), P, 900.0, 0)
