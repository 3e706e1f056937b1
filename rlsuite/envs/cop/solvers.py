"""Reference solvers (for labels and baselines) and simple heuristics.

========  ========  ==========================================================================
solver    problems  through
========  ========  ==========================================================================
lkh       tsp atsp  LKH-3 via the ``elkai`` package, in a worker process; integer distances (a
                    TSPLIB file's own) as they are, float ones scaled so that the longest edge
                    is 1e6 (:func:`lkh_weights`)
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

import atexit
import functools
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading

import numpy as np
import torch

from rlsuite.envs.cop.problems import check_problem, distance_matrix

SOLVERS = {"lkh": ("tsp", "atsp"), "pyvrp": ("cvrp",), "ortools": ("op",), "dp": ("kp",), "nn": ("tsp", "atsp", "cvrp"),
           "greedy": ("op", "kp")}


class SolverError(RuntimeError):
    """A reference solver failed (crashed, timed out, or returned no valid solution). The message names
    the solver, the instance and what to try; the calling process is unaffected."""


def check_solver(problem: str, solver: str) -> None:
    """Raise ``ValueError`` (naming the solvers that fit) unless ``solver`` handles ``problem``."""
    check_problem(problem)
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}.")
    if problem not in SOLVERS[solver]:
        ok = [s for s, ps in SOLVERS.items() if problem in ps]
        raise ValueError(f"solver {solver!r} does not handle {problem}; for {problem} use {', '.join(ok)}.")


def solve(problem: str, inst: dict[str, torch.Tensor], solver: str, time_limit: float = 1.0, seed: int = 0,
          timeout: float | None = None) -> list[list[int]]:
    """Solve every instance of the batch ``inst`` with ``solver``; ``time_limit`` seconds per instance
    (pyvrp, ortools; LKH runs ``max(1, round(10 * time_limit))`` restarts). LKH runs in a worker process
    (:func:`run_lkh`); ``timeout`` seconds per LKH call before it is abandoned (None: :func:`lkh_timeout`).
    A solver that crashes, hangs or returns no valid solution raises :class:`SolverError`."""
    check_solver(problem, solver)
    fn = {"lkh": functools.partial(_lkh, timeout=timeout), "pyvrp": _pyvrp, "ortools": _ortools_op, "dp": _kp_dp,
          "nn": _nearest_neighbour, "greedy": _greedy}[solver]
    B = next(iter(inst.values())).shape[0]
    one = lambda b: {k: v[b].detach().cpu().double().numpy() for k, v in inst.items()}  # noqa: E731
    return [fn(problem, one(b), time_limit, seed) for b in range(B)]


def _dist(inst: dict[str, np.ndarray]) -> np.ndarray:
    return distance_matrix({k: torch.as_tensor(v)[None] for k, v in inst.items()})[0].numpy()


# --- LKH-3 through elkai, in a worker process
LKH_PRECISION = 100
"""LKH's default ``PRECISION``: inside LKH an edge costs ``PRECISION * weight + pi_i + pi_j``, a C ``int``."""
LKH_MAX_COST = (2**31 - 1) // 4
"""The largest ``PRECISION * weight`` handed to LKH. LKH-3 refuses explicit weights above
``INT_MAX / 2 / PRECISION`` (its ReadProblem check, which elkai's copy drops: past it LKH aborts on
``Assertion 'Gain % Precision == 0'``); half of that again leaves room for the pi terms. Tour lengths
are 64-bit inside LKH, so the number of nodes does not enter the bound."""
LKH_FLOAT_TARGET = 1_000_000
"""A float instance (generated, unit square or U[0, 1) matrix) is scaled so that its longest edge
becomes this integer: 6 significant digits per edge, and ``100 * 1e6`` is well inside ``LKH_MAX_COST``."""


