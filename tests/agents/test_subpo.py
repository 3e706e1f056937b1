"""SubPO / ModPO: the estimators against exact gradients by enumeration on a 2-step toy, the baseline's
unbiasedness, the natural step against its closed form, exact resume, and learning on coverage."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlsuite.agents.subpo import (
    ModPOConfig,
    SubPO,
    SubPOConfig,
    conjugate_gradient,
    estimator_weights,
    natural_step,
    reward_to_go,
    subpo_loss,
)
from rlsuite.core.vec_env import TorchVecEnv

# ----------------------------------------------------------------------------- a 2-step toy with enumerable trajectories

MOVES = torch.tensor([[0, 0], [0, -1], [0, 1], [-1, 0], [1, 0]])  # stay, up, down, left, right as (dx, dy)


class ToyCoverage(TorchVecEnv):
    """A ``height x width`` grid, start at (0, 0), 5 actions, ``horizon`` steps; F(S) = sum of the weights of
    the visited cells (the start included). Reward: the marginal gain of the new cell; ``info["modular_reward"]``:
    its weight (revisits counted). Markov observation (x/(W-1), y/(H-1), t/horizon)."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int = 1, weights=((1.0, 2.0, 3.0), (0.5, 4.0, 1.5)), horizon: int = 2, modular_info: bool = True):
        self.num_envs, self.device, self.horizon = num_envs, torch.device("cpu"), horizon
        self.w = torch.tensor(weights, dtype=torch.float32)
        self.h, self.wd = self.w.shape
        self.normaliser = float(self.w.sum())
        self.modular_info = modular_info
        self.single_observation_space = gym.spaces.Box(0.0, 1.0, (3,), np.float32)
        self.single_action_space = gym.spaces.Discrete(5)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self._start()
        self._init_episode_stats()

    def _start(self, rows: torch.Tensor | None = None) -> None:
        rows = torch.ones(self.num_envs, dtype=torch.bool) if rows is None else rows
        if not hasattr(self, "pos"):
            self.pos = torch.zeros(self.num_envs, 2, dtype=torch.long)
            self.t = torch.zeros(self.num_envs, dtype=torch.long)
            self.visited = torch.zeros(self.num_envs, self.h * self.wd, dtype=torch.bool)
        self.pos[rows] = 0
        self.t[rows] = 0
        self.visited[rows] = False
        self.visited[rows, 0] = True

    def _obs(self) -> torch.Tensor:
        return torch.stack([self.pos[:, 0] / (self.wd - 1), self.pos[:, 1] / (self.h - 1), self.t / self.horizon], 1).float()

    def F(self) -> torch.Tensor:
        return (self.visited.float() * self.w.reshape(-1)).sum(1)

    def reset(self, *, seed=None, options=None):
        self._start()
        self._init_episode_stats()
        return self._obs(), {}

    def step(self, action):
        a = torch.as_tensor(action).long().reshape(self.num_envs)
        new = self.pos + MOVES[a]
        new[:, 0] = new[:, 0].clamp(0, self.wd - 1)
        new[:, 1] = new[:, 1].clamp(0, self.h - 1)
        self.pos = new
        cell = new[:, 1] * self.wd + new[:, 0]
        gain = torch.where(self.visited.gather(1, cell[:, None]).squeeze(1), 0.0, self.w.reshape(-1)[cell])
        self.visited.scatter_(1, cell[:, None], True)
        self.t += 1
        done = self.t >= self.horizon
        info: dict[str, Any] = {"final_obs": self._obs(), "_final_obs": done, "episode_F": self.F(),
                                "F_max": torch.full((self.num_envs,), self.normaliser)}
        if self.modular_info:
            info["modular_reward"] = self.w.reshape(-1)[cell]
        self._track_episodes(gain, done, info)
        self._start(done)
        return self._obs(), gain, torch.zeros_like(done), done, info

    def state_dict(self):
        return {"pos": self.pos.clone(), "t": self.t.clone(), "visited": self.visited.clone(), **self._episode_stats_state()}

    def load_state_dict(self, state):
        self.pos, self.t, self.visited = state["pos"].clone(), state["t"].clone(), state["visited"].clone()
        self._load_episode_stats_state(state)


