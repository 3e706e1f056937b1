"""Sparse-reward PointMaze with a fixed goal (D4RL's maze2d), built on Gymnasium-Robotics' PointMaze-v3.

## Description

A force-actuated ball (2 degrees of freedom, no gravity) moves in a walled maze and must reach one
fixed goal cell, as in D4RL's ``maze2d-{umaze,medium,large}`` (Fu et al., 2020). The maze, the
physics and the time limits are Gymnasium-Robotics' ``PointMaze_{UMaze,Medium,Large}-v3``
(``gymnasium_robotics.envs.maze.point_maze.PointMazeEnv``, simulated with MuJoCo); this file fixes the
goal, starts the ball in a random free cell, ends the episode at the goal and flattens the observation.

Registered ids (``import rlsuite.envs``; the env itself imports ``gymnasium_robotics`` only when made):

| id | maze (rows x columns, walls included) | goal cell (row, column) | max_episode_steps |
|---|---|---|---|
| ``rlsuite/PointMaze-UMaze-v0`` | 5 x 5 | (1, 1) | 300 |
| ``rlsuite/PointMaze-Medium-v0`` | 8 x 8 | (6, 6) | 600 |
| ``rlsuite/PointMaze-Large-v0`` | 9 x 12 | (7, 9) | 800 |

The goal cells are D4RL's (the ``G`` of its maze strings, which are the same grids); the time limits
are Gymnasium-Robotics' (``gymnasium.spec("PointMaze_Medium-v3").max_episode_steps``; a test checks
them). A cell is 1 m wide (``maze_size_scaling=1``); cell ``(i, j)`` (row ``i`` from the top, column
``j`` from the left) has its centre at ``x = j + 0.5 - W / 2``, ``y = H / 2 - i - 0.5`` for a map of
``H`` rows and ``W`` columns (Gymnasium-Robotics' ``Maze.cell_rowcol_to_xy``).

Why a fixed goal and termination: with one goal per maze the task is a single MDP whose sparse
return is the success itself (0 or 1), and a normalised score is 100 x the success rate. D4RL's
maze2d did not terminate at the goal, and Gymnasium-Robotics' default task (``continuing_task=True``)
draws a new goal each episode and keeps paying 1 per step inside the goal region: in both the
return counts the steps spent at the goal, not successes.

## Action space

``Box(-1, 1, (2,), float32)``: the controls of the two slide-joint motors; each applies
``100 x action`` N (actuator gear 100) along the world's x or y axis to the 4.19 kg ball. Actions are
clipped to ``[-1, 1]`` by the simulator.

| index | action | min | max | unit |
|---|---|---|---|---|
| 0 | force along x (/ 100) | -1 | 1 | x 100 N |
| 1 | force along y (/ 100) | -1 | 1 | x 100 N |

## Observation space

``Box(-inf, inf, (6,), float32)``:

| index | observation | unit |
|---|---|---|
| 0 | ball x position | m |
| 1 | ball y position | m |
| 2 | ball x velocity | m/s |
| 3 | ball y velocity | m/s |
| 4 | goal x position | m |
| 5 | goal y position | m |

The velocity is clipped to ``[-5, 5]`` m/s before each simulation step (Gymnasium-Robotics), so the
observed one may exceed 5 m/s by one step's acceleration. The goal is constant within an episode (and,
unless ``goal_cell`` is changed, across episodes); it is observed so that a policy trained on one goal
cell can be given another.

## Rewards

``reward = reward_goal`` (in ``info``):

* ``reward_type="sparse"`` (default): 1.0 when the ball is within ``GOAL_RADIUS`` (0.45 m, Gymnasium-
  Robotics' threshold) of the goal, else 0.0. With ``continuing_task=False`` (default) that step ends
  the episode, so the return is 1.0 for a success and 0.0 otherwise.
* ``reward_type="dense"``: ``exp(-distance to the goal)`` (Gymnasium-Robotics' dense reward).

## Starting state

The goal is the exact centre of ``goal_cell`` (as D4RL's maze2d; Gymnasium-Robotics' uniform goal
noise is removed). The ball starts at rest at the centre of a free cell drawn uniformly among all free
cells except the goal cell, plus uniform noise in ``[-0.25, 0.25]`` m on x and y (Gymnasium-Robotics'
``position_noise_range``), so no episode starts inside the goal radius. ``reset(options={"reset_cell":
(i, j)})`` starts it in a chosen cell instead.

## Episode end

* ``terminated``: the ball is within ``GOAL_RADIUS`` of the goal (only with ``continuing_task=False``).
* ``truncated``: the time limit of the registered id (``gymnasium.make(id, max_episode_steps=N)``
  changes it); a truncation should be bootstrapped.

## Info

``success`` (bool, within ``GOAL_RADIUS`` of the goal), ``distance`` (m, ball to goal), ``reward_goal``
(the reward), ``cell`` (the ball's ``(row, column)``).

## Arguments

``gymnasium.make("rlsuite/PointMaze-Medium-v0", goal_cell=(6, 6), reward_type="sparse",
continuing_task=False, max_episode_steps=600, render_mode=None)``; see :class:`PointMazeEnv`.

## Data collection

:class:`WaypointController` is the scripted expert D4RL collected maze2d with: a breadth-first
search over the free cells gives the next cell on a shortest path to the goal, and a PD law drives
the ball to that cell's centre (to the goal once in the goal cell). ``rlsuite data collect --env
rlsuite/PointMaze-Medium-v0 --level waypoint`` writes a dataset with it (``rlsuite.offline.datasets``).

## Version history

* v0: this file (Gymnasium-Robotics 1.4, PointMaze-v3 physics and mazes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np

logger = logging.getLogger(__name__)

#: Distance (m) from the goal within which the ball has reached it (Gymnasium-Robotics' threshold).
GOAL_RADIUS = 0.45
#: Width of a maze cell (m): Gymnasium-Robotics' PointMaze uses ``maze_size_scaling=1``.
CELL_SIZE = 1.0

Cell = tuple[int, int]
MazeMap = Sequence[Sequence[Any]]  # rows of cells; 1 is a wall, anything else (0, "g", "r", "c") is free


@dataclasses.dataclass(frozen=True)
class MazeSpec:
    """One of the registered mazes."""

    robotics_id: str
    """the Gymnasium-Robotics id whose maze map and time limit this one uses"""
    goal_cell: Cell
    """default goal cell (row, column): D4RL's maze2d goal"""
    max_episode_steps: int
    """time limit (steps of 0.01 s), Gymnasium-Robotics' for ``robotics_id``"""