def lkh_weights(d: np.ndarray) -> tuple[np.ndarray, int, float]:
    """The integer weights ``(n, n)`` int64 handed to LKH for distances ``d (n, n)``, the ``PRECISION``
    to run LKH with, and the scale applied (``weights = rint(scale * d)``).

    Integer-valued ``d`` (a TSPLIB / CVRPLIB file: EUC_2D, CEIL_2D, ATT, GEO or integer EXPLICIT
    weights) is passed as is (scale 1), so that LKH optimises the file's own metric; ``PRECISION`` is
    lowered from 100 only when ``100 * max weight`` would pass :data:`LKH_MAX_COST` (PRECISION 1 takes
    weights up to 536,870,911). Float ``d`` is scaled by ``LKH_FLOAT_TARGET / max(d)``. Raises
    ``ValueError`` on a negative or non-finite weight, or an integer weight above ``LKH_MAX_COST``."""
    d = np.asarray(d, dtype=np.float64)
    if not np.isfinite(d).all() or (d < 0).any():
        raise ValueError("LKH needs finite, non-negative distances; the instance has "
                         f"{int((~np.isfinite(d)).sum())} non-finite and {int((d < 0).sum())} negative entries.")
    top = float(d.max(initial=0.0))
    if np.array_equal(d, np.rint(d)):
        if top > LKH_MAX_COST:
            raise ValueError(f"an edge weight of {top:.0f} is above what LKH can represent ({LKH_MAX_COST}, even at PRECISION 1); "
                             "divide the file's coordinates or weights by a constant.")
        precision = LKH_PRECISION if top * LKH_PRECISION <= LKH_MAX_COST else max(1, int(LKH_MAX_COST // top))
        return d.astype(np.int64), precision, 1.0
    scale = LKH_FLOAT_TARGET / top
    return np.rint(d * scale).astype(np.int64), LKH_PRECISION, scale


def lkh_problem_text(w: np.ndarray) -> str:
    """A TSPLIB problem for LKH: EXPLICIT FULL_MATRIX weights (the only format elkai's LKH reads from a
    string), TYPE TSP when ``w`` is symmetric, else ATSP."""
    n = w.shape[0]
    head = (f"TYPE : {'TSP' if np.array_equal(w, w.T) else 'ATSP'}\nDIMENSION : {n}\nEDGE_WEIGHT_TYPE : EXPLICIT\n"
            "EDGE_WEIGHT_FORMAT : FULL_MATRIX\nEDGE_WEIGHT_SECTION\n")
    return head + "\n".join(" ".join(map(str, r)) for r in w.tolist()) + "\nEOF\n"


def lkh_timeout(n: int, runs: int) -> float:
    """Default seconds before an LKH call is abandoned: ``60 + 30 * runs + 60 * (n / 1000) ** 2``
    (generous: it is there to catch a hung solver, not to bound a normal run)."""
    return 60.0 + 30.0 * runs + 60.0 * (n / 1000) ** 2


def _lkh(problem, inst, time_limit, seed, timeout=None):
    d = _dist(inst)
    n = d.shape[0]
    if n <= 3:  # LKH needs 3 nodes; with 3 there are two tours (one for a symmetric matrix)
        if n == 3 and d[0, 2] + d[2, 1] + d[1, 0] < d[0, 1] + d[1, 2] + d[2, 0]:
            return [0, 2, 1]
        return list(range(n))
    w, precision, _ = lkh_weights(d)
    if not w.any():
        return list(range(n))  # every tour has length 0
    runs = max(1, round(10 * time_limit))
    params = (f"PROBLEM_FILE = :stdin:\nRUNS = {runs}\nSEED = {seed % (2**31 - 2) + 1}\n"
              f"PRECISION = {precision}\nTRACE_LEVEL = 0\n")
    what = f"a {problem.upper()} instance with {n} nodes (largest weight handed to LKH {int(w.max())}, PRECISION {precision})"
    tour = run_lkh(params, lkh_problem_text(w), what, lkh_timeout(n, runs) if timeout is None else timeout)
    tour = [int(x) - 1 for x in tour][:n]  # LKH numbers nodes from 1
    if sorted(tour) != list(range(n)):
        raise SolverError(f"LKH returned {tour[:10]}{'...' if len(tour) > 10 else ''} for {what}, not a tour of all {n} nodes; "
                          "try --solver nn, or report the instance.")
    k = tour.index(0)
    return tour[k:] + tour[:k]


# The worker runs this with ``python -P -c``: one JSON request per line on stdin, one JSON reply per line
# on a copy of stdout (LKH's own prints are sent to stderr, never into the replies). No pickle crosses.
# It calls ``elkai._elkai.solve_problem`` (params text, problem text -> tour): the only elkai entry point that
# takes LKH's PRECISION, RUNS and SEED and a problem as text. It is private to elkai, so pyproject pins
# ``elkai>=2.0,<3`` (checked against 2.0.x); a new major version must be tried here before the bound moves.
_WORKER_SOURCE = r"""
import json, os, sys
reply = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
try:
    from elkai import _elkai
    solve = _elkai.solve_problem
except Exception as e:
    reply.write(json.dumps({"error": f"cannot use elkai ({type(e).__name__}: {e}); install it with pip install 'elkai>=2.0,<3'"}) + "\n")
    reply.flush()
    sys.exit(3)
reply.write(json.dumps({"ready": True}) + "\n")
reply.flush()
for line in sys.stdin:
    req = json.loads(line)
    try:
        out = {"tour": [int(x) for x in solve(req["params"], req["problem"])]}
    except Exception as e:
        out = {"error": f"{type(e).__name__}: {e}"}
    reply.write(json.dumps(out) + "\n")
    reply.flush()
"""


class _WorkerGone(Exception):
    """The worker process ended or stopped answering (``reason`` says how)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LKHWorker:
    """One Python process that runs LKH (elkai) on request, so that an abort inside LKH (a C assertion:
    SIGABRT) or a hang ends that process, never the caller's. Requests and replies are JSON lines."""

    START_TIMEOUT_S = 60.0
    EXIT_WAIT_S = 5.0
    """Seconds to wait for the process to exit once its output has ended (then it is killed)."""
    STDERR_TAIL = 2000
    """Bytes of the worker's stderr (LKH's own output) quoted when a call fails."""

    def __init__(self, source: str | None = None) -> None:
        """Start the process (``source``: the Python code it runs; None: the LKH loop, :data:`_WORKER_SOURCE`).
        Raises ``OSError`` when the process cannot be started, ``_WorkerGone`` when it does not get ready."""
        # LKH's output, truncated before each call (see ``call``); unbuffered, so that every seek, truncate
        # and read goes to the file the worker writes
        self._stderr = tempfile.TemporaryFile(buffering=0)
        try:
            self.proc = subprocess.Popen([sys.executable, "-P", "-c", source or _WORKER_SOURCE], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self._stderr, text=True, encoding="utf-8")
        except BaseException:
            self._stderr.close()
            raise
        self._replies: queue.Queue[str | None] = queue.Queue()
        self._reader: threading.Thread | None = None
        try:
            self._reader = threading.Thread(target=self._read, name="lkh-worker-reader", daemon=True)
            self._reader.start()
            first = self._reply(self.START_TIMEOUT_S)
            if not first.get("ready"):
                raise _WorkerGone(first.get("error", f"unexpected first reply {first!r}"))
        except BaseException:
            self.close(kill=True)  # whatever went wrong, no process or pipe is left behind
            raise

    def _read(self) -> None:
        try:
            for line in self.proc.stdout:
                self._replies.put(line)
        except (OSError, ValueError):  # the pipe was closed under us (close() after a timed-out join)
            pass
        self._replies.put(None)  # end of file: the process ended

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _stderr_tail(self) -> str:
        """The last :data:`STDERR_TAIL` bytes the worker wrote to stderr since the current call began."""
        size = os.fstat(self._stderr.fileno()).st_size
        self._stderr.seek(max(0, size - self.STDERR_TAIL))
        return self._stderr.read().decode("utf-8", "replace").strip()

    def _wait_exit(self) -> int:
        """The exit status of a process whose output has ended: it gets :data:`EXIT_WAIT_S` seconds, then it is killed."""
        try:
            return self.proc.wait(timeout=self.EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def _reply(self, timeout: float) -> dict:
        try:
            line = self._replies.get(timeout=timeout)
        except queue.Empty:
            self.close(kill=True)  # hung: no point asking it to exit
            raise _WorkerGone(f"no answer within {timeout:.3g} s (the worker was stopped)") from None
        if line is None:
            rc = self._wait_exit()
            try:
                how = f"killed by signal {signal.Signals(-rc).name}" if rc < 0 else f"exit status {rc}"
            except ValueError:
                how = f"killed by signal {-rc}"
            tail = self._stderr_tail()
            self.close()
            raise _WorkerGone(f"the worker process ended ({how})" + (f": {tail}" if tail else ""))
        try:
            return json.loads(line)
        except ValueError:
            self.close()
            raise _WorkerGone(f"unreadable reply {line[:200]!r}") from None

    def call(self, params: str, problem: str, timeout: float) -> list[int]:
        """LKH's tour (node numbers from 1) for a TSPLIB ``problem`` text with LKH ``params``. Raises
        ``_WorkerGone`` when the process crashes or passes ``timeout`` seconds, ``RuntimeError`` with
        elkai's message when LKH reports an error (the worker is then restarted: LKH keeps global state).
        The stderr file is emptied first, so it holds this call's output only (a worker that labels a
        whole data set does not grow it without bound) and an error quotes the failing call's output."""
        # the worker's fd 2 shares this file's offset (one open file description): after seek(0) +
        # truncate it writes from the start again
        self._stderr.seek(0)
        self._stderr.truncate()
        try:
            self.proc.stdin.write(json.dumps({"params": params, "problem": problem}) + "\n")
            self.proc.stdin.flush()
        except OSError:
            pass  # the process is gone: _reply reads the end of its output and says how it ended
        rep = self._reply(timeout)
        if "error" in rep:
            self.close()
            raise RuntimeError(rep["error"])
        return rep["tour"]

    def close(self, kill: bool = False) -> None:
        """End the process: stdin closed, then killed if it does not exit within 2 s (at once with ``kill``);
        then its pipes and the stderr file are closed, whether or not the process had already exited.
        Calling it again does nothing."""
        if self.proc.poll() is None:
            try:
                if kill:
                    raise subprocess.TimeoutExpired(self.proc.args, 0)
                self.proc.stdin.close()
                self.proc.wait(timeout=2)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        try:
            self.proc.stdin.close()  # a no-op when closed above
        except (OSError, ValueError):  # flushing into a dead process: the pipe is closed all the same
            pass
        reader = self._reader if self._reader is not None and self._reader.ident is not None else None
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout=1.0)  # it reads the end of the output of the ended process
        if reader is None or not reader.is_alive():  # else something holds the pipe open: closing would wait for its read
            self.proc.stdout.close()
        self._stderr.close()


_lkh_worker: LKHWorker | None = None
_lkh_lock = threading.Lock()


def run_lkh(params: str, problem: str, what: str, timeout: float) -> list[int]:
    """Run LKH in the shared worker process (started on first use, reused across calls, restarted after
    a failure) and return its tour (node numbers from 1). Any failure is a :class:`SolverError` that names
    ``what`` was being solved."""
    global _lkh_worker
    with _lkh_lock:
        if _lkh_worker is None or not _lkh_worker.alive():
            if _lkh_worker is not None:
                _lkh_worker.close()  # ended between calls: release its pipes and file
            _lkh_worker = None
            try:
                _lkh_worker = LKHWorker()
            except OSError as e:
                raise SolverError(f"could not start the LKH worker process for {what}: {type(e).__name__}: {e}. The worker "
                                  f"runs {sys.executable!r} -P -c <code>; check that this Python starts and that the process "
                                  "has file descriptors left (`ulimit -n`), or use --solver nn.") from e
            except _WorkerGone as e:
                raise SolverError(_lkh_failed(what, e.reason)) from None
        try:
            return _lkh_worker.call(params, problem, timeout)
        except _WorkerGone as e:
            _lkh_worker = None
            raise SolverError(_lkh_failed(what, e.reason)) from None
        except RuntimeError as e:
            _lkh_worker = None
            raise SolverError(f"LKH (elkai) reported an error on {what}: {e}. Try --solver nn, or report the instance.") from None


def _lkh_failed(what: str, reason: str) -> str:
    return (f"LKH (elkai) failed on {what}: {reason}. This process is unaffected and the next call starts a fresh worker. "
            "Try a smaller --time-limit or instance, --solver nn, or check that `python -c 'import elkai'` works.")


def close_lkh_worker(timeout: float | None = None) -> bool:
    """Stop the shared LKH worker process, if any (the next LKH call starts a new one). Waits for a call in
    progress in another thread to end (at most ``timeout`` seconds; None: as long as it takes); returns
    False, with the worker left alone, when that wait timed out."""
    global _lkh_worker
    if not _lkh_lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
        return False
    try:
        if _lkh_worker is not None:
            _lkh_worker.close()
            _lkh_worker = None
        return True
    finally:
        _lkh_lock.release()


def _close_lkh_worker_at_exit() -> None:
    # a daemon thread can be inside run_lkh at exit, holding the lock for as long as its LKH call lasts:
    # wait a little, then kill the worker without the lock (the thread dies with the interpreter)
    if not close_lkh_worker(timeout=2.0):
        worker = _lkh_worker
        if worker is not None and worker.alive():
            worker.proc.kill()


atexit.register(_close_lkh_worker_at_exit)


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
