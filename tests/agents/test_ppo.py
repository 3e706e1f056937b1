import dataclasses
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlsuite.agents.ppo import LR_BOUNDS, PPO, PPOConfig, adapt_learning_rate, ppo_policy_loss, ppo_value_loss
from rlsuite.agents.train import load_agent
from rlsuite.core.checkpoint import CheckpointError, find_latest
from rlsuite.core.run import restore_training
from rlsuite.core.vec_env import TorchVecEnv, make_vec_env
from tests.agents.helpers import SimulatedCrash, assert_same_params, params_of, train_run


def test_policy_loss_hand_computed():
    logp = torch.tensor([math.log(1.5), math.log(0.5)])
    old = torch.zeros(2)
    adv = torch.tensor([2.0, -1.0])
    loss, stats = ppo_policy_loss(logp, old, adv, clip_coef=0.2)
    # sample 0: r=1.5, min(1.5*2, 1.2*2) = 2.4 ; sample 1: r=0.5, min(0.5*-1, 0.8*-1) = -0.8
    # loss = -(2.4 - 0.8) / 2 = -0.8
    assert loss.item() == pytest.approx(-0.8)
    assert stats["clip_fraction"].item() == 1.0
    # k3: ((1.5-1) - log 1.5 + (0.5-1) - log 0.5) / 2 = (0.094535 + 0.193147) / 2 = 0.143841
    assert stats["approx_kl"].item() == pytest.approx(0.143841, abs=1e-5)


def test_value_loss_hand_computed():
    v, old, ret = torch.tensor([1.0, 3.0]), torch.zeros(2), torch.zeros(2)
    assert ppo_value_loss(v, old, ret, None)[0].item() == pytest.approx(2.5)  # 0.5 * (1 + 9) / 2
    # clipping can only make it larger: V=2, old=0, R=1.5 -> unclipped 0.25, clipped V=0.5 -> 1.0
    loss, _ = ppo_value_loss(torch.tensor([2.0]), torch.tensor([0.0]), torch.tensor([1.5]), 0.5)
    assert loss.item() == pytest.approx(0.5)


def _agent(discrete=True, **kw):
    obs = gym.spaces.Box(-1, 1, (4,), np.float32)
    act = gym.spaces.Discrete(2) if discrete else gym.spaces.Box(-2, 2, (2,), np.float32)
    return PPO(PPOConfig(num_envs=1, num_steps=8, num_minibatches=2, **kw), obs, act)


def test_no_critic_loss_gradient_reaches_actor_parameters():
    agent = _agent()
    obs = torch.randn(16, 4)
    loss, _ = ppo_value_loss(agent.policy.value(obs), torch.zeros(16), torch.randn(16), None)
    loss.backward()
    actor = list(agent.policy.actor_body.parameters()) + list(agent.policy.head.parameters())
    assert all(p.grad is None for p in actor)
    assert all(p.grad is not None for p in agent.policy.critic.parameters())


def test_continuous_actions_are_clipped_to_bounds_and_deterministic_is_mean():
    agent = _agent(discrete=False, init_log_std=3.0)
    a = agent.act(torch.randn(500, 4))
    assert a.shape == (500, 2) and a.abs().max() <= 2.0 and (a.abs() == 2.0).any()
    o = torch.randn(3, 4)
    assert torch.equal(agent.act(o, deterministic=True), agent.act(o, deterministic=True))


def test_config_errors_say_what_to_change():
    with pytest.raises(ValueError, match="does not divide"):
        PPOConfig(num_envs=3, num_steps=10, num_minibatches=4)


def test_budget_note_says_how_far_whole_rollouts_round_the_budget_up():
    space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    agent = PPO(PPOConfig(num_envs=2, num_steps=64, num_minibatches=2), space, gym.spaces.Discrete(2))
    # rollouts of 2 * 64 = 128 env steps: 300 -> ceil(300 / 128) = 3 rollouts = 384 steps
    assert agent.budget_note(300) == "--total-steps 300 is not a multiple of the rollout (num_envs*num_steps = 128): training 384 steps"
    assert agent.budget_note(256) is None
    agent.global_step = 200  # resumed at 200: 300 - 200 = 100 left -> one rollout -> 328
    assert agent.budget_note(300).endswith("from step 200 (num_envs*num_steps = 128): training 328 steps")
    assert agent.budget_note(328) is None and agent.budget_note(150) is None


