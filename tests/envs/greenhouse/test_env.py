"""The greenhouse env (rlsuite/Greenhouse-Lettuce-v0): spaces and control ranges, reward terms, the batched-env
contract, batched equals single envs, seeding, exact resume, the robustness knobs, weather options, GPU."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import rlsuite  # noqa: F401  (registers the envs)
from rlsuite.core.checkpoint import load_checkpoint, save_checkpoint
from rlsuite.core.vec_env import make_vec_env
from rlsuite.envs.greenhouse import EVALUATION_SET, GreenhouseEnv, GreenhouseVecEnv, rule_policy
from rlsuite.envs.greenhouse.model import UNCERTAIN_PARAMS
from tests.core.test_vec_env import run_conformance
from tests.envs.greenhouse.test_weather import write_knmi

ID = "rlsuite/Greenhouse-Lettuce-v0"
DAY = 96


def short(num_envs=2, **kw):
    """A one-day season with one RK4 sub-step: the contract does not depend on the season's length."""
    kw.setdefault("dtype", torch.float64)
    return GreenhouseVecEnv(num_envs=num_envs, season_days=1, substeps=kw.pop("substeps", 1), **kw)


def actions(n, steps, n_controls=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(n, n_controls, generator=g, dtype=torch.float64) * 2 - 1) for _ in range(steps)]


def test_spaces_and_the_affine_map_to_the_control_ranges():
    env = short()
    assert env.single_observation_space.shape == (14,) and env.single_action_space.shape == (3,)
    assert short(led=True).single_observation_space.shape == (15,) and short(led=True).single_action_space.shape == (4,)
    assert short(forecast_hours=2).single_observation_space.shape == (22,)
    assert env.controls(torch.full((2, 3), -1.0)).tolist() == [[0.0, 0.0, 0.0]] * 2
    assert env.controls(torch.full((2, 3), 1.0)).tolist() == [[1.2, 7.5, 150.0]] * 2
    assert env.controls(torch.tensor([[0.0, 0.0, 0.0], [5.0, -5.0, 0.5]])).tolist() == [[0.6, 3.75, 75.0], [1.2, 0.0, 112.5]]
    env.reset(seed=0)
    _, _, _, _, info = env.step(torch.tensor([[1.0, -1.0, 0.0], [-1.0, 1.0, 1.0]]))
    assert info["controls"].tolist() == [[1.2, 0.0, 75.0], [0.0, 7.5, 150.0]]


def test_reward_terms_price_the_controls_and_sum_to_the_reward():
    env = short(bands={"temp_night": (30.0, 40.0), "temp_day": (30.0, 40.0)})
    obs, _ = env.reset(seed=0)
    _, reward, _, _, info = env.step(torch.ones(2, 3))
    # 150 W m^-2 for 900 s = 0.0375 kWh at 2.88e-9 * 3.6e6 = 0.010368 EUR/kWh; 1.2 mg m^-2 s^-1 for 900 s = 1.08e-3 kg at 0.19 EUR/kg
    assert info["reward_heat"].tolist() == pytest.approx([-0.0375 * 0.010368] * 2)
    assert info["reward_co2"].tolist() == pytest.approx([-1.08e-3 * 0.19] * 2)
    assert info["reward_led"].tolist() == [0.0, 0.0]
    crop = 7.26 * (info["state"][:, 0] - 0.0035)
    assert info["reward_crop"].tolist() == pytest.approx(crop.tolist())
    assert info["penalty_temperature"].tolist() == pytest.approx((-1e-4 * (30.0 - info["state"][:, 2])).tolist())  # below the band
    terms = sum(info[k] for k in ("reward_crop", "reward_heat", "reward_co2", "reward_led", "penalty_temperature", "penalty_co2",
                                  "penalty_humidity"))
    torch.testing.assert_close(terms.float(), reward)
    torch.testing.assert_close(info["profit"], info["reward_crop"] + info["reward_heat"] + info["reward_co2"] + info["reward_led"])
    modern = short(prices="modern")
    modern.reset(seed=0)
    assert modern.step(torch.ones(2, 3))[4]["reward_heat"].tolist() == pytest.approx([-0.0375 * 0.06] * 2)
    led = short(led=True)
    led.reset(seed=0)
    assert led.step(torch.ones(2, 4))[4]["reward_led"].tolist() == pytest.approx([-0.08 * 100 * 900 / 3.6e6] * 2)