def enumerate_toy(horizon: int = 2) -> dict[str, torch.Tensor]:
    """Every action sequence of the toy (5**horizon), played in one batch: obs, actions, rewards, F."""
    seqs = torch.tensor(list(itertools.product(range(5), repeat=horizon))).T  # (T, K)
    env = ToyCoverage(num_envs=seqs.shape[1], horizon=horizon)
    obs, _ = env.reset()
    obs_l, rew_l, mod_l = [], [], []
    for t in range(horizon):
        obs_l.append(obs)
        obs, r, _, _, info = env.step(seqs[t])
        rew_l.append(r)
        mod_l.append(info["modular_reward"])
    return {"obs": torch.stack(obs_l), "actions": seqs, "rewards": torch.stack(rew_l), "modular": torch.stack(mod_l),
            "F": info["episode_F"]}


def toy_agent(seed: int = 0, **cfg) -> SubPO:
    torch.manual_seed(seed)
    cfg = {"num_envs": 2, "hidden_sizes": (8,), **cfg}
    env = ToyCoverage()
    agent = SubPO(SubPOConfig(**cfg), env.single_observation_space, env.single_action_space)
    with torch.no_grad():  # a policy far from uniform, so that the gradients are not all alike
        for p in agent.policy.parameters():
            p.add_(torch.randn_like(p))
    return agent


def grads(agent: SubPO, scalar: torch.Tensor) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(scalar, list(agent.policy.parameters()), retain_graph=True)])


def traj_logp(agent: SubPO, e: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(T, K)`` log pi(a_t | x_t) of the enumerated trajectories."""
    return torch.log_softmax(agent.policy(e["obs"]), -1).gather(-1, e["actions"][..., None]).squeeze(-1)


# ----------------------------------------------------------------------------- hand-computed numbers


def test_weights_by_hand():
    rewards = torch.tensor([[1.0, 0.0], [2.0, 3.0]])  # (T=2, B=2)
    assert torch.equal(reward_to_go(rewards), torch.tensor([[3.0, 3.0], [2.0, 3.0]]))  # 1+2, 0+3; 2, 3
    assert torch.equal(estimator_weights(rewards, "immediate", False), torch.tensor([[1.0, 0.0], [3.0, 3.0]]))  # gain so far
    # future with the leave-one-out baseline: t=0: 3 - 3 = 0 for both; t=1: 2 - 3 = -1 and 3 - 2 = 1
    assert torch.equal(estimator_weights(rewards, "future", True), torch.tensor([[0.0, 0.0], [-1.0, 1.0]]))
    # the loss: -mean_b sum_t logp * w = -((0.5*0 + 0.25*-1) + (0.1*0 + 2*1)) / 2 = -0.875
    loss, stats = subpo_loss(torch.tensor([[0.5, 0.1], [0.25, 2.0]]), torch.tensor([[0.0, 0.0], [-1.0, 1.0]]))
    assert loss.item() == pytest.approx(-0.875) and "policy_loss" in stats


def test_toy_values_by_hand():
    e = enumerate_toy()
    # stay, stay: F = w(0,0) = 1, no gain; right, down: cells (1,0) then (1,1): 1 + 2 + 4 = 7
    k_stay, k_rd = 0, 4 * 5 + 2
    assert e["F"][k_stay].item() == 1.0 and e["rewards"][:, k_stay].tolist() == [0.0, 0.0]
    assert e["F"][k_rd].item() == 7.0 and e["rewards"][:, k_rd].tolist() == [2.0, 4.0]
    # F telescopes: F = F({s0}) + sum of gains on every trajectory
    assert torch.allclose(e["F"], 1.0 + e["rewards"].sum(0))
    # modular reward of stay, stay: the start cell's weight twice (revisits counted)
    assert e["modular"][:, k_stay].tolist() == [1.0, 1.0]


# ----------------------------------------------------------------------------- expectations by enumeration


def test_future_estimator_expectation_is_the_exact_gradient_of_expected_F():
    agent, e = toy_agent(), enumerate_toy()
    logp = traj_logp(agent, e)
    p = logp.sum(0).exp()  # (K,) trajectory probabilities
    assert p.sum().item() == pytest.approx(1.0, abs=1e-5)
    exact = grads(agent, (p * e["F"]).sum())  # grad of E[F(tau)]
    K = p.shape[0]
    w = estimator_weights(e["rewards"], "future", baseline=False) * (K * p.detach())  # the mean over K becomes sum_tau p(tau)
    loss, _ = subpo_loss(logp, w)
    assert torch.allclose(-grads(agent, loss), exact, atol=1e-5, rtol=1e-4)
    assert exact.norm() > 0.1


def test_immediate_estimator_expectation_is_the_myopic_gradient():
    """The authors' estimator: in expectation sum_h E[grad log pi(a_h | x_h) Delta_h], the gradient of each step's
    expected gain through that step's policy only (computed here through probabilities, with the other steps frozen)."""
    agent, e = toy_agent(1), enumerate_toy()
    logp = traj_logp(agent, e)
    p = logp.sum(0).exp()
    K, T = p.shape[0], logp.shape[0]
    myopic = sum((logp[h].exp() * torch.cat([logp[:h], logp[h + 1:]]).sum(0).exp().detach() * e["rewards"][h]).sum() for h in range(T))
    expected = grads(agent, myopic)
    w = estimator_weights(e["rewards"], "immediate", baseline=False) * (K * p.detach())
    loss, _ = subpo_loss(logp, w)
    got = -grads(agent, loss)
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-4)
    exact = grads(agent, (p * e["F"]).sum())
    assert (got - exact).norm() > 0.05 * exact.norm()  # and it is not the gradient of E[F]


