"""Reference planners for the submodular grid tasks: greedy and beam search on the deterministic grid.

Both plan an open-loop action sequence from the start cell with the task's set function (action noise
is ignored: the plan is for the deterministic grid) and return ``(actions, F)`` where ``F`` is the value
of the planned trajectory's cell set (start cell included), evaluated from scratch.

* :func:`greedy_plan`: myopic, each step the move with the largest marginal gain. The baseline of the
  approximation ratio.
* :func:`beam_plan`: keeps the ``width`` best partial trajectories (by ``F`` so far), merging those that
  reach the same cell with the same visited set; it returns the better of its best trajectory and the
  greedy one, so it is never worse than greedy, and with a width above the number of distinct
  ``(cell, visited set)`` pairs it is exhaustive (the optimum on small grids: an "oracle").

Ties go to the lowest action index, with "stay" (action 0) tried last, so a plan never idles while a
move gains as much.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from rlsuite.envs.submodular.functions import SetFunction, State
from rlsuite.envs.submodular.grid import SubmodularGridVecEnv

#: the order in which actions are tried (ties go to the first): the four moves, then stay.
ACTION_ORDER = (1, 2, 3, 4, 0)


def _planning_env(env: SubmodularGridVecEnv | dict[str, Any] | None, overrides: dict[str, Any]) -> SubmodularGridVecEnv:
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if env is None or isinstance(env, dict):
        kwargs = {**(env or {}), **overrides, "noise": 0.0}
        kwargs.pop("num_envs", None)
        env = SubmodularGridVecEnv(num_envs=1, **kwargs)
    elif overrides:
        raise ValueError(f"pass either an env or env settings, not both (got an env and {sorted(overrides)}).")
    if isinstance(env.start, str):
        raise ValueError("the planners need a fixed start cell; create the env with start=<cell id>, not 'random'.")
    return env


def _select(state: State, index: Tensor) -> State:
    return {k: v.index_select(0, index) if v.dim() else v for k, v in state.items()}


def _plan_value(f: SetFunction, start: int, cells: list[int]) -> float:
    mask = torch.zeros(1, f.n, dtype=torch.bool, device=f.device)
    mask[0, [start, *cells]] = True
    return float(f.value(mask)[0])


def greedy_plan(
    env: SubmodularGridVecEnv | dict[str, Any] | None = None,
    *,
    task: str | None = None,
    instance: int | None = None,
    horizon: int | None = None,
    start: int | str | None = None,
) -> tuple[list[int], float]:
    """Myopic plan: at each of ``horizon`` steps the action whose new cell gains the most.

    Args:
        env: a :class:`SubmodularGridVecEnv` to plan on (its set function, walls, start and horizon), or a
            dict of its keyword arguments (e.g. ``{"task": "items", "height": 5, "width": 5}``), or ``None``.
        task, instance, horizon, start: set (or override in the dict) these env arguments.

    Returns:
        ``(actions, F)``: ``horizon`` actions in ``0..4`` and ``F`` of the visited cells.
    """
    env = _planning_env(env, {"task": task, "instance": instance, "horizon": horizon, "start": start})
    f, order = env.F, torch.tensor(ACTION_ORDER, device=env.device)
    pos = int(env.start)
    state, _ = f.add(f.init_state(1, env.device, max_size=env.horizon + 1), torch.tensor([pos], device=env.device))
    actions, cells = [], []
    for _ in range(env.horizon):
        cand = env.table[pos, order]  # (5,)
        new_state, gains = f.add(_select(state, torch.zeros(5, dtype=torch.long, device=env.device)), cand, inplace=True)
        k = int(torch.argmax(gains))  # the first of the largest
        state = _select(new_state, torch.tensor([k], device=env.device))
        pos = int(cand[k])
        actions.append(ACTION_ORDER[k])
        cells.append(pos)
    return actions, _plan_value(f, int(env.start), cells)


def beam_plan(
    env: SubmodularGridVecEnv | dict[str, Any] | None = None,
    width: int = 64,
    *,
    task: str | None = None,
    instance: int | None = None,
    horizon: int | None = None,
    start: int | str | None = None,
) -> tuple[list[int], float]:
    """Beam search over action sequences, keeping the ``width`` best distinct partial trajectories.

    Args:
        env, task, instance, horizon, start: as in :func:`greedy_plan`.
        width: the number of partial trajectories kept (>= 1; the beam's width, not the grid's); 1 gives
            the greedy plan.

    Returns:
        ``(actions, F)`` of the best trajectory found (never worse than :func:`greedy_plan`'s).
    """
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}.")
    env = _planning_env(env, {"task": task, "instance": instance, "horizon": horizon, "start": start})
    f, dev, n = env.F, env.device, env.n
    order = torch.tensor(ACTION_ORDER, device=dev)
    start = torch.tensor([int(env.start)], device=dev)
    state, score = f.add(f.init_state(1, dev, max_size=env.horizon + 1), start)
    score = score.to(torch.float64)
    pos = start
    visited = torch.zeros(1, n, dtype=torch.bool, device=dev).scatter(1, start[:, None], True)
    actions = torch.zeros(1, 0, dtype=torch.long, device=dev)
    # random 62-bit codes: a candidate's key is the sum of its visited cells' codes plus its cell's code
    g = torch.Generator(device="cpu").manual_seed(0)
    codes = torch.randint(0, 2**62, (2, n), generator=g, dtype=torch.int64).to(dev)
    for _ in range(env.horizon):
        b = pos.shape[0]
        parent = torch.arange(b, device=dev).repeat_interleave(len(ACTION_ORDER))
        cand = env.table[pos][:, order].reshape(-1)  # (5b,) beam-major, actions in ACTION_ORDER
        new_state, gains = f.add(_select(state, parent), cand, inplace=True)
        new_score = score[parent] + gains.to(torch.float64)
        new_visited = visited[parent].scatter(1, cand[:, None], True)
        key = (new_visited.long() * codes[0]).sum(1) + codes[1][cand]
        # best first (stable: ties keep the beam and action order), then the first of each key
        rank = torch.sort(new_score, descending=True, stable=True).indices
        uniq, inverse = torch.unique(key[rank], return_inverse=True)
        first = torch.full((len(uniq),), len(rank), dtype=torch.long, device=dev)
        first = first.scatter_reduce(0, inverse, torch.arange(len(rank), device=dev), reduce="amin")
        keep = rank[torch.sort(first).values[:width]]
        state = _select(new_state, keep)
        score, pos, visited = new_score[keep], cand[keep], new_visited[keep]
        actions = torch.cat([actions[parent[keep]], order[keep % len(ACTION_ORDER)][:, None]], 1)
    best = actions[0].tolist()  # the beam is sorted best first
    cells = _cells(env, best)
    value = _plan_value(f, int(env.start), cells)
    greedy, greedy_value = greedy_plan(env)
    return (greedy, greedy_value) if greedy_value > value else (best, value)


def _cells(env: SubmodularGridVecEnv, actions: list[int]) -> list[int]:
    pos, out = int(env.start), []
    for a in actions:
        pos = int(env.table[pos, a])
        out.append(pos)
    return out
