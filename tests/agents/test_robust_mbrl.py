"""Robust model-based RL: sample dropout, model rollouts, the model/real batch mix, config errors, CLI.

Kill-and-resume (bit for bit), eval and export through the CLI: tests/test_agent_protocol.py.
"""

from __future__ import annotations

import dataclasses
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlsuite.agents.robust_mbrl import RobustMBRL, RobustMBRLConfig, model_rollout, sample_dropout
from rlsuite.agents.sac import SAC, SACConfig
from rlsuite.core.dynamics import DynamicsEnsemble

OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


@pytest.mark.parametrize("n", [1, 7, 10, 101])
@pytest.mark.parametrize("delta", [0.0, 0.1, 0.2, 0.3, 0.5, 0.95])
def test_sample_dropout_keeps_exactly_the_lower_fraction(n, delta):
    g = torch.Generator().manual_seed(n)
    returns = torch.randn(n, generator=g)
    kept = sample_dropout(returns, delta)
    n_drop = math.floor(delta * n + 1e-9)
    assert kept.numel() == n - n_drop
    assert kept.unique().numel() == kept.numel()
    dropped = torch.ones(n, dtype=torch.bool)
    dropped[kept] = False
    if n_drop and kept.numel():
        assert returns[kept].max() <= returns[dropped].min()  # every kept rollout is below every dropped one
    if delta == 0.0:
        assert sorted(kept.tolist()) == list(range(n))


def test_sample_dropout_exact_counts_and_ties():
    returns = torch.tensor([5.0, 1.0, 3.0, 3.0, 9.0, 0.0, 7.0, 2.0, 4.0, 6.0])
    assert sample_dropout(returns, 0.2).tolist() == [5, 1, 7, 2, 3, 8, 0, 9]  # 9.0 and 7.0 dropped; the tie keeps index order
    assert sample_dropout(returns, 0.3).tolist() == [5, 1, 7, 2, 3, 8, 0]
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        sample_dropout(returns, 1.0)


class _StubModel(DynamicsEnsemble):
    """next_obs = obs + 1, reward = the member's index: shows which member each step used."""

    def step(self, obs, act, member):
        return obs + 1.0, member.to(obs.dtype)


def test_model_rollout_uses_elite_members_only_and_sums_rewards():
    model = _StubModel(3, 2, members=5, elites=2, hidden=(4,))
    model.elites.copy_(torch.tensor([1, 3]))
    start = torch.zeros(400, 3)
    out = model_rollout(model, lambda o: torch.zeros(o.shape[0], 2), start, 4, torch.Generator().manual_seed(0))
    assert out["obs"].shape == (4, 400, 3) and out["actions"].shape == (4, 400, 2) and out["rewards"].shape == (4, 400)
    assert set(out["rewards"].unique().tolist()) == {1.0, 3.0}  # both elites drawn, never another member
    torch.testing.assert_close(out["returns"], out["rewards"].sum(0))
    torch.testing.assert_close(out["next_obs"][-1], torch.full((400, 3), 4.0))
    torch.testing.assert_close(out["obs"][1:], out["next_obs"][:-1])


def test_a_diverged_rollout_gets_no_return():
    class Diverging(_StubModel):
        def step(self, obs, act, member):
            nxt = obs + 1.0
            nxt[0, 0] = float("inf")
            return nxt, torch.ones(obs.shape[0])

    out = model_rollout(Diverging(3, 2, members=2, elites=1, hidden=(4,)), lambda o: torch.zeros(o.shape[0], 2), torch.zeros(5, 3), 2)
    assert torch.isnan(out["returns"][0]) and torch.isfinite(out["returns"][1:]).all()


def _agent(**overrides):
    cfg = RobustMBRLConfig(**{**dict(hidden_sizes=(16, 16), model_hidden=(16,), ensemble_size=3, elites=2, batch_size=40,
                                     rollout_batch=50, rollout_length=3, model_retain=2, model_max_epochs=2), **overrides})
    return RobustMBRL(cfg, OBS, ACT, "cpu", seed=0)


