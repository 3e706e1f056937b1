"""Solvers and readers under faults: TSPLIB's integer metrics (EUC_2D, CEIL_2D, ATT, GEO) solved as the
file defines them, large coordinates, tiny instances, LKH crashes and hangs turned into errors, node id
and DIMENSION checks, and beam search wider than the valid moves."""

import gc
import importlib.metadata
import itertools
import os
import signal
import threading
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from rlsuite.agents.bq_nco import BQNCO, BQNCOConfig
from rlsuite.envs.cop import solvers
from rlsuite.envs.cop.env import COPEnv
from rlsuite.envs.cop.io import (
    MAX_DIMENSION,
    Instance,
    InstanceFormatError,
    coord_weights,
    read_instance,
    write_instance,
)
from rlsuite.envs.cop.problems import cost, generate, validate
from rlsuite.envs.cop.solvers import LKH_MAX_COST, SolverError, lkh_weights, solve
from tests.cli.helpers import run_cli

# ulysses16 (GEO, optimum 6859) and att48 (ATT, optimum 10628) from TSPLIB
ULYSSES16 = [(38.24, 20.42), (39.57, 26.15), (40.56, 25.32), (36.26, 23.12), (33.48, 10.54), (37.56, 12.19), (38.42, 13.11),
             (37.52, 20.44), (41.23, 9.10), (41.17, 13.05), (36.08, -5.21), (38.47, 15.13), (38.15, 15.35), (37.51, 15.17),
             (35.49, 14.32), (39.36, 19.56)]
ATT48 = [(6734, 1453), (2233, 10), (5530, 1424), (401, 841), (3082, 1644), (7608, 4458), (7573, 3716), (7265, 1268), (6898, 1885),
         (1112, 2049), (5468, 2606), (5989, 2873), (4706, 2674), (4612, 2035), (6347, 2683), (6107, 669), (7611, 5184), (7462, 3590),
         (7732, 4723), (5900, 3561), (4483, 3369), (6101, 1110), (5199, 2182), (1633, 2809), (4307, 2322), (675, 1006), (7555, 4819),
         (7541, 3981), (3177, 756), (7352, 4506), (7545, 2801), (3245, 3305), (6426, 3173), (4608, 1198), (23, 2216), (7248, 3779),
         (7762, 4595), (7392, 2244), (3484, 2829), (6271, 2135), (4985, 140), (1916, 1569), (7280, 4899), (7509, 3239), (10, 2676),
         (6807, 2993), (5185, 3258), (3023, 1942)]


def tsplib(path, ewt, coords, name="t"):
    lines = [f"NAME : {name}", "TYPE : TSP", f"DIMENSION : {len(coords)}", f"EDGE_WEIGHT_TYPE : {ewt}", "NODE_COORD_SECTION"]
    lines += [f"{i + 1} {x} {y}" for i, (x, y) in enumerate(coords)]
    path.write_text("\n".join(lines + ["EOF"]) + "\n")
    return path


def held_karp(w: np.ndarray) -> float:
    """Exact closed-tour optimum (dynamic programming over subsets; n <= 16 in a second)."""
    n = len(w)
    m = n - 1
    dp = np.full((1 << m, m), np.inf)
    for j in range(m):
        dp[1 << j, j] = w[0, j + 1]
    for S in range(1, 1 << m):
        row = dp[S]
        if not np.isfinite(row).any():
            continue
        for k in range(m):
            if not S >> k & 1:
                T = S | 1 << k
                dp[T, k] = min(dp[T, k], (row + w[1:, k + 1]).min())
    return float((dp[-1] + w[1:, 0]).min())


def tour_len(w, tour) -> float:
    return float(sum(w[a, b] for a, b in zip(tour, tour[1:] + tour[:1], strict=True)))


def two_opt(w: np.ndarray, tour: list[int]) -> list[int]:
    """2-opt to a local optimum (first improvement)."""
    t, n, better = list(tour), len(tour), True
    while better:
        better = False
        for i in range(n - 1):
            for j in range(i + 2, n if i else n - 1):
                a, b, c, d = t[i], t[i + 1], t[j], t[(j + 1) % n]
                if w[a, c] + w[b, d] < w[a, b] + w[c, d]:
                    t[i + 1 : j + 1] = reversed(t[i + 1 : j + 1])
                    better = True
    return t