def test_batched_env_contract_and_gymnasium_checks():
    run_conformance(make_vec_env(ID, 3, season_days=1, substeps=1), steps=100)
    env = gym.make_vec(ID, num_envs=2, vectorization_mode="vector_entry_point", season_days=1)
    assert isinstance(env, GreenhouseVecEnv) and env.season_steps == DAY
    single = gym.make(ID, season_days=1, substeps=1)
    check_env(single.unwrapped, skip_render_check=True)
    obs, info = single.reset(seed=1)
    assert obs.dtype == np.float32 and info["perturbation"]["c_eps_scale"] == 1.0 and isinstance(info["start_day"], int)
    obs, reward, terminated, truncated, info = single.step(single.action_space.sample())
    assert isinstance(reward, float) and not terminated and not truncated and info["state"].shape == (4,)
    assert single.unwrapped.perturbation_parameters == GreenhouseVecEnv().perturbation_parameters


def test_a_batch_equals_the_same_seasons_run_one_by_one():
    days, seeds, scales = [5, 100, 200], [1, 2, 3], [0.9, 1.0, 1.1]
    vec = short(3, substeps=2)
    opts = {"start_day": days, "weather_seed": seeds, "perturbation": {"c_eps_scale": scales}}
    vec_obs, _ = vec.reset(seed=0, options=opts)
    singles = [GreenhouseEnv(season_days=1, substeps=2) for _ in range(3)]
    single_obs = [e.reset(seed=9, options={"start_day": d, "weather_seed": s, "perturbation": {"c_eps_scale": c}})[0]
                  for e, d, s, c in zip(singles, days, seeds, scales, strict=True)]
    assert np.array_equal(vec_obs.numpy(), np.stack(single_obs))
    for k, a in enumerate(actions(3, DAY)):  # through the season's end: the final observation and the truncation
        _, vr, _, vtrunc, vinfo = vec.step(a)
        out = [e.step(a[i].numpy()) for i, e in enumerate(singles)]
        assert np.array_equal(vinfo["final_obs"].numpy(), np.stack([o[0] for o in out])), k
        assert vr.tolist() == [o[1] for o in out] and vtrunc.tolist() == [o[3] for o in out] == [k == DAY - 1] * 3
        assert np.array_equal(vinfo["state"].numpy(), np.stack([o[4]["state"] for o in out]))


def test_the_same_seed_gives_the_same_season():
    def rollout(seed):
        env = short(3)
        obs, info = env.reset(seed=seed)
        out = [obs] + [env.step(a)[0] for a in actions(3, 20)]
        return torch.stack(out), info["start_day"]

    (a, day_a), (b, day_b), (c, day_c) = rollout(3), rollout(3), rollout(4)
    assert torch.equal(a, b) and torch.equal(day_a, day_b)
    assert not torch.equal(a, c) and not torch.equal(day_a, day_c)


def test_state_dict_resume_is_bit_exact_through_a_season_boundary(tmp_path):
    knobs = {"param_noise": 0.1, "obs_noise": 0.05, "rate_limit": 0.3, "temp_shift": [1.0, -1.0, 0.0, 2.0]}
    env = short(4, perturbation=knobs)
    env.reset(seed=0)
    acts = actions(4, 140, seed=1)
    for a in acts[:60]:
        env.step(a)
    save_checkpoint(tmp_path / "env", env.state_dict())  # safetensors + JSON: no pickle
    state, _ = load_checkpoint(tmp_path / "env")
    first = [env.step(a) for a in acts[60:]]  # the season ends at step 96: new draws, new weather
    other = short(4, perturbation=knobs)
    other.reset(seed=123)
    other.load_state_dict(state)
    second = [other.step(a) for a in acts[60:]]
    for (o1, r1, _, t1, i1), (o2, r2, _, t2, i2) in zip(first, second, strict=True):
        assert torch.equal(o1, o2) and torch.equal(r1, r2) and torch.equal(t1, t2)
        assert torch.equal(i1["state"], i2["state"]) and torch.equal(i1["start_day"], i2["start_day"])
    assert first[DAY - 61][3].all() and not torch.equal(first[0][4]["start_day"], first[-1][4]["start_day"])


