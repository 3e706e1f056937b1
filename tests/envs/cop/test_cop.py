"""Combinatorial problems: generators, envs and masks, BQ views, solvers, file formats, instance sets."""

import itertools

import numpy as np
import pytest
import torch

from rlsuite.envs.cop.dataset import load_instances, load_labels, save_instances, save_labels
from rlsuite.envs.cop.env import COPEnv
from rlsuite.envs.cop.io import Instance, InstanceFormatError, read_instance, write_instance
from rlsuite.envs.cop.problems import PROBLEMS, cost, generate, validate
from rlsuite.envs.cop.solvers import solve


def random_rollout(problem, inst, seed=0):
    env = COPEnv(problem, inst)
    g = torch.Generator().manual_seed(seed)
    steps = 0
    while not bool(env.done.all()):
        m = env.action_mask().float()
        m[env.done] = 1.0
        env.step(torch.multinomial(m, 1, generator=g).squeeze(1))
        steps += 1
        assert steps <= 3 * inst[next(iter(inst))].shape[1] + 5
    return env


@pytest.mark.parametrize("problem", PROBLEMS)
def test_generators_are_deterministic_and_follow_the_conventions(problem):
    a, b, c = generate(problem, 4, 20, seed=3), generate(problem, 4, 20, seed=3), generate(problem, 4, 20, seed=4)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    if problem == "cvrp":
        assert a["locs"].shape == (4, 21, 2) and (a["demand"][:, 0] == 0).all() and (a["capacity"] == 30).all()
        assert a["demand"][:, 1:].min() >= 1 and a["demand"].max() <= 9 and (a["demand"] == a["demand"].round()).all()
    if problem == "op":
        assert (a["max_length"] == 2.0).all() and (a["prize"][:, 1:] > 0).all() and (a["prize"][:, 1:] <= 1).all()
    if problem == "atsp":
        d = a["dist"]
        assert (d.diagonal(dim1=1, dim2=2) == 0).all() and not torch.allclose(d, d.transpose(1, 2))
        via = (d[:, :, :, None] + d[:, None, :, :]).min(dim=2).values  # min over k of d[i,k] + d[k,j]
        assert (d <= via + 1e-6).all()  # triangle inequality


def test_bad_generator_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown problem 'vrp'"):
        generate("vrp", 2, 10)
    with pytest.raises(ValueError, match="size must be >= 2"):
        generate("tsp", 2, 1)


@pytest.mark.parametrize("problem", PROBLEMS)
def test_random_masked_rollouts_give_valid_solutions(problem):
    inst = generate(problem, 8, 15, seed=1)
    env = random_rollout(problem, inst)
    sols = env.solutions()
    validate(problem, inst, sols)
    assert cost(problem, inst, sols).shape == (8,)


def test_a_masked_action_is_refused_with_the_instance_named():
    inst = generate("tsp", 2, 5, seed=0)
    env = COPEnv("tsp", inst)
    with pytest.raises(ValueError, match="instance 0: action 0 is masked"):
        env.step(torch.tensor([0, 1]))
    cv = generate("cvrp", 1, 5, seed=0)
    env = COPEnv("cvrp", cv, load=torch.tensor([0.0]))  # an empty vehicle can only go via the depot
    assert not env.action_mask()[0, :5].any() and env.action_mask()[0, 5:].all()


@pytest.mark.parametrize("problem", PROBLEMS)
def test_validate_catches_broken_solutions(problem):
    inst = generate(problem, 1, 12, seed=2)
    good = random_rollout(problem, inst).solutions()[0]
    validate(problem, inst, [good])
    if problem in ("tsp", "atsp"):
        bad, match = good[:-1] + [good[0]], "exactly once"
    elif problem == "cvrp":
        bad, match = [x for x in good if x != 0], "capacity"  # one trip carrying everything
    elif problem == "op":
        bad, match = list(range(1, 13)), "exceeds the budget"
    else:
        inst["capacity"][:] = 0.1
        bad, match = [0, 1, 2], "exceeds the capacity"
    with pytest.raises(ValueError, match=match):
        validate(problem, inst, [bad])


def test_tsp_bq_view_after_a_prefix_is_the_view_of_the_induced_path_problem():
    inst = generate("tsp", 1, 12, seed=5)
    env = COPEnv("tsp", inst, start=4)
    for a in (7, 1, 9):
        env.step(torch.tensor([a]))
    view = env.bq_view()
    remaining = [j for j in range(12) if j not in (4, 7, 1, 9)]
    # the induced sub-problem: a path from 9 to 4 through the remaining nodes, as a fresh instance
    order = [9] + remaining + [4]
    sub = {"locs": inst["locs"][:, order]}
    fresh = COPEnv("tsp", sub, start=0, destination=len(order) - 1)
    assert torch.equal(view["feats"], fresh.bq_view()["feats"])
    assert view["index"][0].tolist() == order