def test_the_baseline_does_not_bias_the_estimate():
    """Batches of two independent episodes: the expectation over all 25 x 25 pairs of the gradient with the
    leave-one-out baseline equals the exact gradient of E[F]."""
    agent, e = toy_agent(2), enumerate_toy()
    logp = traj_logp(agent, e)
    p = logp.sum(0).exp()
    K = p.shape[0]
    i, j = torch.meshgrid(torch.arange(K), torch.arange(K), indexing="ij")
    i, j = i.reshape(-1), j.reshape(-1)
    w = torch.stack([estimator_weights(e["rewards"][:, [a, b]], "future", baseline=True)
                     for a, b in zip(i.tolist(), j.tolist(), strict=True)], 1)  # (T, K*K, 2)
    pair_p = (p[i] * p[j]).detach()
    surrogate = (logp[:, i] * w[..., 0] + logp[:, j] * w[..., 1]).sum(0)  # the batch's sum over episodes and steps
    est = grads(agent, (pair_p * surrogate / 2).sum())  # mean over the 2 episodes, expectation over the pairs
    exact = grads(agent, (p * e["F"]).sum())
    assert torch.allclose(est, exact, atol=1e-5, rtol=1e-4)
    # the plain batch mean (without the B/(B-1) factor) would shrink it by 1/2 for B = 2
    assert not torch.allclose(est / 2, exact, atol=1e-3)


def test_the_agents_rollout_and_loss_estimate_the_exact_gradient():
    """The production path (rollout -> loss) on many sampled toy episodes agrees with the enumeration."""
    agent, e = toy_agent(3, num_envs=20_000), enumerate_toy()
    p = traj_logp(agent, e).sum(0).exp()
    exact = grads(agent, (p * e["F"]).sum())
    env = ToyCoverage(num_envs=20_000)
    agent._obs, _ = env.reset()
    torch.manual_seed(0)
    batch = agent.rollout(env)
    loss, _ = agent.loss(batch)
    est = -grads(agent, loss)
    cos = torch.nn.functional.cosine_similarity(est, exact, dim=0).item()
    assert cos > 0.98 and (est.norm() / exact.norm()).item() == pytest.approx(1.0, abs=0.1), (cos, est.norm(), exact.norm())
    assert batch["F_normalised"].shape == (20_000,) and float(batch["F_normalised"].max()) <= 1.0


# ----------------------------------------------------------------------------- natural gradient


def test_episode_scores_are_the_per_episode_gradients():
    agent, e = toy_agent(4), enumerate_toy()
    cols = [0, 7, 22]
    S = agent.episode_scores(e["obs"][:, cols], e["actions"][:, cols])
    for row, k in enumerate(cols):
        ref = grads(agent, traj_logp(agent, {"obs": e["obs"][:, [k]], "actions": e["actions"][:, [k]]}).sum())
        assert torch.allclose(S[row], ref, atol=1e-5)


def test_natural_step_is_the_damped_fisher_solve_with_the_trust_region_size():
    gen = torch.Generator().manual_seed(0)
    B, P, damping, max_kl = 6, 41, 1e-2, 0.05
    S, g = torch.randn(B, P, generator=gen), torch.randn(P, generator=gen)
    step, stats = natural_step(S, g, damping, max_kl, iters=20)
    S64, g64 = S.double(), g.double()
    fisher = S64.T @ S64 / B
    x = torch.linalg.solve(fisher + damping * torch.eye(P, dtype=torch.float64), g64)  # closed form (F + damping I)^-1 g
    eta = torch.sqrt(2 * max_kl / (x @ fisher @ x))
    assert torch.allclose(step.double(), eta * x, rtol=1e-3, atol=1e-5)
    assert (0.5 * step.double() @ fisher @ step.double()).item() == pytest.approx(max_kl, rel=1e-3)  # the KL model is max_kl
    assert float(stats["cg_residual"]) < 1e-3


