"""Uncertainty sets and the robust-evaluation harness (fixed policies, tiny grids)."""

import numpy as np
import pytest
import torch

import rlsuite  # noqa: F401
from rlsuite.core.evaluate import evaluate_policy
from rlsuite.core.registry import UnknownNameError
from rlsuite.envs.robust import (
    UNCERTAINTY_SETS,
    Dim,
    UncertaintySet,
    cvar,
    default_set,
    get_uncertainty_set,
    grid_auc,
    list_sets,
    plot_robust,
    robust_evaluate,
)


def test_cvar_and_auc_against_hand_computed_values():
    assert cvar(np.arange(1, 11), 0.1) == 1.0  # the worst tenth of 10 values: the worst one
    assert cvar(np.arange(1, 11), 0.25) == pytest.approx(1.8)  # (1 + 2 + 0.5 * 3) / 2.5
    assert cvar(np.array([4.0, -2.0, 7.0]), 0.1) == -2.0  # 10 % of 3 values is 0.3 of the worst one
    assert cvar(np.array([4.0, -2.0, 7.0]), 1.0) == pytest.approx(3.0)  # the mean
    # 1-D trapezoid over the axis scaled to [0, 1]: 0.5 * (0 + 1) / 2 + 0.5 * (1 + 4) / 2 = 1.5
    assert grid_auc(np.array([0.0, 1.0, 4.0]), (np.array([2.0, 3.0, 4.0]),)) == pytest.approx(1.5)
    # a plane x + y over [0, 1]^2 on a 3 x 3 grid: its mean, 1 (the trapezoid rule is exact for it)
    x = np.linspace(0, 1, 3)
    assert grid_auc(x[:, None] + x[None, :], (x, x)) == pytest.approx(1.0)


def test_sets_grid_sample_inline_and_errors():
    s = get_uncertainty_set("hopper-mass-friction")
    points, axes = s.grid(3)
    assert points.shape == (9, 2) and [a.tolist() for a in axes] == [[1.0, 4.0, 7.0], [0.25, 1.125, 2.0]]
    assert points[1].tolist() == [1.0, 1.125]  # the last dimension varies fastest
    delay = get_uncertainty_set("action-delay")
    assert delay.grid(10)[1][0].tolist() == [0.0, 1.0, 2.0, 3.0]  # whole numbers, once each
    draws = s.sample(200, np.random.default_rng(0))
    assert (draws[:, 0] >= 1).all() and (draws[:, 0] <= 7).all() and (draws[:, 1] >= 0.25).all() and (draws[:, 1] <= 2).all()
    inline = get_uncertainty_set("torso_mass=1:3, gravity=5:15")
    assert inline.names == ("torso_mass", "gravity") and inline.dims[1] == Dim("gravity", 5.0, 15.0)
    for env_id, name in (("Hopper-v5", "hopper-mass-friction"), ("HalfCheetah-v5", "halfcheetah-mass-friction"),
                         ("Walker2d-v5", "walker2d-mass-friction"), ("Ant-v5", "ant-mass-leg"),
                         ("InvertedPendulum-v5", "invertedpendulum-pole-cart-mass"), ("CartPole-v1", "cartpole-length-mass"),
                         ("Pendulum-v1", "pendulum-mass-length"), ("rlsuite/Pendulum-v0", "pendulum-mass-length")):
        assert default_set(env_id).name == name
    assert len(list_sets()) == len(UNCERTAINTY_SETS)
    with pytest.raises(ValueError, match="name=low:high"):
        get_uncertainty_set("torso_mass=1")
    with pytest.raises(ValueError, match="4 dimensions; allowed: 1 to 3"):
        UncertaintySet("x", tuple(Dim(f"p{i}", 0, 1) for i in range(4)))
    with pytest.raises(ValueError, match="low <= high"):
        Dim("gravity", 5, 1)
    with pytest.raises(UnknownNameError, match="Did you mean 'pendulum-mass'"):
        get_uncertainty_set("pendulum-mas", "Pendulum-v1")
    with pytest.raises(ValueError, match="no uncertainty set is made for MountainCar-v0.*action-noise"):
        default_set("MountainCar-v0")


def _push(obs, mask=None):
    """A constant torque of 1 N m (with zero torque the pendulum's mass would not matter)."""
    return torch.ones(obs.shape[0], 1, device=obs.device)


def test_harness_on_a_fixed_policy_grid_heat_map_and_curve(tmp_path):
    r = robust_evaluate(_push, "rlsuite/Pendulum-v0", "pendulum-mass-length", grid=3, episodes=3, seed=5)
    assert r.mode == "grid" and r.points.shape == (9, 2) and r.returns.shape == (9, 3) and r.grid_shape == (3, 3)
    assert r.nominal == {"pole_mass": 1.0, "pole_length": 1.0}
    s = r.summary()
    means = r.returns.mean(1)
    assert s["worst"] == means.min() and s["mean"] == pytest.approx(means.mean()) and s["cvar"] == means.min()
    assert s["auc"] == pytest.approx(grid_auc(means.reshape(3, 3), r.axes))
    assert r.worst_point() == r.uncertainty_set.point(r.points[np.argmin(means)])
    # each point is the plain evaluation of the env with those parameters (same seeds at every point)
    direct = evaluate_policy(_push, "rlsuite/Perturbed-v0", episodes=3, seed=5,
                             env_kwargs={"env": "rlsuite/Pendulum-v0", "perturbation": r.uncertainty_set.point(r.points[4])})
    assert np.array_equal(direct, r.returns[4])
    assert np.array_equal(r.nominal_returns, evaluate_policy(_push, "rlsuite/Pendulum-v0", episodes=3, seed=5))
    assert len(np.unique(means)) == 9  # the physics change the returns
    png = plot_robust(r, tmp_path / "map.png", title="constant torque")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000

    one = robust_evaluate(_push, "rlsuite/Pendulum-v0", "pendulum-torque", grid=4, episodes=2)
    assert one.points.shape == (4, 1)
    assert plot_robust(one, tmp_path / "curve.png").stat().st_size > 5000
    rand = robust_evaluate(_push, "rlsuite/Pendulum-v0", "pendulum-mass-length-gravity", samples=5, episodes=1)
    assert rand.mode == "random" and rand.points.shape == (5, 3) and np.isnan(rand.summary()["auc"])
    assert plot_robust(rand, tmp_path / "scatter.png").stat().st_size > 5000


def test_harness_on_a_gymnasium_env_with_the_default_set(tmp_path):
    def push_right(obs, mask=None):
        return torch.ones(obs.shape[0], dtype=torch.long)

    r = robust_evaluate(push_right, "CartPole-v1", grid=2, episodes=2)
    assert r.uncertainty_set.name == "cartpole-length-mass" and r.returns.shape == (4, 2)
    assert r.returns[:, 0].tolist() != [r.returns[0, 0]] * 4  # a longer or heavier pole falls at another step
    with pytest.raises(ValueError, match="varies torso_mass, friction_scale, which CartPole-v1 does not have. Sets made for it: cartpole-length-mass"):
        robust_evaluate(push_right, "CartPole-v1", "hopper-mass-friction", grid=2, episodes=1)
    with pytest.raises(ValueError, match="grid must be >= 2"):
        robust_evaluate(push_right, "CartPole-v1", grid=1, episodes=1)
