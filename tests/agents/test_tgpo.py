"""TGPO: temporal grounding of known formulas, stage rewards, and learning a reach-avoid task."""

import dataclasses

import pytest
import torch

from rlsuite.agents.tgpo import TGPO, TGPOConfig
from rlsuite.core.vec_env import make_vec_env
from rlsuite.envs.stl.envs import STLVecEnv
from rlsuite.envs.stl.grounding import GroundedSTLVecEnv, StageWeights, TemporalGrounding
from rlsuite.envs.stl.spec import parse


def test_grounding_of_a_chain_orders_timed_reaches():
    g = TemporalGrounding(parse("F[0,10]((x > 1) & F[5,5](y > 1))"), horizon=64)
    assert g.num_slots == 2 and len(g.reach_formulas) == 2 and not g.inv_formulas
    plan = g.ground([0.3, 0.9])  # outer tau = 3, inner tau = 3 + 5 (a zero-width window ignores its u)
    assert plan.reaches == [(0, 3), (1, 8)] and plan.invariances == []
    assert g.ground([1.0, 0.0]).reaches == [(0, 10), (1, 15)]


def test_grounding_of_until_stay_avoid_and_or():
    g = TemporalGrounding(parse("(!(x > 2) U[0,20] (y > 1)) & F[5,9] G[0,3] (x < 0) & G[0,63] (y < 4)"), horizon=64)
    plan = g.ground([0.5, 0.0])
    # until: y > 1 reached at tau = 10, x <= 2 kept on [0, 9]; stay: reach x < 0 at 5 and keep it on [5, 8]; avoid on [0, 63]
    assert sorted(plan.reaches, key=lambda r: r[1]) == plan.reaches
    reach_times = {g.reach_formulas[i]: t for i, t in plan.reaches}
    assert reach_times[parse("y > 1")] == 10 and reach_times[parse("x < 0")] == 5
    invs = {g.inv_formulas[i]: (a, b) for i, a, b in plan.invariances}
    assert invs == {parse("!(x > 2)"): (0, 9), parse("x < 0"): (5, 8), parse("y < 4"): (0, 63)}
    h = TemporalGrounding(parse("F[0,5](x > 1) | F[10,20](y > 1)"), horizon=64)
    assert [t for _, t in h.ground([0.2, 0.0, 0.0]).reaches] == [0]  # branch 0
    assert [t for _, t in h.ground([0.9, 0.0, 1.0]).reaches] == [20]  # branch 1, its own slot


def test_grounding_cuts_windows_at_the_horizon_and_refuses_what_it_cannot_ground():
    g = TemporalGrounding(parse("F[50,100](x > 1)"), horizon=64)
    assert g.ground([1.0]).reaches == [(0, 63)]
    with pytest.raises(ValueError, match="G over a state formula"):
        TemporalGrounding(parse("G[0,10] F[0,3] (x > 1)"), 64)
    with pytest.raises(ValueError, match="'not' over a temporal formula"):
        TemporalGrounding(parse("!(F[0,3] x > 1)"), 64)


def test_stage_reward_pays_the_bonus_at_the_deadline_only_when_the_reach_holds():
    base = STLVecEnv("Linear", num_envs=2, spec="F[0,63](d0 <= 1)", objects=[(2.0, 0.0, 1.0)], horizon=8)
    env = GroundedSTLVecEnv(base, StageWeights(w_progress=0.0, w_success=0.0))
    env.reset(seed=0, options={"state": torch.tensor([[1.5, 0.0], [-4.0, 0.0]])})
    env.set_allocation(torch.tensor([[2 / 7], [2 / 7]]))  # deadline t = 2
    rewards = [env.step(torch.zeros(2, 2))[1] for _ in range(3)]
    assert rewards[0].tolist() == [0.0, 0.0] and rewards[1].tolist() == [1.0, 0.0] and rewards[2].tolist() == [0.0, 0.0]


REACH_AVOID_MAX_BEFORE = 0.2
REACH_AVOID_MIN_AFTER = 0.6


