"""Batched constructive environments for TSP, ATSP, CVRP, OP and KP, with action masks and the
bisimulation-quotiented (BQ) state views of BQ-NCO.

Generator (:func:`rlsuite.envs.cop.problems.generate`), environment (this module) and policy
(:mod:`rlsuite.agents.bq_nco`) are kept apart: the env only knows instances and partial solutions.

Actions, one per instance and step (``(B,)`` long tensors; finished instances ignore theirs):

* TSP / ATSP: the next node ``0..N-1``. Instances are *path* problems from ``origin`` to
  ``destination`` (a TSP tour is the path from node ``start`` back to itself).
* CVRP: ``j`` in ``0..N-1`` goes directly to client ``j + 1``; ``N + j`` goes via the depot (refill)
  to client ``j + 1``. The direct move is masked when the client's demand exceeds the remaining load.
* OP: the next node ``1..N``, or ``0`` to return to the depot and stop; nodes that cannot be reached
  and still return within the budget are masked.
* KP: the next item ``0..N-1``; items heavier than the remaining capacity are masked; the episode ends
  when nothing fits.

BQ views (``bq_view()``) describe the *tail sub-instance* that remains, the only thing an optimal
policy needs (BQ-NCO, Prop. 2): rows ``[origin, remaining nodes in index order..., destination]``
(TSP, ATSP, CVRP, OP) with features ``xy`` (TSP), ``xy, demand / C, remaining load / C`` (CVRP),
``xy, prize, remaining budget`` (OP), the sub-matrix of distances (ATSP); for KP the remaining items
``weight, value, remaining capacity``. ``view["index"]`` maps rows back to node indices and
``view["mask"]`` marks rows that are padding (OP, where the remaining sets differ in size).

Gymnasium view (:class:`COPGymEnv`, registered as ``rlsuite/TSP-v0``, ``rlsuite/ATSP-v0``,
``rlsuite/CVRP-v0``, ``rlsuite/OP-v0``, ``rlsuite/KP-v0``): one random instance of ``size`` nodes per
episode, ``Discrete(A)`` actions as above, the allowed ones in ``info["action_mask"]`` (bool ``(A,)``,
the rows of :meth:`COPEnv.action_mask`), a ``Dict`` observation of the instance and the partial
solution (flattened by :mod:`rlsuite.core.spaces` when it goes through ``make_vec_env``):

=====  =========================================================================================
TSP    ``locs (N, 2)``, ``visited`` MultiBinary(N), ``current`` Discrete(N); the tour starts and
       ends at node 0
ATSP   ``dist (N, N)``, ``visited``, ``current``
CVRP   ``locs (N+1, 2)``, ``demand (N+1,)`` / capacity, ``load (1,)`` / capacity, ``visited``
       MultiBinary(N+1), ``current`` Discrete(N+1)
OP     ``locs (N+1, 2)``, ``prize (N+1,)``, ``budget (1,)`` length left, ``visited``, ``current``
KP     ``weight (N,)``, ``value (N,)``, ``room (1,)`` capacity left, ``taken`` MultiBinary(N)
=====  =========================================================================================

Rewards are the objective's increments, so an episode's return is ``-cost`` (:func:`problems.cost`):
minus each travelled distance (TSP / ATSP / CVRP, the closing edge back to the start or depot added on
the last step), the prize of each visited node (OP), the value of each item (KP). A forbidden action is
not applied: the state stays, the reward is 0 and ``info["invalid_action"]`` is True (so env checkers,
which sample without masks, run); the episode is truncated after ``2 A`` steps, more than any valid
episode takes. In a terminal state the mask allows nothing.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlsuite.envs.cop.problems import (
    OP_MAX_LENGTH,
    check_problem,
    distance_matrix,
    generate,
    instance_size,
    kp_capacity,
    nearest_setting,
)


class COPEnv:
    """One batch of instances of one problem; see the module docstring."""

    def __init__(self, problem: str, instances: dict[str, torch.Tensor], start: torch.Tensor | int = 0,
                 destination: torch.Tensor | int | None = None, load: torch.Tensor | None = None) -> None:
        """``start`` / ``destination`` (TSP, ATSP): path end points (a closed tour when they are equal,
        the default). ``load`` (CVRP): the load left at the start (default: a full vehicle at the depot)."""
        self.problem = check_problem(problem)
        self.inst = instances
        ref = next(iter(instances.values()))
        self.device, self.B = ref.device, ref.shape[0]
        self.n = instance_size(problem, instances)
        self.dist = distance_matrix(instances) if problem != "kp" else None
        ar = torch.arange(self.B, device=self.device)
        self._ar = ar
        full = lambda v: (torch.full((self.B,), v, dtype=torch.long, device=self.device) if isinstance(v, int)  # noqa: E731
                          else v.to(self.device).long())
        if problem in ("tsp", "atsp"):
            self.origin = full(start)
            self.destination = self.origin.clone() if destination is None else full(destination)
            self.visited = torch.zeros(self.B, self.n, dtype=torch.bool, device=self.device)
            self.visited[ar, self.origin] = True
            self.visited[ar, self.destination] = True
            self.current = self.origin.clone()
        elif problem in ("cvrp", "op"):
            self.current = torch.zeros(self.B, dtype=torch.long, device=self.device)
            self.visited = torch.zeros(self.B, self.n + 1, dtype=torch.bool, device=self.device)
            self.visited[:, 0] = True
            if problem == "cvrp":
                cap = instances["capacity"]
                self.load = cap.clone() if load is None else load.to(self.device).clone()
            else:
                self.budget = instances["max_length"].clone()
        else:
            self.taken = torch.zeros(self.B, self.n, dtype=torch.bool, device=self.device)
            self.room = instances["capacity"].clone()
        self.actions: list[torch.Tensor] = []
        self.done = torch.zeros(self.B, dtype=torch.bool, device=self.device)
        self._update_done()

    # --- masks and steps
    def action_mask(self) -> torch.Tensor:
        """``(B, A)`` bool: allowed actions (A = N, 2N for CVRP, N + 1 for OP)."""
        p = self.problem
        if p in ("tsp", "atsp"):
            m = ~self.visited
            # the destination may only be entered last: it is marked visited, so a path ends by itself
            return m
        if p == "cvrp":
            free = ~self.visited[:, 1:]
            demand = self.inst["demand"][:, 1:]
            direct = free & (demand <= self.load[:, None] + 1e-6)
            return torch.cat([direct, free], dim=1)
        if p == "op":
            d = self.dist
            go = d[self._ar, self.current]  # (B, N + 1)
            back = d[:, :, 0]
            ok = ~self.visited & (go + back <= self.budget[:, None] + 1e-6)
            ok[:, 0] = True
            return ok
        return ~self.taken & (self.inst["weight"] <= self.room[:, None] + 1e-6)

    def _update_done(self) -> None:
        p = self.problem
        if p in ("tsp", "atsp", "cvrp"):
            self.done = self.visited.all(dim=1)
        elif p == "kp":
            self.done = ~self.action_mask().any(dim=1)

    def step(self, action: torch.Tensor) -> torch.Tensor:
        """Apply ``action (B,)``; returns ``done (B,)``. Finished instances are left unchanged."""
        a = action.to(self.device).long()
        live = ~self.done
        mask = self.action_mask()
        if not bool(mask[self._ar[live], a[live]].all()):
            bad = int(self._ar[live][~mask[self._ar[live], a[live]]][0])
            raise ValueError(f"instance {bad}: action {int(a[bad])} is masked (not allowed) in this state.")
        p, ar = self.problem, self._ar[live]
        a_live = a[live]
        if p in ("tsp", "atsp"):
            self.visited[ar, a_live] = True
            self.current[ar] = a_live
        elif p == "cvrp":
            via = a_live >= self.n
            node = a_live % self.n + 1
            self.load[ar] = torch.where(via, self.inst["capacity"][ar], self.load[ar]) - self.inst["demand"][ar, node]
            self.visited[ar, node] = True
            self.current[ar] = node
        elif p == "op":
            self.budget[ar] -= self.dist[ar, self.current[ar], a_live]
            self.visited[ar, a_live] = True
            self.current[ar] = a_live
            self.done[ar] = a_live == 0
        else:
            self.taken[ar, a_live] = True
            self.room[ar] -= self.inst["weight"][ar, a_live]
        self.actions.append(torch.where(live, a, torch.full_like(a, -1)))
        self._update_done()
        return self.done

    # --- solutions
    def solutions(self) -> list[list[int]]:
        """The solutions built so far, in the formats of :mod:`rlsuite.envs.cop.problems`."""
        acts = torch.stack(self.actions, 1).tolist() if self.actions else [[] for _ in range(self.B)]
        out = []
        for b in range(self.B):
            seq = [x for x in acts[b] if x >= 0]
            if self.problem in ("tsp", "atsp"):
                o, d = int(self.origin[b]), int(self.destination[b])
                out.append([o] + seq + ([] if o == d else [d]))
            elif self.problem == "cvrp":
                s: list[int] = []
                for x in seq:
                    if x >= self.n and s:
                        s.append(0)
                    s.append(x % self.n + 1)
                out.append(s)
            elif self.problem == "op":
                out.append([x for x in seq if x != 0])
            else:
                out.append(seq)
        return out

    # --- reordering (beam search)
    def index_select(self, idx: torch.Tensor) -> COPEnv:
        """A new env whose instance ``i`` is this env's instance ``idx[i]`` with its partial solution."""
        new = object.__new__(COPEnv)
        for k, v in self.__dict__.items():
            if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == self.B and k != "_ar":
                setattr(new, k, v[idx].clone())
            elif k == "inst":
                new.inst = {kk: vv[idx] for kk, vv in v.items()}
            elif k == "actions":
                new.actions = [a[idx].clone() for a in v]
            else:
                setattr(new, k, v)
        new.B = int(idx.shape[0])
        new._ar = torch.arange(new.B, device=self.device)
        return new

    # --- BQ views
    def view_mask(self, view: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(B, R, K)`` bool: which (row, choice) of ``view`` are allowed actions (K = 2 for CVRP:
        direct, via the depot; 1 otherwise). Origin, destination and padding rows are never allowed."""
        mask = self.action_mask()
        idx = view["index"]
        if self.problem == "cvrp":
            node = (idx - 1).clamp(min=0)
            m = torch.stack([mask[:, : self.n].gather(1, node), mask[:, self.n :].gather(1, node)], dim=-1)
        else:
            m = mask.gather(1, idx)[..., None]
        m = m & ~view["pad"][..., None]
        if self.problem != "kp":
            m[:, 0] = False
            m[:, -1] = False
        if self.problem == "op":  # the depot row is the 'return and stop' action
            m[:, -1, 0] = mask[:, 0]
        return m

    def view_action(self, view: dict[str, torch.Tensor], row: torch.Tensor, choice: torch.Tensor) -> torch.Tensor:
        """The env action ``(B,)`` for ``row`` of ``view`` and ``choice`` (CVRP: 0 direct, 1 via the depot)."""
        node = view["index"].gather(1, row[:, None]).squeeze(1)
        if self.problem == "cvrp":
            return node - 1 + self.n * choice
        return node

    def bq_view(self) -> dict[str, torch.Tensor]:
        """The tail sub-instance (see the module docstring): ``feats (B, R, F)`` (ATSP: ``dist (B, R, R)``),
        ``index (B, R)`` node (item) indices, ``pad (B, R)`` True on padding rows."""
        p = self.problem
        if p == "kp":
            rem = ~self.taken
            idx, pad = _gather_rows(rem)
            w, v = self.inst["weight"].gather(1, idx), self.inst["value"].gather(1, idx)
            feats = torch.stack([w, v, self.room[:, None].expand_as(w)], dim=-1)
            return {"feats": feats, "index": idx, "pad": pad}
        if p in ("tsp", "atsp"):
            rem = ~self.visited
            start, end = self.current, self.destination
        else:
            rem = ~self.visited
            rem[:, 0] = False
            start, end = self.current, torch.zeros_like(self.current)
        mid, pad_mid = _gather_rows(rem)
        idx = torch.cat([start[:, None], mid, end[:, None]], dim=1)
        pad = torch.cat([torch.zeros_like(pad_mid[:, :1]), pad_mid, torch.zeros_like(pad_mid[:, :1])], dim=1)
        if p == "atsp":
            sub = self.dist.gather(1, idx[:, :, None].expand(-1, -1, self.n)).gather(2, idx[:, None, :].expand(-1, idx.shape[1], -1))
            return {"dist": sub, "index": idx, "pad": pad}
        xy = self.inst["locs"].gather(1, idx[:, :, None].expand(-1, -1, 2))
        if p == "tsp":
            feats = xy
        elif p == "cvrp":
            cap = self.inst["capacity"][:, None]
            dem = self.inst["demand"].gather(1, idx) / cap
            feats = torch.cat([xy, dem[..., None], (self.load[:, None] / cap).expand_as(dem)[..., None]], dim=-1)
        else:
            prize = self.inst["prize"].gather(1, idx)
            feats = torch.cat([xy, prize[..., None], self.budget[:, None, None].expand(-1, idx.shape[1], 1)], dim=-1)
        return {"feats": feats, "index": idx, "pad": pad}


def _gather_rows(keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the True entries of ``keep (B, M)`` in ascending order, left-aligned and padded to the
    largest count (padding index 0, flagged True in the second tensor)."""
    count = keep.sum(1)
    width = int(count.max()) if keep.numel() else 0
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :width]
    pad = torch.arange(width, device=keep.device)[None, :] >= count[:, None]
    return torch.where(pad, torch.zeros_like(order), order), pad


