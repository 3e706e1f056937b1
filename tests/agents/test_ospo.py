"""OSPO / GRPO / PPO-critic for dispatch: advantages and losses against hand-computed numbers and reference
loops, the asymmetric clip, the KL gate (the Gaussian rows: core's MaskedDiagGaussian, tests/core), then (on the dispatch env) smoke training of each variant,
exact resume and learning on a small city."""

from __future__ import annotations

import copy
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlsuite.agents.dispatch import CANDIDATE_FEATURES, NUM_FEATURES
from rlsuite.agents.ospo import (
    OSPO,
    GRPODispatchConfig,
    OSPOConfig,
    PPODispatchConfig,
    dispatch_gae,
    grpo_advantages,
    kl_gate,
    ospo_advantages,
    positive,
    spread_change,
)
from rlsuite.agents.ppo import ppo_policy_loss
from rlsuite.core.distributions import MaskedDiagGaussian

# ----------------------------------------------------------------------------- a 2-minute, 3-vehicle example

# minute 0: vehicles 0 and 1 decide and earn 1 and 3; minute 1: vehicles 1 and 2 decide and earn 0 and 3
REWARDS = torch.tensor([[[1.0, 3.0, 0.0]], [[0.0, 0.0, 3.0]]])  # (T=2, N=1, V=3)
ACTED = torch.tensor([[[True, True, False]], [[False, True, True]]])
CUM = torch.tensor([[[1.0, 3.0, 0.0]], [[1.0, 3.0, 3.0]]])  # cumulative after each minute
# std of (1, 3, 0): mean 4/3, squares 1/9 + 25/9 + 16/9 = 42/9, / 3 -> 14/9, std sqrt(14)/3
# std of (1, 3, 3): mean 7/3, squares 16/9 + 4/9 + 4/9 = 24/9, / 3 -> 8/9, std sqrt(8)/3
D0 = math.sqrt(14) / 3  # 1.247219: 0 before the episode
D1 = math.sqrt(8) / 3 - math.sqrt(14) / 3  # -0.304410


def test_spread_change_by_hand():
    assert torch.allclose(spread_change(CUM), torch.tensor([[D0], [D1]]))


def test_ospo_advantages_by_hand():
    adv = ospo_advantages(REWARDS, ACTED, spread_change(CUM), fairness_coef=0.5, eps=0.0)
    # minute 0: group (1, 3), mean 2, population std 1 -> (-1, 1), minus 0.5 * D0 for both actors
    # minute 1: group (0, 3), mean 1.5, std 1.5 -> (-1, 1), minus 0.5 * D1 (the spread shrank: a bonus)
    want = torch.tensor([[[-1 - 0.5 * D0, 1 - 0.5 * D0, 0.0]], [[0.0, -1 - 0.5 * D1, 1 - 0.5 * D1]]])
    assert torch.allclose(adv, want, atol=1e-6)
    # a group of one: (r - r) / (0 + eps) = 0, only the fairness term
    one = ospo_advantages(torch.tensor([[[5.0, 0.0]]]), torch.tensor([[[True, False]]]), torch.tensor([[2.0]]), 1.0)
    assert torch.equal(one, torch.tensor([[[-2.0, 0.0]]]))


def test_grpo_advantages_by_hand():
    adv = grpo_advantages(REWARDS, ACTED, spread_change(CUM), gamma=0.5, penalty_coef=1.0, eps=0.0)
    # batch samples 1, 3, 0, 3: mean 1.75, population std sqrt(6.75 / 4) = 1.299038
    s = math.sqrt(6.75 / 4)
    n00, n01, n11, n12 = (1 - 1.75) / s, (3 - 1.75) / s, (0 - 1.75) / s, (3 - 1.75) / s
    # vehicle 1 decides at minutes 0 and 1: G = n01 + 0.5^1 * n11; the others decide once
    want = torch.tensor([[[n00 - D0, n01 + 0.5 * n11 - D0, 0.0]], [[0.0, n11 - D1, n12 - D1]]])
    assert torch.allclose(adv, want, atol=1e-6)


