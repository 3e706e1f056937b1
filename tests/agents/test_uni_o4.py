"""Uni-O4 building blocks: the disagreement term acts on the gradient, AM-Q ranks policies as their
true values do on a toy problem with a known answer, and the accept-if-improved rule."""

import pytest
import torch

from rlsuite.agents.uni_o4 import AcceptIfImproved, am_q, ensemble_bc_loss, normalized_advantage


def _grads(detach_max):
    torch.manual_seed(0)
    logp = torch.randn(3, 8, requires_grad=True)
    ensemble_bc_loss(logp, alpha=0.1, detach_max=detach_max).backward()
    return logp, logp.grad.clone()


def test_reference_mode_only_rescales_bc_and_ours_repels():
    logp, g_ref = _grads(True)
    # detached max: each member's gradient is (1 + alpha) x plain BC, -(1 + alpha) / B
    torch.testing.assert_close(g_ref, torch.full_like(g_ref, -1.1 / 8))
    logp, g = _grads(False)
    assert not torch.allclose(g, g_ref)
    # a member that is the best "other" for some member gets a push down (+alpha / B) on that sample
    with torch.no_grad():
        best = logp.argmax(0)
    for b in range(8):
        winner = int(best[b])
        assert g[winner, b] > g_ref[winner, b]
    with pytest.raises(ValueError, match="at least 2 members"):
        ensemble_bc_loss(torch.zeros(1, 4))


def test_normalized_advantage_is_standardised_and_detached():
    q = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    a = normalized_advantage(q, torch.zeros(3))
    assert not a.requires_grad and float(a.mean()) == pytest.approx(0.0, abs=1e-6) and float(a.std(unbiased=False)) == pytest.approx(1.0)


def test_am_q_ranks_policies_by_their_true_value_and_the_gate_accepts_only_improvements():
    """1-D system s' = s + a, reward -(s + a)^2, gamma = 0.9. For the policy a = -k s the true Q of the
    *optimal* policy (k = 1) is Q*(s, a) = -(s + a)^2. AM-Q with Q* scores k = 1 highest (0), then
    k = 0.5, then k = 0.1: the known answer."""
    q_star = lambda s, a: -((s + a) ** 2).squeeze(-1)  # noqa: E731
    step = lambda s, a: s + a  # noqa: E731
    starts = torch.linspace(-1, 1, 64)[:, None]
    scores = {k: float(am_q(lambda s, k=k: -k * s, step, q_star, starts, horizon=20)) for k in (0.1, 0.5, 1.0)}
    assert scores[1.0] == pytest.approx(0.0) and scores[1.0] > scores[0.5] > scores[0.1]
    # the exact value for k = 0.5: mean over t < 20 and starts of -(0.5^(t+1) s0)^2
    s2 = float((starts**2).mean())
    expected = -sum(0.25 ** (t + 1) for t in range(20)) * s2 / 20
    assert scores[0.5] == pytest.approx(expected, rel=1e-5)
    # terminated trajectories stop counting
    term = float(am_q(lambda s: -0.1 * s, step, q_star, starts, horizon=20, is_terminal=lambda s: torch.ones(s.shape[0], dtype=torch.bool)))
    assert term == pytest.approx(float(q_star(starts, -0.1 * starts).mean()), rel=1e-6)

    gate = AcceptIfImproved(scores[0.1])
    assert gate(scores[0.5]) and not gate(scores[0.1]) and not gate(scores[0.5]) and gate(scores[1.0])
    assert (gate.accepted, gate.rejected, gate.best) == (2, 2, scores[1.0])


# ----------------------------------------------------------------------------- the agent's parts

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

from rlsuite.agents.ppo import PPO, PPOConfig  # noqa: E402
from rlsuite.agents.uni_o4 import UniO4, UniO4Config, _clip_grad_per_member  # noqa: E402
from rlsuite.core.distributions import BoundedGaussianHead  # noqa: E402
from rlsuite.core.dynamics import DynamicsEnsemble  # noqa: E402
from rlsuite.core.nets import EnsembleMLP  # noqa: E402
from rlsuite.core.normalizer import FixedNorm  # noqa: E402
from rlsuite.envs.termination import termination_fn  # noqa: E402