def lkh(w: np.ndarray, **kw) -> list[int]:
    return solve("tsp" if np.array_equal(w, w.T) else "atsp", {"dist": torch.as_tensor(w, dtype=torch.float64)[None]}, "lkh",
                 **kw)[0]


# --- TSPLIB distance functions
def test_att_and_geo_distances_by_hand():
    # ATT: r = sqrt((dx^2 + dy^2) / 10); (10, 0): r = sqrt(10) = 3.162, nint 3 < r -> 4; (0, 30): r = sqrt(90) = 9.487,
    # nint 9 < r -> 10; (10, 30): r = sqrt(100) = 10 exactly -> 10; (20, 0): r = sqrt(40) = 6.325, nint 6 -> 7
    att = coord_weights("ATT", np.array([[0, 0], [10, 0], [0, 30], [10, 30], [20, 0]], float))
    assert att[0].tolist() == [0, 4, 10, 10, 7]
    # GEO on the equator (lat 0): d = int(RRR * dlon + 1), dlon = PI * (deg + 5 * min / 3) / 180 with PI = 3.141592;
    # 1 degree: 6378.388 * 0.0174533 = 111.32 -> 112; 0.30 = 30 minutes = 0.5 degree: 55.66 -> 56; -0.30 likewise 56;
    # 0.50 = 50 minutes = 0.8333 degree: 92.77 -> 93 (reading DDD.MM as rounded degrees would give 1 - 0.8333: 19)
    geo = coord_weights("GEO", np.array([[0, 0], [0, 1.0], [0, 0.30], [0, -0.30], [0, 0.50]]))
    assert geo[0].tolist() == [0, 112, 56, 56, 93] and np.array_equal(geo, geo.T) and not np.diag(geo).any()
    # EUC_2D rounds to the nearest integer, CEIL_2D up: (3, 4.2) -> 5.16
    assert coord_weights("EUC_2D", np.array([[0, 0], [3, 4.2]]))[0, 1] == 5
    assert coord_weights("CEIL_2D", np.array([[0, 0], [3, 4.2]]))[0, 1] == 6
    # row blocks give the same matrix as one block
    xy = np.random.default_rng(0).uniform(-90, 90, (37, 2))
    for ewt in ("EUC_2D", "CEIL_2D", "ATT", "GEO"):
        assert np.array_equal(coord_weights(ewt, xy, block=5), coord_weights(ewt, xy))


@pytest.mark.parametrize("ewt,coords,optimum", [("GEO", ULYSSES16, 6859), ("ATT", ATT48, 10628)])
def test_tsplib_geo_and_att_instances_solve_to_their_published_optimum(capsys, tmp_path, ewt, coords, optimum):
    f = tsplib(tmp_path / f"{ewt.lower()}.tsp", ewt, coords)
    inst = read_instance(f)
    assert inst.edge_weight_type == ewt and inst.weights.dtype == np.float64
    if ewt == "GEO":
        assert held_karp(inst.weights) == optimum  # the file's metric, read as TSPLIB defines it
        back = read_instance(write_instance(inst, tmp_path / "back.tsp"))  # DDD.MM written as read, not rounded
        assert back.edge_weight_type == "GEO" and np.array_equal(back.weights, inst.weights)
    code, out, err = run_cli(capsys, "cop", "solve", "--problem", "tsp", f, "--solver", "lkh", "--optimum", optimum)
    assert code == 0, err
    assert out.strip().splitlines()[-2:] == ["gap=0.000%", f"cost={optimum}"]


