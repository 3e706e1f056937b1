"""The Isaac Gym adapter on fake VecTask / legged_gym tasks written in plain torch."""

import logging
import math

import pytest
import torch

from rlsuite.agents.ppo import PPO, PPOConfig
from rlsuite.robots.isaacgym_adapter import IsaacGymVecEnv
from tests.core.test_vec_env import run_conformance


class FakeVecTask:
    """A batched pendulum with IsaacGymEnvs' buffers and conventions: in-step resets, time_outs in extras,
    reset_buf starting at 1, obs in a dict, actions clamped to clipActions."""

    def __init__(self, num_envs=16, max_len=50, store_final=False, legged=False):
        self.num_envs, self.num_obs, self.num_actions, self.device = num_envs, 3, 1, "cpu"
        self.max_len, self.store_final, self.legged = max_len, store_final, legged
        self.clip_actions = 1.0
        g = torch.Generator().manual_seed(0)
        self.gen = g
        self.th = torch.zeros(num_envs)
        self.thdot = torch.zeros(num_envs)
        self.progress_buf = torch.zeros(num_envs, dtype=torch.long)
        self.reset_buf = torch.ones(num_envs, dtype=torch.long)
        self.obs_buf = torch.zeros(num_envs, 3)
        self.rew_buf = torch.zeros(num_envs)
        self.extras = {}

    def _obs(self):
        return torch.stack([torch.cos(self.th), torch.sin(self.th), self.thdot], 1)

    def reset_idx(self, ids):
        self.th[ids] = (torch.rand(len(ids), generator=self.gen) * 2 - 1) * math.pi
        self.thdot[ids] = 0.0
        self.progress_buf[ids] = 0
        self.reset_buf[ids] = 0

    def reset(self):
        self.reset_idx(torch.arange(self.num_envs))
        self.obs_buf = self._obs()
        return (self.obs_buf, None) if self.legged else {"obs": self.obs_buf}

    def step(self, actions):
        u = actions.clamp(-self.clip_actions, self.clip_actions)[:, 0] * 2
        self.rew_buf = -(self.th.remainder(2 * math.pi) - math.pi).abs()
        self.thdot = (self.thdot + (15 * torch.sin(self.th) + 3 * u) * 0.05).clamp(-8, 8)
        self.th = self.th + self.thdot * 0.05
        self.progress_buf += 1
        time_outs = self.progress_buf >= self.max_len
        fallen = self.thdot.abs() >= 8
        self.reset_buf = (time_outs | fallen).long()
        self.extras = {"time_outs": time_outs.clone()}
        if self.store_final:
            self.extras["final_obs"] = self._obs()
        done = self.reset_buf.clone()
        ids = torch.nonzero(done).flatten()
        if len(ids):
            self.reset_idx(ids)  # in-step reset, as legged_gym does
        self.obs_buf = self._obs()
        if self.legged:
            return self.obs_buf, self.obs_buf * 2, self.rew_buf, done, self.extras
        return {"obs": self.obs_buf, "states": self.obs_buf * 2}, self.rew_buf, done, self.extras


@pytest.mark.parametrize("legged", [False, True])
def test_conformance_on_fake_tasks(legged):
    env = IsaacGymVecEnv(FakeVecTask(legged=legged))
    run_conformance(env, steps=120)


def test_terminated_and_truncated_come_from_reset_and_time_outs():
    env = IsaacGymVecEnv(FakeVecTask(num_envs=4, max_len=3, store_final=True))
    env.reset()
    for _ in range(2):
        _, _, term, trunc, info = env.step(torch.zeros(4, 1))
    _, _, term, trunc, info = env.step(torch.zeros(4, 1))
    assert trunc.all() and not term.any() and info["final_obs_exact"]
    assert not torch.equal(info["final_obs"], env.task.obs_buf)  # the pre-reset observation, not the new one
    assert torch.equal(info["critic_obs"], env.task.obs_buf * 2)


def test_refuses_objects_that_are_not_tasks():
    with pytest.raises(TypeError, match="not a VecTask-like object"):
        IsaacGymVecEnv(object())


def test_ppo_trains_on_the_adapter():
    torch.manual_seed(0)
    env = IsaacGymVecEnv(FakeVecTask(num_envs=16, store_final=True))
    agent = PPO(PPOConfig(num_envs=16, num_steps=32, num_minibatches=4, update_epochs=2), env.single_observation_space,
                env.single_action_space)
    agent.learn(env, 16 * 32 * 2, seed=0)
    assert agent.global_step == 16 * 32 * 2


def test_truncation_without_final_obs_is_reported_as_termination_with_one_warning(caplog):
    env = IsaacGymVecEnv(FakeVecTask(num_envs=4, max_len=3, store_final=False))
    env.reset()
    with caplog.at_level(logging.WARNING, logger="rlsuite.robots"):
        for _ in range(2):
            _, _, term, trunc, info = env.step(torch.zeros(4, 1))
            assert not term.any() and not trunc.any()
        _, _, term, trunc, info = env.step(torch.zeros(4, 1))  # every env times out (max_len 3): no pre-reset observation
        assert term.all() and not trunc.any() and not info["final_obs_exact"]
        for _ in range(3):  # a second round of time-outs: no second warning
            _, _, term, trunc, _ = env.step(torch.zeros(4, 1))
        assert term.all() and not trunc.any()
    said = [r.getMessage() for r in caplog.records if "pre-reset observation" in r.getMessage()]
    assert len(said) == 1 and "reported as terminations" in said[0] and "extras['final_obs']" in said[0]
    exact = IsaacGymVecEnv(FakeVecTask(num_envs=4, max_len=3, store_final=True))  # with final_obs: truncations stay truncations
    exact.reset()
    for _ in range(3):
        _, _, term, trunc, _ = exact.step(torch.zeros(4, 1))
    assert trunc.all() and not term.any()