#: The mazes by name (the ``maze=`` keyword of :class:`PointMazeEnv`).
MAZES: dict[str, MazeSpec] = {
    "UMaze": MazeSpec("PointMaze_UMaze-v3", (1, 1), 300),
    "Medium": MazeSpec("PointMaze_Medium-v3", (6, 6), 600),
    "Large": MazeSpec("PointMaze_Large-v3", (7, 9), 800),
}
#: The registered ids and their mazes.
MAZE_ENV_IDS: dict[str, str] = {f"rlsuite/PointMaze-{name}-v0": name for name in MAZES}


def _import_robotics():
    """``gymnasium_robotics``, imported on first use (its import notice on stderr goes to the log)."""
    try:
        notice = io.StringIO()
        with contextlib.redirect_stderr(notice):
            import gymnasium_robotics
    except ImportError as e:
        raise ImportError(f"rlsuite's PointMaze environments need gymnasium-robotics, which is not installed ({e}); "
                          "install it with: pip install 'rlsuite[offline]'") from e
    if notice.getvalue().strip():
        logger.debug("gymnasium_robotics: %s", notice.getvalue().strip())
    return gymnasium_robotics


def maze_map(maze: str) -> list[list[int]]:
    """The map of the named maze (``"UMaze"``, ``"Medium"``, ``"Large"``): rows of 1 (wall) and 0 (free),
    Gymnasium-Robotics' map for the id in :data:`MAZES`. Needs gymnasium-robotics."""
    if maze not in MAZES:
        raise ValueError(f"unknown maze {maze!r}; choose one of {', '.join(MAZES)}.")
    _import_robotics()
    raw = gym.spec(MAZES[maze].robotics_id).kwargs["maze_map"]
    return [[1 if c == 1 else 0 for c in row] for row in raw]