def test_ensemble_member_extraction_and_copy():
    torch.manual_seed(0)
    ens, other = EnsembleMLP(3, 5, 2, (8, 8), "tanh"), EnsembleMLP(3, 5, 2, (8, 8), "tanh")
    x = torch.randn(4, 5)
    torch.testing.assert_close(ens.member(1)(x), ens(x)[1])
    ens.copy_member_(2, other)
    torch.testing.assert_close(ens(x)[2], other(x)[2])
    assert not torch.allclose(ens(x)[0], other(x)[0])
    with pytest.raises(IndexError, match="out of range"):
        ens.member(3)


def test_bounded_gaussian_head_bounds_and_env_units():
    h = torch.randn(64, 4) * 10
    d = BoundedGaussianHead(2)(h)
    assert d.mean.abs().max() <= 1 and d.log_std.min() >= -5 and d.log_std.max() <= 0
    scaled = BoundedGaussianHead(2, scale=torch.tensor([3.0, 0.5]), bias=torch.tensor([1.0, 0.0]))(h)
    torch.testing.assert_close(scaled.mean, d.mean * torch.tensor([3.0, 0.5]) + torch.tensor([1.0, 0.0]))
    # log-prob differences (PPO ratios) are the same in both units
    a = d.mean + 0.1
    a_env = a * torch.tensor([3.0, 0.5]) + torch.tensor([1.0, 0.0])
    h2 = h + 0.05
    r1 = BoundedGaussianHead(2)(h2).log_prob(a) - d.log_prob(a)
    r2 = BoundedGaussianHead(2, scale=torch.tensor([3.0, 0.5]), bias=torch.tensor([1.0, 0.0]))(h2).log_prob(a_env) - scaled.log_prob(a_env)
    torch.testing.assert_close(r1, r2, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=r"expects \(\*, 4\)"):
        BoundedGaussianHead(2)(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="std > 0"):
        FixedNorm(torch.zeros(2), torch.tensor([1.0, 0.0]))


# elite hold-out MSE over seeds 0-4 x 1, 2 threads: 2.1e-4 to 8.4e-3 (seed 4); the bound leaves a factor ~2.4
DYNAMICS_MAX_HOLDOUT_MSE = 0.02
DYNAMICS_MAX_REL_STATE_MSE = 0.01
DYNAMICS_MAX_REWARD_ERR = 0.15


def dynamics_fit(seed: int, workdir=None) -> dict[str, float]:
    """A 4-member ensemble (2 elites) fitted for up to 40 epochs on 3000 transitions of a linear system with
    reward ``-|s|^2`` (data, network and batches seeded with ``seed``): hold-out MSE, test-state MSE relative to
    the state's mean square, mean absolute reward error. Also run by scripts/check_seeds.py."""
    g = torch.Generator().manual_seed(seed)
    A = torch.tensor([[0.9, 0.1], [-0.2, 0.95]])
    B = torch.tensor([[0.0], [0.5]])
    s = torch.randn(3000, 2, generator=g)
    a = torch.rand(3000, 1, generator=g) * 2 - 1
    nxt = s @ A.T + a @ B.T
    r = -(s**2).sum(-1)
    torch.manual_seed(seed)
    model = DynamicsEnsemble(2, 1, members=4, elites=2, hidden=(64, 64))
    stats = model.fit(s, a, nxt, r, g, max_epochs=40)
    test_s, test_a = torch.randn(200, 2, generator=g), torch.rand(200, 1, generator=g) * 2 - 1
    pred_s, pred_r = model.step(test_s, test_a, model.elites[torch.zeros(200, dtype=torch.long)])
    true_s = test_s @ A.T + test_a @ B.T
    return {"elite_holdout_mse": float(stats["elite_holdout_mse"]), "epochs": float(stats["epochs"]),
            "num_elites": float(len(model.elites)),
            "rel_state_mse": float((pred_s - true_s).pow(2).mean()) / float(true_s.pow(2).mean()),
            "reward_abs_err": float((pred_r + (test_s**2).sum(-1)).abs().mean())}


