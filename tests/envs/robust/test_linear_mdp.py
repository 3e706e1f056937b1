"""The simulated d-rectangular linear MDP (rlsuite/LinearMDP-v0): the model, the perturbation q, the batched
env's contract, and the robust-evaluation harness on it."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import rlsuite  # noqa: F401  (registers the envs)
from rlsuite.core.linear_rl import robust_dp, split_features
from rlsuite.core.vec_env import make_vec_env
from rlsuite.envs.robust import default_set, robust_evaluate
from rlsuite.envs.robust.linear_mdp import FAIL, GOAL, NEAR, SAFE, START, LinearMDPVecEnv
from tests.core.test_vec_env import run_conformance

ID = "rlsuite/LinearMDP-v0"


def test_features_in_the_simplex_kernels_sum_to_one_and_rewards_are_linear():
    env = LinearMDPVecEnv()
    phi = env.phi
    assert phi.shape == (5, 4, 4) and (phi >= 0).all()
    torch.testing.assert_close(phi.sum(-1), torch.ones(5, 4, dtype=torch.float64))
    for q in (0.0, 0.2, 0.5, 1.0):
        P = env.kernel(q)
        assert P.shape == (5, 4, 5) and (P >= 0).all()
        torch.testing.assert_close(P.sum(-1), torch.ones(5, 4, dtype=torch.float64))
    r = env.rewards()
    assert r[SAFE].tolist() == [0.33] * 4 and r[GOAL].tolist() == [1.0] * 4 and r[FAIL].tolist() == [0.0] * 4
    assert r[START].tolist() == pytest.approx([0.33, 0.22, 0.11, 0.0])  # (1 - w) 0.33 for risk w = a / 3


def test_q_moves_the_risky_mass_to_the_fail_state_and_nothing_else():
    env = LinearMDPVecEnv()
    nominal = env.kernel(0.0)
    for q in (0.1, 0.3, 0.5):
        P = env.kernel(q)
        # all-risky from x1: x3 with p - q, the fail state with the rest; the safe action is untouched
        assert P[START, 3, NEAR].item() == pytest.approx(0.5 - q) and P[START, 3, FAIL].item() == pytest.approx(0.5 + q)
        assert torch.equal(P[START, 0], nominal[START, 0])
        assert torch.equal(P[1:], nominal[1:])  # every other state's transitions are the nominal ones
        mu, mu0 = env.factors(q), env.factors(0.0)
        tv = 0.5 * (mu - mu0).abs().sum(-1)
        assert tv.tolist() == pytest.approx([0.0, q, 0.0, 0.0])  # a TV distance of q on the risky factor only
    assert env.factors(0.9)[1, NEAR].item() == 0.0  # q beyond p: no mass left toward the goal


def test_the_robust_optimum_differs_from_the_nominal_one():
    env = LinearMDPVecEnv()
    phi, mu, theta, H = env.phi, env.factors(0.0), env.theta, env.horizon
    _, v_nominal = robust_dp(phi, mu, theta, H)
    safe = torch.zeros(H, 5, dtype=torch.int64)
    risky = torch.full((H, 5), 3, dtype=torch.int64)
    # all-safe: 6 x 0.33 = 1.98; all-risky: 0.5 x 5 = 2.5 (the goal pays from step 1 on)
    assert robust_dp(phi, mu, theta, H, policy=safe)[1][0, START].item() == pytest.approx(1.98)
    assert robust_dp(phi, mu, theta, H, policy=risky)[1][0, START].item() == pytest.approx(2.5)
    assert v_nominal[0, START].item() == pytest.approx(2.5)
    for rho, best in ((0.0, 3), (0.1, 3), (0.2, 0), (0.3, 0)):
        Q, _ = robust_dp(phi, mu, theta, H, rho=rho)
        assert int(Q[0, START].argmax()) == best, (rho, Q[0, START])
    # at q = 0.5 (the set's worst point) all-risky never reaches x3
    _, v_bad = robust_dp(phi, env.factors(0.5), theta, H, policy=risky)
    assert v_bad[0, START].item() == pytest.approx(0.0)


def test_sampled_transitions_follow_the_kernel_and_a_reset_perturbation_lasts_one_episode():
    env = LinearMDPVecEnv(num_envs=4000)
    obs, info = env.reset(seed=0, options={"perturbation": {"q": 0.3}})
    assert torch.all(info["perturbation"]["q"] == 0.3) and torch.all(info["state"] == START)
    _, _, _, _, info = env.step(torch.full((4000,), 3))
    assert float((info["state"] == NEAR).double().mean()) == pytest.approx(0.2, abs=0.025)  # p - q
    assert torch.all(info["perturbation"]["q"] == 0.3)
    for _ in range(env.horizon - 1):
        _, _, _, trunc, info = env.step(torch.full((4000,), 3))
    assert trunc.all()
    _, _, _, _, info = env.step(torch.full((4000,), 3))  # the next episode: the default q = 0 again
    assert torch.all(info["perturbation"]["q"] == 0.0)
    assert float((info["state"] == NEAR).double().mean()) == pytest.approx(0.5, abs=0.025)
    fixed = LinearMDPVecEnv(num_envs=4000, perturbation={"q": 0.5})  # the constructor's q: every episode
    fixed.reset(seed=1)
    _, _, _, _, info = fixed.step(torch.full((4000,), 3))
    assert not (info["state"] == NEAR).any()


def test_observations_carry_the_features_and_rewards_of_every_action_and_the_step():
    env = LinearMDPVecEnv(num_envs=2)
    obs, _ = env.reset(seed=0)
    phi, r, h = split_features(obs, 4, 4, env.horizon)
    torch.testing.assert_close(phi.double(), env.phi[[START, START]])
    torch.testing.assert_close(r.double(), env.rewards()[[START, START]], atol=1e-7, rtol=0)
    assert h.tolist() == [0, 0]
    obs, rew, _, _, info = env.step(torch.tensor([0, 0]))
    assert rew.tolist() == pytest.approx([0.33, 0.33]) and info["state"].tolist() == [SAFE, SAFE]
    assert split_features(obs, 4, 4, env.horizon)[2].tolist() == [1, 1]


def test_single_env_checker_conformance_seeding_and_state_round_trip():
    single = gym.make(ID)
    check_env(single.unwrapped, skip_render_check=True)
    o, info = single.reset(seed=3, options={"perturbation": {"q": 0.2}})
    assert info["perturbation"] == {"q": 0.2} and single.unwrapped.perturbation_parameters == {"q": 0.0}
    batched = make_vec_env(ID, 8, seed=0)
    run_conformance(batched, steps=40)

    def rollout(env, n):
        return [env.step(torch.full((env.num_envs,), 3))[0] for _ in range(n)]

    a, b = LinearMDPVecEnv(num_envs=16), LinearMDPVecEnv(num_envs=16)
    a.reset(seed=5), b.reset(seed=5)
    assert all(torch.equal(x, y) for x, y in zip(rollout(a, 9), rollout(b, 9), strict=True))
    c = LinearMDPVecEnv(num_envs=16)
    c.load_state_dict(a.state_dict())
    assert all(torch.equal(x, y) for x, y in zip(rollout(a, 9), rollout(c, 9), strict=True))


def test_bad_perturbations_are_refused_with_the_allowed_names_and_ranges():
    with pytest.raises(ValueError, match="Did you mean 'q'"):
        LinearMDPVecEnv(perturbation={"qq": 0.1})
    with pytest.raises(ValueError, match="allowed: 0 to 1"):
        LinearMDPVecEnv().reset(options={"perturbation": {"q": 1.5}})
    with pytest.raises(ValueError, match=r"one per env \(3,\)"):
        LinearMDPVecEnv(num_envs=3, perturbation={"q": [0.1, 0.2]})


def _always(action):
    return lambda obs, mask=None: torch.full((obs.shape[0],), action, dtype=torch.int64)


def test_robust_evaluation_sweeps_q_with_the_registered_set():
    assert default_set(ID).name == "linear-mdp-q"
    safe = robust_evaluate(_always(0), ID, grid=3, episodes=20, seed=0)
    assert safe.points[:, 0].tolist() == [0.0, 0.25, 0.5]
    assert safe.returns == pytest.approx(np.full((3, 20), 1.98)) and safe.summary()["worst"] == pytest.approx(1.98)
    risky = robust_evaluate(_always(3), ID, "linear-mdp-q", grid=3, episodes=400, seed=0)
    # 5 (p - q) in expectation: 2.5, 1.25, 0 (400 episodes: the standard error is about 0.12 at q = 0)
    assert risky.point_means.tolist() == pytest.approx([2.5, 1.25, 0.0], abs=0.4)
    assert risky.summary()["worst"] == 0.0 and risky.worst_point() == {"q": 0.5}