# --- large coordinates, integer metric, tiny instances
@pytest.mark.parametrize("span", [1e4, 1e6])
def test_large_coordinate_files_are_solved_on_their_integer_metric(capsys, tmp_path, span):
    rng = np.random.default_rng(int(span))
    xy = rng.integers(0, int(span), (50, 2))
    f = tsplib(tmp_path / "big.tsp", "EUC_2D", xy.tolist())
    code, out, err = run_cli(capsys, "cop", "solve", "--problem", "tsp", f, "--solver", "lkh", "--time-limit", "0.3")
    assert code == 0, err  # this aborted the process inside LKH when distances were scaled x 1e6
    cost_lkh = float(out.strip().splitlines()[-1].removeprefix("cost="))
    w = read_instance(f).weights
    assert cost_lkh == int(cost_lkh)  # costs are in the file's integer metric
    # LKH must not lose to 2-opt local optima from the nearest-neighbour tour and from 3 random tours
    starts = [solve("tsp", {"dist": torch.as_tensor(w)[None]}, "nn")[0]] + [rng.permutation(50).tolist() for _ in range(3)]
    assert cost_lkh <= min(tour_len(w, two_opt(w, t)) for t in starts)


@pytest.mark.parametrize("span", [1e3, 1e6, 3e7])
def test_lkh_equals_held_karp_on_small_integer_instances(span):
    rng = np.random.default_rng(7)
    for n in (4, 6, 9, 10):
        w = coord_weights("EUC_2D", rng.integers(0, int(span), (n, 2)).astype(float))
        got, p, scale = lkh_weights(w)
        assert scale == 1.0 and np.array_equal(got, w)  # integer weights go to LKH as they are
        # PRECISION 100 unless 100 x the longest edge would overflow; past 5.4e6 (spans of 3e7) it is lowered
        assert p == (100 if 100 * w.max() <= LKH_MAX_COST else LKH_MAX_COST // w.max()) and (p < 100) == (span > 1e6)
        assert tour_len(w, lkh(w)) == held_karp(w)


def test_tiny_and_asymmetric_instances_are_optimal():
    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 4, 5):
        for sym in (True, False):
            w = rng.integers(1, 1000, (n, n)).astype(float)
            if sym:
                w = np.triu(w, 1) + np.triu(w, 1).T
            np.fill_diagonal(w, 0)
            tour = lkh(w)
            assert sorted(tour) == list(range(n)) and tour[0] == 0
            best = min(tour_len(w, [0, *p]) for p in itertools.permutations(range(1, n))) if n > 1 else 0.0
            assert tour_len(w, tour) == best, (n, sym)


def test_generated_float_instances_are_scaled_from_their_magnitude():
    inst = generate("tsp", 3, 8, seed=0)
    d = torch.cdist(inst["locs"][0].double(), inst["locs"][0].double()).numpy()
    for mult in (1e-3, 1.0, 1e5):  # the unit square, and the same points shrunk or blown up
        w, p, scale = lkh_weights(d * mult)
        assert p == 100 and w.max() == solvers.LKH_FLOAT_TARGET and scale == pytest.approx(solvers.LKH_FLOAT_TARGET / (d.max() * mult))
    tours = solve("tsp", inst, "lkh")
    validate("tsp", inst, tours)
    for b, t in enumerate(tours):
        db = torch.cdist(inst["locs"][b].double(), inst["locs"][b].double()).numpy()
        assert tour_len(db, t) == pytest.approx(held_karp(db), abs=8 * 0.5 / 1e6 * db.max())  # up to rounding per edge


def test_weights_lkh_cannot_represent_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="above what LKH can represent"):
        lkh_weights(np.array([[0, 6e8, 1], [6e8, 0, 1], [1, 1, 0]]))
    with pytest.raises(ValueError, match="non-negative"):
        lkh_weights(np.array([[0, -1.0], [-1.0, 0]]))


# --- LKH failures become errors; the calling process survives
DIE_ON_REQUEST = """
import json, os, signal, sys
reply = os.fdopen(os.dup(1), "w")
reply.write(json.dumps({"ready": True}) + "\\n"); reply.flush()
sys.stdin.readline()
os.kill(os.getpid(), signal.SIGKILL)
"""
HANG_ON_REQUEST = """
import json, os, sys, time
reply = os.fdopen(os.dup(1), "w")
reply.write(json.dumps({"ready": True}) + "\\n"); reply.flush()
sys.stdin.readline()
time.sleep(600)
"""


