"""The sparse-reward PointMaze tasks (fixed goal, random start, terminate at the goal) and the waypoint
controller: env checks, observation layout, reward and termination, seeding, BFS paths on a hand-made
map, and the controller's success rate."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rlsuite.envs  # noqa: F401  (registers rlsuite's ids)
from rlsuite.envs import ENV_IDS
from rlsuite.envs.maze import (
    GOAL_RADIUS,
    MAZE_ENV_IDS,
    MAZES,
    WaypointController,
    bfs_distances,
    cell_center,
    cell_of,
    free_cells,
    next_cell,
    shortest_path,
)

IDS = list(MAZE_ENV_IDS)


def _place(env: gym.Env, xy, vel=(0.0, 0.0)) -> None:
    """Put the ball at ``xy`` with velocity ``vel``."""
    env.unwrapped._maze.point_env.set_state(np.asarray(xy, float), np.asarray(vel, float))


@pytest.mark.filterwarnings("ignore:.*Box observation space (minimum|maximum) value is")  # unbounded, as Gymnasium-Robotics'
@pytest.mark.parametrize("env_id", IDS)
def test_check_env_and_registration(env_id):
    assert env_id in ENV_IDS
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.observation_space == gym.spaces.Box(-np.inf, np.inf, (6,), np.float32)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


@pytest.mark.parametrize("env_id", IDS)
def test_maze_and_time_limit_are_gymnasium_robotics(env_id):
    import gymnasium_robotics  # noqa: F401  (registers PointMaze_*-v3)

    spec = MAZES[MAZE_ENV_IDS[env_id]]
    robotics = gym.spec(spec.robotics_id)
    assert gym.spec(env_id).max_episode_steps == robotics.max_episode_steps  # UMaze 300, Medium 600, Large 800
    assert gym.make(env_id).unwrapped.maze_map == robotics.kwargs["maze_map"]
    assert [gym.spec(i).max_episode_steps for i in IDS] == [300, 600, 800]


def test_cell_geometry_matches_gymnasium_robotics():
    env = gym.make("rlsuite/PointMaze-Large-v0").unwrapped
    maze = env._maze.maze
    for cell in free_cells(env.maze_map):
        xy = maze.cell_rowcol_to_xy(np.array(cell))
        np.testing.assert_allclose(cell_center(env.maze_map, cell), xy)
        assert cell_of(env.maze_map, xy + [0.49, -0.49]) == cell == tuple(maze.cell_xy_to_rowcol(xy))


@pytest.mark.parametrize("env_id", IDS)
def test_fixed_goal_and_random_start_cells(env_id):
    env = gym.make(env_id)
    inner = env.unwrapped
    goal = cell_center(inner.maze_map, MAZES[MAZE_ENV_IDS[env_id]].goal_cell)
    starts = set()
    for seed in range(30):
        obs, info = env.reset(seed=seed)
        np.testing.assert_array_equal(obs[4:6], goal.astype(np.float32))  # the cell's centre, every episode
        np.testing.assert_array_equal(inner._maze.goal, goal)
        cell = cell_of(inner.maze_map, obs[:2])
        assert cell != inner.goal_cell and cell in free_cells(inner.maze_map)
        assert np.all(np.abs(obs[:2] - cell_center(inner.maze_map, cell)) <= 0.25 + 1e-6)  # Gymnasium-Robotics' start noise
        assert np.all(obs[2:4] == 0) and not info["success"] and info["cell"] == cell
        starts.add(cell)
    assert len(starts) >= min(6, len(free_cells(inner.maze_map)) - 1)  # random, not one start cell


def test_observation_layout():
    env = gym.make("rlsuite/PointMaze-Medium-v0")
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(np.array([0.7, -0.3], np.float32))
    data = env.unwrapped._maze.point_env.data
    assert obs.dtype == np.float32 and obs.shape == (6,)
    np.testing.assert_allclose(obs[:2], data.qpos, rtol=1e-6)  # x, y
    np.testing.assert_allclose(obs[2:4], data.qvel, rtol=1e-6)  # vx, vy
    assert obs[2] > 0 and obs[3] < 0  # pushed along +x and -y from rest
    np.testing.assert_array_equal(obs[4:6], [2.5, -2.5])  # goal (6, 6) of the 8 x 8 map: x = 6.5 - 4, y = 4 - 6.5


def test_sparse_reward_and_termination_at_the_goal():
    env = gym.make("rlsuite/PointMaze-UMaze-v0")
    env.reset(seed=0)
    goal = env.unwrapped.goal
    _place(env, goal + [0.8, 0.0])  # 0.8 m away (in the next cell): nothing
    obs, r, term, trunc, info = env.step(np.zeros(2, np.float32))
    assert r == 0.0 and not term and not trunc and not info["success"] and info["reward_goal"] == r
    assert info["distance"] == pytest.approx(np.linalg.norm(obs[:2] - goal), rel=1e-5) and info["distance"] > GOAL_RADIUS
    _place(env, goal + [0.3, 0.2])  # 0.36 m < 0.45 m
    obs, r, term, trunc, info = env.step(np.zeros(2, np.float32))
    assert r == 1.0 and term and not trunc and info["success"] and info["reward_goal"] == r

    cont = gym.make("rlsuite/PointMaze-UMaze-v0", continuing_task=True)  # pays every step in the goal, never ends there
    cont.reset(seed=0)
    _place(cont, goal)
    for _ in range(3):
        _, r, term, _, info = cont.step(np.zeros(2, np.float32))
        assert r == 1.0 and not term and info["success"]

    dense = gym.make("rlsuite/PointMaze-UMaze-v0", reward_type="dense")
    dense.reset(seed=0)
    _place(dense, goal + [1.0, 0.0])
    obs, r, *_, info = dense.step(np.zeros(2, np.float32))
    assert r == pytest.approx(np.exp(-info["distance"])) and info["reward_goal"] == r


def test_time_limit_truncates_and_can_be_overridden():
    env = gym.make("rlsuite/PointMaze-Large-v0", max_episode_steps=5)
    env.reset(seed=0)
    for t in range(5):
        _, _, term, trunc, _ = env.step(np.zeros(2, np.float32))
        assert not term and trunc == (t == 4)


def test_goal_cell_keyword_and_reset_cell_option():
    env = gym.make("rlsuite/PointMaze-Medium-v0", goal_cell=(1, 1))
    obs, _ = env.reset(seed=0, options={"reset_cell": (6, 6)})
    np.testing.assert_array_equal(obs[4:6], [-2.5, 2.5])
    assert cell_of(env.unwrapped.maze_map, obs[:2]) == (6, 6)
    with pytest.raises(ValueError, match=r"goal_cell \(0, 0\) is a wall .* pick a free cell"):
        gym.make("rlsuite/PointMaze-Medium-v0", goal_cell=(0, 0))
    with pytest.raises(ValueError, match="reward_type must be 'sparse' or 'dense', got 'shaped'"):
        gym.make("rlsuite/PointMaze-Medium-v0", reward_type="shaped")
    with pytest.raises(ValueError, match=r"reset_cell \(1, 1\) must be a free cell other than the goal cell"):
        env.reset(options={"reset_cell": (1, 1)})
    with pytest.raises(ValueError, match=r"reset options \['goal_cell'\] are not supported.*goal_cell= when the env is made"):
        env.reset(options={"goal_cell": (1, 2)})


def test_seeding_is_deterministic():
    def run(seed):
        env = gym.make("rlsuite/PointMaze-Medium-v0")
        obs, _ = env.reset(seed=seed)
        out = [obs]
        actions = np.random.default_rng(0).uniform(-1, 1, (30, 2)).astype(np.float32)
        for a in actions:
            out.append(env.step(a)[0])
        obs2, _ = env.reset()  # the next start comes from the same generator
        return np.array(out), obs2

    a, b, c = run(3), run(3), run(4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0][0], c[0][0])


def test_missing_gymnasium_robotics_names_the_extra():
    code = ("import sys; sys.modules['gymnasium_robotics'] = None\n"
            "import gymnasium as gym, rlsuite.envs\n"  # registering needs no gymnasium-robotics
            "try:\n    gym.make('rlsuite/PointMaze-UMaze-v0')\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "need gymnasium-robotics" in out and "pip install 'rlsuite[offline]'" in out


# --- BFS on a hand-made map -------------------------------------------------------------------------------
HAND = [
    [1, 1, 1, 1, 1, 1, 1],
    [1, 0, 0, 0, 1, 0, 1],
    [1, 0, 1, 0, 1, 1, 1],
    [1, 0, 1, 0, 0, 0, 1],
    [1, 1, 1, 1, 1, 1, 1],
]


def test_bfs_distances_and_path_on_a_hand_made_map():
    # from the goal (3, 5): (3, 4) 1, (3, 3) 2, (2, 3) 3, (1, 3) 4, (1, 2) 5, (1, 1) 6, (2, 1) 7, (3, 1) 8;
    # (1, 5) is free but walled in: -1, as are the walls
    expected = np.full((5, 7), -1)
    for cell, d in {(3, 5): 0, (3, 4): 1, (3, 3): 2, (2, 3): 3, (1, 3): 4, (1, 2): 5, (1, 1): 6, (2, 1): 7, (3, 1): 8}.items():
        expected[cell] = d
    np.testing.assert_array_equal(bfs_distances(HAND, (3, 5)), expected)
    assert shortest_path(HAND, (3, 1), (3, 5)) == [(3, 1), (2, 1), (1, 1), (1, 2), (1, 3), (2, 3), (3, 3), (3, 4), (3, 5)]
    assert shortest_path(HAND, (3, 5), (3, 5)) == [(3, 5)]
    with pytest.raises(ValueError, match=r"start cell \(1, 5\) is a wall or cannot reach the goal cell \(3, 5\)"):
        shortest_path(HAND, (1, 5), (3, 5))
    with pytest.raises(ValueError, match=r"goal cell \(0, 0\) is a wall or outside the 5 x 7 map"):
        bfs_distances(HAND, (0, 0))
    # ties: in an open 2 x 2 room both first moves are shortest; "up, down, left, right" picks up
    room = [[1, 1, 1, 1], [1, 0, 0, 1], [1, 0, 0, 1], [1, 1, 1, 1]]
    assert next_cell(bfs_distances(room, (1, 1)), (2, 2)) == (1, 2)


@pytest.mark.parametrize("env_id", IDS)
def test_shortest_paths_in_the_mazes_are_paths_of_bfs_length(env_id):
    env = gym.make(env_id).unwrapped
    dist = bfs_distances(env.maze_map, env.goal_cell)
    for start in free_cells(env.maze_map):
        path = shortest_path(env.maze_map, start, env.goal_cell)
        assert len(path) == dist[start] + 1 >= 1  # every free cell reaches the goal
        assert all(abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1 and env.maze_map[b[0]][b[1]] != 1 for a, b in zip(path[:-1], path[1:], strict=True))


# --- the controller --------------------------------------------------------------------------------------
def test_controller_targets_and_pd_law():
    ctl = WaypointController(HAND, kp=10.0, kd=1.0)
    goal = cell_center(HAND, (3, 5))
    pos = cell_center(HAND, (1, 2)) + [0.2, 0.1]
    np.testing.assert_allclose(ctl.target(pos, goal), cell_center(HAND, (1, 3)))  # the next cell on the path
    near = goal + [0.3, -0.2]
    np.testing.assert_allclose(ctl.target(near, goal), goal)  # in the goal cell: the goal itself
    # the PD law: 10 * (target - pos) - 1 * vel, clipped: target - pos = (-0.3, 0.2), vel = (0.5, 1.0)
    obs = np.array([*near, 0.5, 1.0, *goal], np.float32)
    np.testing.assert_allclose(ctl(obs), [-1.0, 1.0])  # (-3.5, 1.0) clipped
    obs = np.array([*(goal + [0.02, -0.03]), 0.1, 0.05, *goal], np.float32)
    np.testing.assert_allclose(ctl(obs), [-0.3, 0.25], atol=1e-5)  # (-0.2 - 0.1, 0.3 - 0.05)
    noisy_a, noisy_b = WaypointController(HAND, noise=0.5, seed=1), WaypointController(HAND, noise=0.5, seed=1)
    acts = [noisy_a(obs) for _ in range(5)]
    assert all(np.array_equal(x, noisy_b(obs)) for x in acts) and not np.array_equal(acts[0], acts[1])
    with pytest.raises(ValueError, match="need kp > 0, kd >= 0 and noise >= 0"):
        WaypointController(HAND, noise=-1.0)
    with pytest.raises(TypeError, match="needs a PointMaze env"):
        WaypointController.for_env(gym.make("rlsuite/Pendulum-v0"))


# Measured: 1.00 success over 200 episodes per maze at noise 0, 0.1 and 0.5 (and 30 at noise 1 and 2);
# the threshold below leaves room for one failure in ten.
@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("noise", [0.0, 0.5])
def test_controller_reaches_the_goal(env_id, noise):
    env = gym.make(env_id)
    ctl = WaypointController.for_env(env, noise=noise, seed=7)
    successes = []
    for seed in range(10):
        obs, _ = env.reset(seed=100 + seed)
        done = False
        while not done:
            obs, r, term, trunc, info = env.step(ctl(obs))
            done = term or trunc
        successes.append(info["success"] and term and r == 1.0)
    assert np.mean(successes) >= 0.9, successes
