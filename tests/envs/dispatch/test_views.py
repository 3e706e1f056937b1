"""The single Gymnasium env (rlsuite/Dispatch-Manhattan-v0) and the PettingZoo ParallelEnv of the dispatch simulator."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import rlsuite  # noqa: F401  (registers the envs)
from rlsuite.envs.dispatch import (
    ENV_ID,
    DispatchEnv,
    DispatchParallelEnv,
    DispatchVecEnv,
    grid_city,
    random_policy,
)

KW = {"city": grid_city(3, 3), "num_vehicles": 12, "num_candidates": 3, "orders_per_minute": 6.0, "horizon": 6}


def test_gymnasium_single_env_passes_the_checker_and_speaks_numpy():
    env = gym.make(ENV_ID, **KW)
    assert isinstance(env.unwrapped, DispatchEnv)
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=1)
    assert obs.shape == (12, 3, 28) and obs.dtype == np.float32 and env.action_space.shape == (12, 3)
    assert info["pair_mask"].shape == (12, 3) and info["pair_mask"].dtype == bool
    served = 0.0
    for t in range(6):
        obs, reward, terminated, truncated, info = env.step(np.ones((12, 3), dtype=np.float32))
        assert isinstance(reward, float) and reward == pytest.approx(float(info["vehicle_reward"].sum()), abs=1e-4)
        assert not terminated and truncated == (t == 5) and isinstance(info["served"], float)
        assert info["assigned"].shape == (12,) and info["assigned"].dtype == np.int64
        # the mask describes the returned observation, also at the end (where the batched env has reset already)
        assert not obs[..., 23:][~info["pair_mask"]].any() and (obs[..., 27][info["pair_mask"]] > 0).all()
        served += info["served"]
    assert info["episode_served"] == served > 0  # the finished episode's figures at its end


def test_single_env_is_the_batched_env_of_one():
    single = DispatchEnv(**KW)
    vec = DispatchVecEnv(num_envs=1, **KW)
    obs, _ = single.reset(seed=5)
    vobs, _ = vec.reset(seed=5)
    assert np.array_equal(obs, vobs[0].numpy())
    act = random_policy(3)
    for _ in range(6):
        a = act(torch.from_numpy(obs))
        obs, reward, _, truncated, info = single.step(a.numpy())
        vobs, vreward, _, vtrunc, vinfo = vec.step(a[None])
        assert np.array_equal(obs, vinfo["final_obs"][0].numpy()) and reward == vreward.item() and truncated == vtrunc.item()
        assert np.array_equal(info["vehicle_reward"], vinfo["vehicle_reward"][0].numpy())


def test_pettingzoo_parallel_api():
    from pettingzoo.test import parallel_api_test

    env = DispatchParallelEnv(**KW)
    parallel_api_test(env, num_cycles=20)
    assert env.possible_agents[:2] == ["vehicle_0", "vehicle_1"] and len(env.possible_agents) == 12
    assert env.observation_space("vehicle_3").shape == (3, 28) and env.action_space("vehicle_3").shape == (3,)
    with pytest.raises(ValueError, match="unknown agent 'car_1'"):
        env.action_space("car_1")


def test_pettingzoo_agents_get_their_vehicle_rewards_and_mask_rows():
    env = DispatchParallelEnv(**KW)
    vec = DispatchVecEnv(num_envs=1, **KW)
    obs, infos = env.reset(seed=2)
    vobs, vinfo = vec.reset(seed=2)
    assert all(np.array_equal(obs[f"vehicle_{i}"], vobs[0, i].numpy()) for i in range(12))
    assert all(np.array_equal(infos[f"vehicle_{i}"]["pair_mask"], vinfo["pair_mask"][0, i].numpy()) for i in range(12))
    g = torch.Generator().manual_seed(0)
    for t in range(6):
        scores = torch.rand((1, 12, 3), generator=g)
        obs, rewards, terms, truncs, infos = env.step({a: scores[0, i].numpy() for i, a in enumerate(env.possible_agents)})
        _, _, _, vtrunc, vinfo = vec.step(scores)
        for i, a in enumerate(env.possible_agents):
            assert rewards[a] == vinfo["vehicle_reward"][0, i].item() and infos[a]["assigned"] == vinfo["assigned"][0, i].item()
            assert np.array_equal(obs[a], vinfo["final_obs"][0, i].numpy()) and not terms[a] and truncs[a] == (t == 5)
    assert env.agents == []
    with pytest.raises(RuntimeError, match="reset"):
        env.step({})
    obs, _ = env.reset()
    assert len(env.agents) == 12
    # an agent left out of the actions scores 0: it takes no order
    _, rewards, _, _, infos = env.step({"vehicle_0": np.ones(3, dtype=np.float32)})
    assert all(infos[a]["assigned"] == -1 for a in env.possible_agents[1:])
