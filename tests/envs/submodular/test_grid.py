"""Submodular grid envs: gains telescope to F, batched = single, walls, noise, exact resume, ids."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import rlsuite.envs  # noqa: F401  (registers the ids)
from rlsuite.core.vec_env import make_vec_env
from rlsuite.envs.submodular.grid import TASKS, SubmodularGridEnv, SubmodularGridVecEnv, upper_bound
from tests.core.test_vec_env import run_conformance

IDS = {
    "rlsuite/Coverage-Grid-v0": "coverage",
    "rlsuite/Coverage-Bimodal-v0": "coverage-bimodal",
    "rlsuite/IPP-GP-v0": "gp-ipp",
    "rlsuite/Biodiversity-v0": "biodiversity",
    "rlsuite/ItemCollection-v0": "items",
    "rlsuite/TwoRooms-v0": "two-rooms",
    "rlsuite/Entropy-Grid-v0": "entropy",
}
# small grids keep the tests fast (the instance is generated for the size asked)
SMALL = {"height": 8, "width": 9, "horizon": 12}


@pytest.mark.parametrize("task", list(TASKS))
def test_marginal_gains_telescope_to_episode_F_on_random_rollouts(task):
    env = SubmodularGridVecEnv(num_envs=16, task=task, noise=0.2, start="random", **SMALL)
    run_conformance(env, steps=30)
    _, info = env.reset(seed=1)
    total = info["F"].double().clone()
    f_start = info["F_start"].clone()
    assert torch.allclose(info["F"], env.F.value(env.visited_mask()), atol=1e-5)
    g = torch.Generator().manual_seed(0)
    for t in range(env.horizon):
        visited_before = env.visited_mask()
        _, r, term, trunc, info = env.step(torch.randint(0, 5, (16,), generator=g))
        assert not term.any() and bool(trunc.all()) == (t == env.horizon - 1)
        total += r.double()
        revisit = visited_before.gather(1, info["cell"][:, None]).squeeze(1)
        assert (r[revisit] == 0).all() and (r >= 0).all()
        torch.testing.assert_close(info["modular_reward"], env.F.singletons()[info["cell"]])
        if t < env.horizon - 1:
            torch.testing.assert_close(info["F"], env.F.value(env.visited_mask()), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(total.float(), info["episode_F"], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(info["episode_return"] + f_start, info["episode_F"], atol=1e-4, rtol=1e-5)
    # the returned observation starts the next episode: its start cell's value
    torch.testing.assert_close(info["F_start"], env.F.singletons()[env.pos])
    assert torch.all(info["F_max"] == env.normaliser)
    assert (info["episode_F"] <= upper_bound(env.F, env.horizon + 1) + 1e-4).all()


def test_default_tasks_match_the_authors_table():
    shapes = {t: (s.height, s.width, s.horizon) for t, s in TASKS.items()}
    assert shapes["coverage"] == (30, 30, 80) and shapes["items"] == (7, 15, 40) and shapes["two-rooms"] == (7, 14, 40)
    env = SubmodularGridVecEnv(task="coverage")
    assert env.normaliser == 2 * 81 and env.start == 34  # MAX_Ret = 2 (H + 1); start cell 34 = (x 4, y 1)
    obs, info = env.reset(seed=0)
    assert info["F"].item() == 4.0  # the 2x2 disc
    np.testing.assert_allclose(obs[0].numpy(), [4 / 29, 1 / 29, 0.0], rtol=1e-6)
    items = SubmodularGridVecEnv(task="items")
    assert items.normaliser == 21.0  # sum of the thresholds D


def test_batched_env_equals_single_envs_step_for_step():
    kwargs = dict(task="items", instance=3, **SMALL)
    vec = SubmodularGridVecEnv(num_envs=3, **kwargs)
    singles = [SubmodularGridEnv(**kwargs) for _ in range(3)]
    obs, _ = vec.reset(seed=5)
    for i, s in enumerate(singles):
        o, info = s.reset(seed=i)
        np.testing.assert_array_equal(o, obs[i].numpy())
    g = np.random.default_rng(0)
    for _ in range(2 * SMALL["horizon"] + 3):
        act = g.integers(0, 5, size=3)
        obs, r, term, trunc, info = vec.step(torch.as_tensor(act))
        for i, s in enumerate(singles):
            o, ri, te, tr, inf = s.step(act[i])
            expected = info["final_obs"][i] if tr else obs[i]
            np.testing.assert_array_equal(o, expected.numpy())
            assert ri == float(r[i]) and tr == bool(trunc[i]) and not te
            assert inf["F"] == float(info["F"][i]) and inf["modular_reward"] == float(info["modular_reward"][i])
            if tr:
                assert inf["episode_F"] == float(info["episode_F"][i])
                s.reset()
    # with action noise, a batch of one follows the single env seeded alike
    vec1 = SubmodularGridVecEnv(num_envs=1, noise=0.5, **kwargs)
    single = SubmodularGridEnv(noise=0.5, **kwargs)
    vec1.reset(seed=11)
    single.reset(seed=11)
    for _ in range(SMALL["horizon"] - 1):
        a = int(g.integers(0, 5))
        obs, r, *_ = vec1.step(torch.tensor([a]))
        o, ri, *_ = single.step(a)
        np.testing.assert_array_equal(o, obs[0].numpy())
        assert ri == float(r[0])


def test_walls_block_moves_and_the_door_lets_through():
    env = SubmodularGridVecEnv(num_envs=1, task="two-rooms", start=3 * 14 + 6)  # (x 6, y 3): left of the door
    assert env.walls[:, 7].sum() == 6 and not env.walls[3, 7]
    env.reset(seed=0)
    env.step(torch.tensor([4]))  # right, through the door
    assert env.pos.item() == 3 * 14 + 7
    env.step(torch.tensor([1]))  # up: the wall at (7, 2) -> stay
    assert env.pos.item() == 3 * 14 + 7
    env.step(torch.tensor([4]))
    env.step(torch.tensor([1]))  # (8, 2): free
    assert env.pos.item() == 2 * 14 + 8
    corner = SubmodularGridVecEnv(num_envs=2, start=0, **SMALL)
    corner.reset(seed=0)
    corner.step(torch.tensor([1, 3]))  # up and left off the grid: stay
    assert corner.pos.tolist() == [0, 0]
    walled = SubmodularGridVecEnv(num_envs=1, start=0, walls=[1], **SMALL)
    walled.reset(seed=0)
    walled.step(torch.tensor([4]))  # into the wall at cell 1
    assert walled.pos.item() == 0
    with pytest.raises(ValueError, match="wall"):
        SubmodularGridVecEnv(start=1, walls=[1], **SMALL)


def test_noise_zero_is_deterministic_and_noise_changes_actions():
    def run(noise, seed):
        env = SubmodularGridVecEnv(num_envs=64, noise=noise, **SMALL)
        env.reset(seed=seed)
        cells = []
        for _ in range(6):
            _, _, _, _, info = env.step(torch.full((64,), 4))
            cells.append(info["cell"])
        return torch.stack(cells), info["executed_action"]

    a, ex = run(0.0, 0)
    b, _ = run(0.0, 1)
    assert torch.equal(a, b) and (ex == 4).all() and (a == a[:, :1]).all()
    c, ex = run(0.5, 0)
    d, _ = run(0.5, 0)
    assert torch.equal(c, d) and not torch.equal(a, c)
    assert 0.3 < (ex != 4).float().mean() < 0.55  # half replaced, of which 1/5 by the same action


@pytest.mark.parametrize("task", ["coverage", "entropy", "items"])
def test_state_dict_resumes_exactly(task):
    kwargs = dict(num_envs=5, task=task, noise=0.3, start="random", observation="history", **SMALL)
    env = SubmodularGridVecEnv(**kwargs)
    env.reset(seed=3)
    g = torch.Generator().manual_seed(1)
    for _ in range(7):
        env.step(torch.randint(0, 5, (5,), generator=g))
    state = env.state_dict()
    other = SubmodularGridVecEnv(**kwargs)
    other.reset(seed=99)
    other.load_state_dict(state)
    for _ in range(20):
        a = torch.randint(0, 5, (5,), generator=g)
        o1, r1, _, t1, i1 = env.step(a)
        o2, r2, _, t2, i2 = other.step(a)
        assert torch.equal(o1, o2) and torch.equal(r1, r2) and torch.equal(t1, t2) and torch.equal(i1["F"], i2["F"])


def test_history_observation_shape_and_padding():
    env = SubmodularGridVecEnv(num_envs=2, observation="history", start=0, **SMALL)
    H = SMALL["horizon"]
    assert env.single_observation_space.shape == (2 * (H + 1) + 1,)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, 2 * (H + 1) + 1)
    assert obs[0, :2].tolist() == [0.0, 0.0] and (obs[0, 2:-1] == -1).all() and obs[0, -1] == 0
    obs, *_ = env.step(torch.tensor([4, 2]))  # right: (1, 0); down: (0, 1)
    w, h = SMALL["width"] - 1, SMALL["height"] - 1
    torch.testing.assert_close(obs[:, 2:4], torch.tensor([[1 / w, 0.0], [0.0, 1 / h]]))
    assert (obs[:, 4:-1] == -1).all() and obs[0, -1].item() == pytest.approx(1 / H)
    assert env.observation_space.contains(obs.numpy())


@pytest.mark.parametrize("env_id", list(IDS))
def test_every_id_through_make_vec_env_and_gymnasium_make(env_id):
    kw = dict(SMALL) if IDS[env_id] != "items" else {"horizon": 6}
    venv = make_vec_env(env_id, num_envs=3, seed=0, **kw)
    assert isinstance(venv, SubmodularGridVecEnv) and venv.task == IDS[env_id]
    obs, _ = venv.reset(seed=0)
    obs, r, *_ = venv.step(torch.zeros(3, dtype=torch.long))
    assert obs.shape == (3, 3) and (r == 0).all()  # staying on the start cell gains nothing
    single = gym.make(env_id, observation="history", instance=2, noise=0.1, **kw)
    check_env(single.unwrapped, skip_render_check=True)
    o, _ = single.reset(seed=0)
    assert single.observation_space.contains(o)


def test_instances_differ_and_are_reproducible():
    a = SubmodularGridVecEnv(task="gp-ipp", instance=0, **SMALL).F.weights
    b = SubmodularGridVecEnv(task="gp-ipp", instance=1, **SMALL).F.weights
    a2 = SubmodularGridVecEnv(task="gp-ipp", instance=0, **SMALL).F.weights
    assert torch.equal(a, a2) and not torch.equal(a, b)
    items = SubmodularGridVecEnv(task="items").F
    assert items.items.ge(0).sum(1).tolist() == [18, 14, 13, 16, 18, 14]


def test_bad_arguments_are_refused_with_the_allowed_values():
    with pytest.raises(ValueError, match="allowed"):
        SubmodularGridVecEnv(task="nope")
    with pytest.raises(ValueError, match="observation"):
        SubmodularGridVecEnv(observation="full")
    with pytest.raises(ValueError, match="noise"):
        SubmodularGridVecEnv(noise=1.5)


@pytest.mark.gpu
@pytest.mark.parametrize("task", list(TASKS))
def test_cuda_env_matches_the_cpu_env(task):
    kwargs = dict(num_envs=64, task=task, observation="history", horizon=10)
    cpu, gpu = SubmodularGridVecEnv(device="cpu", **kwargs), SubmodularGridVecEnv(device="cuda", **kwargs)
    cpu.reset(seed=0)
    gpu.reset(seed=0)
    g = torch.Generator().manual_seed(0)
    for _ in range(15):
        a = torch.randint(0, 5, (64,), generator=g)
        o1, r1, _, _, i1 = cpu.step(a)
        o2, r2, _, _, i2 = gpu.step(a.cuda())
        assert o2.device.type == "cuda" and torch.equal(o1, o2.cpu())
        torch.testing.assert_close(r1, r2.cpu(), atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(i1["F"], i2["F"].cpu(), atol=1e-3, rtol=1e-5)
