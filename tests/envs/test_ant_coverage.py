"""The MuJoCo Ant coverage task: block marking against hand-computed cells, return = F/10, modular
reward, termination at the arena edge, Gymnasium's env checker, and the run through make_vec_env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import rlsuite.envs  # noqa: F401  (registers rlsuite's ids)
from rlsuite.core.vec_env import make_vec_env
from rlsuite.envs.submodular.ant import AntCoverageEnv

ENV_ID = "rlsuite/AntCoverage-v0"


def _place(env: AntCoverageEnv, x: float, y: float) -> None:
    """Put the torso at (x, y) at rest, standing (Ant-v5's initial height and pose)."""
    qpos = env.ant.init_qpos.copy()
    qpos[0], qpos[1] = x, y
    env.ant.set_state(qpos, np.zeros_like(env.ant.init_qvel))


def test_block_marking_matches_hand_computed_cells() -> None:
    env = AntCoverageEnv()
    env.reset(seed=0)
    # cell = 40 m / 100 = 0.4 m. x = 1.0: (1.0 + 20) / 0.4 = 52.5 -> column 52; y = -3.4: 16.6 / 0.4 = 41.5 -> row 41
    # (both at a cell's centre, 0.2 m from its edges, so the small settling motion of one step stays inside)
    _place(env, 1.0, -3.4)
    _, reward, terminated, truncated, info = env.step(np.zeros(8))
    assert env.cell_of(info["x_position"], info["y_position"]) == (41, 52)
    expected = np.zeros((100, 100), dtype=bool)
    expected[39:44, 50:55] = True  # rows 41-2..41+2, columns 52-2..52+2
    np.testing.assert_array_equal(env.covered, expected)
    assert info["F"] == 25 and info["new_cells"] == 25 and reward == pytest.approx(2.5)
    assert not terminated and not truncated and "episode_F" not in info

    # one cell to the right (x = 1.4 -> column 53): only column 55 is new, 5 cells
    _place(env, 1.4, -3.4)
    _, reward, *_, info = env.step(np.zeros(8))
    expected[39:44, 55] = True
    np.testing.assert_array_equal(env.covered, expected)
    assert info["new_cells"] == 5 and info["F"] == 30 and reward == pytest.approx(0.5)

    # near the edge: x = 19.8 -> column 99, so columns 97..99 only (3 x 5 = 15 cells), still inside the arena
    _place(env, 19.8, -3.4)
    _, reward, terminated, *_, info = env.step(np.zeros(8))
    assert info["block_cells"] == 15 and info["new_cells"] == 15 and reward == pytest.approx(1.5) and not terminated
    assert env.covered[39:44, 97:100].all() and env.covered.sum() == 45


def test_modular_reward_pays_the_block_every_step() -> None:
    env = AntCoverageEnv(reward="modular")
    env.reset(seed=0)
    rewards = []
    for _ in range(3):
        _place(env, -5.0, 7.0)  # (15 / 0.4 = 37.5, 27 / 0.4 = 67.5): column 37, row 67, the same block each time
        _, r, *_, info = env.step(np.zeros(8))
        rewards.append(r)
    assert rewards == pytest.approx([2.5, 2.5, 2.5])  # 25 cells / 10, revisits paid again
    assert info["F"] == 25 and info["new_cells"] == 0  # F is the coverage all the same


@pytest.mark.parametrize("xy", [(20.6, 0.0), (0.0, -20.6)])
def test_terminates_when_the_torso_leaves_the_arena(xy) -> None:
    env = AntCoverageEnv()
    env.reset(seed=1)
    _place(env, 3.0, 3.0)
    _, _, terminated, _, info = env.step(np.zeros(8))
    assert not terminated
    _place(env, *xy)
    _, _, terminated, truncated, info = env.step(np.zeros(8))
    assert terminated and not truncated
    assert info["episode_F"] == info["F"] == int(env.covered.sum())
    assert 25 < info["F"] <= 50  # the first block, plus the part of the last block inside the grid (at most 25)


def test_return_is_the_coverage_over_ten_and_terms_sum_to_the_reward() -> None:
    env = AntCoverageEnv(horizon=60, ctrl_cost_weight=0.01)
    obs, info = env.reset(seed=3)
    assert obs.shape == (29,) and info["F"] == 0
    rng = np.random.default_rng(0)
    total_cov, steps = 0.0, 0
    while True:
        action = 0.3 * rng.uniform(-1, 1, 8)
        _, reward, terminated, truncated, info = env.step(action)
        assert reward == pytest.approx(info["reward_coverage"] + info["reward_ctrl"])
        assert info["reward_ctrl"] == pytest.approx(-0.01 * np.sum(action**2))
        total_cov += info["reward_coverage"]
        steps += 1
        assert info["F"] == int(env.covered.sum())
        assert total_cov * 10 == pytest.approx(info["F"])
        if terminated or truncated:
            break
    assert "episode_F" in info and info["episode_F"] == info["F"] >= 25
    assert truncated == (steps == 60)


def test_reset_clears_the_map_and_is_seeded() -> None:
    env = AntCoverageEnv()
    a, _ = env.reset(seed=7)
    env.step(np.zeros(8))
    assert env.F > 0
    b, info = env.reset(seed=7)
    np.testing.assert_array_equal(a, b)
    assert info["F"] == 0 and env.F == 0 and not env.covered.any()


def test_bad_arguments_say_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="submodular"):
        AntCoverageEnv(reward="sum")
    with pytest.raises(ValueError, match="odd"):
        AntCoverageEnv(block=4)


def test_passes_gymnasium_env_checker_through_make() -> None:
    env = gym.make(ENV_ID)
    assert env.spec.max_episode_steps == 400
    check_env(env.unwrapped, skip_render_check=True)


def test_runs_through_make_vec_env_and_returns_coverage() -> None:
    env = make_vec_env(ENV_ID, num_envs=2, seed=0, horizon=30)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, 29) and obs.dtype == torch.float32
    returns = []
    for _ in range(30):
        obs, reward, terminated, truncated, info = env.step(torch.zeros(2, 8))
        assert reward.shape == (2,) and (reward >= 0).all()
        done = terminated | truncated
        returns += info["episode_return"][done].tolist()
    assert len(returns) == 2  # zero torques: the Ant stands, each episode truncated at step 30
    for r in returns:
        # standing still covers one block (25 cells) plus a row or column when the settling torso crosses a cell
        # edge (the origin lies on one): a whole number of cells / 10, at most two blocks
        assert 2.5 - 1e-5 <= r <= 5.0 + 1e-5 and r * 10 == pytest.approx(round(r * 10), abs=1e-4)
    env.close()