def test_adaptive_learning_rate_follows_rsl_rl_rule():
    assert adapt_learning_rate(1e-3, kl=0.03, desired_kl=0.01) == pytest.approx(1e-3 / 1.5)  # kl > 2 x desired
    assert adapt_learning_rate(1e-3, kl=0.004, desired_kl=0.01) == pytest.approx(1.5e-3)  # kl < desired / 2
    assert adapt_learning_rate(1e-3, kl=0.02, desired_kl=0.01) == 1e-3  # within [desired / 2, 2 x desired]: kept
    assert adapt_learning_rate(1e-3, kl=0.005, desired_kl=0.01) == 1e-3
    assert adapt_learning_rate(1e-3, kl=0.0, desired_kl=0.01) == 1e-3  # the update's first minibatch: the rollout's policy
    assert adapt_learning_rate(LR_BOUNDS[1], kl=0.0, desired_kl=0.01) == LR_BOUNDS[1]  # clipped at both ends
    assert adapt_learning_rate(LR_BOUNDS[0], kl=1.0, desired_kl=0.01) == LR_BOUNDS[0]


def test_desired_kl_and_reward_clip_errors_say_what_to_change():
    with pytest.raises(ValueError, match="--desired-kl with --no-anneal-lr"):
        PPOConfig(desired_kl=0.01)
    with pytest.raises(ValueError, match="desired_kl must be > 0"):
        PPOConfig(desired_kl=0.0, anneal_lr=False)
    with pytest.raises(ValueError, match="reward_clip must be > 0"):
        PPOConfig(reward_clip=0.0)


class _ConstantReward(TorchVecEnv):
    """``num_envs`` copies of a 1-D env paying 1 per step, truncated after ``length`` steps."""

    def __init__(self, num_envs: int, length: int) -> None:
        self.num_envs, self.length, self.device = num_envs, length, torch.device("cpu")
        self.single_observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.t = torch.zeros(num_envs, dtype=torch.int64)
        self._init_episode_stats()

    def reset(self, *, seed=None, options=None):
        self.t.zero_()
        return torch.zeros(self.num_envs, 1), {}

    def step(self, action):
        self.t += 1
        reward = torch.ones(self.num_envs)
        truncated = self.t >= self.length
        terminated = torch.zeros_like(truncated)
        info = {"final_obs": torch.zeros(self.num_envs, 1), "_final_obs": truncated.clone()}
        self._track_episodes(reward, truncated, info)
        self.t = torch.where(truncated, 0, self.t)
        return torch.zeros(self.num_envs, 1), reward, terminated, truncated, info


def test_reward_scaling_divides_by_the_std_of_discounted_returns_hand_computed():
    """gamma 0.5, reward 1, episodes of 3 steps, one rollout of 4 steps: each env's discounted return is 1, 1.5, 1.75
    (the episode ends and R restarts), 1; their population variance is 0.10546875, so the scale is 1 / sqrt(var)."""
    env = _ConstantReward(num_envs=2, length=3)
    cfg = PPOConfig(num_envs=2, num_steps=4, num_minibatches=1, update_epochs=1, gamma=0.5, normalize_reward=True)
    agent = PPO(cfg, env.single_observation_space, env.single_action_space)
    agent.learn(env, total_steps=8)
    assert agent.reward_norm.var.item() == pytest.approx(0.10546875)
    assert agent.reward_norm.mean.item() == pytest.approx(1.3125) and agent.reward_norm.count.item() == 8
    assert torch.equal(agent._ret, torch.ones(2))  # the step after the episode end: R restarted at 1
    # a fresh reset (as TGPO does between phases: _obs = None) restarts R too: the same four returns again, so the
    # statistics of all 16 are those of the first 8 (a carried-over R would give 1.5, 1.75, 1.875, 1)
    agent._obs = None
    agent.learn(env, total_steps=16)
    assert agent.reward_norm.mean.item() == pytest.approx(1.3125) and agent.reward_norm.var.item() == pytest.approx(0.10546875)
    # the scaling itself: rewards / sqrt(var + eps), clipped to +-reward_clip
    rewards = torch.tensor([[1.0, -2.0], [100.0, 0.0]])
    fresh = PPO(dataclasses.replace(cfg, reward_clip=5.0), env.single_observation_space, env.single_action_space)
    scale = fresh._scale_rewards(rewards, torch.tensor([[1.0, 3.0], [1.0, 3.0]]))  # var 1 -> scale 1 / sqrt(1 + 1e-8)
    assert scale.item() == pytest.approx(1.0) and torch.allclose(rewards, torch.tensor([[1.0, -2.0], [5.0, 0.0]]))