def test_an_abort_inside_lkh_is_an_error_and_the_next_call_works():
    # distances x 1e5 on 1e4 coordinates (what the old scaling did, worse): LKH's int costs overflow and it aborts
    xy = np.random.default_rng(0).uniform(0, 1e4, (40, 2)).round()
    w = (coord_weights("EUC_2D", xy) * 1e5).astype(np.int64)
    with pytest.raises(SolverError, match=r"(?s)40-node test.*SIGABRT.*Gain % Precision") as e:
        solvers.run_lkh("PROBLEM_FILE = :stdin:\nRUNS = 1\n", solvers.lkh_problem_text(w), "the 40-node test", 60)
    assert "--solver nn" in str(e.value)
    ok = coord_weights("EUC_2D", xy)
    assert sorted(lkh(ok)) == list(range(40))  # a fresh worker


def test_a_killed_or_hung_worker_is_an_error_naming_the_instance(monkeypatch, capsys, tmp_path):
    solvers.close_lkh_worker()
    monkeypatch.setattr(solvers, "_WORKER_SOURCE", DIE_ON_REQUEST)
    inst = generate("tsp", 1, 12, seed=0)
    with pytest.raises(SolverError, match=r"LKH \(elkai\) failed on a TSP instance with 12 nodes.*killed by signal SIGKILL"):
        solve("tsp", inst, "lkh")
    # through the CLI: a message and exit 1, no traceback, the process goes on
    f = tsplib(tmp_path / "sq.tsp", "EUC_2D", [(0, 0), (10, 0), (10, 10), (0, 10), (5, 5)])
    code, out, err = run_cli(capsys, "cop", "solve", "--problem", "tsp", f, "--solver", "lkh")
    assert code == 1 and err.startswith(f"error: {f}: LKH (elkai) failed on a TSP instance with 5 nodes") and "Traceback" not in err
    d = tmp_path / "set"
    assert run_cli(capsys, "cop", "generate", "--problem", "tsp", "--size", "6", "--count", "3", "--out", d)[0] == 0
    code, out, err = run_cli(capsys, "cop", "label", d, "--solver", "lkh")
    assert code == 1 and err.startswith(f"error: instances 0..0 of {d}: LKH (elkai) failed") and not (d / "labels.json").exists()
    # a hang: the call is abandoned after `timeout` and the process is stopped
    w = solvers.LKHWorker(HANG_ON_REQUEST)
    with pytest.raises(solvers._WorkerGone, match="no answer within 0.3 s"):
        w.call("", "", timeout=0.3)
    assert w.proc.poll() is not None
    monkeypatch.setattr(solvers, "_WORKER_SOURCE", HANG_ON_REQUEST)
    with pytest.raises(SolverError, match="with 12 nodes.*no answer within 0.2 s"):
        solve("tsp", inst, "lkh", timeout=0.2)
    monkeypatch.undo()
    assert len(solve("tsp", inst, "lkh")[0]) == 12  # the real worker again


def test_one_worker_serves_many_instances_and_is_replaced_when_it_dies():
    solvers.close_lkh_worker()
    inst = generate("tsp", 4, 10, seed=1)
    validate("tsp", inst, solve("tsp", inst, "lkh"))
    pid = solvers._lkh_worker.proc.pid
    validate("tsp", inst, solve("tsp", inst, "lkh"))
    assert solvers._lkh_worker.proc.pid == pid  # 8 instances, one process
    os.kill(pid, signal.SIGKILL)  # dies between calls (out of memory, a stray signal)
    solvers._lkh_worker.proc.wait()
    validate("tsp", inst, solve("tsp", inst, "lkh"))
    assert solvers._lkh_worker.proc.pid != pid


