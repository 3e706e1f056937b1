"""Combinatorial problems: instance generators, objectives and solution checks (batched torch).

An instance batch is a dict of tensors with a leading batch dimension ``B``:

=======  ==========================================================================================
TSP      ``locs (B, N, 2)``, uniform in the unit square.
ATSP     ``dist (B, N, N)``, asymmetric, zero diagonal, uniform in [0, 1) then made to satisfy the
         triangle inequality by taking shortest paths (MatNet's generator does the same).
CVRP     ``locs (B, N + 1, 2)`` (row 0 the depot), ``demand (B, N + 1)`` integers U{1..9} (depot 0),
         ``capacity (B,)`` from :data:`CVRP_CAPACITY` (BQ-NCO / Kool et al.: 20 -> 30, 50 -> 40,
         100 -> 50, then 80 / 100 / 250 for 200 / 500 / 1000; RL4CO uses 70 / 100 / 150 there, so
         never mix test sets across the two conventions).
OP       ``locs (B, N + 1, 2)`` (row 0 the depot), ``prize (B, N + 1)`` by distance (Kool et al.'s
         'dist' prizes: ``1 + floor(99 d(0, j) / max_k d(0, k)) / 100``, depot 0), ``max_length (B,)``
         from :data:`OP_MAX_LENGTH` (20 -> 2, 50 -> 3, 100 -> 4, 200 -> 5, 500 -> 6, 1000 -> 7).
KP       ``weight (B, N)``, ``value (B, N)`` uniform in (0, 1], ``capacity (B,)`` from
         :data:`KP_CAPACITY` (12.5 for 50 items, 25 from 100 up, as in Bello et al.).
=======  ==========================================================================================

Solutions: TSP / ATSP a permutation of ``0..N-1`` (the tour closes itself); CVRP a sequence of node
indices in ``1..N`` where 0 marks a return to the depot (every client exactly once, each trip's demand
within capacity); OP a sequence of nodes ``1..N`` visited from the depot and back (within the length
budget); KP a set of item indices (total weight within capacity). ``*_cost`` functions return the
objective (tour length; negative prize / value for OP / KP so that lower is better everywhere);
:func:`validate` raises ``ValueError`` naming the first violation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

PROBLEMS = ("tsp", "atsp", "cvrp", "op", "kp")
CVRP_CAPACITY = {10: 20, 20: 30, 50: 40, 100: 50, 200: 80, 500: 100, 1000: 250}
OP_MAX_LENGTH = {20: 2.0, 50: 3.0, 100: 4.0, 200: 5.0, 500: 6.0, 1000: 7.0}
KP_CAPACITY = {50: 12.5, 100: 25.0}


def nearest_setting(table: dict[int, float], n: int) -> float:
    """The entry of a per-size table (:data:`CVRP_CAPACITY`, :data:`OP_MAX_LENGTH`) for the size nearest ``n``."""
    return table[min(table, key=lambda k: (abs(k - n), k))]


def kp_capacity(n: int) -> float:
    """The knapsack capacity for ``n`` items (:data:`KP_CAPACITY`: 12.5 up to 50 items, 25 above)."""
    return KP_CAPACITY[50] if n <= 50 else KP_CAPACITY[100]


def check_problem(problem: str) -> str:
    if problem not in PROBLEMS:
        raise ValueError(f"unknown problem {problem!r}; choose one of {', '.join(PROBLEMS)}.")
    return problem


def generate(problem: str, batch: int, size: int, seed: int = 0, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """``batch`` random instances of ``size`` nodes (clients for CVRP / OP, items for KP), reproducible
    from ``seed`` (a CPU generator, so the same seed gives the same instances on every device)."""
    check_problem(problem)
    if size < 2 or batch < 1:
        raise ValueError(f"size must be >= 2 and batch >= 1, got size={size}, batch={batch}.")
    g = torch.Generator().manual_seed(seed)
    u = lambda *shape: torch.rand(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    if problem == "tsp":
        out = {"locs": u(batch, size, 2)}
    elif problem == "atsp":
        d = u(batch, size, size)
        d.diagonal(dim1=1, dim2=2).zero_()
        for k in range(size):  # Floyd-Warshall: the triangle inequality holds
            d = torch.minimum(d, d[:, :, k : k + 1] + d[:, k : k + 1, :])
        out = {"dist": d}
    elif problem == "cvrp":
        demand = torch.randint(1, 10, (batch, size + 1), generator=g).to(torch.float64)
        demand[:, 0] = 0
        cap = torch.full((batch,), float(nearest_setting(CVRP_CAPACITY, size)), dtype=torch.float64)
        out = {"locs": u(batch, size + 1, 2), "demand": demand, "capacity": cap}
    elif problem == "op":
        locs = u(batch, size + 1, 2)
        d0 = (locs - locs[:, :1]).norm(dim=-1)
        prize = (1 + torch.floor(99 * d0 / d0.max(dim=1, keepdim=True).values)) / 100
        prize[:, 0] = 0
        out = {"locs": locs, "prize": prize, "max_length": torch.full((batch,), nearest_setting(OP_MAX_LENGTH, size), dtype=torch.float64)}
    else:
        cap = kp_capacity(size)
        out = {"weight": 1 - u(batch, size), "value": 1 - u(batch, size), "capacity": torch.full((batch,), cap, dtype=torch.float64)}
    return {k: v.to(device=device, dtype=torch.float32) for k, v in out.items()}


def instance_size(problem: str, inst: dict[str, torch.Tensor]) -> int:
    """Nodes of a TSP / ATSP, clients of a CVRP / OP, items of a KP."""
    if problem in ("tsp",):
        return inst["locs"].shape[1]
    if problem == "atsp":
        return inst["dist"].shape[1]
    if problem in ("cvrp", "op"):
        return inst["locs"].shape[1] - 1
    return inst["weight"].shape[1]


def distance_matrix(inst: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(B, M, M)`` Euclidean distances (or the ATSP's own matrix)."""
    if "dist" in inst:
        return inst["dist"]
    return torch.cdist(inst["locs"], inst["locs"])


