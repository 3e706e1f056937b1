"""DR-RPO and its baselines (LSVI-UCB, DR-LSVI-UCB) on the linear-feature envs: the update against a
hand-written reference, the policy step against mirror descent, a learning test (robust return under the
worst perturbation) and the command line (train, eval, eval --robust, resume)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

import rlsuite  # noqa: F401  (registers envs and agents)
from rlsuite.agents import AGENTS, build_agent
from rlsuite.agents.dr_rpo import DRRPO, DRRPOConfig, mirror_descent_coefficients
from rlsuite.agents.lsvi_ucb import LSVIUCB, DRLSVIUCBConfig, LSVIUCBConfig
from rlsuite.core.checkpoint import load_checkpoint
from rlsuite.core.evaluate import policy_of
from rlsuite.core.linear_rl import mirror_descent_step
from rlsuite.core.run import resolve_checkpoint
from rlsuite.core.vec_env import make_vec_env
from rlsuite.envs.robust import robust_evaluate
from tests.cli.helpers import run_cli

ID = "rlsuite/LinearMDP-v0"


def _trained(agent_cls, config, steps, seed=0, env_id=ID):
    torch.manual_seed(seed)
    env = make_vec_env(env_id, config.num_envs, seed=seed)
    agent = agent_cls(config, env.single_observation_space, env.single_action_space)
    agent.learn(env, steps, None, seed=seed)
    return agent, env


def _softmax(z):
    z = z - z.max(-1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(-1, keepdims=True)


def reference_update(c, u, data, lam, eta, beta, ridge):
    """The non-robust KL-regularised policy-optimisation step, written out in NumPy: V of the current policy,
    plain ridge regression of V(s'), the d-rectangular bonus, the clip, the mirror-descent step on (c, u)."""
    H, d = u.shape
    phi, nphi, nr = data.phi.numpy(), data.next_phi.numpy(), data.next_reward.numpy()
    q = np.zeros((H, d))
    for h in reversed(range(H)):
        if h + 1 < H:
            logits = c[h + 1] * nr[h] + nphi[h] @ u[h + 1]
            pi = _softmax(logits)
            kl = (pi * (np.log(pi) - np.log(1.0 / pi.shape[-1]))).sum(-1)
            v = (pi * (nr[h] + nphi[h] @ q[h + 1])).sum(-1) - lam * kl
        else:
            v = np.zeros(phi.shape[1])
        gram = phi[h].T @ phi[h] + ridge * np.eye(d)
        w = np.linalg.solve(gram, phi[h].T @ v)
        q[h] = np.clip(w + beta * np.sqrt(np.diag(np.linalg.inv(gram))), 0.0, H - h - 1)
    return (c + eta) / (1 + eta * lam), (u + eta * q) / (1 + eta * lam), q


def test_rho_zero_equals_the_non_robust_regularised_update():
    cfg = DRRPOConfig(num_envs=4, rho=0.0, lam=0.2, eta=0.7, beta=0.3)
    agent, _ = _trained(DRRPO, cfg, 4 * 6 * 3)  # three updates: data and a policy that is not uniform
    c0, u0 = agent.c.numpy().copy(), agent.u.numpy().copy()
    want_c, want_u, want_q = reference_update(c0, u0, agent.data, cfg.lam, cfg.eta, cfg.beta, cfg.ridge)
    agent.update()
    np.testing.assert_allclose(agent.q.numpy(), want_q, atol=1e-10)
    np.testing.assert_allclose(agent.c.numpy(), want_c, atol=1e-12)
    np.testing.assert_allclose(agent.u.numpy(), want_u, atol=1e-10)
    # with rho > 0 the same data give a more pessimistic continuation (the TV dual moves mass to min V)
    robust = DRRPO(DRRPOConfig(num_envs=4, rho=0.3, lam=0.2, eta=0.7, beta=0.3), agent.observation_space, agent.action_space)
    robust.load_state_dict({"weights": {"c": torch.as_tensor(c0), "u": torch.as_tensor(u0), "q": agent.q}})
    robust.data = agent.data
    robust.update()
    assert (robust.q <= torch.as_tensor(want_q) + 1e-9).all() and (robust.q < torch.as_tensor(want_q) - 1e-3).any()


def test_the_stored_policy_takes_the_mirror_descent_step_at_every_state():
    agent, env = _trained(DRRPO, DRRPOConfig(num_envs=4), 4 * 6 * 2)
    phi, r = env.phi, env.rewards()
    old = [agent.policy_logits(phi, r, h) for h in range(agent.horizon)]
    agent.update()
    for h in range(agent.horizon):
        q = r + phi @ agent.q[h]
        want = mirror_descent_step(old[h], q, agent.config.eta, agent.config.lam)
        torch.testing.assert_close(torch.log_softmax(agent.policy_logits(phi, r, h), -1), want, atol=1e-10, rtol=0)
    c, u = mirror_descent_coefficients(torch.tensor(1.0), torch.ones(3), torch.tensor([1.0, 2.0, 3.0]), 0.5, 0.4)
    assert float(c) == pytest.approx(1.5 / 1.2) and u.tolist() == pytest.approx([1.5 / 1.2, 2.0 / 1.2, 2.5 / 1.2])


def test_lsvi_ucb_and_dr_lsvi_ucb_at_rho_zero_fit_the_same_values():
    lsvi, _ = _trained(LSVIUCB, LSVIUCBConfig(num_envs=4, beta=0.0), 4 * 6 * 3)
    dr = LSVIUCB(DRLSVIUCBConfig(num_envs=4, beta=0.0, rho=0.0), lsvi.observation_space, lsvi.action_space)
    dr.data = lsvi.data
    dr.update()
    torch.testing.assert_close(dr.w, lsvi.w)  # without a bonus the two bonuses agree, and rho = 0 is the plain regression
    assert dr.algo == "dr-lsvi-ucb" and lsvi.algo == "lsvi-ucb"


def test_building_on_an_env_without_linear_features_is_refused():
    with pytest.raises(ValueError, match="linear-feature"):
        build_agent(AGENTS.get("dr-rpo"), DRRPOConfig(), make_vec_env("CartPole-v1", 1).single_observation_space,
                    make_vec_env("CartPole-v1", 1).single_action_space)


# ----------------------------------------------------------------------------- learning test

DR_RPO_MIN_WORST = 1.8  # measured 1.98 (all-safe) on every seed 0-4 x threads 1, 2 (docs/dr_rpo.md)
LSVI_MAX_WORST = 0.5  # measured 0.0 (all-risky: it never reaches the goal at q = 0.5) on every one
DR_RPO_RHO0_MAX_WORST = 0.5  # the ablation: measured 0.0 on every one


def worst_case_returns(seed: int, workdir=None) -> dict[str, float]:
    """The learning test's figures for one seed (scripts/check_seeds.py can run it over seeds and threads): the
    return at the worst point of linear-mdp-q (a 3-point grid, 100 episodes each) after 800 episodes of each
    learner at its defaults (DR-RPO at rho = 0.2 and its rho = 0 ablation; LSVI-UCB)."""
    out = {}
    for name, cls, cfg in (("dr_rpo", DRRPO, DRRPOConfig()), ("dr_rpo_rho0", DRRPO, DRRPOConfig(rho=0.0)),
                           ("lsvi", LSVIUCB, LSVIUCBConfig())):
        agent, _ = _trained(cls, cfg, 4800, seed)
        result = robust_evaluate(policy_of(agent, True), ID, "linear-mdp-q", grid=3, episodes=100, seed=seed + 1000)
        out[f"{name}_worst"] = result.summary()["worst"]
        out[f"{name}_nominal"] = result.summary()["nominal"]
    return out


def test_dr_rpo_is_more_robust_than_lsvi_ucb_on_the_linear_mdp():
    r = worst_case_returns(0)
    assert r["dr_rpo_worst"] >= DR_RPO_MIN_WORST, r
    assert r["lsvi_worst"] <= LSVI_MAX_WORST and r["dr_rpo_rho0_worst"] <= DR_RPO_RHO0_MAX_WORST, r
    assert r["lsvi_nominal"] > r["dr_rpo_nominal"], r  # the price of robustness: LSVI-UCB is better at q = 0


# ----------------------------------------------------------------------------- command line

TINY = ["--num-envs", "4", "--eval-episodes", "2", "--device", "cpu", "--no-progress", "--no-tensorboard"]


def test_cli_train_eval_robust_eval_and_resume(tmp_path, capsys):
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "dr-rpo", "--env", ID, "--rho", "0.2", "--total-steps", "96", *TINY,
                             "--checkpoint-every", "48", "--run-dir", run)
    assert code == 0, out + err
    config = json.loads((run / "config.json").read_text())
    assert config["algo"] == "dr-rpo" and config["config"]["rho"] == 0.2
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["step"]) for r in rows if r.get("rollout/ep_return")] == [24, 48, 72, 96]
    state, meta = load_checkpoint(resolve_checkpoint(run))
    assert meta["step"] == 96 and state["agent"]["weights"]["u"].shape == (6, 4) and state["train"]["data"]["phi"].shape == (6, 16, 4)

    code, out, err = run_cli(capsys, "eval", run, "--episodes", "3", "--device", "cpu")
    assert code == 0 and out.strip().splitlines()[-1].startswith("mean_return="), out + err

    code, out, err = run_cli(capsys, "eval", run, "--robust", "--set", "linear-mdp-q", "--grid", "6", "--eval-episodes", "2",
                             "--device", "cpu")
    assert code == 0, out + err
    assert out.strip().splitlines()[-1].startswith("nominal_return=")
    points = list(csv.DictReader(open(run / "robust" / "linear-mdp-q.csv")))
    assert [p["point"] for p in points] == ["nominal", *map(str, range(6))]
    assert [float(p["q"]) for p in points[1:]] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert (run / "robust" / "linear-mdp-q.png").is_file()
    assert "eval/robust/linear-mdp-q/worst" in open(run / "metrics.csv").readline()

    # resume with a larger budget: the same final state as one unbroken run
    code, out, err = run_cli(capsys, "train", "dr-rpo", "--resume", run, "--total-steps", "144")
    assert code == 0, out + err
    whole = tmp_path / "whole"
    code, out, err = run_cli(capsys, "train", "dr-rpo", "--env", ID, "--rho", "0.2", "--total-steps", "144", *TINY,
                             "--checkpoint-every", "48", "--run-dir", whole)
    assert code == 0, out + err
    a, _ = load_checkpoint(resolve_checkpoint(run))
    b, _ = load_checkpoint(resolve_checkpoint(whole))
    for key in ("c", "u", "q"):
        assert torch.equal(a["agent"]["weights"][key], b["agent"]["weights"][key]), key
    assert torch.equal(a["train"]["data"]["next_phi"], b["train"]["data"]["next_phi"])