def _decision_loop_togo(r: torch.Tensor, acted: torch.Tensor, gamma: float) -> torch.Tensor:
    """The authors' recursion over each vehicle's decisions: G_j = r_j + gamma^(t_{j+1} - t_j) G_{j+1}."""
    out = torch.zeros_like(r)
    T, N, V = r.shape
    for n in range(N):
        for v in range(V):
            g, t_next = 0.0, None
            for t in range(T - 1, -1, -1):
                if acted[t, n, v]:
                    g = float(r[t, n, v]) + (gamma ** (t_next - t) * g if t_next is not None else 0.0)
                    out[t, n, v], t_next = g, t
    return out


def test_grpo_reward_to_go_uses_gamma_to_the_minutes_between_decisions():
    g = torch.Generator().manual_seed(0)
    r = torch.randn(7, 2, 5, generator=g, dtype=torch.float64)
    acted = torch.rand(7, 2, 5, generator=g) < 0.4
    w = acted.double()
    mean = (r * w).sum() / w.sum()
    std = (((r - mean) * w).pow(2).sum() / w.sum()).sqrt()
    want = _decision_loop_togo(torch.where(acted, (r - mean) / std, 0.0), acted, 0.9)
    got = grpo_advantages(r, acted, torch.zeros(7, 2, dtype=torch.float64), gamma=0.9, penalty_coef=1.0, eps=0.0)
    assert torch.allclose(got, want)
    # one vehicle deciding at minutes 0 and 2 with normalised rewards a and b: G_0 = a + 0.9^2 b
    r2, a2 = torch.tensor([[[1.0]], [[0.0]], [[3.0]]]), torch.tensor([[[True]], [[False]], [[True]]])
    got2 = grpo_advantages(r2, a2, torch.zeros(3, 1), gamma=0.9, penalty_coef=0.0, eps=0.0)
    assert got2[0, 0, 0].item() == pytest.approx(-1 + 0.81 * 1)  # batch (1, 3): mean 2, std 1 -> -1 and 1


def _gae_loop(r, v, acted, final_v, gamma, lam):
    adv = torch.zeros_like(r)
    T, N, V = r.shape
    for n in range(N):
        for i in range(V):
            ts = [t for t in range(T) if acted[t, n, i]]
            a_next = 0.0
            for j in range(len(ts) - 1, -1, -1):
                t = ts[j]
                t_next = ts[j + 1] if j + 1 < len(ts) else T
                v_next = v[t_next, n, i] if j + 1 < len(ts) else final_v[n, i]
                d = gamma ** (t_next - t)
                a_next = r[t, n, i] + d * v_next - v[t, n, i] + lam * d * a_next
                adv[t, n, i] = a_next
    return adv


def test_dispatch_gae_by_hand_and_against_a_loop():
    # one vehicle, decisions at minutes 0 and 2 of a 3-minute episode; gamma 0.9, lambda 0.5
    r = torch.tensor([[[1.0]], [[0.0]], [[2.0]]])
    v = torch.tensor([[[0.5]], [[9.0]], [[1.0]]])  # the value at minute 1 is never read (no decision)
    acted = torch.tensor([[[True]], [[False]], [[True]]])
    adv, ret = dispatch_gae(r, v, acted, torch.tensor([[4.0]]), gamma=0.9, gae_lambda=0.5)
    # last decision: 3 - 2 = 1 minute to the time limit: delta = 2 + 0.9 * 4 - 1 = 4.6 = A_2
    # first: 2 minutes to the next decision: delta = 1 + 0.81 * 1 - 0.5 = 1.31; A_0 = 1.31 + 0.5 * 0.81 * 4.6 = 3.173
    assert adv[:, 0, 0].tolist() == pytest.approx([3.173, 0.0, 4.6])
    assert ret[:, 0, 0].tolist() == pytest.approx([3.673, 0.0, 5.6])
    g = torch.Generator().manual_seed(1)
    r, v = torch.randn(6, 2, 4, generator=g, dtype=torch.float64), torch.randn(6, 2, 4, generator=g, dtype=torch.float64)
    acted, fv = torch.rand(6, 2, 4, generator=g) < 0.5, torch.randn(2, 4, generator=g, dtype=torch.float64)
    adv, _ = dispatch_gae(r, v, acted, fv, 0.95, 0.8)
    assert torch.allclose(adv, _gae_loop(r, v, acted, fv, 0.95, 0.8))


# ----------------------------------------------------------------------------- scores and the update's pieces