# --- grid helpers (pure numpy, any map) ----------------------------------------------------------------
def _is_free(grid: MazeMap, cell: Cell) -> bool:
    i, j = cell
    return 0 <= i < len(grid) and 0 <= j < len(grid[0]) and grid[i][j] != 1


def free_cells(grid: MazeMap) -> list[Cell]:
    """The free cells ``(row, column)`` of a map, row by row."""
    return [(i, j) for i in range(len(grid)) for j in range(len(grid[0])) if grid[i][j] != 1]


def cell_center(grid: MazeMap, cell: Cell, cell_size: float = CELL_SIZE) -> np.ndarray:
    """``(2,)`` float64: the ``(x, y)`` position (m) of the centre of ``cell = (row, column)`` (the maze
    centred on the origin, rows going down in y; Gymnasium-Robotics' ``Maze.cell_rowcol_to_xy``)."""
    rows, cols = len(grid), len(grid[0])
    return np.array([(cell[1] + 0.5 - cols / 2) * cell_size, (rows / 2 - cell[0] - 0.5) * cell_size])


def cell_of(grid: MazeMap, xy: np.ndarray, cell_size: float = CELL_SIZE) -> Cell:
    """The ``(row, column)`` of the cell holding the position ``xy`` (``(2,)``, m); may lie outside the map."""
    rows, cols = len(grid), len(grid[0])
    return int(np.floor(rows / 2 - xy[1] / cell_size)), int(np.floor(xy[0] / cell_size + cols / 2))


_MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right: the order ties are broken in


def bfs_distances(grid: MazeMap, goal: Cell) -> np.ndarray:
    """``(rows, columns)`` int64: the number of moves (up, down, left, right, through free cells) from
    every cell to ``goal`` by breadth-first search; -1 for walls and cells that cannot reach it."""
    if not _is_free(grid, goal):
        raise ValueError(f"goal cell {tuple(goal)} is a wall or outside the {len(grid)} x {len(grid[0])} map; "
                         f"free cells: {free_cells(grid)}.")
    dist = np.full((len(grid), len(grid[0])), -1, dtype=np.int64)
    dist[goal] = 0
    queue = deque([tuple(goal)])
    while queue:
        i, j = queue.popleft()
        for di, dj in _MOVES:
            nxt = (i + di, j + dj)
            if _is_free(grid, nxt) and dist[nxt] < 0:
                dist[nxt] = dist[i, j] + 1
                queue.append(nxt)
    return dist


def next_cell(dist: np.ndarray, cell: Cell) -> Cell:
    """The neighbour of ``cell`` one move closer to the goal of the distance map ``dist`` (from
    :func:`bfs_distances`; the first in up, down, left, right order among ties); ``cell`` itself at the goal."""
    d = dist[cell]
    if d < 0:
        raise ValueError(f"cell {tuple(cell)} is a wall or cannot reach the goal.")
    if d == 0:
        return tuple(cell)
    rows, cols = dist.shape
    for di, dj in _MOVES:
        i, j = cell[0] + di, cell[1] + dj
        if 0 <= i < rows and 0 <= j < cols and dist[i, j] == d - 1:
            return i, j
    raise AssertionError("unreachable: a BFS distance map always has a neighbour one move closer")


def shortest_path(grid: MazeMap, start: Cell, goal: Cell) -> list[Cell]:
    """The cells of a shortest path from ``start`` to ``goal``, both included (breadth-first search)."""
    dist = bfs_distances(grid, goal)
    if dist[tuple(start)] < 0:
        raise ValueError(f"start cell {tuple(start)} is a wall or cannot reach the goal cell {tuple(goal)}.")
    path = [tuple(start)]
    while path[-1] != tuple(goal):
        path.append(next_cell(dist, path[-1]))
    return path