def test_perturbations_change_the_dynamics_and_are_echoed():
    opts = {"start_day": 350, "weather_seed": 5}
    heat = torch.tensor([[-1.0, -1.0, 0.0]] * 2)

    def temperature_after(env, perturbation=None):
        _, info = env.reset(seed=0, options={**opts, "perturbation": perturbation} if perturbation else opts)
        for _ in range(8):
            _, _, _, _, info = env.step(heat)
        return info["state"][:, 2], info

    nominal, _ = temperature_after(short())
    leaky, info = temperature_after(short(), {"c_ai_ou_scale": 1.5})
    assert (leaky < nominal - 0.5).all()  # a cover that loses 50 % more heat: a colder winter night
    assert info["perturbation"]["c_ai_ou_scale"].tolist() == [1.5, 1.5] and info["perturbation"]["c_eps_scale"].tolist() == [1.0, 1.0]
    warm, _ = temperature_after(short(), {"temp_shift": 5.0})
    assert (warm > nominal + 1.0).all()
    env = short()
    obs0, _ = env.reset(seed=0, options=opts)
    obs1, info = env.reset(seed=0, options={**opts, "perturbation": {"temp_shift": 5.0, "radiation_scale": 0.0}})
    assert (obs1[:, 6] - obs0[:, 6]).tolist() == pytest.approx([0.5, 0.5], abs=1e-6)  # outdoor temperature, scaled by 1/10
    assert info["perturbation"]["temp_shift"].tolist() == [5.0, 5.0]
    for _ in range(DAY):  # the reset's values last one episode: the next season is nominal again
        _, _, _, _, info = env.step(heat)
        assert info["perturbation"]["temp_shift"].tolist() == [5.0, 5.0]  # the step that ends the season included
    _, _, _, _, info = env.step(heat)
    assert info["perturbation"]["temp_shift"].tolist() == [0.0, 0.0]
    fixed = short(perturbation={"radiation_scale": 0.0})  # the constructor's values: every season
    fixed.reset(seed=0)
    for _ in range(DAY + 60):
        obs = fixed.step(heat)[0]
        assert (obs[:, 4] == 0).all()


def test_parameter_noise_rate_limit_and_sensor_noise():
    env = short(64, perturbation={"param_noise": 0.2})
    env.reset(seed=0)
    values = env.model_values.clone()
    ratio = values / env._nominal.to(values)
    noisy = ratio[:, env._uncertain]
    assert (noisy >= 0.8 - 1e-12).all() and (noisy <= 1.2 + 1e-12).all() and noisy.std() > 0.05
    assert torch.equal(ratio[:, -6:], torch.ones(64, 6, dtype=torch.float64))  # gas and saturation constants, LED: untouched
    assert env._uncertain.tolist() == list(range(len(UNCERTAIN_PARAMS)))  # the empirical parameters come first
    for a in actions(64, DAY):
        env.step(a)
    assert not torch.equal(env.model_values, values)  # a new draw for the new season
    limited = short(perturbation={"rate_limit": 0.1})
    limited.reset(seed=0)
    _, _, _, _, info = limited.step(torch.ones(2, 3))
    # from the neutral start (-1) a step moves at most 0.1 of the range: 0.12 mg, 0.75 mm/s, 15 W
    torch.testing.assert_close(info["controls"], torch.tensor([[0.12, 0.75, 15.0]] * 2, dtype=torch.float64))
    _, _, _, _, info = limited.step(-torch.ones(2, 3))
    assert info["controls"].tolist() == [[0.0, 0.0, 0.0]] * 2
    clean, noisy_env = short(), short(perturbation={"obs_noise": 0.1})
    a, _ = clean.reset(seed=0)
    b, _ = noisy_env.reset(seed=0)
    assert (a[:, :8] != b[:, :8]).all() and torch.equal(a[:, 8:], b[:, 8:])  # sensors only; time and last action exact
    assert 0.03 < (a[:, :8] - b[:, :8]).std() < 0.3