def test_reward_scaling_and_adaptive_lr_resume_bit_exact(monkeypatch, tmp_path):
    """A run with reward scaling and the adaptive learning rate, killed mid-iteration and resumed, ends with the
    weights, scaling statistics and learning rate of an unbroken run."""
    algo = dict(num_envs=8, num_steps=32, num_minibatches=2, update_epochs=2, normalize_reward=True, anneal_lr=False,
                desired_kl=0.01)
    kw = dict(env="rlsuite/Pendulum-v0", seed=2, total_steps=1024, checkpoint_every=256, eval_episodes=0, algo=algo)
    train_run(monkeypatch, "ppo", tmp_path / "full", **kw)
    with pytest.raises(SimulatedCrash):
        train_run(monkeypatch, "ppo", tmp_path / "crash", crash_after_steps=32 * 2 + 11, **kw)
    s = train_run(monkeypatch, "ppo", tmp_path / "crash", **{**kw, "resume": str(tmp_path / "crash")})
    assert s["steps"] == 1024
    full, resumed = params_of(tmp_path / "full"), params_of(tmp_path / "crash")
    assert any(k.startswith("reward_norm.") for k in full)
    assert_same_params(full, resumed)
    (a, _), (b, _) = load_agent(tmp_path / "full"), load_agent(tmp_path / "crash")
    assert a.optimizer.param_groups[0]["lr"] == b.optimizer.param_groups[0]["lr"] != 3e-4  # adapted, and equal


PENDULUM_STEPS = 81_920
PENDULUM_MIN_RETURN = -300.0


def batched_pendulum_return(seed: int, workdir, total_steps: int = PENDULUM_STEPS) -> dict[str, float]:
    """The rlsuite/Pendulum-v0 preset (128 envs, reward scaling) trained as ``rlsuite train ppo --env
    rlsuite/Pendulum-v0`` does; deterministic evaluation over 10 episodes. Also run by scripts/check_seeds.py."""
    s = train_run(None, "ppo", workdir / "run", env="rlsuite/Pendulum-v0", seed=seed, total_steps=total_steps, eval_episodes=10)
    return {"eval_mean_return": float(s["eval_mean_return"])}


def test_ppo_solves_batched_pendulum(tmp_path):
    """The rlsuite/Pendulum-v0 preset, 81,920 steps (about 5 s), seed 0: deterministic evaluation >= -300 (an untrained
    policy scores about -1,200; the preset reaches about -200). Distribution over seeds and threads:
    docs/learning_tests.md."""
    s = batched_pendulum_return(0, tmp_path)
    assert s["eval_mean_return"] >= PENDULUM_MIN_RETURN, s


CARTPOLE_STEPS = 100_000
CARTPOLE_MIN_RETURN = 475.0


def cartpole_return(seed: int, workdir, total_steps: int = CARTPOLE_STEPS) -> dict[str, float]:
    """The CartPole-v1 preset trained as ``rlsuite train ppo --env CartPole-v1`` does; deterministic evaluation
    over 10 episodes. Also run over seeds and thread counts by scripts/check_seeds.py."""
    s = train_run(None, "ppo", workdir / "run", env="CartPole-v1", seed=seed, total_steps=total_steps, eval_episodes=10)
    return {"eval_mean_return": float(s["eval_mean_return"])}


