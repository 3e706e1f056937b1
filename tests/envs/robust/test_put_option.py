"""The American put option (rlsuite/PutOption-v0): features, the price process and its perturbation p, the
payoff, the exact lattice values, and the batched env's contract."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import rlsuite  # noqa: F401  (registers the envs)
from rlsuite.core.linear_rl import split_features
from rlsuite.core.vec_env import make_vec_env
from rlsuite.envs.robust import default_set
from rlsuite.envs.robust.put_option import EXERCISE, HOLD, PutOptionVecEnv, rbf_features
from tests.core.test_vec_env import run_conformance

ID = "rlsuite/PutOption-v0"


def test_features_lie_in_the_simplex_and_follow_the_price():
    env = PutOptionVecEnv()
    prices = torch.tensor([50.0, 80.0, 100.0, 139.0, 200.0], dtype=torch.float64)
    phi = env.features(prices, torch.tensor([False, False, False, False, True]))
    assert phi.shape == (5, 2, 21) and (phi >= 0).all()
    torch.testing.assert_close(phi.sum(-1), torch.ones(5, 2, dtype=torch.float64))
    psi = rbf_features(prices, env.centers, env.width)
    assert int(psi[2].argmax()) in (4, 5) and int(psi[3].argmax()) == 9  # 100 sits between centres 4 and 5; 139 near 140
    assert torch.equal(phi[:4, HOLD, :10], psi[:4]) and torch.equal(phi[:4, EXERCISE, 10:20], psi[:4])
    assert phi[4].tolist() == [[0.0] * 20 + [1.0]] * 2  # exercised: one absorbing feature for both actions


def test_price_moves_with_probability_p_and_a_reset_perturbation_lasts_one_episode():
    env = PutOptionVecEnv(num_envs=4000, horizon=2)
    env.reset(seed=0, options={"perturbation": {"p": 0.8}})
    before = env.price.clone()
    _, _, _, _, info = env.step(torch.zeros(4000, dtype=torch.int64))
    ratio = info["price"] / before
    assert set(np.round(ratio.numpy(), 6).tolist()) == {1.02, 0.98}
    assert float((ratio > 1).double().mean()) == pytest.approx(0.8, abs=0.025)
    assert torch.all(info["perturbation"]["p"] == 0.8)
    env.step(torch.zeros(4000, dtype=torch.int64))  # the episode ends; the next one has the nominal p = 0.5
    before = env.price.clone()
    _, _, _, _, info = env.step(torch.zeros(4000, dtype=torch.int64))
    assert float((info["price"] > before).double().mean()) == pytest.approx(0.5, abs=0.025)
    with pytest.raises(ValueError, match="allowed: 0 to 1"):
        env.reset(options={"perturbation": {"p": -0.1}})
    with pytest.raises(ValueError, match="Did you mean 'p'"):
        PutOptionVecEnv(perturbation={"pp": 0.6})


def test_exercise_pays_the_payoff_once_then_nothing():
    env = PutOptionVecEnv(num_envs=2, start_low=90.0, start_high=90.0)
    obs, _ = env.reset(seed=0)
    _, r, _ = split_features(obs, 2, 21, 20)
    assert r.flatten().tolist() == pytest.approx([0.0, 0.5, 0.0, 0.5])  # (100 - 90) / 20 on exercise, nothing on hold
    _, rew, _, _, info = env.step(torch.tensor([EXERCISE, HOLD]))
    assert rew.tolist() == pytest.approx([0.5, 0.0]) and info["exercised"].tolist() == [True, False]
    _, rew, _, _, _ = env.step(torch.tensor([EXERCISE, HOLD]))
    assert rew[0].item() == 0.0  # once exercised, nothing more


def test_lattice_values_hold_to_maturity_is_optimal_only_without_drift():
    env = PutOptionVecEnv()

    def at_maturity(h, prices, ex, hold):
        return (h == env.horizon - 1) & (ex > 0)

    for x0 in (95.0, 100.0, 105.0):
        # a martingale price: waiting never loses (Jensen), so exercising only at the last step is optimal
        assert env.lattice_value(x0, 0.5, at_maturity) == pytest.approx(env.lattice_value(x0, 0.5), rel=1e-9)
        # a rising price: early exercise is worth much more than waiting
        assert env.lattice_value(x0, 0.7) > 3 * env.lattice_value(x0, 0.7, at_maturity)


def test_monte_carlo_return_matches_the_lattice_value():
    env = PutOptionVecEnv(num_envs=20000, start_low=98.0, start_high=98.0)
    obs, _ = env.reset(seed=0, options={"perturbation": {"p": 0.4}})
    total = torch.zeros(20000)
    for h in range(env.horizon):
        act = torch.full((20000,), EXERCISE if h == env.horizon - 1 else HOLD)
        obs, rew, _, _, info = env.step(act)
        total += rew
    want = env.lattice_value(98.0, 0.4, lambda h, prices, ex, hold: (h == env.horizon - 1) & (ex > 0))
    assert float(total.mean()) == pytest.approx(want, abs=0.02)  # the standard error is about 0.004


def test_single_env_checker_conformance_seeding_and_state_round_trip():
    check_env(gym.make(ID).unwrapped, skip_render_check=True)
    assert default_set(ID).name == "put-option-p" and gym.make(ID).unwrapped.perturbation_parameters == {"p": 0.5}
    run_conformance(make_vec_env(ID, 4, seed=0), steps=45)
    a, b = PutOptionVecEnv(num_envs=8), PutOptionVecEnv(num_envs=8)
    oa, _ = a.reset(seed=2)
    ob, _ = b.reset(seed=2)
    assert torch.equal(oa, ob)
    for _ in range(7):
        a.step(torch.zeros(8, dtype=torch.int64))
    c = PutOptionVecEnv(num_envs=8)
    c.load_state_dict(a.state_dict())
    for _ in range(20):  # crosses the autoreset, which draws from the restored generator
        x, y = a.step(torch.ones(8, dtype=torch.int64)), c.step(torch.ones(8, dtype=torch.int64))
        assert torch.equal(x[0], y[0]) and torch.equal(x[1], y[1])
