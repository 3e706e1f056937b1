"""Grid worlds with submodular rewards (SubPO's tasks), batched in torch, with Gymnasium views.

## Description
An agent walks ``horizon`` steps on a ``height x width`` grid from a start cell. The objective is a
monotone submodular function ``F`` of the *set* of visited cells (:mod:`rlsuite.envs.submodular.functions`):
the area covered by a footprint around the path, a density summed over the covered cells, items
collected up to a threshold per type, or the information a Gaussian process gains from looking at the
visited cells. The reward of a step is the **marginal gain** ``F(S + s') - F(S)`` of the new cell ``s'``
given the cells ``S`` visited so far (the start cell included), so an episode's return plus ``F({s0})``
is ``F`` of the whole trajectory. Cell ``c`` is ``(x, y) = (c % width, c // width)``; ``y`` grows
downwards.

Tasks (``task=``; the authors' table; ``instance=`` picks one of the locally generated instances):

| task | grid (h x w) | horizon | F | varies with ``instance`` |
|---|---|---|---|---|
| ``coverage`` | 30 x 30 | 80 | unit weights covered by the 2x2 disc | nothing |
| ``coverage-bimodal`` | 30 x 30 | 80 | ``sigmoid(x y)`` weights, 2x2 disc | nothing |
| ``gp-ipp`` | 30 x 30 | 40 | Matern-5/2 GP sample (lengthscale 4 cells, +3), 2x2 disc | the sample |
| ``biodiversity`` | 30 x 30 | 40 | clustered nest density, 2x2 disc | the nest map |
| ``items`` | 7 x 15 | 40 | 6 item types, ``G = (18,14,13,16,18,14)`` cells, ``D = (3,2,3,4,6,3)`` | item cells |
| ``two-rooms`` | 7 x 14 | 40 | unit weights, 2x2 disc, a wall at ``x = 7`` with a door at ``y = 3`` | nothing |
| ``entropy`` | 30 x 30 | 40 | GP information gain ``1/2 logdet(I + K_SS / 0.01)``, ``K`` a posterior after 5 looks | the looks |

## Action Space
``Discrete(5)``: 0 stay, 1 up (``y - 1``), 2 down (``y + 1``), 3 left (``x - 1``), 4 right (``x + 1``).
A move off the grid or into a wall stays. With probability ``noise`` the action is replaced by a
uniformly random one (the env's own generator, seeded by ``reset(seed=...)``); ``info["executed_action"]``
is the action that was carried out.

## Observation Space
``observation="markov"``: ``Box(0, 1, (3,), float32)`` = ``(x / (w - 1), y / (h - 1), t / horizon)``.
``observation="history"``: ``Box(-1, 1, (2 (horizon + 1) + 1,), float32)``: the ``horizon + 1``
positions of the episode so far, normalised like above, ``-1`` for the steps still to come, flattened
``(x0, y0, x1, y1, ...)``, then ``t / horizon``.

## Rewards
The marginal gain of the new cell (float32, ``>= 0``; 0 on a revisit). ``info``: ``modular_reward`` =
``F({new cell})`` (the history-blind reward ModPO uses: it counts revisits), ``F`` = ``F`` of the trajectory
so far (start cell included), ``F_start`` = ``F({s0})`` of the episode the returned observation belongs
to, ``cell`` = the new cell. At the last step of an episode also ``episode_F`` (``F`` of the whole
trajectory) and ``F_max`` (``env.normaliser``: ``2 (horizon + 1)`` on the unit-weight coverage tasks, the
authors' ``MAX_Ret``, which a path can exceed slightly: the 2x2 disc covers at most ``4 + 2 horizon``; else :func:`upper_bound`: the smaller of ``F`` of every cell and the sum of the
``horizon + 1`` largest singleton values), both ``(B,)``.

## Starting State
``start`` (a cell id; default the authors' cell 34, or 0 where 34 is off the grid or a wall) or
``start="random"`` (a uniform free cell per episode). The start cell is visited: ``F({s0})`` is in the
reset's ``info["F"]``.

## Episode End
Never terminates; truncated after ``horizon`` steps. All envs of a batch run in lockstep (same
start time and horizon), so every row ends on the same step; the batched env resets in that step
(``info["final_obs"]``).

## Arguments
``num_envs``, ``device``, ``task``, ``instance`` (>= 0; 0..9 are the benchmark instances), ``horizon``,
``start``, ``noise`` (in ``[0, 1]``), ``observation``, ``walls`` (bool ``(h, w)`` or a list of cell ids;
replaces the task's walls), ``height`` / ``width`` (override the task's grid; the instance is generated
for that size).

## Version History
* v0: initial version.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from rlsuite.core.seeding import resolve_device
from rlsuite.core.vec_env import TorchVecEnv
from rlsuite.envs.submodular.functions import (
    GPInformationGain,
    ItemCollection,
    SetFunction,
    WeightedCoverage,
    bimodal_weights,
    disc_footprint,
    gp_density,
    gp_posterior_kernel,
    grid_xy,
    matern52_kernel,
    nest_density,
)

#: ``(dx, dy)`` of the 5 actions: stay, up, down, left, right.
MOVES = ((0, 0), (0, -1), (0, 1), (-1, 0), (1, 0))
OBSERVATIONS = ("markov", "history")
#: the authors' start cell
DEFAULT_START = 34
ITEM_COUNTS = (18, 14, 13, 16, 18, 14)
ITEM_THRESHOLDS = (3.0, 2.0, 3.0, 4.0, 6.0, 3.0)


@dataclass(frozen=True)
class TaskSpec:
    """A task's defaults (see the module docstring's table)."""

    height: int
    width: int
    horizon: int
    #: whether ``env.normaliser`` is the authors' ``MAX_Ret = 2 (horizon + 1)`` (unit-weight coverage)
    coverage_normaliser: bool = False


TASKS: dict[str, TaskSpec] = {
    "coverage": TaskSpec(30, 30, 80, coverage_normaliser=True),
    "coverage-bimodal": TaskSpec(30, 30, 80, coverage_normaliser=True),
    "gp-ipp": TaskSpec(30, 30, 40),
    "biodiversity": TaskSpec(30, 30, 40),
    "items": TaskSpec(7, 15, 40),
    "two-rooms": TaskSpec(7, 14, 40, coverage_normaliser=True),
    "entropy": TaskSpec(30, 30, 40),
}


def instance_seed(task: str, instance: int) -> int:
    """The fixed seed of ``(task, instance)`` (stable across Python runs and machines)."""
    return zlib.crc32(f"rlsuite.submodular/{task}/{instance}".encode()) & 0x7FFFFFFF


def two_rooms_walls(height: int, width: int) -> Tensor:
    """bool ``(h, w)``: a wall down column ``w // 2`` with a one-cell door at row ``h // 2``."""
    walls = torch.zeros(height, width, dtype=torch.bool)
    walls[:, width // 2] = True
    walls[height // 2, width // 2] = False
    return walls


def make_task(task: str, instance: int = 0, height: int | None = None, width: int | None = None) -> tuple[SetFunction, Tensor]:
    """Build the set function and the default walls (bool ``(h, w)``) of ``task``'s ``instance`` (on the CPU)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; allowed: {sorted(TASKS)}.")
    if instance < 0:
        raise ValueError(f"instance must be >= 0 (0..9 are the benchmark instances), got {instance}.")
    spec = TASKS[task]
    h, w = height or spec.height, width or spec.width
    n = h * w
    seed = instance_seed(task, instance)
    walls = torch.zeros(h, w, dtype=torch.bool)
    disc = disc_footprint(h, w, "2x2")
    if task == "coverage":
        f: SetFunction = WeightedCoverage(torch.ones(n), disc)
    elif task == "coverage-bimodal":
        f = WeightedCoverage(bimodal_weights(h, w), disc)
    elif task == "gp-ipp":
        f = WeightedCoverage(gp_density(h, w, lengthscale=4.0, seed=seed), disc)
    elif task == "biodiversity":
        f = WeightedCoverage(nest_density(h, w, seed=seed), disc)
    elif task == "items":
        g = torch.Generator().manual_seed(seed)
        k = len(ITEM_COUNTS)
        items = torch.full((k, max(ITEM_COUNTS)), -1, dtype=torch.long)
        for i, count in enumerate(ITEM_COUNTS):
            cells = torch.randperm(n, generator=g)[: min(count, n)]
            items[i, : len(cells)] = cells
        f = ItemCollection(items, ITEM_THRESHOLDS, n)
    elif task == "two-rooms":
        walls = two_rooms_walls(h, w)
        f = WeightedCoverage((~walls).reshape(-1).float(), disc)
    else:  # entropy
        g = torch.Generator().manual_seed(seed)
        looks = torch.randperm(n, generator=g)[:5]
        kernel = gp_posterior_kernel(matern52_kernel(grid_xy(h, w), lengthscale=3.0), looks, noise=0.01)
        f = GPInformationGain(kernel, noise=0.01)
    return f, walls


def _as_walls(walls: Any, height: int, width: int) -> Tensor:
    """bool ``(h, w)`` from a bool ``(h, w)`` array / tensor or a list of wall cell ids."""
    arr = np.asarray(walls.cpu() if isinstance(walls, torch.Tensor) else walls)
    if arr.dtype == bool:
        if arr.shape != (height, width):
            raise ValueError(f"a wall mask must have shape ({height}, {width}), got {arr.shape}.")
        return torch.as_tensor(arr)
    cells = torch.as_tensor(arr.astype(np.int64)).reshape(-1)
    if cells.numel() and ((cells < 0).any() or (cells >= height * width).any()):
        raise ValueError(f"wall cells must be in [0, {height * width}), got {cells.tolist()}.")
    out = torch.zeros(height * width, dtype=torch.bool)
    out[cells] = True
    return out.reshape(height, width)


def transition_table(walls: Tensor) -> Tensor:
    """long ``(N, 5)``: the cell reached from each cell by each action (moves off-grid or into walls stay)."""
    h, w = walls.shape
    xy = grid_xy(h, w).long()
    moves = torch.tensor(MOVES, dtype=torch.long)
    tgt = xy[:, None, :] + moves[None]  # (N, 5, 2)
    inside = (tgt[..., 0] >= 0) & (tgt[..., 0] < w) & (tgt[..., 1] >= 0) & (tgt[..., 1] < h)
    cell = tgt[..., 1].clamp(0, h - 1) * w + tgt[..., 0].clamp(0, w - 1)
    ok = inside & ~walls.reshape(-1)[cell]
    return torch.where(ok, cell, torch.arange(h * w)[:, None].expand_as(cell))


def upper_bound(f: SetFunction, size: int) -> float:
    """An upper bound of ``F(S)`` over sets of at most ``size`` cells: the smaller of ``F`` of every cell and
    the sum of the ``size`` largest singleton values (a submodular ``F`` with ``F(empty) = 0`` is subadditive)."""
    top = f.singletons().double().sort(descending=True).values[:size].sum()
    return min(f.total(), float(top))


class SubmodularGridVecEnv(TorchVecEnv):
    """``num_envs`` submodular grid walks on ``device`` (see the module docstring)."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1,
        device: torch.device | str = "cpu",
        task: str = "coverage",
        instance: int = 0,
        horizon: int | None = None,
        start: int | str | None = None,
        noise: float = 0.0,
        observation: str = "markov",
        walls: Any = None,
        height: int | None = None,
        width: int | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
        if not 0.0 <= noise <= 1.0:
            raise ValueError(f"noise is the probability of a random action, in [0, 1]; got {noise}.")
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, got {observation!r}.")
        spec = TASKS.get(task)
        f, task_walls = make_task(task, instance, height, width)  # refuses unknown tasks
        assert spec is not None
        self.height, self.width = task_walls.shape
        self.n = self.height * self.width
        self.horizon = int(horizon if horizon is not None else spec.horizon)
        if self.horizon < 1:
            raise ValueError(f"horizon must be >= 1 step, got {self.horizon}.")
        self.num_envs, self.task, self.instance = num_envs, task, int(instance)
        self.noise, self.observation = float(noise), observation
        self.device = resolve_device(device)
        wall_mask = task_walls if walls is None else _as_walls(walls, self.height, self.width)
        free = (~wall_mask).reshape(-1)
        if not free.any():
            raise ValueError("every cell is a wall; leave at least one free cell.")
        if start is None:
            start = DEFAULT_START if DEFAULT_START < self.n and bool(free[DEFAULT_START]) else int(free.nonzero()[0])
        if isinstance(start, str):
            if start != "random":
                raise ValueError(f"start must be a cell id, None (the default cell) or 'random', got {start!r}.")
        elif not (0 <= int(start) < self.n) or not bool(free[int(start)]):
            raise ValueError(f"start cell {start} is off the {self.height}x{self.width} grid or a wall; pick a free cell in [0, {self.n}).")
        self.start = start if isinstance(start, str) else int(start)
        self.walls = wall_mask.to(self.device)
        self._free_cells = free.nonzero().squeeze(1).to(self.device)
        self.F = f.to(self.device)
        self.table = transition_table(wall_mask).to(self.device)
        self.singleton_values = self.F.singletons().to(torch.float32)
        self.xy = grid_xy(self.height, self.width, self.device).to(torch.float32)
        self.xy_normalised = self.xy / torch.tensor([max(self.width - 1, 1), max(self.height - 1, 1)], device=self.device)
        self.normaliser = 2.0 * (self.horizon + 1) if spec.coverage_normaliser else upper_bound(self.F, self.horizon + 1)

        self.single_action_space = gym.spaces.Discrete(len(MOVES))
        if observation == "markov":
            self.single_observation_space = gym.spaces.Box(0.0, 1.0, (3,), np.float32)
        else:
            self.single_observation_space = gym.spaces.Box(-1.0, 1.0, (2 * (self.horizon + 1) + 1,), np.float32)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)

        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(int(np.random.SeedSequence().generate_state(1)[0]))
        self._start_episode()
        self._init_episode_stats()

    # -- internals -------------------------------------------------------------------------------------
    def _start_cells(self) -> Tensor:
        if self.start == "random":
            k = torch.randint(0, len(self._free_cells), (self.num_envs,), generator=self._gen, device=self.device)
            return self._free_cells[k]
        return torch.full((self.num_envs,), self.start, dtype=torch.long, device=self.device)

    def _start_episode(self) -> None:
        """Every row at a fresh start cell, ``t = 0``, the start cell in the set."""
        self.pos = self._start_cells()
        self.t = 0
        self.path = torch.full((self.num_envs, self.horizon + 1), -1, dtype=torch.long, device=self.device)
        self.path[:, 0] = self.pos
        empty = self.F.init_state(self.num_envs, self.device, max_size=self.horizon + 1)
        self.f_state, gain = self.F.add(empty, self.pos, inplace=True)
        self.f_start = gain
        self.f_value = gain.to(torch.float64)

    def _obs(self) -> Tensor:
        tt = torch.full((self.num_envs, 1), self.t / self.horizon, dtype=torch.float32, device=self.device)
        if self.observation == "markov":
            return torch.cat([self.xy_normalised[self.pos], tt], 1)
        seen = self.path >= 0
        pts = torch.where(seen[..., None], self.xy_normalised[self.path.clamp_min(0)], torch.full_like(self.xy_normalised[:1], -1.0))
        return torch.cat([pts.reshape(self.num_envs, -1), tt], 1)

    # -- Gymnasium API ---------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Tensor, dict]:
        if seed is not None:
            self._gen.manual_seed(int(seed))
        self._start_episode()
        self._init_episode_stats()
        return self._obs(), {"F": self.f_value.to(torch.float32), "F_start": self.f_start.clone(), "cell": self.pos.clone()}

    def step(self, action: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, dict]:
        a = torch.as_tensor(action, device=self.device).reshape(self.num_envs).long()
        if a.device.type == "cpu" and ((a < 0) | (a >= len(MOVES))).any():  # (no host sync on accelerators)
            raise ValueError(f"actions must be in [0, {len(MOVES)}), got {a.tolist()}.")
        # random draws every step whatever the noise, so that the stream does not depend on it
        u = torch.rand(self.num_envs, generator=self._gen, device=self.device)
        rand_a = torch.randint(0, len(MOVES), (self.num_envs,), generator=self._gen, device=self.device)
        a = torch.where(u < self.noise, rand_a, a)
        self.pos = self.table[self.pos, a]
        self.t += 1
        self.path[:, self.t] = self.pos
        self.f_state, reward = self.F.add(self.f_state, self.pos, inplace=True)
        self.f_value = self.f_value + reward.to(torch.float64)
        info: dict[str, Any] = {
            "modular_reward": self.singleton_values[self.pos],
            "F": self.f_value.to(torch.float32),
            "cell": self.pos.clone(),
            "executed_action": a,
        }
        done = self.t >= self.horizon
        terminated = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        truncated = torch.full_like(terminated, done)
        final_obs = self._obs()
        if done:
            info["episode_F"] = info["F"]
            info["F_max"] = torch.full((self.num_envs,), float(self.normaliser), device=self.device)
            self._start_episode()
        info["F_start"] = self.f_start.clone()
        info["final_obs"] = final_obs
        info["_final_obs"] = truncated
        self._track_episodes(reward, truncated, info)
        return self._obs(), reward, terminated, truncated, info

    # -- exact resume ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "pos": self.pos.clone(),
            "t": int(self.t),
            "path": self.path.clone(),
            "f_state": {k: v.clone() for k, v in self.f_state.items()},
            "f_start": self.f_start.clone(),
            "f_value": self.f_value.clone(),
            "generator": self._gen.get_state(),
            **self._episode_stats_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["path"].shape != self.path.shape:
            raise ValueError(f"the saved env state has path shape {tuple(state['path'].shape)}, this env "
                             f"{tuple(self.path.shape)} (num_envs, horizon + 1); create the env with the same settings.")
        self.pos = state["pos"].to(self.device, torch.long).clone()
        self.t = int(state["t"])
        self.path = state["path"].to(self.device, torch.long).clone()
        self.f_state = {k: v.to(self.device).clone() for k, v in state["f_state"].items()}
        self.f_start = state["f_start"].to(self.device, torch.float32).clone()
        self.f_value = state["f_value"].to(self.device, torch.float64).clone()
        self._gen.set_state(state["generator"].cpu().to(torch.uint8))
        self._load_episode_stats_state(state)

    # -- helpers for planners and tests ----------------------------------------------------------------
    def visited_mask(self) -> Tensor:
        """bool ``(B, N)``: the cells visited in the current episodes."""
        m = torch.zeros(self.num_envs, self.n + 1, dtype=torch.bool, device=self.device)
        return m.scatter(1, torch.where(self.path >= 0, self.path, self.n), True)[:, : self.n]


class SubmodularGridEnv(gym.Env):
    """Single-env Gymnasium view of :class:`SubmodularGridVecEnv` (NumPy out, the same ``info`` keys as
    Python floats / ints). Takes the same keyword arguments (without ``num_envs`` and ``device``)."""

    metadata = {"render_modes": []}

    def __init__(self, **kwargs: Any) -> None:
        self._vec = SubmodularGridVecEnv(num_envs=1, device="cpu", **kwargs)
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space
        self.F = self._vec.F
        self.normaliser = self._vec.normaliser

    @staticmethod
    def _info(info: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in info.items():
            if k in ("final_obs", "_final_obs", "episode_return", "episode_length"):
                continue
            out[k] = float(v[0]) if v.dtype.is_floating_point else int(v[0])
        return out

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        obs, info = self._vec.reset(seed=seed)
        return obs[0].numpy(), self._info(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        _, reward, terminated, truncated, info = self._vec.step(torch.as_tensor(np.asarray(action, dtype=np.int64)).reshape(1))
        # at the episode's end the batched env already started the next one: return the final observation
        return info["final_obs"][0].numpy(), float(reward[0]), bool(terminated[0]), bool(truncated[0]), self._info(info)