def test_conjugate_gradient_solves_a_small_system():
    A = torch.tensor([[4.0, 1.0], [1.0, 3.0]])
    x, _ = conjugate_gradient(lambda v: A @ v, torch.tensor([1.0, 2.0]), iters=2)
    assert torch.allclose(x, torch.tensor([1 / 11, 7 / 11]), atol=1e-6)  # by Cramer's rule: (3-2)/11, (8-1)/11


def test_a_natural_update_moves_the_weights_by_the_natural_step():
    agent = toy_agent(5, num_envs=6, natural=True, max_kl=0.02, cg_iters=50)
    env = ToyCoverage(num_envs=6)
    agent._obs, _ = env.reset()
    batch = agent.rollout(env)
    loss, _ = agent.loss(batch, scale=env.normaliser)
    g = -grads(agent, loss)
    expected, _ = natural_step(agent.episode_scores(batch["obs"], batch["actions"]), g, 1e-2, 0.02, 50)
    before = torch.nn.utils.parameters_to_vector(agent.policy.parameters()).detach().clone()
    stats = agent.update(batch, scale=env.normaliser)
    after = torch.nn.utils.parameters_to_vector(agent.policy.parameters()).detach()
    assert torch.allclose(after - before, expected, atol=1e-6) and stats["natural_step_size"] > 0


# ----------------------------------------------------------------------------- agent behaviour


def _state(agent):
    return [t.clone() for t in agent.policy.state_dict().values()]