def test_cvrp_bq_view_after_a_prefix_is_the_view_of_the_induced_sub_problem():
    inst = generate("cvrp", 1, 10, seed=6)
    env = COPEnv("cvrp", inst)
    n = 10
    prefix = [(3, False), (5, False), (2, True)]  # clients 3, 5, then via the depot to 2
    for c, via in prefix:
        env.step(torch.tensor([c - 1 + n * via]))
    view = env.bq_view()
    load = inst["capacity"] - inst["demand"][0, 2]
    remaining = [j for j in range(1, n + 1) if j not in (3, 5, 2)]
    order = [0, 2] + remaining  # depot first, then the current node as client 1 of the sub-instance
    sub = {"locs": inst["locs"][:, order], "demand": inst["demand"][:, order].clone(), "capacity": inst["capacity"]}
    fresh = COPEnv("cvrp", sub, load=load)
    fresh.visited[:, 1] = True  # the sub-instance starts at its node 1 (the current node), already served
    fresh.current[:] = 1
    np.testing.assert_allclose(view["feats"].numpy(), fresh.bq_view()["feats"].numpy(), atol=1e-6)


def test_index_select_copies_partial_solutions():
    inst = generate("cvrp", 3, 6, seed=0)
    env = random_rollout("cvrp", inst)
    sel = env.index_select(torch.tensor([2, 2, 0]))
    sols = env.solutions()
    assert sel.solutions() == [sols[2], sols[2], sols[0]] and sel.B == 3


@pytest.mark.parametrize("problem,solver", [("tsp", "lkh"), ("tsp", "nn"), ("atsp", "lkh"), ("atsp", "nn"), ("cvrp", "pyvrp"),
                                            ("cvrp", "nn"), ("op", "ortools"), ("op", "greedy"), ("kp", "dp"), ("kp", "greedy")])
def test_every_solver_returns_valid_solutions(problem, solver):
    inst = generate(problem, 3, 60 if problem == "kp" else 15, seed=7)
    sols = solve(problem, inst, solver, time_limit=0.2)
    validate(problem, inst, sols)


def test_reference_solvers_beat_the_heuristics():
    tsp = generate("tsp", 5, 30, seed=1)
    assert (cost("tsp", tsp, solve("tsp", tsp, "lkh", 0.2)) <= cost("tsp", tsp, solve("tsp", tsp, "nn")) + 1e-6).all()
    cv = generate("cvrp", 3, 20, seed=1)
    assert cost("cvrp", cv, solve("cvrp", cv, "pyvrp", 0.3)).mean() < cost("cvrp", cv, solve("cvrp", cv, "nn")).mean()


def test_kp_dynamic_programme_is_optimal_on_small_instances():
    inst = generate("kp", 6, 10, seed=3)
    inst["capacity"][:] = 2.0
    dp = cost("kp", inst, solve("kp", inst, "dp"))
    for b in range(6):
        best = 0.0
        w, v = inst["weight"][b].tolist(), inst["value"][b].tolist()
        for r in range(11):
            for subset in itertools.combinations(range(10), r):
                if sum(w[i] for i in subset) <= 2.0:
                    best = max(best, sum(v[i] for i in subset))
        assert -float(dp[b]) == pytest.approx(best, abs=1e-5)  # (weights rounded up to 1/1000 could only miss a tie)


def test_solver_problem_mismatch_says_what_to_use():
    with pytest.raises(ValueError, match="for cvrp use pyvrp, nn"):
        solve("cvrp", generate("cvrp", 1, 5), "lkh")


# --- files
def test_tsplib_round_trips(tmp_path):
    coords = np.array([[0, 0], [30, 0], [30, 40], [0, 40], [12, 7]], float)
    d = np.floor(np.sqrt(((coords[:, None] - coords[None]) ** 2).sum(-1)) + 0.5)
    tsp = Instance("toy", "TSP", d, coords)
    back = read_instance(write_instance(tsp, tmp_path / "toy.tsp"))
    assert back.type == "TSP" and np.array_equal(back.weights, d) and np.array_equal(back.coords, coords)
    assert back.tour_cost([0, 1, 2, 3, 4]) == 30 + 40 + 30 + d[3, 4] + d[4, 0]
    atsp = Instance("a", "ATSP", np.array([[0, 1, 9], [5, 0, 2], [3, 7, 0]], float))
    back = read_instance(write_instance(atsp, tmp_path / "a.atsp"))
    assert np.array_equal(back.weights, atsp.weights) and back.tour_cost([0, 1, 2]) == 1 + 2 + 3
    cv = Instance("c", "CVRP", d, coords, demand=np.array([0, 3, 4, 5, 2], float), capacity=8.0)
    back = read_instance(write_instance(cv, tmp_path / "c.vrp"))
    assert back.capacity == 8 and np.array_equal(back.demand, cv.demand) and np.array_equal(back.weights, d)