def test_positive_scores_stay_finite_and_keep_every_pair():
    s = positive(torch.tensor([-1e4, -60.0, 0.0, 1e4]))
    assert torch.isfinite(s).all() and (s > 0).all() and s[2] == 1.0


def test_asymmetric_clip_by_hand():
    ratios = torch.tensor([1.5, 0.5, 1.25])
    adv = torch.tensor([1.0, -1.0, 1.0])
    loss, stats = ppo_policy_loss(ratios.log(), torch.zeros(3), adv, 0.2, clip_high=0.2 * 1.4)
    # 1.5 * 1 is clipped to 1.28 (upper 1 + 0.28); 0.5 * -1: min(-0.5, 0.8 * -1) = -0.8; 1.25 is inside
    assert loss.item() == pytest.approx(-(1.28 - 0.8 + 1.25) / 3)
    assert stats["clip_fraction"].item() == pytest.approx(2 / 3)
    # the symmetric clip would have stopped 1.25 at 1.2: the asymmetric one lets it through
    assert ppo_policy_loss(torch.tensor([1.25]).log(), torch.zeros(1), torch.ones(1), 0.2)[0].item() == pytest.approx(-1.2)


def test_kl_gate():
    assert kl_gate(0.5, 0.0, active=False, threshold=0.01) == (False, 0.0)  # before a failed evaluation: never skip
    assert kl_gate(0.02, 0.5, active=True, threshold=0.01) == (True, 1.0)  # skip and double
    assert kl_gate(0.005, 0.5, active=True, threshold=0.01) == (False, 0.5)


# ----------------------------------------------------------------------------- the agent on a hand-made batch

V, K = 3, 2


def _agent(cfg: OSPOConfig | None = None, seed: int = 0) -> OSPO:
    torch.manual_seed(seed)
    obs_space = gym.spaces.Box(-np.inf, np.inf, (V, K, NUM_FEATURES), np.float32)
    return OSPO(cfg or OSPOConfig(learning_rate=1e-2, num_minibatches=4, minibatch_size=8),
                obs_space, gym.spaces.Box(-np.inf, np.inf, (V, K), np.float32))


