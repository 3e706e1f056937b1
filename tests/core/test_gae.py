import gymnasium as gym
import numpy as np
import pytest
import torch

from rlsuite.core.rollout import RolloutStorage, compute_gae
from rlsuite.core.vec_env import GymVecAdapter


def test_gae_hand_computed():
    # One env, T=3, gamma=0.5, lambda=0.5; episode terminates at t=1, a new one starts at t=2.
    r = torch.tensor([[1.0], [2.0], [3.0]])
    v = torch.tensor([[0.5], [1.0], [2.0]])
    nv = torch.tensor([[1.0], [9.0], [4.0]])  # V(next obs); 9.0 at the terminal step must be ignored
    term = torch.tensor([[False], [True], [False]])
    trunc = torch.zeros(3, 1, dtype=torch.bool)
    adv, ret = compute_gae(r, v, nv, term, trunc, gamma=0.5, gae_lambda=0.5)
    # delta2 = 3 + 0.5*4 - 2 = 3;          A2 = 3
    # delta1 = 2 + 0 - 1 = 1;              A1 = 1 (episode ended: no A2 carried)
    # delta0 = 1 + 0.5*1 - 0.5 = 1;        A0 = 1 + 0.5*0.5*1 = 1.25
    assert adv.squeeze(1).tolist() == pytest.approx([1.25, 1.0, 3.0])
    assert ret.squeeze(1).tolist() == pytest.approx([1.75, 2.0, 5.0])


def test_gae_truncation_bootstraps_but_cuts_trace():
    r = torch.tensor([[1.0], [1.0]])
    v = torch.tensor([[0.0], [0.0]])
    nv = torch.tensor([[10.0], [0.0]])
    trunc = torch.tensor([[True], [False]])
    term = torch.zeros(2, 1, dtype=torch.bool)
    adv, _ = compute_gae(r, v, nv, term, trunc, gamma=0.9, gae_lambda=1.0)
    # t=0 truncated: A0 = 1 + 0.9*10 = 10 (bootstrap from the final obs), nothing from t=1 leaks in.
    assert adv[0, 0].item() == pytest.approx(10.0)
    assert adv[1, 0].item() == pytest.approx(1.0)


class ConstantRewardEnv(gym.Env):
    """Never terminates, reward 1 per step; only the TimeLimit ends episodes."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        return np.array([np.sin(self.t), np.cos(self.t)], dtype=np.float32)

    def step(self, action):
        self.t += 1
        return self._obs(), 1.0, False, False, {}


def test_infinite_horizon_value_when_episodes_only_time_out():
    """With V = 1/(1-gamma) everywhere, timed-out episodes give returns of exactly 1/(1-gamma)."""
    gamma = 0.98
    v_inf = 1.0 / (1.0 - gamma)  # = 50
    venv = gym.vector.SyncVectorEnv(
        [lambda: gym.wrappers.TimeLimit(ConstantRewardEnv(), 8)] * 2,
        autoreset_mode=gym.vector.AutoresetMode.DISABLED,
    )
    env = GymVecAdapter(venv, seed=0)
    T, N = 20, 2
    st = RolloutStorage(T, N, (2,), (), torch.device("cpu"), torch.int64)
    obs, _ = env.reset(seed=0)
    n_trunc = 0
    for t in range(T):
        a = torch.zeros(N, dtype=torch.int64)
        nxt, rew, term, trunc, info = env.step(a)
        st.insert(t, obs, a, torch.zeros(N), torch.full((N,), v_inf), rew, info["final_obs"], term, trunc)
        n_trunc += int(trunc.sum())
        obs = nxt
    assert n_trunc == 4 and not st.terminated.any()
    st.compute_returns(torch.full((T, N), v_inf), gamma, 0.95)
    torch.testing.assert_close(st.returns, torch.full((T, N), v_inf))
    # Treating the time-outs as terminations gets it wrong: right before a time-out the target is 1, not 50.
    _, wrong = compute_gae(st.rewards, st.values, st.next_values, st.truncated, st.truncated, gamma, 0.95)
    assert (wrong - v_inf).abs().max() > 40