def reach_avoid_success(seed: int, workdir=None) -> dict[str, float]:
    """Reach the disc at (3, 3) between steps 10 and 40 and never enter the disc at (-3, 3); 64 envs, 150k steps.
    Success rate of ``solve`` (critic-chosen allocations) on 64 fixed start states before and after training.
    Also run over seeds and thread counts by scripts/check_seeds.py."""
    torch.manual_seed(seed)
    env = make_vec_env("rlsuite/STL-Linear-v0", 64, spec="F[10,40](d0 <= 1.0) & G[0,63](d1 >= 1.0)",
                       objects=[(3.0, 3.0, 1.0), (-3.0, 3.0, 1.0)], horizon=64, reward_mode="tgpo")
    agent = TGPO(TGPOConfig(), env.single_observation_space, env.single_action_space, seed=seed)
    agent.attach(env)
    before = agent.solve(seed=123)["success"].float().mean().item()
    agent.learn(env, 150_000, seed=seed)
    after = agent.solve(seed=123)["success"].float().mean().item()
    return {"success_before": before, "success_after": after}


def test_tgpo_satisfies_a_reach_avoid_task_on_linear():
    """Seed 0; the distribution over seeds and threads is in docs/learning_tests.md."""
    m = reach_avoid_success(0)
    assert m["success_before"] < REACH_AVOID_MAX_BEFORE and m["success_after"] >= REACH_AVOID_MIN_AFTER, m


def test_tgpo_refuses_an_env_without_grounding():
    env = STLVecEnv("Linear", num_envs=2, spec="x > 0")
    cfg = TGPOConfig()
    agent = TGPO(dataclasses.replace(cfg, ppo=dataclasses.replace(cfg.ppo, num_envs=2, num_minibatches=2)), env.single_observation_space,
                 env.single_action_space)
    with pytest.raises(TypeError, match="reward_mode='tgpo'"):
        agent.learn(env, 100)


def test_tgpo_star_chains_use_the_critic():
    env = make_vec_env("rlsuite/STL-Linear-v0", 8, spec="F[0,30](x > 2) & F[20,60](y > 2)", horizon=64, reward_mode="tgpo")
    cfg = TGPOConfig(sampler="mh", num_allocations=8)
    cfg = dataclasses.replace(cfg, ppo=dataclasses.replace(cfg.ppo, num_envs=8))
    agent = TGPO(cfg, env.single_observation_space, env.single_action_space, seed=0)
    agent.learn(env, 8 * 63 * 2, seed=0)
    assert env.allocation_sampler is not None
    out = agent.solve(seed=1)
    assert out["allocation"].shape == (8, 2) and ((out["allocation"] >= 0) & (out["allocation"] <= 1)).all()


@pytest.mark.parametrize("sampler", ["uniform", "mh"])
def test_kill_and_resume_gives_identical_weights(tmp_path, sampler):
    from rlsuite.core.checkpoint import load_checkpoint, save_checkpoint
    from rlsuite.core.seeding import get_rng_state, set_rng_state

    def make():
        torch.manual_seed(0)
        env = make_vec_env("rlsuite/STL-Unicycle-v0", 8, family="until", task_seed=1, horizon=16, reward_mode="tgpo")
        cfg = TGPOConfig(sampler=sampler)
        agent = TGPO(dataclasses.replace(cfg, ppo=dataclasses.replace(cfg.ppo, num_envs=8, num_steps=15)),
                     env.single_observation_space, env.single_action_space, seed=0)
        return agent, env

    agent, env = make()
    straight = agent.learn(env, 8 * 15 * 4, seed=0)  # 4 PPO iterations of one episode each
    first, env = make()
    first.learn(env, 8 * 15 * 2, seed=0)
    rng_tensors, rng_meta = get_rng_state()
    save_checkpoint(tmp_path / "ck", {"agent": first.state_dict(), "training": first.training_state(env), "rng": rng_tensors},
                    {"rng": rng_meta})
    del first, env  # the process dies here
    state, meta = load_checkpoint(tmp_path / "ck")
    resumed, env = make()
    resumed.load_state_dict(state["agent"])
    resumed.load_training_state(state["training"], env)
    set_rng_state(state["rng"], meta["rng"])
    assert resumed.ppo.global_step == 8 * 15 * 2
    resumed.learn(env, 8 * 15 * 4, seed=0)
    for (name, a), b in zip(straight.ppo.policy.state_dict().items(), resumed.ppo.policy.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