@pytest.mark.parametrize("algo", ["lsvi-ucb", "dr-lsvi-ucb"])
def test_cli_trains_and_evaluates_the_baselines(algo, tmp_path, capsys):
    run = tmp_path / algo
    code, out, err = run_cli(capsys, "train", algo, "--env", ID, "--total-steps", "48", *TINY, "--run-dir", run)
    assert code == 0, out + err
    code, out, err = run_cli(capsys, "eval", run, "--robust", "--grid", "2", "--eval-episodes", "2", "--device", "cpu")
    assert code == 0 and "worst_return=" in out.strip().splitlines()[-1], out + err


def test_cli_put_option_and_refusals(tmp_path, capsys):
    run = tmp_path / "put"
    code, out, err = run_cli(capsys, "train", "dr-rpo", "--env", "rlsuite/PutOption-v0", "--total-steps", "80", *TINY,
                             "--run-dir", run)
    assert code == 0, out + err
    assert json.loads((run / "config.json").read_text())["config"]["lam"] == 0.01  # the env's preset
    code, out, err = run_cli(capsys, "eval", run, "--robust", "--grid", "2", "--eval-episodes", "2", "--device", "cpu")
    assert code == 0 and (run / "robust" / "put-option-p.csv").is_file(), out + err
    code, out, err = run_cli(capsys, "train", "dr-rpo", "--env", "CartPole-v1", "--total-steps", "10", *TINY, "--run-dir",
                             tmp_path / "bad")
    assert code == 2 and "linear-feature" in err and not (tmp_path / "bad").exists(), out + err


@pytest.mark.gpu
@pytest.mark.parametrize("algo", ["dr-rpo", "lsvi-ucb", "dr-lsvi-ucb"])
@pytest.mark.parametrize("env_id", [ID, "rlsuite/PutOption-v0"])
def test_agents_train_and_act_on_cuda(algo, env_id):
    spec = AGENTS.get(algo)
    cfg = spec.config_cls(num_envs=16)
    env = make_vec_env(env_id, 16, device="cuda", seed=0)
    agent = build_agent(spec, cfg, env.single_observation_space, env.single_action_space, "cuda", 0)
    agent.learn(env, 2 * agent.batch_steps, None, seed=0)
    assert agent.data.n == 32 and all(v.device.type == "cuda" and torch.isfinite(v).all() for v in agent.weights().values())
    obs, _ = env.reset(seed=1)
    action = agent.act(obs, deterministic=True)
    assert action.device.type == "cuda" and action.shape == (16,)
    assert torch.equal(agent.deploy_module()(obs).cpu(), action.cpu())
