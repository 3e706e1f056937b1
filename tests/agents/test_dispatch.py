"""greedy-dispatch and random-dispatch: the env's baseline policies through the agent protocol (the train / eval /
export / resume path is in tests/test_agent_protocol.py)."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest
import torch

from rlsuite.agents.dispatch import (
    PICKUP_ETA,
    GreedyDispatch,
    GreedyDispatchConfig,
    RandomDispatch,
    RandomDispatchConfig,
)
from rlsuite.envs.dispatch.policies import greedy_policy, random_policy
from tests.agents.test_ospo import LEARN_CITY, _env, _Recorder, deterministic_return


def _agents(env, seed: int = 0) -> tuple[GreedyDispatch, RandomDispatch]:
    spaces = (env.single_observation_space, env.single_action_space)
    return (GreedyDispatch(GreedyDispatchConfig(num_envs=env.num_envs), *spaces),
            RandomDispatch(RandomDispatchConfig(num_envs=env.num_envs), *spaces, seed=seed))


def test_greedy_dispatch_scores_are_greedy_policys_exactly():
    env = _env(3)
    greedy, _ = _agents(env)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        assert torch.equal(greedy.act(obs), greedy_policy()(obs))
        obs, *_ = env.step(greedy.act(obs))
    other = GreedyDispatch(GreedyDispatchConfig(max_pickup_minutes=7.5), env.single_observation_space, env.single_action_space)
    assert torch.equal(other.act(obs, deterministic=True), greedy_policy(7.5)(obs))
    # by hand: ETA 6 minutes (0.1 h) -> 1 + (20 - 6) / 60; an empty slot (ETA 0) -> 0
    pair = torch.zeros(2, 28)
    pair[0, PICKUP_ETA] = 0.1
    assert greedy.act(pair).tolist() == pytest.approx([1 + 14 / 60, 0.0])
    assert torch.equal(greedy.deploy_module()(pair), greedy.act(pair))


def test_random_dispatch_scores_are_a_seeded_function_of_the_observation():
    env = _env(2)
    _, rand = _agents(env, seed=0)
    obs, _ = env.reset(seed=0)
    u = rand.act(obs)
    assert u.shape == obs.shape[:-1] and u.dtype == torch.float32 and bool((u > 0).all() and (u <= 1).all())
    assert torch.equal(rand.act(obs), u)  # a function of the observation: no generator advances
    assert not torch.equal(_agents(env, seed=1)[1].act(obs), u)  # the seed draws the projection
    nxt, *_ = env.step(u)
    assert (rand.act(nxt) != u).float().mean() > 0.9  # new scores every minute (the minute is a feature)
    loaded = RandomDispatch(RandomDispatchConfig(num_envs=2), env.single_observation_space, env.single_action_space, seed=5)
    loaded.load_state_dict(rand.state_dict())
    assert torch.equal(loaded.act(obs), u)
    assert not hasattr(rand, "deploy_module") and "no export module" in rand.export_unavailable


def test_random_dispatch_is_as_good_as_random_scores():
    """Same 16 episodes of the learning test's city: random-dispatch's return is random_policy's up to noise (seen:
    differences of 0.2-5.4 on 32 episodes, 467.23 against 467.21 over 10 x 8; greedy is about 50 higher), and its
    scores look uniform and independent of the pickup ETA."""
    env = _env(16, 0, **{**LEARN_CITY, "horizon": 30})
    _, rand = _agents(env, seed=3)
    greedy_ret, random_ret = deterministic_return(greedy_policy()), deterministic_return(random_policy(3))
    assert abs(deterministic_return(rand.act) - random_ret) < 0.3 * (greedy_ret - random_ret)
    obs, info = env.reset(seed=1)
    u, eta = rand.act(obs)[info["pair_mask"]], obs[..., PICKUP_ETA][info["pair_mask"]]
    assert abs(float(u.mean()) - 0.5) < 0.05 and abs(float(u.std()) - math.sqrt(1 / 12)) < 0.03
    assert abs(float(torch.corrcoef(torch.stack([u, eta]))[0, 1])) < 0.15


@pytest.mark.parametrize("which", [0, 1])
def test_learn_runs_whole_episodes_and_logs_the_envs_figures(which):
    env = _env(2, seed=4)
    agent = _agents(env)[which]
    rec = _Recorder()
    agent.learn(env, 3 * 2 * env.horizon - 5, rec, seed=4)  # rounded up to whole batches of episodes
    assert agent.global_step == rec.steps[-1] == 3 * 2 * env.horizon and len(rec.rows) == 3
    for key in ("rollout/ep_return", "rollout/served", "rollout/pickup_min", "rollout/episodes", "time/sps"):
        assert math.isfinite(rec.rows[-1][key]), key
    # the first batch is the policy's own episodes on the env seeded as learn seeds it
    ref = _env(2, seed=4)
    obs, _ = ref.reset(seed=4)
    for _ in range(ref.horizon):
        obs, _, _, _, info = ref.step(_agents(ref)[which].act(obs))
    assert rec.rows[0]["rollout/ep_return"] == float(info["episode_return"].float().mean())


def test_baselines_refuse_other_envs_and_spaces():
    env = _env(2)
    greedy, rand = _agents(env)
    with pytest.raises(ValueError, match="config.num_envs=2"):
        greedy.check_env(_env(3))
    with pytest.raises(ValueError, match="config.num_envs=2"):
        rand.learn(_env(3), 10)
    with pytest.raises(ValueError, match="Box observation"):
        GreedyDispatch(GreedyDispatchConfig(), gym.spaces.Box(0, 1, (4,)), gym.spaces.Box(0, 1, (4,)))
    with pytest.raises(ValueError, match="max_pickup_minutes > 0"):
        GreedyDispatchConfig(max_pickup_minutes=0.0)
    with pytest.raises(ValueError, match="num_envs must be >= 1"):
        RandomDispatchConfig(num_envs=0)
