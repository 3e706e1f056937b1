"""Reference solvers (for labels and baselines) and simple heuristics.

========  ========  ==========================================================================
solver    problems  through
========  ========  ==========================================================================
lkh       tsp atsp  LKH-3 via the ``elkai`` package (distances scaled to integers, x 1e6)
pyvrp     cvrp      PyVRP's hybrid genetic search (``pyvrp`` package; distances x 1e4)
ortools   op        OR-Tools routing with optional visits (prize-collecting, guided local search)
dp        kp        exact dynamic programming over integer weights (weights x 1000, rounded up,
                    so every DP solution is feasible for the real weights)
nn        tsp atsp  nearest neighbour; CVRP: nearest feasible client, back to the depot when none
                    fits
greedy    op kp     OP: best prize per added length that keeps the return feasible; KP: best
                    value / weight ratio
========  ========  ==========================================================================

:func:`solve` runs a solver on every instance of a batch and returns one solution per instance in
the formats of :mod:`rlsuite.envs.cop.problems`.
"""

from __future__ import annotations

import numpy as np
import torch

from rlsuite.envs.cop.problems import check_problem, distance_matrix

SOLVERS = {"lkh": ("tsp", "atsp"), "pyvrp": ("cvrp",), "ortools": ("op",), "dp": ("kp",), "nn": ("tsp", "atsp", "cvrp"),
           "greedy": ("op", "kp")}


def check_solver(problem: str, solver: str) -> None:
    """Raise ``ValueError`` (naming the solvers that fit) unless ``solver`` handles ``problem``."""
    check_problem(problem)
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}.")
    if problem not in SOLVERS[solver]:
        ok = [s for s, ps in SOLVERS.items() if problem in ps]
        raise ValueError(f"solver {solver!r} does not handle {problem}; for {problem} use {', '.join(ok)}.")


def solve(problem: str, inst: dict[str, torch.Tensor], solver: str, time_limit: float = 1.0, seed: int = 0) -> list[list[int]]:
    """Solve every instance of the batch ``inst`` with ``solver``; ``time_limit`` seconds per instance
    (pyvrp, ortools; LKH runs ``max(1, round(10 * time_limit))`` restarts)."""
    check_solver(problem, solver)
    fn = {"lkh": _lkh, "pyvrp": _pyvrp, "ortools": _ortools_op, "dp": _kp_dp, "nn": _nearest_neighbour, "greedy": _greedy}[solver]
    B = next(iter(inst.values())).shape[0]
    one = lambda b: {k: v[b].detach().cpu().double().numpy() for k, v in inst.items()}  # noqa: E731
    return [fn(problem, one(b), time_limit, seed) for b in range(B)]


def _dist(inst: dict[str, np.ndarray]) -> np.ndarray:
    return distance_matrix({k: torch.as_tensor(v)[None] for k, v in inst.items()})[0].numpy()


def _lkh(problem, inst, time_limit, seed):
    import elkai

    d = _dist(inst)
    tour = elkai.solve_int_matrix(np.rint(d * 1e6).astype(np.int64).tolist(), runs=max(1, round(10 * time_limit)))
    tour = [int(x) for x in tour]
    if len(tour) == d.shape[0] + 1:  # some versions close the loop
        tour = tour[:-1]
    k = tour.index(0)
    return tour[k:] + tour[:k]


def _pyvrp(problem, inst, time_limit, seed):
    from pyvrp import Model
    from pyvrp.stop import MaxRuntime

    xy, demand, cap = inst["locs"], inst["demand"], inst["capacity"]
    n = xy.shape[0] - 1
    scale = 1e4
    m = Model()
    m.add_vehicle_type(num_available=n, capacity=int(round(float(cap))))
    locs = [m.add_location(x=float(xy[i, 0]), y=float(xy[i, 1])) for i in range(n + 1)]
    m.add_depot(locs[0])
    for i in range(1, n + 1):
        m.add_client(locs[i], delivery=int(round(float(demand[i]))))
    d = np.rint(_dist(inst) * scale).astype(np.int64)
    for a in range(n + 1):
        for b in range(n + 1):
            if a != b:
                m.add_edge(locs[a], locs[b], distance=int(d[a, b]))
    res = m.solve(stop=MaxRuntime(time_limit), seed=seed, display=False)
    if not res.is_feasible():
        raise RuntimeError("pyvrp found no feasible CVRP solution in the time limit; raise time_limit.")
    out: list[int] = []
    for route in res.best.routes():
        if out:
            out.append(0)
        out += [int(a.idx) + 1 for a in route if _flag(a.is_client)]  # pyvrp numbers clients from 0, we from 1
    return out