def test_dynamics_ensemble_learns_a_linear_system():
    m = dynamics_fit(0)
    assert m["elite_holdout_mse"] < DYNAMICS_MAX_HOLDOUT_MSE and m["num_elites"] == 2 and m["epochs"] >= 6, m
    assert m["rel_state_mse"] < DYNAMICS_MAX_REL_STATE_MSE, m
    assert m["reward_abs_err"] < DYNAMICS_MAX_REWARD_ERR, m
    with pytest.raises(ValueError, match="elites"):
        DynamicsEnsemble(2, 1, members=3, elites=4)


@pytest.mark.parametrize("env_id", ["Hopper-v5", "Walker2d-v5", "InvertedPendulum-v5", "Ant-v5", "HalfCheetah-v5"])
def test_termination_functions_match_the_envs(env_id):
    fn = termination_fn(env_id)
    env = gym.make(env_id)
    rng = np.random.default_rng(0)
    ends = 0
    for ep in range(6):
        env.reset(seed=ep)
        for _ in range(300):
            obs, _, term, trunc, _ = env.step(rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32))
            assert bool(fn(torch.as_tensor(obs[None], dtype=torch.float32))[0]) == term
            ends += term
            if term or trunc:
                break
    if env_id != "HalfCheetah-v5":
        assert ends > 0  # random actions do end these tasks, so both branches were compared
    with pytest.raises(KeyError, match="known: Ant, HalfCheetah"):
        termination_fn("Foo-v1")


def test_gradients_are_clipped_member_by_member():
    p = torch.nn.Parameter(torch.zeros(3, 4))
    p.grad = torch.tensor([[3.0, 4.0, 0, 0], [0.1, 0, 0, 0], [0, 0, 0, 10.0]])
    norms = _clip_grad_per_member([p], 3, 1.0)
    torch.testing.assert_close(norms, torch.tensor([5.0, 0.1, 10.0]))
    torch.testing.assert_close(p.grad.norm(dim=1), torch.tensor([1.0, 0.1, 1.0]), rtol=1e-4, atol=1e-5)


def test_config_is_validated():
    with pytest.raises(ValueError, match="n_members must be >= 2"):
        UniO4Config(n_members=1)
    with pytest.raises(ValueError, match="ope_horizon must be >= 1"):
        UniO4Config(ope_horizon=0)