def test_bad_arguments_are_refused_with_what_is_allowed(tmp_path):
    with pytest.raises(ValueError, match="Did you mean 'c_eps_scale'"):
        short(perturbation={"c_esp_scale": 1.1})
    with pytest.raises(ValueError, match="allowed: 0 <= value < 1"):
        short().reset(options={"perturbation": {"param_noise": 1.5}})
    with pytest.raises(ValueError, match="no limit"):
        short(perturbation={"rate_limit": 0.0})
    with pytest.raises(ValueError, match="scenario must be"):
        short(scenario="test")
    with pytest.raises(ValueError, match="unknown prices preset 'cheap'; known: van-henten-1994, modern"):
        short(prices="cheap")
    with pytest.raises(ValueError, match="unknown bands field"):
        short(bands={"temp_max": 30})
    with pytest.raises(ValueError, match="unknown reset option"):
        short().reset(options={"state": [1, 2, 3, 4]})
    with pytest.raises(ValueError, match=r"start_day must lie in \[0, 364\]"):
        short().reset(options={"start_day": 400})


def test_evaluation_scenario_runs_the_fixed_seasons():
    env = short(13, scenario="eval")
    _, info = env.reset(seed=0)
    pairs = [EVALUATION_SET[i % 12] for i in range(13)]
    assert info["start_day"].tolist() == [d for d, _ in pairs] and info["weather_seed"].tolist() == [s for _, s in pairs]
    again = short(13, scenario="eval")
    _, info2 = again.reset(seed=99)  # the seed does not matter: the seasons are fixed
    assert torch.equal(info["start_day"], info2["start_day"]) and torch.equal(env.weather_model, again.weather_model)
    assert env.evaluation_set == EVALUATION_SET


def test_led_lights_and_warms_and_the_forecast_shows_the_coming_weather():
    opts = {"start_day": 340, "weather_seed": 1}
    dark, lit = short(led=True), short(led=True)
    dark.reset(seed=0, options=opts)
    lit.reset(seed=0, options=opts)
    for _ in range(16):  # 00:00 to 04:00 in December: only the lamps give light
        _, _, _, _, off = dark.step(torch.tensor([[-1.0, -1.0, -1.0, -1.0]] * 2))
        _, _, _, _, on = lit.step(torch.tensor([[-1.0, -1.0, -1.0, 1.0]] * 2))
    assert (on["state"][:, 2] > off["state"][:, 2] + 1.0).all() and (on["state"][:, 0] > off["state"][:, 0]).all()
    env = short(forecast_hours=2)
    obs, _ = env.reset(seed=0, options=opts)
    ahead = obs[:, -8:-4].clone()  # the weather 1 h ahead
    for _ in range(4):
        obs = env.step(torch.zeros(2, 3))[0]
    torch.testing.assert_close(obs[:, 4:8], ahead)


def test_a_weather_file_drives_the_env(tmp_path):
    path = write_knmi(tmp_path / "knmi.csv", days=3)
    env = short(weather=str(path))
    assert env.weather_source.n_start_days == 2
    obs, info = env.reset(seed=0, options={"start_day": [0, 1]})
    # day 0 at 00:00 holds the file's first value, 5.5 degC; day 1 at 00:00 is the previous day's HH = 24, 17.0 degC
    assert obs[:, 6].tolist() == pytest.approx([(5.5 - 15.0) / 10.0, (17.0 - 15.0) / 10.0])
    for _ in range(DAY + 2):
        obs, *_ = env.step(torch.zeros(2, 3))
    assert torch.isfinite(obs).all()
    with pytest.raises(ValueError, match="does not apply to a weather file"):
        short(weather=str(path), climate={"temp_mean": 12.0})


@pytest.mark.gpu
def test_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    act = rule_policy()
    out = {}
    for device in ("cpu", "cuda"):
        env = GreenhouseVecEnv(num_envs=12, device=device, season_days=2, scenario="eval", dtype=torch.float64,
                               perturbation={"param_noise": 0.1})
        obs, _ = env.reset(seed=0)
        rewards = []
        for _ in range(2 * DAY - 1):
            obs, r, *_ = env.step(act(obs))
            rewards.append(r.cpu())
        out[device] = (env.x.cpu(), torch.stack(rewards), obs.cpu())
    torch.testing.assert_close(out["cuda"][0], out["cpu"][0], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(out["cuda"][1], out["cpu"][1], rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(out["cuda"][2], out["cpu"][2], rtol=1e-5, atol=1e-6)
    fast = GreenhouseVecEnv(num_envs=4096, device="cuda", scenario="eval")  # float32, a large batch on the device
    obs, _ = fast.reset(seed=0)
    for _ in range(DAY):
        obs, r, *_ = fast.step(act(obs))
    assert obs.device.type == "cuda" and torch.isfinite(obs).all() and torch.isfinite(r).all()