# --- the environment ---------------------------------------------------------------------------------
class PointMazeEnv(gym.Env):
    """A ball reaching a fixed goal cell of a maze (see the module docstring for spaces and rewards).

    Args:
        maze: ``"UMaze"``, ``"Medium"`` or ``"Large"`` (set by the registered id).
        goal_cell: the goal's ``(row, column)``; None: D4RL's goal cell of the maze (:data:`MAZES`).
        reward_type: ``"sparse"`` (1 within ``GOAL_RADIUS`` of the goal, else 0) or ``"dense"``
            (``exp(-distance)``).
        continuing_task: False (default): reaching the goal terminates the episode; True: the episode
            runs to the time limit and the ball may stay in the goal (Gymnasium-Robotics' default).
        render_mode: passed to Gymnasium-Robotics (``"human"``, ``"rgb_array"``, ``"depth_array"`` or None).
    """

    def __init__(
        self,
        maze: Literal["UMaze", "Medium", "Large"] = "UMaze",
        goal_cell: Cell | None = None,
        reward_type: Literal["sparse", "dense"] = "sparse",
        continuing_task: bool = False,
        render_mode: str | None = None,
    ) -> None:
        if maze not in MAZES:
            raise ValueError(f"unknown maze {maze!r}; choose one of {', '.join(MAZES)} (or make one of the ids "
                             f"{', '.join(MAZE_ENV_IDS)}).")
        if reward_type not in ("sparse", "dense"):
            raise ValueError(f"reward_type must be 'sparse' or 'dense', got {reward_type!r}.")
        self.maze_name = maze
        self.maze_map = maze_map(maze)
        goal_cell = MAZES[maze].goal_cell if goal_cell is None else (int(goal_cell[0]), int(goal_cell[1]))
        if not _is_free(self.maze_map, goal_cell):
            raise ValueError(f"goal_cell {goal_cell} is a wall or outside the {maze} maze "
                             f"({len(self.maze_map)} x {len(self.maze_map[0])}); pick a free cell: {free_cells(self.maze_map)}.")
        self.goal_cell: Cell = goal_cell
        self.goal = cell_center(self.maze_map, goal_cell)
        self.reward_type = reward_type
        self.continuing_task = bool(continuing_task)

        from gymnasium_robotics.envs.maze.maps import GOAL
        from gymnasium_robotics.envs.maze.point_maze import PointMazeEnv as RoboticsPointMaze

        marked = [list(row) for row in self.maze_map]
        marked[goal_cell[0]][goal_cell[1]] = GOAL  # the only goal cell; every other free cell is a start cell
        self._maze = RoboticsPointMaze(maze_map=marked, render_mode=render_mode, reward_type=reward_type,
                                       continuing_task=self.continuing_task, reset_target=False)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (6,), np.float32)
        self.metadata = dict(self._maze.point_env.metadata)
        self.render_mode = render_mode

    def _obs(self, point_obs: np.ndarray) -> np.ndarray:
        return np.concatenate([point_obs, self.goal]).astype(np.float32)

    def _info(self, pos: np.ndarray, reward: float) -> dict[str, Any]:
        distance = float(np.linalg.norm(pos - self.goal))
        return {"success": distance <= GOAL_RADIUS, "distance": distance, "reward_goal": reward,
                "cell": cell_of(self.maze_map, pos)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"reset_cell"}
        if unknown:
            raise ValueError(f"reset options {sorted(unknown)} are not supported; the only option is 'reset_cell' "
                             "(the start cell (row, column)); the goal is set by goal_cell= when the env is made.")
        if options.get("reset_cell") is not None:
            cell = (int(options["reset_cell"][0]), int(options["reset_cell"][1]))
            if not _is_free(self.maze_map, cell) or cell == self.goal_cell:
                raise ValueError(f"reset_cell {cell} must be a free cell other than the goal cell {self.goal_cell}; "
                                 f"free cells: {free_cells(self.maze_map)}.")
            options["reset_cell"] = np.array(cell)
        self._maze.np_random = self.np_random  # one generator: the goal draw, the start cell and its noise
        obs, _ = self._maze.reset(seed=None, options=options or None)
        self._maze.goal = self.goal.copy()  # the cell's centre, without Gymnasium-Robotics' goal noise
        self._maze.update_target_site_pos()
        pos = obs["observation"][:2]
        return self._obs(obs["observation"]), self._info(pos, 0.0)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, _, _, _, _ = self._maze.step(np.asarray(action, dtype=np.float64))
        pos = obs["observation"][:2]
        distance = float(np.linalg.norm(pos - self.goal))
        success = distance <= GOAL_RADIUS
        reward = float(success) if self.reward_type == "sparse" else float(np.exp(-distance))
        terminated = success and not self.continuing_task
        return self._obs(obs["observation"]), reward, terminated, False, self._info(pos, reward)

    def render(self):
        return self._maze.render()

    def close(self) -> None:
        self._maze.close()