def _batch(agent: OSPO, seed: int = 0) -> dict:
    """A 2-minute batch of one env with the samples of REWARDS / ACTED and scores drawn from the policy."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.rand(2, 1, V, K, NUM_FEATURES, generator=g)
    mask = torch.rand(2, 1, V, K, generator=g) < 0.8
    mask[..., 0] |= ACTED  # every actor has a feasible candidate
    mask &= ACTED[..., None]
    with torch.no_grad():
        mu = agent.policy(obs)
        scores = torch.where(mask, mu + agent.policy.log_std.exp() * torch.randn(mu.shape, generator=g), 0.0)
        logp = MaskedDiagGaussian(mu, agent.policy.log_std, mask).log_prob(scores)
    final_obs = torch.rand(1, V, K, NUM_FEATURES, generator=g)
    return {"obs": obs[ACTED], "mask": mask[ACTED], "scores": scores[ACTED], "logp": logp[ACTED], "rewards": REWARDS,
            "sampled": ACTED, "cum": CUM, "info": {"final_obs": final_obs}}


def test_samples_follow_the_dense_order_and_each_variant_updates():
    for cfg in (OSPOConfig(learning_rate=1e-2, num_minibatches=2, minibatch_size=4),
                GRPODispatchConfig(learning_rate=1e-2, num_minibatches=2, minibatch_size=4),
                PPODispatchConfig(learning_rate=1e-2, num_minibatches=2, minibatch_size=4)):
        agent = _agent(cfg)
        batch = _batch(agent)
        adv = agent.advantages(batch)["advantages"]
        assert adv.shape == (4,)
        if cfg.advantage == "ospo":  # samples in (minute, env, vehicle) order: (0,0,0), (0,0,1), (1,0,1), (1,0,2)
            want = ospo_advantages(REWARDS, ACTED, spread_change(CUM), cfg.fairness_coef)[ACTED]
            assert torch.equal(adv, want)
        before = [p.clone() for p in agent.policy.parameters()]
        stats = agent.update(batch)
        assert stats["skipped_fraction"] == 0.0 and stats["kl_beta"] == 0.0
        assert any(not torch.equal(a, b) for a, b in zip(before, agent.policy.parameters(), strict=True))
        assert ("value_loss" in stats) == (cfg.advantage == "gae")


def test_first_ratio_is_one_and_the_lr_decays_per_iteration():
    agent = _agent(OSPOConfig(learning_rate=1e-2, num_minibatches=1, minibatch_size=16))
    stats = agent.update(_batch(agent))
    assert stats["approx_kl"] < 1e-6 and stats["clip_fraction"] == 0.0  # the first minibatch is on-policy
    agent.iteration = 3
    assert agent.update(_batch(agent))["learning_rate"] == pytest.approx(1e-2 * 0.99**3)


def test_the_kl_rule_skips_minibatches_and_doubles_beta_once_active():
    agent = _agent()
    with torch.no_grad():  # a target far from the policy
        for p in agent.target.parameters():
            p.add_(1.0)
    batch = _batch(agent)
    agent.kl_active = True
    before = [p.clone() for p in agent.policy.parameters()]
    stats = agent.update(batch)
    assert stats["skipped_fraction"] == 1.0 and stats["kl_beta"] == 0.5 * 2**4  # 4 minibatches, each doubles beta
    assert all(torch.equal(a, b) for a, b in zip(before, agent.policy.parameters(), strict=True))
    agent.kl_active = False  # before any failed evaluation the same batch trains with beta 0
    stats = agent.update(batch)
    assert stats["skipped_fraction"] == 0.0 and stats["kl_beta"] == 0.0 and stats["kl_target"] > 0.01


@pytest.mark.parametrize("positive", [True, False])
def test_act_scores_every_pair_and_the_deploy_module_is_the_deterministic_act(positive):
    agent = _agent(OSPOConfig(positive_scores=positive))
    obs = torch.rand(2, V, K, NUM_FEATURES)
    scores = agent.act(obs, deterministic=True)
    mu = agent.policy(obs).detach()
    assert scores.shape == (2, V, K) and torch.equal(scores, mu.exp() if positive else mu)
    assert torch.equal(scores, agent.deploy_module()(obs.reshape(-1, NUM_FEATURES)).reshape(2, V, K))
    assert agent.act(torch.rand(16, NUM_FEATURES), deterministic=True).shape == (16,)
    # the first policy accepts every pair either way: exp > 0, or raw scores with the output bias 1 and small weights
    assert (scores > 0).all()
    if positive:  # exp scores can never decline a pair, even with noise
        assert (agent.act(obs) > 0).all()


def test_configs_refuse_nonsense():
    with pytest.raises(ValueError, match="unknown advantage 'td'"):
        OSPOConfig(advantage="td")
    with pytest.raises(ValueError, match="rlsuite train ospo"):
        GRPODispatchConfig(advantage="ospo")
    with pytest.raises(ValueError, match="rlsuite train grpo-dispatch"):
        PPODispatchConfig(advantage="grpo")
    with pytest.raises(ValueError, match="Box observation"):
        OSPO(OSPOConfig(), gym.spaces.Box(0, 1, (4,)), gym.spaces.Box(0, 1, (4,)))
    for bad in ({"kl_coef": -0.1}, {"kl_threshold": 0.0}, {"ent_coef": -1.0}, {"vf_coef": -0.5}, {"adv_eps": 0.0}):
        with pytest.raises(ValueError, match="kl_threshold > 0"):
            OSPOConfig(**bad)
    for bad in ({"min_log_std": 0.5}, {"min_log_std": float("nan")}, {"init_log_std": float("inf")}):
        with pytest.raises(ValueError, match="min_log_std None or a finite floor <= init_log_std"):
            OSPOConfig(**bad)
    OSPOConfig(min_log_std=None, init_log_std=-7.0)  # no floor: any finite start


# ----------------------------------------------------------------------------- on the dispatch env

TINY = {"city": "grid3x3", "num_vehicles": 10, "num_candidates": 3, "orders_per_minute": 2.0, "horizon": 6}


def _env(n: int, seed: int = 0, **kw):
    from rlsuite.core.vec_env import make_vec_env

    return make_vec_env("rlsuite/Dispatch-Manhattan-v0", n, seed=seed, **{**TINY, **kw})


@pytest.mark.parametrize("cfg_cls", [OSPOConfig, GRPODispatchConfig, PPODispatchConfig])
def test_exact_resume_across_snapshots(cfg_cls):
    """A copy restored after 3 iterations (one snapshot evaluation done, the next one ahead) continues exactly
    like the original: weights, best snapshot, KL switch and optimizer."""
    torch.manual_seed(0)
    cfg = cfg_cls(num_envs=2, learning_rate=1e-2, num_minibatches=2, minibatch_size=8, snapshot_every=2, hidden_sizes=(8,))
    env = _env(2)
    step = 2 * env.horizon
    agent = OSPO(cfg, env.single_observation_space, env.single_action_space)
    agent.learn(env, 3 * step)
    saved = copy.deepcopy((agent.state_dict(), agent.training_state(env)))
    rng = torch.get_rng_state()
    agent.learn(env, 7 * step)
    env2 = _env(2, seed=99)
    other = OSPO(cfg, env2.single_observation_space, env2.single_action_space)
    other.load_state_dict(saved[0])
    other.load_training_state(saved[1], env2)
    torch.set_rng_state(rng)
    other.learn(env2, 7 * step)
    assert other.global_step == agent.global_step == 7 * step and other.iteration == 7
    assert other.best_score == agent.best_score is not None and other.kl_active == agent.kl_active
    a, b = agent.state_dict(), other.state_dict()
    for part in ("policy", "target", "critic"):
        for x, y in zip(a["weights"].get(part, {}).values(), b["weights"].get(part, {}).values(), strict=True):
            assert torch.equal(x, y), part


def test_learn_logs_the_envs_episode_figures_and_refuses_a_mismatched_env():
    rec = _Recorder()
    env = _env(2)
    agent = OSPO(OSPOConfig(num_envs=2, num_minibatches=1, minibatch_size=8, snapshot_every=1), env.single_observation_space,
                 env.single_action_space)
    agent.learn(env, 2 * env.horizon, rec)
    row = rec.rows[-1]
    for key in ("rollout/ep_return", "rollout/served", "rollout/lost", "rollout/pickup_min", "rollout/reward_spread",
                "train/policy_loss", "train/entropy", "train/approx_kl", "train/clip_fraction", "train/kl_target",
                "train/learning_rate", "train/snapshot_score", "train/best_snapshot_score"):
        assert key in row and math.isfinite(row[key]), key
    assert rec.steps == [2 * env.horizon]
    with pytest.raises(ValueError, match="config.num_envs=2"):
        OSPO(OSPOConfig(num_envs=2), env.single_observation_space, env.single_action_space).learn(_env(3), 100)


@pytest.mark.parametrize("cfg_cls", [OSPOConfig, PPODispatchConfig])
def test_a_rollout_stores_what_the_update_reads(cfg_cls):
    """On the env: the stored log-probs are those of the stored scores under the policy; candidate features are
    non-zero only on the stored mask's pairs; ppo-dispatch's returns bootstrap each vehicle's last decision from the
    critic's value of its state in info["final_obs"] (the end of the episode), not from the reset observation."""
    torch.manual_seed(0)
    env = _env(2)
    agent = OSPO(cfg_cls(num_envs=2, samples="acted"), env.single_observation_space, env.single_action_space)
    agent.learn(env, 0)  # resets the env, trains nothing
    batch = agent.rollout(env)
    M = int(batch["sampled"].sum())
    assert batch["obs"].shape == (M, TINY["num_candidates"], NUM_FEATURES) and batch["logp"].shape == (M,) and M > 10
    with torch.no_grad():
        logp = MaskedDiagGaussian(agent.policy(batch["obs"]), agent.policy.log_std, batch["mask"]).log_prob(batch["scores"])
    torch.testing.assert_close(logp, batch["logp"], rtol=1e-6, atol=1e-5)
    candidate = batch["obs"][..., CANDIDATE_FEATURES]
    assert not candidate[~batch["mask"]].any()  # an infeasible pair shows no candidate
    assert candidate[batch["mask"]].ne(0).any(-1).all() and batch["mask"].any(-1).all()  # every sample had a candidate
    if cfg_cls is not PPODispatchConfig:
        return
    extra = agent.advantages(batch)
    sampled = batch["sampled"]
    with torch.no_grad():
        values = torch.zeros_like(batch["rewards"])
        values[sampled] = agent.value(batch["obs"])
        final_obs = batch["info"]["final_obs"]
        want = dispatch_gae(batch["rewards"], values, sampled, agent.value(final_obs), agent.config.gamma, agent.config.gae_lambda)[1]
        wrong = dispatch_gae(batch["rewards"], values, sampled, agent.value(agent._obs), agent.config.gamma, agent.config.gae_lambda)[1]
    assert torch.equal(extra["returns"], want[sampled])
    assert not torch.equal(final_obs, agent._obs) and not torch.allclose(extra["returns"], wrong[sampled])