# --- the worker's process, pipes, stderr file and lock
READY_THEN = """
import json, os, sys, time
reply = os.fdopen(os.dup(1), "w")
reply.write(json.dumps({"ready": True}) + "\\n"); reply.flush()
for i, line in enumerate(sys.stdin, 1):
    %s
"""
# on a request: write this call's output to stderr and answer; the third one ends the process after a last line
CHATTY = READY_THEN % """sys.stderr.write(f"call {i} " * 1000); sys.stderr.flush()
    if i == 3:
        sys.stderr.write("dying on call 3"); sys.stderr.flush(); os._exit(7)
    reply.write(json.dumps({"tour": [1, 2, 3]}) + "\\n"); reply.flush()"""
# on a request: close every copy of stdout (the caller sees the end of the output) but never exit
MUTE_AND_STAY = READY_THEN % """reply.close(); os.close(1); time.sleep(600)"""


def pipes_closed(w: solvers.LKHWorker) -> bool:
    return w.proc.stdin.closed and w.proc.stdout.closed and w._stderr.closed


def test_a_worker_that_ends_its_output_but_does_not_exit_is_killed(monkeypatch):
    monkeypatch.setattr(solvers.LKHWorker, "EXIT_WAIT_S", 0.3)
    w = solvers.LKHWorker(MUTE_AND_STAY)
    with pytest.raises(solvers._WorkerGone, match="the worker process ended \\(killed by signal SIGKILL\\)"):
        w.call("", "", timeout=30)  # no answer: the output ended; waited 0.3 s for an exit that never came
    assert w.proc.returncode == -signal.SIGKILL and pipes_closed(w)


def test_close_releases_pipes_and_file_of_a_process_that_already_ended():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        w = solvers.LKHWorker(READY_THEN % "pass")
        os.kill(w.proc.pid, signal.SIGKILL)  # ends between calls
        w.proc.wait()
        w.close()
        assert pipes_closed(w)
        w.close()  # again: nothing to do
        died = solvers.LKHWorker(DIE_ON_REQUEST)
        with pytest.raises(solvers._WorkerGone, match="SIGKILL"):
            died.call("", "", timeout=30)
        assert pipes_closed(died)
        del w, died
        gc.collect()
    assert not [c for c in caught if issubclass(c.category, ResourceWarning)], [str(c.message) for c in caught]


def test_the_stderr_file_holds_only_the_current_call_and_errors_quote_it():
    w = solvers.LKHWorker(CHATTY)
    one_call = len("call 1 " * 1000)
    for _ in range(2):
        assert w.call("", "", timeout=30) == [1, 2, 3]
        assert os.fstat(w._stderr.fileno()).st_size == one_call  # emptied before each call, not one call more each time
    with pytest.raises(solvers._WorkerGone, match=r"exit status 7\): [^2]*call 3 dying on call 3$") as e:
        w.call("", "", timeout=30)
    assert "call 2" not in e.value.reason and len(e.value.reason) < solvers.LKHWorker.STDERR_TAIL + 100
    assert pipes_closed(w)


def test_close_lkh_worker_waits_for_the_call_in_progress():
    solvers.close_lkh_worker()
    solvers._lkh_worker = w = solvers.LKHWorker(READY_THEN % "pass")
    with solvers._lkh_lock:  # as run_lkh holds it during a call
        assert solvers.close_lkh_worker(timeout=0.05) is False and solvers._lkh_worker is w and w.alive()
        closer = threading.Thread(target=solvers.close_lkh_worker)
        closer.start()
        closer.join(0.2)
        assert closer.is_alive() and solvers._lkh_worker is w and w.alive()  # blocked on the lock, worker untouched
    closer.join(10)
    assert not closer.is_alive() and solvers._lkh_worker is None and w.proc.poll() is not None and pipes_closed(w)


