"""IQL and BC: loss functions, data handling, and the offline / online training path."""

import numpy as np
import pytest
import torch

from rlsuite.agents.bc import BC, BCConfig, bc_loss, top_episodes
from rlsuite.agents.iql import (
    IQL,
    IQLConfig,
    OfflineData,
    awr_policy_loss,
    episode_returns,
    expectile_loss,
    iql_q_loss,
)


def test_expectile_loss_weights_the_two_sides():
    d = torch.tensor([2.0, -2.0])
    assert float(expectile_loss(d, 0.7)) == pytest.approx((0.7 * 4 + 0.3 * 4) / 2)
    assert float(expectile_loss(torch.tensor([1.0]), 0.9)) == pytest.approx(0.9)
    # minimising over a constant v gives the expectile: above the mean for tau > 0.5
    x = torch.tensor([0.0, 0.0, 0.0, 10.0])
    v = torch.zeros((), requires_grad=True)
    opt = torch.optim.SGD([v], lr=0.1)
    for _ in range(2000):
        opt.zero_grad()
        expectile_loss(x - v, 0.9).backward()
        opt.step()
    assert float(v.detach()) > float(x.mean()) + 2


def test_q_loss_bootstraps_truncations_and_cuts_terminals():
    q = torch.tensor([1.0, 1.0])
    loss_term = iql_q_loss(q, q, torch.zeros(2), torch.tensor([1.0, 1.0]), torch.tensor([5.0, 5.0]), 0.9)
    loss_boot = iql_q_loss(q, q, torch.zeros(2), torch.tensor([0.0, 0.0]), torch.tensor([5.0, 5.0]), 0.9)
    assert float(loss_term) == pytest.approx(2 * 1.0) and float(loss_boot) == pytest.approx(2 * (4.5 - 1) ** 2)


def test_awr_weights_carry_no_gradient_and_are_clipped():
    adv = torch.tensor([10.0, -1.0], requires_grad=True)
    logp = torch.tensor([-1.0, -2.0], requires_grad=True)
    loss = awr_policy_loss(logp, adv, beta=3.0, max_weight=100.0)
    loss.backward()
    assert adv.grad is None or float(adv.grad.abs().sum()) == 0
    assert logp.grad.tolist() == pytest.approx([-100.0 / 2, -float(np.exp(-3.0)) / 2])


def _arrays(n=200, seed=0):
    rng = np.random.default_rng(seed)
    ends = np.zeros(n, bool)
    ends[49::50] = True
    return {"observations": rng.normal(size=(n, 3)).astype(np.float32), "actions": rng.uniform(-2, 2, (n, 1)).astype(np.float32),
            "rewards": rng.uniform(0, 1, n).astype(np.float32), "next_observations": rng.normal(size=(n, 3)).astype(np.float32),
            "terminals": np.zeros(n, bool), "timeouts": ends}


def test_offline_data_scales_actions_observations_and_rewards():
    arr = _arrays()
    data = OfflineData(arr, np.array([-2.0]), np.array([2.0]), torch.device("cpu"), normalize_reward=True)
    assert data.t["act"].abs().max() <= 1.0
    torch.testing.assert_close(data.t["obs"].mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    rets = episode_returns(arr["rewards"], arr["timeouts"])
    assert len(rets) == 4 and data.reward_scale == pytest.approx(1000.0 / (rets.max() - rets.min()))
    np.testing.assert_allclose(data.unscale_action(torch.tensor([[1.0], [-1.0]])), [[2.0], [-2.0]])


def test_top_fraction_keeps_the_best_episodes():
    arr = _arrays()
    arr["rewards"][50:100] += 10  # episode 1 is the best
    top = top_episodes(arr, 0.25)
    assert len(top["rewards"]) == 50 and np.array_equal(top["observations"], arr["observations"][50:100])
    with pytest.raises(ValueError, match="top_fraction"):
        top_episodes(arr, 0.0)


BC_MAX_MSE_RATIO = 0.05
BC_MAX_MSE = 1e-3


def bc_linear_expert(seed: int, workdir=None) -> dict[str, float]:
    """BC on 2000 samples of ``tanh(W o)`` (fixed data; ``seed`` seeds the network and the batches), 1500 steps:
    test MSE to the expert before and after. Also run over seeds and thread counts by scripts/check_seeds.py."""
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(2000, 3)).astype(np.float32)
    act = np.tanh(obs @ np.array([[0.5], [-0.3], [0.2]], np.float32))
    ends = np.zeros(2000, bool)
    ends[99::100] = True
    arr = {"observations": obs, "actions": act, "rewards": np.zeros(2000, np.float32), "next_observations": obs,
           "terminals": np.zeros(2000, bool), "timeouts": ends}
    bc = BC(BCConfig(hidden_sizes=(64, 64), learning_rate=1e-3), 3, 1, seed=seed)
    bc.set_data(arr, np.array([-1.0]), np.array([1.0]))
    test = rng.normal(size=(100, 3)).astype(np.float32)
    before = float(np.mean((bc.act(test) - np.tanh(test @ np.array([[0.5], [-0.3], [0.2]]))) ** 2))
    bc.learn_offline(1500)
    after = float(np.mean((bc.act(test) - np.tanh(test @ np.array([[0.5], [-0.3], [0.2]]))) ** 2))
    return {"mse_after": after, "mse_ratio": after / before}