@pytest.mark.gpu
@pytest.mark.parametrize("cfg_cls", [OSPOConfig, PPODispatchConfig])
def test_trains_on_cuda(cfg_cls):
    env = _env(4, device="cuda")
    agent = OSPO(cfg_cls(num_envs=4, num_minibatches=2, minibatch_size=8, snapshot_every=1), env.single_observation_space,
                 env.single_action_space, "cuda")
    agent.learn(env, 2 * 4 * env.horizon)
    assert next(agent.policy.parameters()).device.type == "cuda" and agent.best_score is not None
    obs, _ = env.reset(seed=1)
    assert agent.act(obs, deterministic=True).device.type == "cuda"


# ----------------------------------------------------------------------------- learning on a small city

# 3x3 grid of 1-km blocks, 40 vehicles of 3 seats, 6 orders a minute, 4 candidates: nearest-vehicle dispatch
# serves about 155 orders an episode with 4.8-minute pickups, a random matching about 144 with 6.2 minutes.
LEARN_CITY = {"city": "grid3x3", "num_vehicles": 40, "num_candidates": 4, "orders_per_minute": 6.0}
# 60 iterations of 8 episodes (14,400 env steps, about 18 s on one CPU thread); lr 3e-3 is 300x the authors', so
# the KL gate's threshold is raised with it (at 0.01 it freezes the policy after the first snapshot that fails).
LEARN_CONFIG = {"num_envs": 8, "learning_rate": 3e-3, "snapshot_every": 5, "kl_threshold": 1.0}
# share of the random -> greedy gap closed (deterministic, 16 fresh episodes): seeds 0-4 x 1 thread 0.80-0.91,
# x 2 threads 0.70-0.94; worst 0.70 (return 515.4 against greedy 530.8 and random 479.6)
MIN_GAP_CLOSED = 0.5