def tour_length(dist: torch.Tensor, tour: torch.Tensor, closed: bool = True) -> torch.Tensor:
    """``(B,)`` length of ``tour (B, L)`` (node indices) under ``dist (B, M, M)``, closing the loop if ``closed``."""
    nxt = tour.roll(-1, dims=1) if closed else tour[:, 1:]
    cur = tour if closed else tour[:, :-1]
    return dist.gather(1, cur.unsqueeze(-1).expand(-1, -1, dist.shape[2])).gather(2, nxt.unsqueeze(-1)).squeeze(-1).sum(1)


def cost(problem: str, inst: dict[str, torch.Tensor], solution: Sequence[Sequence[int]] | torch.Tensor) -> torch.Tensor:
    """``(B,)`` objective of one solution per instance (lower is better for every problem)."""
    check_problem(problem)
    sols = [list(map(int, s)) for s in solution]
    if problem in ("tsp", "atsp") and len({len(s) for s in sols}) == 1:  # whole tours: one batched gather
        return tour_length(distance_matrix(inst), torch.tensor(sols, dtype=torch.long, device=_dev(inst)))
    out = []
    for b, s in enumerate(sols):
        one = {k: v[b : b + 1] for k, v in inst.items()}
        if problem in ("tsp", "atsp"):
            out.append(tour_length(distance_matrix(one), torch.tensor([s], device=_dev(inst)))[0])
        elif problem in ("cvrp", "op"):
            out_path = [0] + s + [0]
            length = tour_length(distance_matrix(one), torch.tensor([out_path], device=_dev(inst)), closed=False)[0]
            out.append(length if problem == "cvrp" else -one["prize"][0, torch.tensor(s, dtype=torch.long, device=_dev(inst))].sum())
        else:
            idx = torch.tensor(s, dtype=torch.long, device=_dev(inst))
            out.append(-one["value"][0, idx].sum())
    return torch.stack(out)


def _dev(inst: dict[str, torch.Tensor]) -> torch.device:
    return next(iter(inst.values())).device


def validate(problem: str, inst: dict[str, torch.Tensor], solution: Sequence[Sequence[int]], tol: float = 1e-6) -> None:
    """Raise ``ValueError`` naming the first instance and rule a solution breaks."""
    check_problem(problem)
    n = instance_size(problem, inst)
    for b, s in enumerate(solution):
        s = [int(x) for x in s]
        if problem in ("tsp", "atsp"):
            if sorted(s) != list(range(n)):
                raise ValueError(f"instance {b}: a {problem} tour must visit every node 0..{n - 1} exactly once, got {s}.")
        elif problem == "cvrp":
            clients = [x for x in s if x != 0]
            if sorted(clients) != list(range(1, n + 1)):
                raise ValueError(f"instance {b}: every client 1..{n} must be visited exactly once (0 = depot), got {s}.")
            load, cap = 0.0, float(inst["capacity"][b])
            for x in s + [0]:
                if x == 0:
                    load = 0.0
                    continue
                load += float(inst["demand"][b, x])
                if load > cap + tol:
                    raise ValueError(f"instance {b}: a trip carries {load:g} > capacity {cap:g} (at client {x}).")
        elif problem == "op":
            if len(set(s)) != len(s) or any(x < 1 or x > n for x in s):
                raise ValueError(f"instance {b}: an OP route visits distinct nodes in 1..{n}, got {s}.")
            one = {k: v[b : b + 1] for k, v in inst.items()}
            length = float(tour_length(distance_matrix(one), torch.tensor([[0] + s + [0]], device=_dev(inst)), closed=False)[0])
            if length > float(inst["max_length"][b]) + tol:
                raise ValueError(f"instance {b}: route length {length:.4f} exceeds the budget {float(inst['max_length'][b]):g}.")
        else:
            if len(set(s)) != len(s) or any(x < 0 or x >= n for x in s):
                raise ValueError(f"instance {b}: a knapsack takes distinct items in 0..{n - 1}, got {s}.")
            w = float(inst["weight"][b, torch.tensor(s, dtype=torch.long)].sum()) if s else 0.0
            if w > float(inst["capacity"][b]) + tol:
                raise ValueError(f"instance {b}: total weight {w:.4f} exceeds the capacity {float(inst['capacity'][b]):g}.")


def euclid_round(d: torch.Tensor) -> torch.Tensor:
    """TSPLIB's EUC_2D: distances rounded to the nearest integer."""
    return torch.floor(d + 0.5)