@pytest.mark.parametrize("natural", [False, True])
def test_exact_resume_on_the_toy(natural):
    """A copy restored from the state after 3 batches continues exactly like the original."""
    torch.manual_seed(0)
    cfg = SubPOConfig(num_envs=16, hidden_sizes=(8,), natural=natural)
    env = ToyCoverage(num_envs=16)
    agent = SubPO(cfg, env.single_observation_space, env.single_action_space)
    agent.learn(env, 3 * 32)
    saved = copy.deepcopy((agent.state_dict(), agent.training_state(env)))
    rng = torch.get_rng_state()
    agent.learn(env, 6 * 32)
    env2 = ToyCoverage(num_envs=16)
    other = SubPO(cfg, env2.single_observation_space, env2.single_action_space)
    other.load_state_dict(saved[0])
    other.load_training_state(saved[1], env2)
    torch.set_rng_state(rng)
    other.learn(env2, 6 * 32)
    assert other.global_step == agent.global_step == 6 * 32 and other.iteration == 6
    for a, b in zip(agent.policy.state_dict().values(), other.policy.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def greedy_return(agent: SubPO) -> float:
    env = ToyCoverage(num_envs=1)
    obs, _ = env.reset()
    total = 0.0
    for _ in range(env.horizon):
        obs, r, *_ = env.step(agent.act(obs, deterministic=True))
        total += float(r)
    return total


def test_subpo_learns_the_toy_and_acts():
    torch.manual_seed(0)
    env = ToyCoverage(num_envs=64)
    agent = SubPO(SubPOConfig(num_envs=64, learning_rate=3e-2), env.single_observation_space, env.single_action_space)
    agent.learn(env, 64 * 2 * 60)
    # the best two steps: right then down, gains 2 + 4 (right, right: 2 + 3; down, right: 0.5 + 4)
    assert greedy_return(agent) == 6.0
    assert agent.act(torch.zeros(7, 3)).shape == (7,) and agent.deploy_module()(torch.zeros(2, 3)).dtype == torch.int64


def test_modpo_needs_the_modular_reward_and_configs_refuse_nonsense():
    env = ToyCoverage(num_envs=4, modular_info=False)
    agent = SubPO(ModPOConfig(num_envs=4), env.single_observation_space, env.single_action_space)
    assert agent.algo == "modpo"
    with pytest.raises(KeyError, match="modular_reward"):
        agent.learn(env, 8)
    with pytest.raises(ValueError, match="modpo trains on the modular reward"):
        ModPOConfig(modular=False)
    with pytest.raises(ValueError, match="unknown estimator 'greedy'; allowed: future, immediate"):
        SubPOConfig(estimator="greedy")
    with pytest.raises(ValueError, match="num_envs >= 2 or --no-baseline"):
        SubPOConfig(num_envs=1)
    with pytest.raises(ValueError, match="Discrete"):
        SubPO(SubPOConfig(), env.single_observation_space, gym.spaces.Box(-1, 1, (2,)))
    no_horizon = ToyCoverage(num_envs=4)
    no_horizon.horizon = None
    with pytest.raises(ValueError, match="int attribute 'horizon'"):
        SubPO(SubPOConfig(num_envs=4), env.single_observation_space, env.single_action_space).learn(no_horizon, 8)


# ----------------------------------------------------------------------------- on the coverage grid (rlsuite/Coverage-Grid-v0)

SUBPO_MIN_F = 0.60  # worst seen: 0.706 (seeds 0-9 x 1 thread, 0-6 x 2 threads; docs/subpo.md)
MODPO_MAX_F = 0.40  # worst seen: 0.295


class _Recorder:
    """The part of a Run that ``learn`` talks to: keeps the logged metrics."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.logger = self

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.rows.append(metrics)

    def step_done(self, agent: Any, env: TorchVecEnv) -> None:
        pass


def coverage_F(config_cls: type, seed: int, iterations: int = 50, num_envs: int = 500) -> list[float]:
    """F(tau) / MAX_Ret of each batch over ``iterations`` steps of ``num_envs`` episodes on the 30x30 coverage
    grid (the authors' budget: 50 steps of 500 episodes). Also run over seeds and threads for docs/subpo.md."""
    from rlsuite.core.vec_env import make_vec_env

    torch.manual_seed(seed)
    env = make_vec_env("rlsuite/Coverage-Grid-v0", num_envs, seed=seed)
    agent = SubPO(config_cls(num_envs=num_envs), env.single_observation_space, env.single_action_space)
    rec = _Recorder()
    agent.learn(env, iterations * num_envs * env.horizon, rec, seed=seed)
    return [row["rollout/F_normalised"] for row in rec.rows]


def subpo_vs_modpo(seed: int, workdir: Any = None) -> dict[str, float]:
    """The learning test's figures for one seed (scripts/check_seeds.py runs it over seeds and threads)."""
    subpo, modpo = coverage_F(SubPOConfig, seed), coverage_F(ModPOConfig, seed)
    return {"subpo_F": subpo[-1], "modpo_F": modpo[-1], "subpo_gain": subpo[-1] - subpo[0]}


SUBPO_MIN_GAIN = 0.2  # it learned: a uniform policy covers about 0.3


def test_subpo_beats_modpo_on_coverage():
    r = subpo_vs_modpo(0)
    assert r["subpo_F"] >= SUBPO_MIN_F and r["modpo_F"] <= MODPO_MAX_F, r
    assert r["subpo_gain"] > SUBPO_MIN_GAIN, r


def _cli(capsys, *argv):
    from tests.cli.helpers import run_cli

    code, out, err = run_cli(capsys, *argv)
    return code, out + err


def test_cli_refuses_an_env_without_a_horizon_before_writing_anything(tmp_path, capsys):
    code, out = _cli(capsys, "train", "subpo", "--env", "CartPole-v1", "--num-envs", "2", "--total-steps", "100",
                     "--run-dir", tmp_path / "run", "--device", "cpu")
    assert code == 2 and "int attribute 'horizon'" in out and not (tmp_path / "run").exists(), out


@pytest.mark.parametrize("algo", ["subpo", "ppo"])
def test_cli_trains_on_the_coverage_grid(algo, tmp_path, capsys):
    """`rlsuite train subpo --env rlsuite/Coverage-Grid-v0` (and PPO on the marginal gains) at a tiny budget."""
    import csv
    import json

    extra = ["--observation", "history", "--estimator", "immediate"] if algo == "subpo" else ["--num-steps", "80", "--num-minibatches", "4"]
    code, out = _cli(capsys, "train", algo, "--env", "rlsuite/Coverage-Grid-v0", "--total-steps", "640", "--num-envs", "4",
                     "--eval-episodes", "2", "--device", "cpu", "--no-progress", "--no-tensorboard", "--run-dir", tmp_path / "run", *extra)
    assert code == 0, out
    assert "steps=640 " in out
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    f = [float(r["rollout/F_normalised"]) for r in rows if r.get("rollout/F_normalised")] if algo == "subpo" else []
    if algo == "subpo":
        assert len(f) == 2 and all(0.0 < v <= 1.0 for v in f)
        config = json.loads((tmp_path / "run" / "config.json").read_text())
        assert config["env_kwargs"] == {"observation": "history"} and config["config"]["estimator"] == "immediate"