def _fill(agent, n=200):
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(n, 3, generator=g)
    act = torch.rand(n, 2, generator=g) * 2 - 1
    agent.buffer.add(obs, act, obs[:, 0] + act[:, 0], obs + 0.1 * act.sum(-1, keepdim=True), torch.zeros(n, dtype=torch.bool))


@pytest.mark.parametrize("delta", [0.0, 0.2])
def test_imagine_stores_the_kept_rollouts_and_the_lowest_returns(delta):
    agent = _agent(dropout=delta)
    _fill(agent)
    agent.fit_model()
    stats = agent.imagine()
    kept = 50 - math.floor(delta * 50)
    assert stats["train/model/rollouts_kept"] == kept and stats["train/model/rollouts_diverged"] == 0
    assert agent.model_buffer.size == 3 * kept
    assert not agent.model_buffer.terminated[: agent.model_buffer.size].any()
    if delta:
        assert stats["train/model/return_kept_mean"] < stats["train/model/return_mean"]
    else:
        assert stats["train/model/return_kept_mean"] == pytest.approx(stats["train/model/return_mean"])
    agent.imagine()
    agent.imagine()  # the model replay holds model_retain = 2 rounds
    assert agent.model_buffer.size == 2 * 3 * kept


def test_batches_mix_real_and_model_transitions_in_the_configured_ratio():
    agent = _agent(real_ratio=0.25)
    _fill(agent)
    agent.fit_model()
    agent.imagine()
    agent.model_buffer.rewards[: agent.model_buffer.size] = 1e6  # tag the model transitions
    batch = agent.sample_batch(40)
    assert int((batch["rewards"] == 1e6).sum()) == 30


def test_config_errors_say_what_is_allowed():
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        RobustMBRLConfig(dropout=1.0)
    with pytest.raises(ValueError, match=r"real_ratio must be in \[0, 1\]"):
        RobustMBRLConfig(real_ratio=1.5)
    with pytest.raises(ValueError, match=r"elites must be in \[1, ensemble_size=3\]"):
        RobustMBRLConfig(ensemble_size=3, elites=4)
    with pytest.raises(ValueError, match="learning_starts must be >= 10"):
        RobustMBRLConfig(learning_starts=5)
    with pytest.raises(ValueError, match="rollout_length must be >= 1"):
        RobustMBRLConfig(rollout_length=0)
    with pytest.raises(ValueError, match="reward_scale must be > 0"):
        SACConfig(reward_scale=0.0)


def test_sac_reward_scale_scales_the_rewards_in_the_target():
    """reward_scale c on rewards r updates the networks exactly as reward_scale 1 on rewards c r."""
    batch = {"obs": torch.randn(8, 3), "actions": torch.rand(8, 2) * 2 - 1, "rewards": torch.randn(8), "next_obs": torch.randn(8, 3),
             "terminated": torch.zeros(8, dtype=torch.bool)}
    results = []
    for scale, rewards in ((4.0, batch["rewards"]), (1.0, 4.0 * batch["rewards"])):
        torch.manual_seed(0)
        agent = SAC(SACConfig(hidden_sizes=(8, 8), reward_scale=scale), OBS, ACT)
        agent.update({**batch, "rewards": rewards})
        results.append(agent.critic.state_dict())
    for k in results[0]:
        torch.testing.assert_close(results[0][k], results[1][k])


def test_sac_on_the_greenhouse_uses_the_reward_scale_preset():
    from rlsuite.agents import AGENTS
    from rlsuite.agents.registry import preset_config

    for algo in ("sac", "robust-mbrl"):
        assert preset_config(AGENTS.get(algo), "rlsuite/Greenhouse-Lettuce-v0").reward_scale == 1000.0
    assert dataclasses.fields(RobustMBRLConfig)[0].name == "num_envs"  # SAC's options first, then the model's