def test_ppo_solves_cartpole(tmp_path):
    """The CartPole-v1 preset, 100k steps, seed 0: deterministic evaluation >= 475 (max 500).
    The distribution over seeds and 1/2 threads is in docs/learning_tests.md."""
    s = cartpole_return(0, tmp_path)
    assert s["eval_mean_return"] >= CARTPOLE_MIN_RETURN, s
    assert (tmp_path / "run" / "curve.png").is_file() and (tmp_path / "run" / "metrics.csv").is_file()


def test_same_seed_same_result_other_seed_different(monkeypatch, tmp_path):
    kw = dict(env="CartPole-v1", total_steps=1024, eval_episodes=0)
    train_run(monkeypatch, "ppo", tmp_path / "a", seed=0, **kw)
    train_run(monkeypatch, "ppo", tmp_path / "b", seed=0, **kw)
    train_run(monkeypatch, "ppo", tmp_path / "c", seed=1, **kw)
    pa, pb, pc = params_of(tmp_path / "a"), params_of(tmp_path / "b"), params_of(tmp_path / "c")
    assert_same_params(pa, pb)
    assert any(not torch.equal(pa[k], pc[k]) for k in pa)


def test_save_load_gives_identical_actions(monkeypatch, tmp_path):
    train_run(monkeypatch, "ppo", tmp_path / "r", env="Pendulum-v1", total_steps=4096, eval_episodes=0,
              algo=dict(num_envs=2, num_steps=1024, num_minibatches=8, normalize_obs=True))
    a1, meta = load_agent(tmp_path / "r")
    a2, _ = load_agent(find_latest(tmp_path / "r" / "checkpoints"))
    assert meta["algo"] == "ppo" and a1.policy.obs_norm.count.item() > 0  # normaliser travelled with the weights
    obs = torch.randn(64, 3)
    assert torch.equal(a1.act(obs, deterministic=True), a2.act(obs, deterministic=True))


def test_kill_and_resume_equals_uninterrupted_run(monkeypatch, tmp_path):
    kw = dict(env="CartPole-v1", seed=3, total_steps=4096, checkpoint_every=1024, eval_episodes=0)
    train_run(monkeypatch, "ppo", tmp_path / "full", **kw)
    with pytest.raises(SimulatedCrash):
        # 1024 env steps per iteration (8 envs x 128): crash inside iteration 3, after the 2048 checkpoint
        train_run(monkeypatch, "ppo", tmp_path / "crash", crash_after_steps=128 * 2 + 71, **kw)
    s = train_run(monkeypatch, "ppo", tmp_path / "crash", **{**kw, "resume": str(tmp_path / "crash")})
    assert s["steps"] == 4096
    assert_same_params(params_of(tmp_path / "full"), params_of(tmp_path / "crash"))


def test_checkpoint_from_other_spaces_is_refused_naming_the_difference(monkeypatch, tmp_path):
    train_run(monkeypatch, "ppo", tmp_path / "r", env="CartPole-v1", total_steps=256, eval_episodes=0)
    env = make_vec_env("Acrobot-v1", num_envs=8)  # 6-D observations, 3 actions
    agent = PPO(PPOConfig(num_envs=8, num_steps=32, num_minibatches=1), env.single_observation_space, env.single_action_space)
    with pytest.raises(CheckpointError, match=r"observation space shape: the env has \[6\], the checkpoint has \[4\]"):
        restore_training(agent, env, find_latest(tmp_path / "r" / "checkpoints"))


def test_batched_env_stays_usable_after_learn():
    """Acting must not leave inference-mode tensors in the env's state: a reset and steps after
    ``learn`` (outside any no-grad context) work, as on CUDA in tests/agents/test_gpu.py."""
    from rlsuite.core.vec_env import make_vec_env

    env = make_vec_env("rlsuite/Pendulum-v0", num_envs=8, device="cpu", seed=0)
    cfg = PPOConfig(num_envs=8, num_steps=16, num_minibatches=2, update_epochs=1)
    agent = PPO(cfg, env.single_observation_space, env.single_action_space, "cpu")
    agent.learn(env, 256, seed=0)
    obs, _ = env.reset(seed=1)
    for _ in range(3):
        obs, r, _, _, _ = env.step(agent.act(obs, deterministic=True))
    assert obs.shape == (8, 3) and torch.isfinite(r).all()