def _flag(x) -> bool:
    return bool(x() if callable(x) else x)


def _ortools_op(problem, inst, time_limit, seed):
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    scale = 1e5
    d = np.ceil(_dist(inst) * scale).astype(np.int64)  # rounded up: a route within the scaled budget is within the real one
    n1 = d.shape[0]
    mgr = pywrapcp.RoutingIndexManager(n1, 1, 0)
    routing = pywrapcp.RoutingModel(mgr)
    cb = routing.RegisterTransitCallback(lambda i, j: int(d[mgr.IndexToNode(i), mgr.IndexToNode(j)]))
    routing.SetArcCostEvaluatorOfAllVehicles(cb)
    # the length budget (floor keeps the scaled solution feasible for the real distances)
    routing.AddDimension(cb, 0, int(np.floor(float(inst["max_length"]) * scale)), True, "length")
    big = int(d.sum()) + 1  # a prize is worth more than any distance: maximise prize, then shorten
    for j in range(1, n1):
        routing.AddDisjunction([mgr.NodeToIndex(j)], int(round(float(inst["prize"][j]) * 100)) * big)
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC
    params.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    params.time_limit.FromMilliseconds(max(10, int(time_limit * 1000)))
    sol = routing.SolveWithParameters(params)
    if sol is None:
        return []
    out, idx = [], routing.Start(0)
    while not routing.IsEnd(idx):
        node = mgr.IndexToNode(idx)
        if node != 0:
            out.append(node)
        idx = sol.Value(routing.NextVar(idx))
    return out


def _kp_dp(problem, inst, time_limit, seed):
    w = np.ceil(inst["weight"] * 1000 - 1e-9).astype(np.int64)
    v, cap = inst["value"], int(np.floor(float(inst["capacity"]) * 1000 + 1e-9))
    n = len(w)
    best = np.zeros(cap + 1)
    keep = np.zeros((n, cap + 1), dtype=bool)
    for i in range(n):
        cand = np.full(cap + 1, -np.inf)
        cand[w[i]:] = best[: cap + 1 - w[i]] + v[i]
        keep[i] = cand > best
        best = np.maximum(best, cand)
    out, c = [], cap
    for i in range(n - 1, -1, -1):
        if keep[i, c]:
            out.append(i)
            c -= w[i]
    return sorted(out)


def _nearest_neighbour(problem, inst, time_limit, seed):
    d = _dist(inst)
    if problem in ("tsp", "atsp"):
        n, tour, seen = d.shape[0], [0], np.zeros(d.shape[0], bool)
        seen[0] = True
        for _ in range(n - 1):
            row = np.where(seen, np.inf, d[tour[-1]])
            tour.append(int(row.argmin()))
            seen[tour[-1]] = True
        return tour
    demand, cap = inst["demand"], float(inst["capacity"])
    n1 = d.shape[0]
    seen = np.zeros(n1, bool)
    seen[0] = True
    out, cur, load = [], 0, cap
    while not seen.all():
        row = np.where(seen | (demand > load + 1e-9), np.inf, d[cur])
        if not np.isfinite(row).any():
            out.append(0)
            cur, load = 0, cap
            continue
        cur = int(row.argmin())
        seen[cur] = True
        load -= demand[cur]
        out.append(cur)
    return out


def _greedy(problem, inst, time_limit, seed):
    if problem == "kp":
        order = np.argsort(-inst["value"] / inst["weight"], kind="stable")
        out, room = [], float(inst["capacity"])
        for i in order:
            if inst["weight"][i] <= room + 1e-9:
                out.append(int(i))
                room -= inst["weight"][i]
        return sorted(out)
    d, prize = _dist(inst), inst["prize"]
    budget, cur, out = float(inst["max_length"]), 0, []
    seen = np.zeros(d.shape[0], bool)
    seen[0] = True
    while True:
        ok = ~seen & (d[cur] + d[:, 0] <= budget + 1e-9)
        if not ok.any():
            return out
        ratio = np.where(ok, prize / np.maximum(d[cur], 1e-9), -np.inf)
        j = int(ratio.argmax())
        budget -= d[cur, j]
        seen[j] = True
        out.append(j)
        cur = j