# ----------------------------------------------------------------------------- Gymnasium view


class COPGymEnv(gym.Env):
    """One instance of ``problem`` with ``size`` nodes (clients, items) per episode, as a Gymnasium env
    with ``info["action_mask"]`` (see the module docstring). Built on :class:`COPEnv` with a batch of one."""

    metadata = {"render_modes": []}

    def __init__(self, problem: str = "tsp", size: int = 20) -> None:
        self.problem = check_problem(problem)
        if size < 2:
            raise ValueError(f"size must be >= 2, got {size}.")
        self.size = n = int(size)
        box = lambda high, shape: gym.spaces.Box(0.0, float(high), shape, np.float32)  # noqa: E731
        if problem == "tsp":
            spaces = {"locs": box(1, (n, 2)), "visited": gym.spaces.MultiBinary(n), "current": gym.spaces.Discrete(n)}
            self.n_actions = n
        elif problem == "atsp":
            spaces = {"dist": box(1, (n, n)), "visited": gym.spaces.MultiBinary(n), "current": gym.spaces.Discrete(n)}
            self.n_actions = n
        elif problem == "cvrp":
            spaces = {"locs": box(1, (n + 1, 2)), "demand": box(1, (n + 1,)), "load": box(1, (1,)),
                      "visited": gym.spaces.MultiBinary(n + 1), "current": gym.spaces.Discrete(n + 1)}
            self.n_actions = 2 * n
        elif problem == "op":
            spaces = {"locs": box(1, (n + 1, 2)), "prize": box(1, (n + 1,)), "budget": box(nearest_setting(OP_MAX_LENGTH, n), (1,)),
                      "visited": gym.spaces.MultiBinary(n + 1), "current": gym.spaces.Discrete(n + 1)}
            self.n_actions = n + 1
        else:
            cap = kp_capacity(n)
            spaces = {"weight": box(1, (n,)), "value": box(1, (n,)), "room": box(cap, (1,)), "taken": gym.spaces.MultiBinary(n)}
            self.n_actions = n
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Discrete(self.n_actions)
        self.max_steps = 2 * self.n_actions

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict]:
        super().reset(seed=seed)
        inst = generate(self.problem, 1, self.size, seed=int(self.np_random.integers(0, 2**31 - 1)))
        self.env = COPEnv(self.problem, inst)
        self.instance = inst
        self._steps = 0
        return self._obs(), {"action_mask": self.action_mask()}

    def action_mask(self) -> np.ndarray:
        """``(A,)`` bool: the allowed actions now (none in a terminal state)."""
        if bool(self.env.done[0]):
            return np.zeros(self.n_actions, dtype=bool)
        return self.env.action_mask()[0].cpu().numpy().copy()

    def _obs(self) -> dict[str, Any]:
        e, inst, p = self.env, self.instance, self.problem
        f = lambda t: t[0].cpu().numpy().astype(np.float32)  # noqa: E731
        if p == "kp":
            return {"weight": f(inst["weight"]), "value": f(inst["value"]),
                    "room": np.clip(f(e.room[:, None]), 0.0, self.observation_space["room"].high), "taken": f(e.taken).astype(np.int8)}
        obs: dict[str, Any] = {"visited": f(e.visited).astype(np.int8), "current": np.int64(e.current[0])}
        if p == "atsp":
            obs["dist"] = f(inst["dist"])
        else:
            obs["locs"] = f(inst["locs"])
        if p == "cvrp":
            cap = inst["capacity"][:, None]
            obs["demand"] = f(inst["demand"] / cap)
            obs["load"] = np.clip(f(e.load[:, None] / cap), 0.0, 1.0)
        elif p == "op":
            obs["prize"] = f(inst["prize"])
            obs["budget"] = np.clip(f(e.budget[:, None]), 0.0, self.observation_space["budget"].high)
        return obs

    def _reward(self, a: int) -> float:
        """The objective's increment for the allowed action ``a`` (taken in the current state)."""
        e, p = self.env, self.problem
        if p == "kp":
            return float(self.instance["value"][0, a])
        d = e.dist[0]
        cur = int(e.current[0])
        if p == "op":
            return float(self.instance["prize"][0, a]) if a != 0 else 0.0
        if p == "cvrp":
            node = a % self.size + 1
            return -float(d[cur, node] if a < self.size else d[cur, 0] + d[0, node])
        return -float(d[cur, a])

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict]:
        a = int(np.asarray(action).reshape(()))
        mask = self.action_mask()
        invalid = not (0 <= a < self.n_actions and mask[a])
        reward = 0.0
        if not invalid:
            reward = self._reward(a)
            self.env.step(torch.tensor([a], device=self.env.device))
            if bool(self.env.done[0]) and self.problem in ("tsp", "atsp", "cvrp"):  # close the tour / return to the depot
                last = int(self.env.current[0])
                end = int(self.env.destination[0]) if self.problem != "cvrp" else 0
                reward -= float(self.env.dist[0, last, end])
        self._steps += 1
        terminated = bool(self.env.done[0])
        truncated = not terminated and self._steps >= self.max_steps
        return self._obs(), reward, terminated, truncated, {"action_mask": self.action_mask(), "invalid_action": invalid}

    def solution(self) -> list[int]:
        """The solution built so far (formats of :mod:`rlsuite.envs.cop.problems`)."""
        return self.env.solutions()[0]
