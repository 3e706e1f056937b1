"""MuJoCo Ant coverage: Gymnasium's ``Ant-v5`` walking over an arena whose grid cells it covers.

The submodular task of SubPO's Ant experiment (Prajapat et al., ICLR 2024, ``gym_env/`` of the authors'
code): a 40 m x 40 m arena centred on the origin is a 100 x 100 grid of 0.4 m cells; after every step
the 5 x 5 block of cells centred on the torso's cell (2 m x 2 m) is marked covered. The coverage
F(tau) = |union of the marked blocks| is a monotone submodular function of the visited positions, and
the default reward is its marginal gain (the newly covered cells, divided by 10), so the undiscounted
return is F(tau) / 10.

Registered as ``rlsuite/AntCoverage-v0`` (400 steps); ``rlsuite.core.vec_env.make_vec_env`` runs it
through the Gymnasium adapter (one MuJoCo simulator per env, stepped on the CPU).

## Action space

``Box(-1, 1, (8,), float32)``: the torques of Ant-v5's eight hinge motors (N m), unchanged.

## Observation space

Ant-v5's observation with the torso position kept (``exclude_current_positions_from_observation=False``)
and, by default, without the contact forces (``include_cfrc_ext_in_observation=False``), as in the
authors' Ant-v4 set-up: 29 numbers.

| index | observation | unit |
|---|---|---|
| 0, 1 | torso x, y | m |
| 2 | torso z | m |
| 3-6 | torso orientation (quaternion w, x, y, z) | - |
| 7-14 | hip and ankle angles | rad |
| 15-17 | torso linear velocity | m/s |
| 18-20 | torso angular velocity | rad/s |
| 21-28 | hip and ankle angular velocities | rad/s |
| 29-106 | contact forces (only with ``include_cfrc_ext_in_observation=True``) | N, N m |

The coverage map itself is not observed (a Markov policy on the Ant's state, as in the paper; a
recurrent policy can remember where it has been).

## Rewards

``reward = reward_coverage + reward_ctrl`` (both in ``info``):

* ``reward_coverage``: with ``reward="submodular"`` (default) the number of cells newly covered by this
  step's block, times ``coverage_scale`` (1/10); with ``reward="modular"`` the number of block cells
  inside the arena, covered before or not (25 away from the edges), times ``coverage_scale`` -- the
  modular baseline (ModPO) that pays again for revisits.
* ``reward_ctrl``: ``-ctrl_cost_weight * sum(action**2)`` (0 by default: the coverage alone, as the
  authors have it).

## Episode end

* ``terminated`` when the torso leaves the arena (``|x| > 20`` or ``|y| > 20``) or, with
  ``terminate_when_unhealthy`` (Ant-v5's default), when the torso's height leaves ``healthy_z_range``.
* ``truncated`` after ``horizon`` steps (400). The registered id also carries ``max_episode_steps=400``;
  ``info["episode_F"]`` is written when this env ends the episode, so pass ``horizon=`` rather than only
  ``max_episode_steps=`` to change the length.

## Info

``F`` (cells covered so far, int), ``new_cells`` and ``block_cells`` (this step's counts),
``reward_coverage``, ``reward_ctrl``, ``x_position``, ``y_position``, ``x_velocity``, ``y_velocity``
(from Ant-v5), and at the end of an episode ``episode_F`` (the episode's F).

## Deviations from the authors' wrapper (``gym_env/inheritance_test.py``), with the reason

1. The block is centred on the torso's cell; the authors' slice ``mask[x:x+5, y:y+5]`` starts at it, so
   their block lies to one side of the Ant ("around the torso" is what the paper describes).
2. The start position is not marked at reset, so the return is exactly F(tau)/10 (the authors mark the
   start block at reset and never pay for it).
3. ``reward="modular"`` pays the block's cells every step (a modular reward that counts revisits, the
   ModPO baseline of the grid tasks); the authors' "modular" reward pays the cumulative coverage every
   step, a different (still history-dependent) objective.
4. Ant-v5 instead of Ant-v4 (v4 is deprecated in Gymnasium 1.x; same model and observation layout).

Version history: v0 (this file).
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium.envs.mujoco.ant_v5 import AntEnv

REWARD_KINDS = ("submodular", "modular")


class AntCoverageEnv(gym.Env):
    """Ant-v5 covering a gridded arena (see the module docstring for spaces, rewards and episode end).

    Args:
        reward: ``"submodular"`` (newly covered cells) or ``"modular"`` (the block's cells every step).
        horizon: steps per episode before truncation (400).
        grid_size: cells per side of the arena grid (100).
        arena_size: side of the square arena in metres (40), centred on the origin; leaving it terminates.
        block: side of the square block of cells marked around the torso's cell each step (5, odd).
        coverage_scale: factor from cells to reward (0.1).
        ctrl_cost_weight: weight of the control cost ``sum(action**2)`` in the reward (0).
        terminate_when_unhealthy: end the episode when the torso's height leaves ``healthy_z_range``.
        healthy_z_range: Ant-v5's healthy torso heights in metres.
        reset_noise_scale: Ant-v5's reset noise on joint positions and velocities.
        include_cfrc_ext_in_observation: append Ant-v5's 78 contact-force numbers to the observation.
        render_mode: passed to Ant-v5 (``"human"``, ``"rgb_array"``, ``"depth_array"`` or None).
    """

    def __init__(
        self,
        reward: Literal["submodular", "modular"] = "submodular",
        horizon: int = 400,
        grid_size: int = 100,
        arena_size: float = 40.0,
        block: int = 5,
        coverage_scale: float = 0.1,
        ctrl_cost_weight: float = 0.0,
        terminate_when_unhealthy: bool = True,
        healthy_z_range: tuple[float, float] = (0.2, 1.0),
        reset_noise_scale: float = 0.1,
        include_cfrc_ext_in_observation: bool = False,
        render_mode: str | None = None,
    ) -> None:
        if reward not in REWARD_KINDS:
            raise ValueError(f"reward must be one of {REWARD_KINDS}, got {reward!r}; use 'submodular' for the marginal "
                             "gain of the coverage or 'modular' for the block's cells every step.")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1 step, got {horizon}.")
        if grid_size < 1 or arena_size <= 0:
            raise ValueError(f"grid_size must be >= 1 and arena_size > 0, got grid_size={grid_size}, arena_size={arena_size}.")
        if block < 1 or block % 2 == 0:
            raise ValueError(f"block must be a positive odd number of cells (the block is centred on the torso's cell), got {block}.")
        self.reward_kind = reward
        self.horizon = int(horizon)
        self.grid_size = int(grid_size)
        self.arena_size = float(arena_size)
        self.half = self.arena_size / 2
        self.cell = self.arena_size / self.grid_size
        self.block = int(block)
        self.coverage_scale = float(coverage_scale)
        self.ctrl_cost_weight = float(ctrl_cost_weight)
        self.ant = AntEnv(
            exclude_current_positions_from_observation=False,
            include_cfrc_ext_in_observation=include_cfrc_ext_in_observation,
            terminate_when_unhealthy=terminate_when_unhealthy,
            healthy_z_range=healthy_z_range,
            reset_noise_scale=reset_noise_scale,
            render_mode=render_mode,
        )
        self.observation_space = self.ant.observation_space
        self.action_space = self.ant.action_space
        self.metadata = dict(self.ant.metadata)
        self.render_mode = render_mode
        self.covered = np.zeros((self.grid_size, self.grid_size), dtype=bool)  # [row = y cell, column = x cell]
        self.F = 0
        self.t = 0

    # -- the grid ----------------------------------------------------------------------------------------
    def cell_of(self, x: float, y: float) -> tuple[int, int]:
        """(row, column) = (y cell, x cell) of a point; outside the arena the indices leave ``0..grid_size-1``."""
        return int(np.floor((y + self.half) / self.cell)), int(np.floor((x + self.half) / self.cell))

    def block_slices(self, x: float, y: float) -> tuple[slice, slice]:
        """The rows and columns of the block centred on the cell of ``(x, y)``, clipped to the grid."""
        r, c = self.cell_of(x, y)
        h = self.block // 2
        n = self.grid_size
        return slice(min(max(r - h, 0), n), min(max(r + h + 1, 0), n)), slice(min(max(c - h, 0), n), min(max(c + h + 1, 0), n))

    def mark(self, x: float, y: float) -> tuple[int, int]:
        """Mark the block around ``(x, y)``; returns (newly covered cells, block cells inside the grid)."""
        rows, cols = self.block_slices(x, y)
        patch = self.covered[rows, cols]
        new = int(patch.size - np.count_nonzero(patch))
        self.covered[rows, cols] = True
        self.F += new
        return new, int(patch.size)

    # -- Gymnasium API -----------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        obs, ant_info = self.ant.reset(seed=seed, options=options)
        self.covered[:] = False
        self.F = 0
        self.t = 0
        info = {"F": 0, "x_position": float(obs[0]), "y_position": float(obs[1])}
        return obs, info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.asarray(action, dtype=np.float64)
        obs, _, unhealthy, _, ant_info = self.ant.step(action)
        x, y = float(self.ant.data.qpos[0]), float(self.ant.data.qpos[1])
        new, in_block = self.mark(x, y)
        self.t += 1
        cells = new if self.reward_kind == "submodular" else in_block
        reward_coverage = self.coverage_scale * cells
        reward_ctrl = -self.ctrl_cost_weight * float(np.sum(np.square(action))) if self.ctrl_cost_weight else 0.0
        terminated = bool(unhealthy) or abs(x) > self.half or abs(y) > self.half
        truncated = not terminated and self.t >= self.horizon
        info = {
            "F": self.F,
            "new_cells": new,
            "block_cells": in_block,
            "reward_coverage": reward_coverage,
            "reward_ctrl": reward_ctrl,
            "x_position": x,
            "y_position": y,
            "x_velocity": float(ant_info["x_velocity"]),
            "y_velocity": float(ant_info["y_velocity"]),
        }
        if terminated or truncated:
            info["episode_F"] = self.F
        return obs, reward_coverage + reward_ctrl, terminated, truncated, info

    def render(self):
        return self.ant.render()

    def close(self) -> None:
        self.ant.close()
