import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import rlsuite  # noqa: F401  (registers envs)
from rlsuite.envs import ENV_IDS
from rlsuite.envs.pendulum import PendulumVecEnv
from tests.core.test_vec_env import run_conformance


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_on_every_registered_single_env(env_id):
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)


def test_same_dynamics_and_reward_as_gymnasium_pendulum_v1():
    ours = gym.make_vec("rlsuite/Pendulum-v0", num_envs=8, vectorization_mode="vector_entry_point", dtype=torch.float64)
    rng = np.random.default_rng(0)
    starts = np.stack([rng.uniform(-np.pi, np.pi, 8), rng.uniform(-1, 1, 8)], axis=1)
    ours.reset(seed=0, options={"state": torch.as_tensor(starts)})
    refs = []
    for i in range(8):
        e = gym.make("Pendulum-v1").unwrapped
        e.reset(seed=i)
        e.state = starts[i].copy()
        refs.append(e)
    for _t in range(199):
        a = rng.uniform(-2.5, 2.5, (8, 1))  # includes out-of-range torques: both clip
        obs, rew, term, trunc, _ = ours.step(torch.as_tensor(a))
        for i, e in enumerate(refs):
            o, r, te, _, _ = e.step(a[i].astype(np.float32))
            np.testing.assert_allclose(obs[i].numpy(), o, rtol=0, atol=1e-5)
            assert rew[i].item() == pytest.approx(r, abs=1e-5)
            assert bool(term[i]) == te
        assert not trunc.any()
    _, _, _, trunc, info = ours.step(torch.zeros(8, 1))
    assert trunc.all()  # 200 steps, like Pendulum-v1's TimeLimit


def test_batched_env_conformance_and_reward_terms_sum():
    env = gym.make_vec("rlsuite/Pendulum-v0", num_envs=16, vectorization_mode="vector_entry_point", device="cpu")
    assert isinstance(env, PendulumVecEnv)
    run_conformance(env, steps=450)
    env.reset(seed=1)
    _, rew, _, _, info = env.step(torch.rand(16, 1) * 4 - 2)
    torch.testing.assert_close(info["reward_angle"] + info["reward_velocity"] + info["reward_torque"], rew)


def test_batched_env_seeding_and_state_round_trip():
    def make():
        return PendulumVecEnv(num_envs=4)

    a, b = make(), make()
    oa, _ = a.reset(seed=3)
    ob, _ = b.reset(seed=3)
    assert torch.equal(oa, ob)
    assert not torch.equal(oa, make().reset(seed=4)[0])
    for _ in range(150):
        a.step(torch.ones(4, 1))
    c = make()
    c.load_state_dict(a.state_dict())
    for _ in range(100):  # crosses the 200-step autoreset, which draws from the restored generator
        x, y = a.step(torch.ones(4, 1)), c.step(torch.ones(4, 1))
        assert torch.equal(x[0], y[0]) and torch.equal(x[1], y[1])


def test_single_env_seeding():
    e = gym.make("rlsuite/Pendulum-v0")
    o1, _ = e.reset(seed=7)
    o2, _ = e.reset(seed=7)
    assert np.array_equal(o1, o2) and o1.dtype == np.float32


@pytest.mark.gpu
def test_batched_env_on_cuda():
    env = gym.make_vec("rlsuite/Pendulum-v0", num_envs=4096, vectorization_mode="vector_entry_point", device="cuda")
    obs, _ = env.reset(seed=0)
    assert obs.device.type == "cuda"
    run_conformance(env, steps=250)