# --- the scripted expert -------------------------------------------------------------------------------
class WaypointController:
    """D4RL's maze2d data collector: a PD law towards the next cell of a shortest path to the goal.

    Each call reads the observation ``[x, y, vx, vy, goal_x, goal_y]`` (``(6,)``, m and m/s), finds
    the ball's cell and, by breadth-first search over the free cells (a distance map per goal cell,
    computed once), the next cell on a shortest path to the goal's cell; the target is that cell's
    centre, or the goal itself once the ball is in the goal's cell. The action is
    ``clip(kp * (target - pos) - kd * vel + noise * N(0, I), -1, 1)`` (``(2,)`` float32).

    D4RL's ``WaypointController`` had ``p_gain=10``, ``d_gain=-1`` (added to ``d_gain * velocity``, the
    same law) and planned its waypoints once per goal; planning from the current cell at every step
    needs no bookkeeping and recovers by itself when noise pushes the ball into another cell.

    Args:
        grid: the maze map (rows of cells, 1 a wall), e.g. ``env.unwrapped.maze_map``.
        kp: proportional gain (action per m).
        kd: derivative gain on the velocity (action per m/s).
        noise: standard deviation of the Gaussian noise added to the action before clipping (0: none;
            D4RL's ``--noisy`` used 0.5).
        seed: seed of the noise generator (``numpy.random.default_rng``).
        cell_size: cell width (m).
    """

    def __init__(self, grid: MazeMap, kp: float = 10.0, kd: float = 1.0, noise: float = 0.0, seed: int | None = None,
                 cell_size: float = CELL_SIZE) -> None:
        if not free_cells(grid):
            raise ValueError("the maze map has no free cell.")
        if kp <= 0 or kd < 0 or noise < 0:
            raise ValueError(f"need kp > 0, kd >= 0 and noise >= 0, got kp={kp}, kd={kd}, noise={noise}.")
        self.grid = [list(row) for row in grid]
        self.kp, self.kd, self.noise = float(kp), float(kd), float(noise)
        self.cell_size = float(cell_size)
        self.rng = np.random.default_rng(seed)
        self._dist: dict[Cell, np.ndarray] = {}

    @classmethod
    def for_env(cls, env: gym.Env, **kwargs: Any) -> WaypointController:
        """The controller for a :class:`PointMazeEnv` (or a wrapper of one); ``kwargs`` as in the constructor."""
        inner = env.unwrapped
        if not isinstance(inner, PointMazeEnv):
            raise TypeError(f"WaypointController.for_env needs a PointMaze env ({', '.join(MAZE_ENV_IDS)}), got "
                            f"{type(inner).__name__}.")
        return cls(inner.maze_map, **kwargs)

    def distances(self, goal_cell: Cell) -> np.ndarray:
        """The BFS distance map to ``goal_cell`` (:func:`bfs_distances`), cached."""
        if goal_cell not in self._dist:
            self._dist[goal_cell] = bfs_distances(self.grid, goal_cell)
        return self._dist[goal_cell]

    def target(self, pos: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """``(2,)``: the point (m) the PD law drives the ball at ``pos`` to, for the goal position ``goal``."""
        goal_cell = cell_of(self.grid, goal, self.cell_size)
        here = cell_of(self.grid, pos, self.cell_size)
        if here == goal_cell:
            return np.asarray(goal, dtype=np.float64)
        dist = self.distances(goal_cell)
        rows, cols = dist.shape
        if not (0 <= here[0] < rows and 0 <= here[1] < cols) or dist[here] < 0:
            # numerically inside a wall (the ball touching it): head for the centre of the nearest reachable cell
            cells = np.argwhere(dist >= 0)
            centres = np.array([cell_center(self.grid, tuple(c), self.cell_size) for c in cells])
            return centres[np.argmin(np.linalg.norm(centres - pos, axis=1))]
        return cell_center(self.grid, next_cell(dist, here), self.cell_size)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        pos, vel, goal = obs[0:2], obs[2:4], obs[4:6]
        action = self.kp * (self.target(pos, goal) - pos) - self.kd * vel
        if self.noise > 0:
            action = action + self.noise * self.rng.standard_normal(2)
        return np.clip(action, -1.0, 1.0).astype(np.float32)