def test_cvrplib_depot_is_moved_first_and_upper_row_matrices_read(tmp_path):
    f = tmp_path / "x.vrp"
    f.write_text("NAME : x\nTYPE : CVRP\nDIMENSION : 3\nEDGE_WEIGHT_TYPE : EXPLICIT\nEDGE_WEIGHT_FORMAT : UPPER_ROW\n"
                 "CAPACITY : 10\nEDGE_WEIGHT_SECTION\n4 5\n6\nDEMAND_SECTION\n1 3\n2 0\n3 4\nDEPOT_SECTION\n2\n-1\nEOF\n")
    inst = read_instance(f)
    # original nodes 1, 2, 3 with depot 2 -> new order 2, 1, 3
    assert inst.demand.tolist() == [0.0, 3.0, 4.0]
    assert inst.weights.tolist() == [[0, 4, 6], [4, 0, 5], [6, 5, 0]]


@pytest.mark.parametrize("text,match", [
    ("NAME : x\nTYPE : TSP\nEDGE_WEIGHT_TYPE : EUC_2D\nNODE_COORD_SECTION\n1 0 0\nEOF\n", "DIMENSION is missing"),
    ("NAME : x\nTYPE : TSP\nDIMENSION : 2\nEDGE_WEIGHT_TYPE : EUC_2D\nNODE_COORD_SECTION\n1 0 0\n2 a 1\nEOF\n", r"x.tsp:7: node id and coordinates"),
    ("NAME : x\nTYPE : TSP\nDIMENSION : 3\nEDGE_WEIGHT_TYPE : EUC_2D\nNODE_COORD_SECTION\n1 0 0\n2 1 1\nEOF\n", "no coordinates for node 3"),
    ("NAME : x\nTYPE : ATSP\nDIMENSION : 2\nEDGE_WEIGHT_TYPE : EXPLICIT\nEDGE_WEIGHT_FORMAT : FULL_MATRIX\nEDGE_WEIGHT_SECTION\n0 1 2\nEOF\n",
     "has 3 numbers; FULL_MATRIX with DIMENSION 2 needs 4"),
    ("NAME : x\nTYPE : HCP\nDIMENSION : 2\nEOF\n", "TYPE 'HCP' is not supported"),
    ("NAME : x\nTYPE : TSP\nDIMENSION : 2\nEDGE_WEIGHT_TYPE : EUC_3D\nEOF\n", "EDGE_WEIGHT_TYPE 'EUC_3D' is not supported"),
    ("NAME : x\nTYPE : CVRP\nDIMENSION : 2\nEDGE_WEIGHT_TYPE : EUC_2D\nCAPACITY : 5\nNODE_COORD_SECTION\n1 0 0\n2 1 1\n"
     "DEMAND_SECTION\n1 0\n2 9\nDEPOT_SECTION\n1\n-1\nEOF\n", "demands 9 > CAPACITY 5"),
    ("NAME : x\nTYPE : CVRP\nDIMENSION : 2\nEDGE_WEIGHT_TYPE : EUC_2D\nNODE_COORD_SECTION\n1 0 0\n2 1 1\nEOF\n", "needs 'CAPACITY"),
])
def test_malformed_files_get_clear_errors(tmp_path, text, match):
    f = tmp_path / "x.tsp"
    f.write_text(text)
    with pytest.raises(InstanceFormatError, match=match):
        read_instance(f)


def test_binary_file_is_refused(tmp_path):
    f = tmp_path / "x.tsp"
    f.write_bytes(b"\x80\x81\xfe\xff" * 10)
    with pytest.raises(InstanceFormatError, match="not a text file"):
        read_instance(f)


# --- instance sets
def test_instance_set_round_trip_refuses_overwrite_and_reports_corruption(tmp_path):
    inst = generate("cvrp", 5, 8, seed=0)
    d = save_instances(tmp_path / "set", "cvrp", inst, {"seed": 0})
    problem, back, meta = load_instances(d)
    assert problem == "cvrp" and meta["count"] == 5 and meta["size"] == 8 and all(torch.equal(inst[k], back[k]) for k in inst)
    sols = solve("cvrp", inst, "nn")
    save_labels(d, sols, cost("cvrp", inst, sols), {"solver": "nn"})
    sols2, costs2, info = load_labels(d)
    assert sols2 == sols and info["solver"] == "nn" and torch.allclose(costs2.float(), cost("cvrp", inst, sols))
    with pytest.raises(FileExistsError, match="already holds an instance set"):
        save_instances(d, "cvrp", inst, {})
    raw = (d / "instances.safetensors").read_bytes()
    (d / "instances.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        load_instances(d)