def deterministic_return(act, seed: int = 12345, episodes: int = 16) -> float:
    """Mean return of ``act`` (scores from observations) over ``episodes`` parallel episodes of LEARN_CITY."""
    env = _env(episodes, seed, **{**LEARN_CITY, "horizon": 30})
    obs, info = env.reset(seed=seed)
    for _ in range(env.horizon):
        obs, _, _, _, info = env.step(act(obs))
    return float(info["episode_return"].mean())


def ospo_vs_baselines(seed: int, workdir=None, iterations: int = 60) -> dict[str, float]:
    """Train OSPO on LEARN_CITY and evaluate it, greedy and random on the same fresh episodes (``workdir``: unused,
    the signature ``scripts/check_seeds.py`` calls)."""
    from rlsuite.envs.dispatch.policies import greedy_policy, random_policy

    torch.manual_seed(seed)
    env = _env(LEARN_CONFIG["num_envs"], seed, **{**LEARN_CITY, "horizon": 30})
    agent = OSPO(OSPOConfig(**LEARN_CONFIG), env.single_observation_space, env.single_action_space)
    agent.learn(env, iterations * LEARN_CONFIG["num_envs"] * env.horizon, seed=seed)
    out = {"ospo": deterministic_return(lambda o: agent.act(o, deterministic=True)),
           "greedy": deterministic_return(greedy_policy()), "random": deterministic_return(random_policy(0))}
    out["gap_closed"] = (out["ospo"] - out["random"]) / (out["greedy"] - out["random"])
    return out


def test_ospo_beats_random_and_approaches_greedy():
    r = ospo_vs_baselines(0)
    assert r["greedy"] > r["random"] + 30, r  # the matching matters in this city
    assert r["gap_closed"] >= MIN_GAP_CLOSED, r


class _Recorder:
    """The part of a Run that ``learn`` talks to: keeps the logged metrics."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.steps: list[int] = []
        self.logger = self

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.rows.append(metrics)

    def step_done(self, agent, env) -> None:
        self.steps.append(agent.global_step)