def test_bc_fits_a_linear_expert():
    m = bc_linear_expert(0)
    assert m["mse_ratio"] < BC_MAX_MSE_RATIO and m["mse_after"] < BC_MAX_MSE, m
    assert float(bc_loss(torch.zeros(2, 1), torch.ones(2, 1))) == 1.0


IQL_MIN_ACTION = 0.5
BC_MAX_ABS_ACTION = 0.3


def bandit_actions(seed: int, workdir=None) -> dict[str, float]:
    """One state, actions -0.8 (reward 0) and +0.8 (reward 1), equally often in the data (fixed); IQL and BC,
    1500 steps each, seeded with ``seed``: their deterministic actions. Also run by scripts/check_seeds.py."""
    n = 4000
    rng = np.random.default_rng(1)
    act = np.where(rng.random(n) < 0.5, -0.8, 0.8).astype(np.float32)[:, None]
    arr = {"observations": np.zeros((n, 1), np.float32), "actions": act, "rewards": (act[:, 0] > 0).astype(np.float32),
           "next_observations": np.zeros((n, 1), np.float32), "terminals": np.ones(n, bool), "timeouts": np.zeros(n, bool)}
    iql = IQL(IQLConfig(hidden_sizes=(32, 32), normalize_reward=False, batch_size=128), 1, 1, seed=seed)
    iql.set_data(arr, np.array([-1.0]), np.array([1.0]))
    iql.learn_offline(1500)
    bc = BC(BCConfig(hidden_sizes=(32, 32)), 1, 1, seed=seed)
    bc.set_data(arr, np.array([-1.0]), np.array([1.0]))
    bc.learn_offline(1500)
    return {"iql_action": float(iql.act(np.zeros((1, 1), np.float32))[0, 0]),
            "bc_abs_action": abs(float(bc.act(np.zeros((1, 1), np.float32))[0, 0]))}


def test_iql_prefers_the_better_action_in_a_bandit():
    """IQL's policy moves to the rewarded action, where BC averages the two."""
    m = bandit_actions(0)
    assert m["iql_action"] > IQL_MIN_ACTION and m["bc_abs_action"] < BC_MAX_ABS_ACTION, m


def test_offline_data_grows_in_place_for_online_transitions():
    arrays = _arrays(50)
    data = OfflineData(arrays, np.array([-2.0]), np.array([2.0]), torch.device("cpu"), normalize_reward=False)
    steps = [{k: v[i : i + 1] for k, v in _arrays(30, seed=1).items()} for i in range(30)]
    for s in steps:
        data.add(s)
    assert len(data) == 80 and data.t["obs"].shape[0] == 80
    online = np.concatenate([s["actions"] for s in steps])
    np.testing.assert_allclose(data.unscale_action(data.t["act"][50:]), online, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(data.t["rew"][:50].numpy(), arrays["rewards"], rtol=1e-6)
    assert data.sample(16, torch.Generator().manual_seed(0))["obs"].shape == (16, arrays["observations"].shape[1])
