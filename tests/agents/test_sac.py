import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlsuite.agents.sac import SAC, SACConfig, sac_actor_loss, sac_alpha_loss, sac_critic_loss, sac_target
from rlsuite.agents.train import load_agent
from tests.agents.helpers import SimulatedCrash, assert_same_params, params_of, train_run


def test_budget_note_says_how_far_parallel_envs_round_the_budget_up():
    box = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    agent = SAC(SACConfig(num_envs=4), box, gym.spaces.Box(-1.0, 1.0, (1,), np.float32))
    assert agent.budget_note(10) == "--total-steps 10 is not a multiple of num_envs = 4 from step 0: training 12 steps"
    assert agent.budget_note(12) is None
    agent.global_step = 12
    assert agent.budget_note(13).endswith("training 16 steps") and agent.budget_note(12) is None


def test_soft_bellman_target_hand_computed():
    # min(2, 3) - 0.5 * (-1) = 2.5 ; 1 + 0.9 * 2.5 = 3.25 ; terminated: 1
    t = sac_target(torch.tensor([1.0, 1.0]), torch.tensor([False, True]), torch.tensor([[2.0, 2.0], [3.0, 3.0]]),
                   torch.tensor([-1.0, -1.0]), torch.tensor(0.5), gamma=0.9)
    assert t.tolist() == pytest.approx([3.25, 1.0])


def test_losses_hand_computed():
    q = torch.tensor([[1.0], [3.0]])  # two critics, one sample
    assert sac_critic_loss(q, torch.tensor([2.0]))[0].item() == pytest.approx(1.0)  # 0.5 * (1 + 1)
    loss, stats = sac_actor_loss(torch.tensor([-1.0]), q, torch.tensor(0.5))
    assert loss.item() == pytest.approx(-1.5)  # 0.5 * -1 - min(1, 3)
    assert stats["entropy"].item() == pytest.approx(1.0)
    a_loss, _ = sac_alpha_loss(torch.tensor(math.log(2.0)), torch.tensor([-1.0]), target_entropy=-2.0)
    assert a_loss.item() == pytest.approx(-math.log(2.0) * (-3.0))  # -(log 2 * (-1 - 2)) = 2.0794


def _agent(**kw):
    obs = gym.spaces.Box(-1, 1, (3,), np.float32)
    act = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32))
    return SAC(SACConfig(hidden_sizes=(16, 16), buffer_size=100, batch_size=8, **kw), obs, act)


def test_gradients_stay_in_their_network():
    """The critic loss gives no gradient to the actor; the actor loss adds none to the critic."""
    agent = _agent()
    g = torch.Generator().manual_seed(0)
    agent.buffer.add(torch.randn(32, 3, generator=g), torch.rand(32, 2, generator=g) * 2 - 1, torch.randn(32, generator=g),
                     torch.randn(32, 3, generator=g), torch.zeros(32, dtype=torch.bool))
    seen = {}
    critic_step, actor_step = agent.critic_opt.step, agent.actor_opt.step

    def on_critic_step(*a, **k):
        seen["actor_grads_at_critic_step"] = [p.grad for p in agent.actor.parameters()]
        seen["critic_grads"] = [p.grad.clone() for p in agent.critic.parameters()]
        return critic_step(*a, **k)

    def on_actor_step(*a, **k):
        seen["critic_grads_at_actor_step"] = [p.grad.clone() for p in agent.critic.parameters()]
        return actor_step(*a, **k)

    agent.critic_opt.step, agent.actor_opt.step = on_critic_step, on_actor_step
    agent.update(agent.buffer.sample(8))
    assert all(gr is None for gr in seen["actor_grads_at_critic_step"])
    for a, b in zip(seen["critic_grads"], seen["critic_grads_at_actor_step"], strict=False):
        assert torch.equal(a, b)


def test_actions_respect_asymmetric_bounds():
    a = _agent().act(torch.randn(1000, 3))
    assert a.shape == (1000, 2)
    assert a[:, 0].min() >= -2 and a[:, 0].max() <= 2 and a[:, 1].min() >= 0 and a[:, 1].max() <= 1


def test_refuses_discrete_actions_with_a_hint():
    with pytest.raises(ValueError, match="Use PPO"):
        SAC(SACConfig(), gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(2))


# seeds 0-4 x 1, 2 torch threads (Intel Xeon, docs/learning_tests.md): -131.5 to -194.9 after 6000 steps; the
# usual "solved" line of -200 would leave 5 points below the worst seed, so the test asks for -230.
PENDULUM_MIN_RETURN = -230.0


def pendulum_return(seed: int, workdir) -> dict[str, float]:
    """6000 steps on Pendulum-v1, 128x128 networks (SB3 defaults otherwise); deterministic evaluation over 10
    episodes. Also run over seeds and thread counts by scripts/check_seeds.py."""
    s = train_run(None, "sac", workdir / "run", env="Pendulum-v1", seed=seed, total_steps=6000, eval_episodes=10,
                  algo=dict(hidden_sizes=(128, 128)))
    return {"eval_mean_return": float(s["eval_mean_return"])}


def test_sac_solves_pendulum(tmp_path):
    """Seed 0: deterministic evaluation >= -200 (distribution over seeds and threads: docs/learning_tests.md)."""
    s = pendulum_return(0, tmp_path)
    assert s["eval_mean_return"] >= PENDULUM_MIN_RETURN, s


def test_kill_and_resume_equals_uninterrupted_run_and_seeds_matter(monkeypatch, tmp_path):
    kw = dict(env="Pendulum-v1", seed=0, total_steps=600, checkpoint_every=200, eval_episodes=0,
              algo=dict(hidden_sizes=(32, 32), buffer_size=1000, learning_starts=100))
    train_run(monkeypatch, "sac", tmp_path / "full", **kw)
    train_run(monkeypatch, "sac", tmp_path / "again", **kw)
    train_run(monkeypatch, "sac", tmp_path / "other", **{**kw, "seed": 1})
    with pytest.raises(SimulatedCrash):
        train_run(monkeypatch, "sac", tmp_path / "crash", crash_after_steps=470, **kw)
    s = train_run(monkeypatch, "sac", tmp_path / "crash", **{**kw, "resume": str(tmp_path / "crash")})
    assert s["steps"] == 600
    full = params_of(tmp_path / "full")
    assert_same_params(full, params_of(tmp_path / "again"))
    assert_same_params(full, params_of(tmp_path / "crash"))
    other = params_of(tmp_path / "other")
    assert any(not torch.equal(full[k], other[k]) for k in full)


def test_save_load_gives_identical_actions(monkeypatch, tmp_path):
    train_run(monkeypatch, "sac", tmp_path / "r", env="rlsuite/Pendulum-v0", total_steps=300, eval_episodes=0,
              algo=dict(hidden_sizes=(32, 32), buffer_size=500, normalize_obs=True))
    a1, meta = load_agent(tmp_path / "r")
    a2, _ = load_agent(tmp_path / "r")
    obs = torch.randn(32, 3)
    assert torch.equal(a1.act(obs, deterministic=True), a2.act(obs, deterministic=True))
    assert a1.actor.obs_norm.count.item() == 300