def _toy_arrays(n=400, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    act = rng.uniform(-2, 2, size=(n, 1)).astype(np.float32)
    ends = np.zeros(n, bool)
    ends[49::50] = True
    return {"observations": obs, "actions": act, "rewards": -np.abs(act[:, 0]), "next_observations": obs + 0.1,
            "terminals": np.zeros(n, bool), "timeouts": ends}


def test_offline_to_online_handoff_is_exact_and_the_reference_moves_only_on_acceptance():
    cfg = UniO4Config(hidden_sizes=(16, 16), critic_hidden=(16, 16), batch_size=32, dynamics_hidden=(16,), dynamics_max_epochs=2,
                      improve_steps=20, ope_every=10, ope_horizon=5, ope_starts=16)
    agent = UniO4(cfg, 3, 1, "cpu", seed=0)
    agent.set_data(_toy_arrays(), np.array([-2.0]), np.array([2.0]))
    agent.learn_offline(20)
    agent.start_improvement()
    ref_before = {k: v.clone() for k, v in agent.reference.state_dict().items()}
    agent.improve(20)
    accepted = [g.accepted for g in agent.gates]
    w_before, w_after = ref_before["net.0.weight"], agent.reference.state_dict()["net.0.weight"]
    for i, acc in enumerate(accepted):
        assert torch.equal(w_before[i], w_after[i]) == (acc == 0)
    assert len(agent.ope_history) == 3 and all(len(h) == cfg.n_members for h in agent.ope_history)
    # the PPO actor built for the online phase acts exactly as the selected offline policy
    obs = np.random.default_rng(1).normal(size=(8, 3)).astype(np.float32)
    policy = agent.online_policy(np.array([-2.0]), np.array([2.0]))
    online = policy.dist(torch.as_tensor(obs)).mean.detach().clamp(-2, 2).numpy()
    np.testing.assert_allclose(online, agent.act(obs), rtol=1e-5, atol=1e-5)
    assert set(agent.state_dict()) >= {"members", "reference", "q", "v", "v_beta", "dynamics", "ope_best", "selected"}


def test_a_saved_state_continues_exactly_and_refuses_other_data():
    """state_dict -> load_state_dict into a fresh agent (through a checkpoint on disk): the
    improvement then continues bit for bit as in the agent that was never saved (given the same
    global torch generator state, which the checkpoint of ``train_offline`` also holds)."""
    from rlsuite.core.checkpoint import load_checkpoint, save_checkpoint

    cfg = UniO4Config(hidden_sizes=(16, 16), critic_hidden=(16, 16), batch_size=32, dynamics_hidden=(16,), dynamics_max_epochs=2,
                      improve_steps=40, ope_every=10, ope_horizon=5, ope_starts=16)
    low, high = np.array([-2.0]), np.array([2.0])
    a = UniO4(cfg, 3, 1, "cpu", seed=0)
    a.set_data(_toy_arrays(), low, high)
    a.learn_offline(20)
    a.start_improvement()
    a.improve(20)
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        save_checkpoint(f"{d}/ck", a.state_dict())
        state, _ = load_checkpoint(f"{d}/ck")
    b = UniO4(cfg, 3, 1, "cpu", seed=123)
    b.set_data(_toy_arrays(), low, high)
    b.load_state_dict(state)
    assert [(g.best, g.accepted, g.rejected) for g in b.gates] == [(g.best, g.accepted, g.rejected) for g in a.gates]
    rng = torch.get_rng_state()  # the policies sample from torch's global generator (train_offline saves it too)
    a.improve(20, total_steps=40)
    torch.set_rng_state(rng)
    b.improve(20, total_steps=40)
    for k, v in a.members.state_dict().items():
        assert torch.equal(v, b.members.state_dict()[k]), k
    assert a.ope_history[-1] == b.ope_history[-1] and a.selected == b.selected
    c = UniO4(cfg, 3, 1, "cpu", seed=0)
    c.set_data(_toy_arrays(seed=1), low, high)
    with pytest.raises(ValueError, match="another obs_mean"):
        c.load_state_dict(state)
    old_format = {k: v for k, v in state.items() if k not in ("optim", "generator")}
    with pytest.raises(ValueError, match="lacks optim, generator"):
        b.load_state_dict(old_format)


def test_ppo_takes_a_ready_policy_and_a_separate_critic_lr():
    from rlsuite.core.vec_env import make_vec_env

    cfg = UniO4Config(hidden_sizes=(16, 16))
    agent = UniO4(cfg, 3, 1, "cpu", seed=0)
    agent.set_data(_toy_arrays(), np.array([-2.0]), np.array([2.0]))
    env = make_vec_env("Pendulum-v1", num_envs=1, seed=0)
    policy = agent.online_policy(env.single_action_space.low, env.single_action_space.high)
    ppo = PPO(PPOConfig(num_steps=64, num_minibatches=2, update_epochs=1, learning_rate=1e-5, critic_learning_rate=1e-3,
                        hidden_sizes=(16, 16), activation="relu"), env.single_observation_space, env.single_action_space, policy=policy)
    assert ppo.policy is policy
    assert [g["lr"] for g in ppo.optimizer.param_groups] == [1e-5, 1e-3]
    before = policy.critic.net[0].weight.clone()
    ppo.learn(env, 128, anneal_steps=256)
    # 4 iterations in the anneal; the second set both rates to 3/4 of their base
    assert [round(g["lr"], 12) for g in ppo.optimizer.param_groups] == [0.75e-5, 0.75e-3]
    assert not torch.equal(before, policy.critic.net[0].weight)
