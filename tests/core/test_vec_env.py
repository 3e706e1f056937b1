"""Conformance of the batched-env protocol through the Gymnasium adapter."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlsuite.core.registry import UnknownNameError
from rlsuite.core.vec_env import (
    GymVecAdapter,
    TorchVecEnv,
    describe_space,
    make_vec_env,
    space_from_description,
)


def run_conformance(env: TorchVecEnv, steps: int = 600) -> None:
    """Shapes, dtypes, device, autoreset, final_obs and episode statistics of any TorchVecEnv."""
    n = env.num_envs
    obs_shape = env.single_observation_space.shape
    assert env.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    obs, info = env.reset(seed=0)
    assert isinstance(obs, torch.Tensor) and obs.shape == (n, *obs_shape) and obs.dtype == torch.float32
    assert obs.device.type == env.device.type
    ended = 0
    for _ in range(steps):
        act = torch.as_tensor(np.stack([env.single_action_space.sample() for _ in range(n)]), device=env.device)
        nxt, rew, term, trunc, info = env.step(act)
        assert nxt.shape == (n, *obs_shape) and rew.shape == (n,) and rew.dtype == torch.float32
        assert term.dtype == torch.bool and trunc.dtype == torch.bool and term.shape == (n,)
        done = term | trunc
        assert torch.equal(info["_final_obs"], done)
        assert info["final_obs"].shape == nxt.shape
        # rows that did not end: final_obs is the returned obs
        assert torch.equal(info["final_obs"][~done], nxt[~done])
        if done.any():
            ended += int(done.sum())
            assert (info["episode_length"][done] > 0).all()
            assert torch.isfinite(info["episode_return"][done]).all()
    assert ended > 0, "no episode ended during the conformance run"


def test_adapter_conformance_cartpole_sync():
    env = make_vec_env("CartPole-v1", num_envs=3, seed=0)
    assert isinstance(env, GymVecAdapter) and env.exact_resume
    run_conformance(env)


def test_adapter_conformance_async():
    env = make_vec_env("CartPole-v1", num_envs=2, seed=0, vectorization="async")
    try:
        assert not env.exact_resume
        run_conformance(env, steps=200)
    finally:
        env.close()


def test_adapter_final_obs_is_the_pre_reset_observation():
    env = make_vec_env("CartPole-v1", num_envs=1, seed=0)
    env.reset(seed=0)
    for _ in range(500):
        nxt, _, term, trunc, info = env.step(torch.zeros(1, dtype=torch.int64))  # always push left: falls quickly
        if term.any():
            final = info["final_obs"][0]
            # the pole angle or cart position is out of bounds in the final obs, while the new obs is a fresh start
            assert final[2].abs() > 0.2095 or final[0].abs() > 2.4
            assert nxt[0].abs().max() <= 0.05
            return
    pytest.fail("episode never terminated")


def test_adapter_seeding():
    def rollout(seed):
        env = make_vec_env("CartPole-v1", num_envs=2, seed=seed)
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for _ in range(50):
            out.append(env.step(torch.ones(2, dtype=torch.int64))[0])
        return torch.stack(out)

    assert torch.equal(rollout(1), rollout(1))
    assert not torch.equal(rollout(1), rollout(2))


def test_adapter_exact_resume_mid_episode():
    """state_dict() mid-episode, load into a fresh adapter: the next steps are identical."""
    g = torch.Generator().manual_seed(0)
    actions = [torch.randint(0, 2, (2,), generator=g) for _ in range(120)]
    a = make_vec_env("CartPole-v1", num_envs=2, seed=5)
    a.reset(seed=5)
    for act in actions[:70]:
        a.step(act)
    state = a.state_dict()
    b = make_vec_env("CartPole-v1", num_envs=2, seed=99)
    b.reset(seed=99)
    b.load_state_dict(state)
    for act in actions[70:]:
        oa, ra, ta, ua, ia = a.step(act)
        ob, rb, tb, ub, ib = b.step(act)
        assert torch.equal(oa, ob) and torch.equal(ra, rb) and torch.equal(ta, tb) and torch.equal(ua, ub)
        assert torch.equal(ia["episode_return"], ib["episode_return"])


def test_next_step_autoreset_is_refused_with_a_fix():
    venv = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")
    with pytest.raises(ValueError, match="DISABLED"):
        GymVecAdapter(venv)


def test_unknown_env_id_suggests():
    with pytest.raises(UnknownNameError, match="Did you mean 'CartPole-v1'"):
        make_vec_env("Cartpole-v1")


def test_space_descriptions_round_trip():
    for space in (gym.spaces.Box(-1.0, 2.0, (3,), np.float32), gym.spaces.Discrete(4), gym.spaces.MultiDiscrete([2, 5], start=[0, 1])):
        assert space_from_description(describe_space(space)) == space


# ----------------------------------------------------------------------------- action masks, structured spaces


class _MaskedDictEnv(gym.Env):
    """A Dict-observation env whose mask is a function of its observation: in state ``k`` action ``k`` is
    forbidden (MultiDiscrete: value ``k`` of each component); episodes last 1 to 4 steps."""

    def __init__(self, multi: bool = False) -> None:
        self.multi = multi
        self.observation_space = gym.spaces.Dict(
            {"k": gym.spaces.Discrete(3), "t": gym.spaces.Box(0.0, 10.0, (1,), np.float32)}
        )
        self.action_space = gym.spaces.MultiDiscrete([3, 3]) if multi else gym.spaces.Discrete(3)

    def _out(self):
        mask = np.ones(3, dtype=bool)
        mask[self.k] = False
        obs = {"k": self.k, "t": np.array([self.t], dtype=np.float32)}
        return obs, {"action_mask": np.concatenate([mask, mask]) if self.multi else mask}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.k, self.t = int(self.np_random.integers(3)), 0
        self.length = int(self.np_random.integers(1, 5))
        return self._out()

    def step(self, action):
        acts = np.atleast_1d(action)
        assert (acts != self.k).all(), "the adapter's caller sent a forbidden action"
        self.k, self.t = int((self.k + 1 + int(acts[0])) % 3), self.t + 1
        obs, info = self._out()
        return obs, 1.0, self.t >= self.length, False, info


def _masked_adapter(num_envs: int, multi: bool = False, mode=gym.vector.AutoresetMode.DISABLED) -> GymVecAdapter:
    venv = gym.vector.SyncVectorEnv([lambda: _MaskedDictEnv(multi)] * num_envs, autoreset_mode=mode)
    return GymVecAdapter(venv, seed=0)


@pytest.mark.parametrize("mode", [gym.vector.AutoresetMode.DISABLED, gym.vector.AutoresetMode.SAME_STEP])
@pytest.mark.parametrize("multi", [False, True])
def test_adapter_passes_action_masks_for_the_returned_observation(mode, multi):
    """The mask is present after reset and every step and matches the returned (post-reset) observation."""
    env = _masked_adapter(4, multi, mode)
    assert env.single_observation_space.shape == (4,)  # one-hot k (3) + t (1), keys sorted
    assert isinstance(env.original_observation_space, gym.spaces.Dict)
    obs, info = env.reset(seed=1)
    ended = 0
    for _ in range(60):
        mask = info["action_mask"]
        assert mask.dtype == torch.bool and mask.shape == (4, 6 if multi else 3) and mask.device == env.device
        k = obs[:, :3].argmax(1)
        assert torch.equal(mask[:, :3], ~torch.nn.functional.one_hot(k, 3).bool())
        assert torch.equal(obs[:, :3].sum(1), torch.ones(4))
        logits = torch.zeros(4, 3).masked_fill(~mask[:, :3], float("-inf"))
        act = torch.distributions.Categorical(logits=logits).sample()
        obs, _, term, trunc, info = env.step(torch.stack([act, act], 1) if multi else act)
        done = term | trunc
        ended += int(done.sum())
        assert torch.equal(info["final_obs"][~done], obs[~done])
        assert (info["final_obs"][done, 3] >= 1).all() and (obs[done, 3] == 0).all()
    assert ended > 10


def test_adapter_refuses_a_mask_of_the_wrong_width_and_a_missing_mask():
    class Wide(_MaskedDictEnv):
        def _out(self):
            obs, info = super()._out()
            return obs, {"action_mask": np.ones(5, dtype=bool)}

    env = GymVecAdapter(gym.vector.SyncVectorEnv([Wide], autoreset_mode=gym.vector.AutoresetMode.DISABLED))
    with pytest.raises(ValueError, match="5 entries per env.*needs 3"):
        env.reset(seed=0)

    class Forgets(_MaskedDictEnv):
        def step(self, action):
            obs, r, te, tr, _ = super().step(action)
            return obs, r, te, tr, {}

    env = GymVecAdapter(gym.vector.SyncVectorEnv([Forgets], autoreset_mode=gym.vector.AutoresetMode.DISABLED))
    _, info = env.reset(seed=0)
    with pytest.raises(ValueError, match="after every step"):
        env.step(info["action_mask"].float().argmax(1))
