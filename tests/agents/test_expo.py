"""EXPO (rlsuite.agents.expo): its pure functions against hand values, actions inside the env's bounds,
terminations (not truncations) in the online replay, config validation, the paper's ablations, the
deterministic policy and its state round trip, and which base (EMA or live) acts and which backs up."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import rlsuite.agents.expo as expo_mod
from rlsuite.agents import AGENTS
from rlsuite.agents.expo import EXPO, EXPOConfig, edit_actions, edit_policy_loss, select_best, td_target
from rlsuite.cli.train import _parse

TINY = EXPOConfig(hidden_sizes=(16, 16), batch_size=16, num_qs=3, utd=1, denoiser_width=16, denoiser_blocks=1, time_dim=8,
                  diffusion_steps=3, num_base_samples=3, num_edit_samples=2, start_training=0)


def _arrays(n: int = 200, low: float = -2.0, high: float = 2.0, obs_dim: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """A synthetic dataset (Pendulum's shapes by default: obs 3, action 1 in [-2, 2]), episodes of 50 steps."""
    rng = np.random.default_rng(seed)
    ends = np.zeros(n, bool)
    ends[49::50] = True
    return {"observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
            "actions": rng.uniform(low, high, (n, 1)).astype(np.float32),
            "rewards": rng.uniform(-1, 0, n).astype(np.float32), "next_observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
            "terminals": np.zeros(n, bool), "timeouts": ends}


def _agent(cfg: EXPOConfig = TINY, low: float = -2.0, high: float = 2.0, seed: int = 0) -> EXPO:
    agent = EXPO(cfg, 3, 1, seed=seed)
    agent.set_data(_arrays(low=low, high=high), np.array([low], np.float32), np.array([high], np.float32))
    return agent


# ----------------------------------------------------------------------------- pure functions


def test_select_best_picks_the_argmax_and_the_first_on_ties():
    cands = torch.tensor([[[0.1], [0.2], [0.3]], [[0.4], [0.5], [0.6]]])  # (B=2, M=3, A=1)
    q = torch.tensor([[1.0, 3.0, 2.0], [5.0, 1.0, 5.0]])
    best, value = select_best(cands, q)
    assert best.tolist() == [[pytest.approx(0.2)], [pytest.approx(0.4)]]  # state 1: candidates 0 and 2 tie at 5, the first
    assert value.tolist() == [3.0, 5.0]


def test_edit_actions_add_the_scaled_edit_and_clip():
    # clip(a + 0.05 delta, -1, 1): 0.98 + 0.05 = 1.03 -> 1; -0.99 - 0.05 = -1.04 -> -1; 0 + 0.05 * 0.5 = 0.025
    out = edit_actions(torch.tensor([0.98, -0.99, 0.0]), torch.tensor([1.0, -1.0, 0.5]), 0.05)
    np.testing.assert_allclose(out.numpy(), [1.0, -1.0, 0.025], rtol=1e-6)


def test_edit_policy_loss_by_hand():
    # A = 2, beta = 0.05: -A log beta = -2 ln 0.05 = 5.99146455
    # log pi(beta delta) = [-1 + 5.99146455, 0.5 + 5.99146455] = [4.99146455, 6.49146455]; mean_k Q = [(1+3)/2, (2+4)/2] = [2, 3]
    # loss = mean(0.5 * 4.99146455 - 2, 0.5 * 6.49146455 - 3) = mean(0.49573227, 0.24573227) = 0.37073227
    loss, stats = edit_policy_loss(torch.tensor([-1.0, 0.5]), torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor(0.5), 2, 0.05)
    assert float(loss) == pytest.approx(0.37073227, rel=1e-6)
    assert float(stats["edit_entropy"]) == pytest.approx(-(4.99146455 + 6.49146455) / 2, rel=1e-6)
    # without the -A log beta term the loss would be mean(-2.5, -2.75) = -2.625: the term is there
    assert float(loss) != pytest.approx(-2.625)


def test_td_target_by_hand():
    # y = r + gamma (1 - terminated) next_q: [1 + 0.9 * 0 * 10, 2 + 0.9 * 1 * 10] = [1, 11]
    y = td_target(torch.tensor([1.0, 2.0]), torch.tensor([True, False]), torch.tensor([10.0, 10.0]), 0.9)
    np.testing.assert_allclose(y.numpy(), [1.0, 11.0], rtol=1e-6)


# ----------------------------------------------------------------------------- acting


def test_every_action_is_inside_odd_env_bounds():
    # bounds [-3, 1] (not symmetric, not [-1, 1]); edit scale 2 (the largest allowed) pushes edits against the clip
    agent = _agent(dataclasses.replace(TINY, edit_scale=2.0), low=-3.0, high=1.0)
    for _ in range(3):
        agent.update_step()
    obs = 5 * np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    for deterministic in (True, False):
        a = agent.act(obs, deterministic=deterministic)
        assert a.shape == (64, 1) and a.dtype == np.float32
        assert (a >= -3.0).all() and (a <= 1.0).all(), (deterministic, a.min(), a.max())
        t = agent.act(torch.as_tensor(obs), deterministic=deterministic)
        assert isinstance(t, torch.Tensor) and bool((t >= -3.0).all() and (t <= 1.0).all())


def test_deterministic_act_is_the_deploy_module_and_survives_a_state_round_trip():
    agent = _agent()
    for _ in range(3):
        agent.update_step()
    obs = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    a = agent.act(obs, deterministic=True)
    assert torch.equal(a, agent.deploy_module()(obs))
    assert torch.equal(a, agent.act(obs, deterministic=True))  # a function of the observation
    fresh = EXPO(TINY, 3, 1, seed=5)  # other weights, other noise bank, no data
    assert not torch.equal(fresh.noise_bank, agent.noise_bank)
    fresh.load_state_dict(agent.state_dict())
    assert torch.equal(fresh.act(obs, deterministic=True), a)
    assert torch.equal(fresh.deploy_module()(obs), a)
    # the generator came along: the training rule draws the same too
    assert torch.equal(fresh.act(obs, deterministic=False), agent.act(obs, deterministic=False))


def test_acting_uses_the_ema_base_and_the_td_target_the_live_base(monkeypatch):
    agent = _agent()
    agent.update_step()  # the live base moves away from its EMA
    real, seen = expo_mod.sample_actions, []

    def recording(denoiser, *args, **kwargs):
        seen.append(denoiser)
        return real(denoiser, *args, **kwargs)

    monkeypatch.setattr(expo_mod, "sample_actions", recording)
    obs = agent.data.norm_obs(np.zeros((2, 3), np.float32))
    agent.explore(obs)
    assert len(seen) == 1 and seen[0] is agent.ema
    seen.clear()
    agent.act(np.zeros((2, 3), np.float32), deterministic=True)
    assert len(seen) == 1 and seen[0] is agent.ema
    seen.clear()
    agent.update_critic(agent.data.sample(16, 0.5, agent.generator))
    assert len(seen) == 1 and seen[0] is agent.base
    assert agent.ema is not agent.base


# ----------------------------------------------------------------------------- online data


def test_the_online_replay_keeps_truncations_bootstrapping():
    """Pendulum never terminates and truncates at 200 steps: 250 random steps (start_training 1000, no
    update) give one finished episode and 250 transitions, none marked terminated."""
    agent = EXPO(dataclasses.replace(TINY, start_training=1000), 3, 1, seed=0)
    agent.set_data(_arrays(), np.array([-2.0], np.float32), np.array([2.0], np.float32))
    returns = agent.learn_online("Pendulum-v1", 250, seed=0, total_steps=250)
    online = agent.data.online
    assert len(returns) == 1 and returns[0] < 0  # the truncated episode
    assert len(online) == 250 and online.capacity == 250 and agent.online_steps == 250 and agent.updates == 0
    assert not bool(online.terminated.any())
    # within an episode next_obs[t] is obs[t + 1]; at the truncation it is the last observation, not the reset one
    torch.testing.assert_close(online.next_obs[:199], online.obs[1:200])
    assert not torch.allclose(online.next_obs[199], online.obs[200])
    assert float(online.actions.abs().max()) <= 1.0


# ----------------------------------------------------------------------------- configuration and ablations


def test_config_validation_errors_are_clear():
    with pytest.raises(ValueError, match=r"--num-edit-samples must be in \[0, --num-base-samples=4\], got 5"):
        EXPOConfig(num_base_samples=4, num_edit_samples=5)
    with pytest.raises(ValueError, match="--num-edit-samples 0 leaves the edit policy unused; pass --no-use-edit"):
        EXPOConfig(num_edit_samples=0)
    with pytest.raises(ValueError, match="--time-dim must be an even number >= 2, got 7"):
        EXPOConfig(time_dim=7)
    EXPOConfig(num_edit_samples=0, use_edit=False)  # the no-edit ablation may have no edited samples


def _from_flags(*flags: str) -> EXPOConfig:
    _, cfg = _parse(AGENTS.get("expo"), ["--dataset", "x", *flags])
    return cfg


def test_the_no_edit_ablation_runs_without_the_edit_policy():
    cfg = _from_flags("--no-use-edit")
    assert cfg.use_edit is False and cfg.otf_backup is True
    agent = _agent(dataclasses.replace(TINY, use_edit=cfg.use_edit, otf_backup=cfg.otf_backup))
    before = [p.clone() for p in agent.edit.parameters()]
    stats = agent.update_step()
    assert "critic_loss" in stats and "denoising_loss" in stats and "edit_loss" not in stats
    assert all(torch.equal(b, p) for b, p in zip(before, agent.edit.parameters(), strict=True))
    cands, base = agent.candidates(agent.data.norm_obs(np.zeros((2, 3), np.float32)), agent.base)
    assert cands.shape == (2, 3, 1) and torch.equal(cands, base)  # base samples only


def test_the_no_otf_backup_ablation_backs_up_without_selection(monkeypatch):
    cfg = _from_flags("--no-otf-backup")
    assert cfg.otf_backup is False and cfg.use_edit is True
    agent = _agent(dataclasses.replace(TINY, use_edit=cfg.use_edit, otf_backup=cfg.otf_backup))
    calls = []
    monkeypatch.setattr(agent, "select", lambda *a, **k: calls.append(1))
    stats = agent.update_step()
    assert not calls and np.isfinite(float(stats["critic_loss"])) and "edit_loss" in stats