def test_a_worker_that_cannot_be_started_is_a_solver_error(monkeypatch, tmp_path):
    solvers.close_lkh_worker()
    monkeypatch.setattr(solvers.sys, "executable", str(tmp_path / "no-python"))
    inst = generate("tsp", 1, 12, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(SolverError, match=r"could not start the LKH worker process for a TSP instance with 12 nodes .*: "
                                              r"FileNotFoundError: .*no-python.*--solver nn") as e:
            solve("tsp", inst, "lkh")
        assert isinstance(e.value.__cause__, FileNotFoundError) and solvers._lkh_worker is None
        del e
        gc.collect()
    assert not [c for c in caught if issubclass(c.category, ResourceWarning)]  # the stderr file was closed
    monkeypatch.undo()
    assert len(solve("tsp", inst, "lkh")[0]) == 12


def test_installed_elkai_is_inside_the_pinned_major_version():
    # the worker calls elkai's private _elkai.solve_problem: pyproject bounds elkai below the next major version
    with open(Path(__file__).parents[3] / "pyproject.toml", "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    specs = {Requirement(r).specifier for reqs in extras.values() for r in reqs if Requirement(r).name == "elkai"}
    assert specs == {SpecifierSet(">=2.0,<3")}
    assert next(iter(specs)).contains(importlib.metadata.version("elkai"))
    from elkai import _elkai

    assert callable(_elkai.solve_problem)


# --- readers: node ids and DIMENSION
CVRP_HEAD = "NAME : c\nTYPE : CVRP\nDIMENSION : 3\nEDGE_WEIGHT_TYPE : EUC_2D\nCAPACITY : 10\nNODE_COORD_SECTION\n1 0 0\n2 3 4\n3 6 8\n"


@pytest.mark.parametrize("tail,match", [
    ("DEMAND_SECTION\n0 0\n2 3\n3 4\nEOF\n", r"c.vrp:11: DEMAND_SECTION: node id 0 outside 1..3"),
    ("DEMAND_SECTION\n1 0\n2 3\n4 4\nEOF\n", r"c.vrp:13: DEMAND_SECTION: node id 4 outside 1..3"),
    ("DEMAND_SECTION\n1 0\n2 3\n2 4\nEOF\n", r"c.vrp:13: DEMAND_SECTION: node 2 is given twice \(first on line 12\)"),
    ("DEMAND_SECTION\n1 0\nx 3\n3 4\nEOF\n", r"c.vrp:12: DEMAND_SECTION: node id must be an integer, got 'x'"),
    ("DEMAND_SECTION\n1 0\n2 -3\n3 4\nEOF\n", r"c.vrp:12: DEMAND_SECTION: the demand of node 2 must be finite and >= 0"),
    ("DEMAND_SECTION\n1 0\n2 3\n3 4\nDEPOT_SECTION\n0\n-1\nEOF\n", r"c.vrp:15: DEPOT_SECTION: node id 0 outside 1..3"),
    ("DEMAND_SECTION\n1 0\n2 3\n3 4\nDEPOT_SECTION\n5\n-1\nEOF\n", r"c.vrp:15: DEPOT_SECTION: node id 5 outside 1..3"),
])
def test_cvrplib_node_ids_are_checked(tmp_path, tail, match):
    f = tmp_path / "c.vrp"
    f.write_text(CVRP_HEAD + tail)
    with pytest.raises(InstanceFormatError, match=match):
        read_instance(f)


def test_node_coord_ids_out_of_range_or_repeated_are_refused(tmp_path):
    f = tmp_path / "t.tsp"
    f.write_text("NAME : t\nTYPE : TSP\nDIMENSION : 3\nEDGE_WEIGHT_TYPE : EUC_2D\nNODE_COORD_SECTION\n1 0 0\n0 3 4\n3 6 8\nEOF\n")
    with pytest.raises(InstanceFormatError, match=r"t.tsp:7: NODE_COORD_SECTION: node id 0 outside 1..3"):
        read_instance(f)
    f.write_text("NAME : t\nTYPE : TSP\nDIMENSION : 3\nEDGE_WEIGHT_TYPE : EUC_2D\nNODE_COORD_SECTION\n1 0 0\n1 3 4\n3 6 8\nEOF\n")
    with pytest.raises(InstanceFormatError, match=r"t.tsp:7: NODE_COORD_SECTION: node 1 is given twice \(first on line 6\)"):
        read_instance(f)


def test_dimension_is_capped_before_allocating(tmp_path):
    f = tmp_path / "huge.tsp"
    f.write_text("NAME : huge\nTYPE : TSP\nDIMENSION : 3000000000\nEDGE_WEIGHT_TYPE : EUC_2D\nNODE_COORD_SECTION\n1 0 0\nEOF\n")
    with pytest.raises(InstanceFormatError, match=rf"DIMENSION 3000000000 is above the cap of {MAX_DIMENSION} nodes.*max_dimension=3000000000"):
        read_instance(f)
    small = tsplib(tmp_path / "five.tsp", "EUC_2D", [(0, 0), (1, 0), (1, 1), (0, 1), (2, 2)])
    with pytest.raises(InstanceFormatError, match="above the cap of 4 nodes"):
        read_instance(small, max_dimension=4)
    assert read_instance(small, max_dimension=5).dimension == 5


def test_an_explicit_file_with_display_coordinates_is_written_back_explicit(tmp_path):
    w = np.array([[0, 7, 9], [7, 0, 2], [9, 2, 0]], float)
    inst = Instance("e", "TSP", w, np.array([[0, 0], [1, 0], [0, 1]], float), edge_weight_type="EXPLICIT")
    back = read_instance(write_instance(inst, tmp_path / "e.tsp"))
    assert np.array_equal(back.weights, w)  # not recomputed from the display coordinates


# --- beam search wider than the valid moves
SMALL = dict(dim=32, layers=2, heads=4, ff=64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_wider_than_the_candidates_gives_valid_tours_and_covers_all_of_them(seed):
    inst = generate("tsp", 3, 5, seed=seed)
    agent = BQNCO(BQNCOConfig(**SMALL), seed=seed)
    with torch.no_grad():
        for layer in agent.policy.layers:
            layer.alpha.fill_(0.5)  # a policy with preferences, not the ReZero start
    greedy = agent.solve(COPEnv("tsp", inst))
    g_cost = cost("tsp", inst, greedy)

    def ranked(width):
        rep = {k: v.repeat_interleave(width, 0) for k, v in inst.items()}
        sols = agent.solve(COPEnv("tsp", inst), beam=width, cost_fn=lambda s: cost("tsp", rep, s))
        validate("tsp", inst, sols)
        return cost("tsp", inst, sols)

    b16 = ranked(16)  # 4 first moves, 12 two-move prefixes: 16 slots hold dead beams for two steps
    assert (b16 <= g_cost + 1e-6).all()
    # 4! = 24 tours from node 0: a beam of 32 keeps every one, so it finds the optimum
    best = torch.tensor([min(cost("tsp", {k: v[b : b + 1] for k, v in inst.items()}, [[0, *p]]).item()
                             for p in itertools.permutations(range(1, 5))) for b in range(3)])
    torch.testing.assert_close(ranked(32).float(), best.float())
    torch.testing.assert_close(ranked(24).float(), best.float())


def test_wide_beam_on_cvrp_stays_valid():
    inst = generate("cvrp", 2, 4, seed=0)
    agent = BQNCO(BQNCOConfig(problem="cvrp", **SMALL), seed=0)
    rep = {k: v.repeat_interleave(64, 0) for k, v in inst.items()}
    validate("cvrp", inst, agent.solve(COPEnv("cvrp", inst), beam=64, cost_fn=lambda s: cost("cvrp", rep, s)))


def test_cli_beam_16_on_five_nodes_with_the_shipped_model(capsys, tmp_path):
    f = tsplib(tmp_path / "sq.tsp", "EUC_2D", [(0, 0), (10, 0), (10, 10), (0, 10), (5, 5)])
    costs = {}
    for beam in (1, 16, 32):
        code, out, err = run_cli(capsys, "cop", "solve", "--problem", "tsp", f, "--beam", beam, "--device", "cpu")
        assert code == 0, err
        costs[beam] = float(out.strip().splitlines()[-1].removeprefix("cost="))
    # square perimeter 40, the centre replaces one side: 40 - 10 + 2 * nint(7.07) = 44
    assert costs[16] <= costs[1] and costs[32] == 44
