"""The COP envs through Gymnasium: registration, check_env, masks, returns equal to -cost, PPO through the adapter."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import rlsuite.envs  # noqa: F401
from rlsuite.agents.ppo import PPO, PPOConfig
from rlsuite.core.vec_env import make_vec_env
from rlsuite.envs import ENV_IDS
from rlsuite.envs.cop import COPEnv, cost, validate

IDS = {"tsp": "rlsuite/TSP-v0", "atsp": "rlsuite/ATSP-v0", "cvrp": "rlsuite/CVRP-v0", "op": "rlsuite/OP-v0", "kp": "rlsuite/KP-v0"}


@pytest.mark.parametrize("problem", list(IDS))
def test_registered_listed_and_passes_check_env(problem):
    assert IDS[problem] in ENV_IDS
    env = gym.make(IDS[problem], size=7)
    check_env(env.unwrapped, skip_render_check=True)
    assert isinstance(env.action_space, gym.spaces.Discrete)
    _, info = env.reset(seed=0)
    assert info["action_mask"].dtype == bool and info["action_mask"].shape == (env.action_space.n,)


@pytest.mark.parametrize("problem", list(IDS))
def test_masked_random_episodes_return_minus_the_cost_of_a_valid_solution(problem):
    env = gym.make(IDS[problem], size=9).unwrapped
    rng = np.random.default_rng(0)
    for episode in range(3):
        obs, info = env.reset(seed=episode)
        total = 0.0
        for _ in range(env.max_steps):
            mask = info["action_mask"]
            assert mask.any(), "a non-terminal state allows no action"
            # the mask is COPEnv's own, and the observation is inside its space
            assert (mask == env.env.action_mask()[0].numpy()).all() and env.observation_space.contains(obs)
            obs, reward, terminated, truncated, info = env.step(int(rng.choice(np.flatnonzero(mask))))
            assert not info["invalid_action"]
            total += reward
            if terminated or truncated:
                break
        assert terminated and not truncated and not info["action_mask"].any()
        solution = env.solution()
        validate(problem, env.instance, [solution])
        assert total == pytest.approx(-float(cost(problem, env.instance, [solution])[0]), abs=1e-4)


def test_a_forbidden_action_is_not_applied_and_flagged_then_truncates():
    env = gym.make(IDS["tsp"], size=5).unwrapped
    obs, info = env.reset(seed=0)
    assert not info["action_mask"][0]  # the start node is already visited
    for i in range(env.max_steps):
        nxt, reward, terminated, truncated, info = env.step(0)
        assert info["invalid_action"] and reward == 0.0 and not terminated
        assert (nxt["visited"] == obs["visited"]).all()
        assert truncated == (i == env.max_steps - 1)


def test_cop_env_action_mask_unchanged_for_bq_nco():
    """The Gymnasium view reads COPEnv.action_mask; COPEnv's own semantics stay those BQ-NCO uses."""
    inst = {"locs": torch.rand(2, 4, 2, generator=torch.Generator().manual_seed(0))}
    env = COPEnv("tsp", inst)
    assert env.action_mask().tolist() == [[False, True, True, True]] * 2
    env.step(torch.tensor([2, 1]))
    assert env.action_mask().tolist() == [[False, True, False, True], [False, False, True, True]]


def test_ppo_trains_on_tsp_through_the_adapter_and_only_takes_allowed_actions():
    torch.manual_seed(0)
    env = make_vec_env("rlsuite/TSP-v0", num_envs=4, seed=0, size=6)
    # Dict observation flattened: locs 12 + visited 6 + current one-hot 6 (keys sorted: current, locs, visited)
    assert env.single_observation_space.shape == (24,)
    cfg = PPOConfig(num_envs=4, num_steps=20, num_minibatches=2, update_epochs=2, hidden_sizes=(32, 32))
    agent = PPO(cfg, env.single_observation_space, env.single_action_space)
    agent.learn(env, 160, seed=0)
    obs, info = env.reset(seed=1)
    lengths = []
    for _ in range(30):
        mask = info["action_mask"]
        assert mask.shape == (4, 6) and mask.any(1).all()
        action = agent.act(obs, deterministic=False, action_mask=mask)
        assert mask.gather(1, action[:, None]).all()
        obs, _, _, _, info = env.step(action)
        lengths += info["episode_length"][info["_final_obs"]].tolist()
    assert lengths and set(lengths) == {5}  # a 6-node tour takes 5 decisions when no action is refused
