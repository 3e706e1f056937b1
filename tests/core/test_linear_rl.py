"""The shared math of the linear (robust) agents against independent computations: ridge regression, UCB
bonuses, the TV dual against a brute-force inner minimisation (a linear program over the TV ball), the
mirror-descent step against its closed form and a numerical maximisation, the feature-observation layout
and the episode buffer."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from scipy.optimize import linprog, minimize

from rlsuite.core.linear_rl import (
    LinearEpisodes,
    alpha_grid,
    elliptical_bonus,
    factor_bonus,
    feature_layout,
    feature_observation,
    feature_observation_space,
    kl_to_reference,
    mirror_descent_step,
    regularized_value,
    ridge_regression,
    split_features,
    tv_dual,
    tv_robust_expectation,
)


def _simplex(rng, *shape):
    x = rng.exponential(size=shape)
    return x / x.sum(-1, keepdims=True)


def brute_force_tv(p0: np.ndarray, values: np.ndarray, rho: float) -> float:
    """min_p p.V over {p in the simplex: TV(p, p0) = 0.5 |p - p0|_1 <= rho}, as a linear program in (p, t),
    t >= |p - p0| elementwise, sum t <= 2 rho."""
    S = len(p0)
    c = np.concatenate([values, np.zeros(S)])
    eye = np.eye(S)
    a_ub = np.block([[eye, -eye], [-eye, -eye], [np.zeros((1, S)), np.ones((1, S))]])
    b_ub = np.concatenate([p0, -p0, [2 * rho]])
    a_eq = np.concatenate([np.ones(S), np.zeros(S)])[None]
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=[1.0], bounds=[(0, None)] * (2 * S), method="highs")
    assert res.status == 0
    return float(res.fun)


@pytest.mark.parametrize("S", [2, 3, 5])
def test_tv_dual_equals_the_brute_force_inner_minimisation(S):
    rng = np.random.default_rng(S)
    for trial in range(8):
        p0 = _simplex(rng, S)
        values = rng.uniform(0, 3, S).round(2) if trial % 2 else rng.uniform(-1, 2, S)
        for rho in (0.0, 0.05, 0.2, 0.5, 1.0):
            exact = float(tv_robust_expectation(torch.as_tensor(p0), torch.as_tensor(values), rho))
            assert exact == pytest.approx(brute_force_tv(p0, values, rho), abs=1e-8), (p0, values, rho)
            # on a grid the dual is a lower bound, within one grid step (the dual's slope is in [-rho, 1])
            v = torch.as_tensor(values)
            grid = alpha_grid(v, 7)
            approx = float(tv_robust_expectation(torch.as_tensor(p0), v, rho, grid))
            step = float(grid[1] - grid[0])
            assert exact - max(1.0, rho) * step - 1e-12 <= approx <= exact + 1e-12


def test_tv_dual_hand_computed_two_point_case():
    # V in {0, 1} with P0 = (0.3, 0.7): the adversary moves rho of the mass on 1 to 0: 0.7 - rho (0 once rho >= 0.7)
    p0, v = torch.tensor([0.3, 0.7], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)
    for rho, want in ((0.0, 0.7), (0.2, 0.5), (0.7, 0.0), (0.9, 0.0)):
        assert float(tv_robust_expectation(p0, v, rho)) == pytest.approx(want, abs=1e-12)


def test_tv_dual_per_factor_from_exact_regressions_equals_each_factors_robust_expectation():
    """In a d-rectangular linear MDP, regressing min(V(s'), alpha) on phi recovers E_{mu_i}[min(V, alpha)] per factor, and
    tv_dual then gives each factor's own TV-robust expectation."""
    rng = np.random.default_rng(0)
    d, S, n = 3, 4, 40
    mu = torch.as_tensor(_simplex(rng, d, S))
    values = torch.as_tensor(rng.uniform(0, 2, S))
    phi = torch.as_tensor(_simplex(rng, n, d))
    alphas = torch.unique(values)
    targets = phi @ (mu @ torch.minimum(values[None, :], alphas[:, None]).T)  # (n, J): expected targets, no noise
    coef, _ = ridge_regression(phi, targets.T, 1e-10)
    for rho in (0.0, 0.1, 0.4):
        nu = tv_dual(coef, alphas, values.min(), rho)
        want = torch.stack([tv_robust_expectation(mu[i], values, rho) for i in range(d)])
        torch.testing.assert_close(nu, want, atol=1e-6, rtol=0)


def test_tv_dual_at_rho_zero_is_the_plain_regression_and_refuses_a_negative_radius():
    coef = torch.tensor([[1.0, 5.0], [2.0, 1.0], [1.5, 3.0]], dtype=torch.float64)  # not monotone in alpha (noise)
    alphas = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    assert torch.equal(tv_dual(coef, alphas, 0.0, 0.0), coef[-1])
    # rho = 0.5: max over j of coef[j] - 0.5 alpha_j: factor 0: max(1, 1.5, 0.5) = 1.5; factor 1: max(5, 0.5, 2) = 5
    torch.testing.assert_close(tv_dual(coef, alphas, 0.0, 0.5), torch.tensor([1.5, 5.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="rho must be >= 0"):
        tv_dual(coef, alphas, 0.0, -0.1)


def test_ridge_regression_and_bonuses_against_numpy():
    rng = np.random.default_rng(1)
    phi = _simplex(rng, 30, 4)
    y = rng.normal(size=(3, 30))
    coef, lam_inv = ridge_regression(torch.as_tensor(phi), torch.as_tensor(y), 0.5)
    gram = phi.T @ phi + 0.5 * np.eye(4)
    np.testing.assert_allclose(coef.numpy(), np.linalg.solve(gram, phi.T @ y.T).T, atol=1e-10)
    np.testing.assert_allclose(lam_inv.numpy(), np.linalg.inv(gram), atol=1e-10)
    x = _simplex(rng, 5, 4)
    ell = elliptical_bonus(torch.as_tensor(x), lam_inv).numpy()
    np.testing.assert_allclose(ell, np.sqrt(np.einsum("bi,ij,bj->b", x, np.linalg.inv(gram), x)), atol=1e-10)
    rect = (torch.as_tensor(x) @ factor_bonus(lam_inv)).numpy()
    np.testing.assert_allclose(rect, x @ np.sqrt(np.diag(np.linalg.inv(gram))), atol=1e-10)
    # the d-rectangular bonus bounds the elliptical one (triangle inequality: phi in the simplex)
    assert (rect >= ell - 1e-12).all()
    with pytest.raises(ValueError, match="ridge must be > 0"):
        ridge_regression(torch.as_tensor(phi), torch.as_tensor(y), 0.0)


def test_kl_and_regularised_value_hand_computed():
    logits = torch.tensor([0.0, np.log(3.0)], dtype=torch.float64)  # pi = (1/4, 3/4)
    ref = torch.zeros(2, dtype=torch.float64)  # uniform
    # KL = 1/4 log(1/2) + 3/4 log(3/2) = 0.1308120359
    assert float(kl_to_reference(logits, ref)) == pytest.approx(0.25 * np.log(0.5) + 0.75 * np.log(1.5), abs=1e-12)
    # V = 1/4 * 1 + 3/4 * 2 - 0.5 KL = 1.75 - 0.0654...
    q = torch.tensor([1.0, 2.0], dtype=torch.float64)
    assert float(regularized_value(logits, q, 0.5, ref)) == pytest.approx(1.75 - 0.5 * 0.1308120359, abs=1e-9)


def test_mirror_descent_step_equals_its_closed_form_and_the_maximiser_of_its_objective():
    rng = np.random.default_rng(2)
    for _ in range(5):
        A = 4
        logits, q, ref = rng.normal(size=A), rng.uniform(0, 3, A), rng.normal(size=A)
        eta, lam = rng.uniform(0.1, 2.0), rng.uniform(0.0, 1.0)
        new = mirror_descent_step(torch.as_tensor(logits), torch.as_tensor(q), eta, lam, torch.as_tensor(ref)).exp().numpy()
        pk, pref = np.exp(logits) / np.exp(logits).sum(), np.exp(ref) / np.exp(ref).sum()
        closed = pk ** (1 / (1 + eta * lam)) * pref ** (eta * lam / (1 + eta * lam)) * np.exp(eta * q / (1 + eta * lam))
        np.testing.assert_allclose(new, closed / closed.sum(), atol=1e-12)

        def negative_objective(z, q=q, lam=lam, eta=eta, pk=pk, pref=pref):  # -(<Q, pi> - lam KL(pi || pi_ref) - KL(pi || pi_k) / eta)
            p = np.exp(z - z.max())
            p /= p.sum()
            return -(p @ q - lam * (p @ np.log(p / pref)) - (p @ np.log(p / pk)) / eta)

        best = minimize(negative_objective, np.zeros(A), method="BFGS", options={"gtol": 1e-10})
        p = np.exp(best.x - best.x.max())
        np.testing.assert_allclose(p / p.sum(), new, atol=1e-5)
    # a uniform reference is the same as no reference
    z, qq = torch.randn(3, 5, dtype=torch.float64), torch.rand(3, 5, dtype=torch.float64)
    torch.testing.assert_close(mirror_descent_step(z, qq, 0.7, 0.3), mirror_descent_step(z, qq, 0.7, 0.3, torch.zeros(3, 5, dtype=torch.float64)))
    with pytest.raises(ValueError, match="eta > 0"):
        mirror_descent_step(z, qq, 0.0, 0.3)


def test_feature_observations_round_trip_and_the_layout_is_read_from_the_spaces():
    space = feature_observation_space(3, 4, 6, reward_high=2.0)
    assert space.shape == (3 * 5 + 1,) and space.high[-1] == 5 and space.high[4] == 2.0
    assert feature_layout(space, gym.spaces.Discrete(3)) == (3, 4, 6)
    phi, r, h = torch.rand(2, 3, 4), torch.rand(2, 3), torch.tensor([0, 5])
    obs = feature_observation(phi, r, h)
    assert obs.shape == (2, 16) and obs.dtype == torch.float32
    p2, r2, h2 = split_features(obs, 3, 4, 6)
    torch.testing.assert_close(p2, phi)
    torch.testing.assert_close(r2, r)
    assert h2.tolist() == [0, 5]
    assert split_features(torch.full((1, 16), 9.0), 3, 4, 6)[2].item() == 5  # any input acts: h clamped
    with pytest.raises(ValueError, match="not a linear-feature space"):
        feature_layout(gym.make("CartPole-v1").observation_space, gym.spaces.Discrete(2), "dr-rpo")
    with pytest.raises(ValueError, match="Discrete"):
        feature_layout(space, gym.spaces.Box(-1, 1, (1,)), "dr-rpo")


def test_episode_buffer_grows_and_round_trips():
    buf = LinearEpisodes(horizon=3, n_actions=2, dim=4, device=torch.device("cpu"))
    batches = [(torch.rand(3, b, 4), torch.rand(3, b, 2, 4), torch.rand(3, b, 2)) for b in (5, 70, 3)]
    for phi, nxt, r in batches:
        buf.add(phi, nxt, r)
    assert buf.n == 78 and buf.phi.shape == (3, 78, 4) and buf.next_reward.shape == (3, 78, 2)
    torch.testing.assert_close(buf.next_phi[:, 5:75], batches[1][1].double())
    other = LinearEpisodes(3, 2, 4, torch.device("cpu"))
    other.load_state_dict(buf.state_dict())
    assert other.n == 78 and torch.equal(other.phi, buf.phi) and torch.equal(other.next_reward, buf.next_reward)
    with pytest.raises(ValueError, match="another env"):
        LinearEpisodes(3, 2, 5, torch.device("cpu")).load_state_dict(buf.state_dict())
