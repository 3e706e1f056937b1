"""Benchmark: BQ-NCO greedy and beam-16 vs the reference solvers (LKH-3 via elkai for TSP, PyVRP for
CVRP) and nearest neighbour, on generated instances of several sizes.

For each problem and size: ``--count`` instances (seed 12345, the generator's conventions), the
reference solver's cost (LKH: ``--lkh-runs`` restarts; PyVRP: ``--pyvrp-seconds`` per instance), and
for every method the mean optimality gap to the reference and the wall-clock time per instance (the
model decodes the whole set as one batch; the time is divided by the count). The model is a
checkpoint from ``rlsuite cop train`` (default: the shipped ``rlsuite/pretrained/bq_nco_<problem>``,
trained on size 50), so sizes above 50 measure generalisation. ``--knn`` restricts the model's input
to the nearest nodes for sizes above it.

Writes docs/benchmarks/cop.csv and the table between the ``cop`` markers of docs/benchmarks.md.

Usage:
    python scripts/bench/cop.py                          # TSP and CVRP at 20, 50, 100
    python scripts/bench/cop.py --sizes 200 --count 16     # adds rows; other sizes' rows are kept
    python scripts/bench/cop.py --tsp-model DIR --cvrp-model DIR --device cuda
"""

from __future__ import annotations

import argparse
import time

import torch
from benchlib import ROOT, git_commit, machine, read_rows, write_results  # noqa: E402  (scripts/bench on sys.path)

from rlsuite.agents.bq_nco import BQNCO
from rlsuite.envs.cop.env import COPEnv
from rlsuite.envs.cop.problems import cost, generate, validate
from rlsuite.envs.cop.solvers import solve

CSV_PATH = ROOT / "docs" / "benchmarks" / "cop.csv"
PRETRAINED = ROOT / "rlsuite" / "pretrained"


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench_problem(rows: list[dict], problem: str, model_dir, sizes, count, args) -> None:
    agent = BQNCO.load(model_dir, args.device)
    ref_solver = "lkh" if problem == "tsp" else "pyvrp"
    ref_time = args.lkh_runs / 10 if problem == "tsp" else args.pyvrp_seconds
    for n in sizes:
        inst = generate(problem, count, n, seed=12345)
        ref_sol, ref_t = timed(lambda: solve(problem, inst, ref_solver, ref_time))  # noqa: B023
        validate(problem, inst, ref_sol)
        ref = cost(problem, inst, ref_sol).double()
        dev_inst = {k: v.to(agent.device) for k, v in inst.items()}
        methods = {"nearest neighbour": lambda: solve(problem, inst, "nn")}  # noqa: B023
        knn = args.knn if n > args.knn else None
        methods["BQ-NCO greedy"] = lambda: agent.solve(COPEnv(problem, dev_inst), knn=knn)  # noqa: B023
        rep = {k: v.repeat_interleave(args.beam, 0) for k, v in dev_inst.items()}
        methods[f"BQ-NCO beam {args.beam}"] = lambda: agent.solve(COPEnv(problem, dev_inst), beam=args.beam, knn=knn,  # noqa: B023
                                                                   cost_fn=lambda s: cost(problem, rep, s).cpu())  # noqa: B023
        rows.append({"part": f"{problem}{n}", "problem": problem, "size": n, "method": f"{ref_solver} (reference)", "gap_pct": 0.0,
                     "seconds_per_instance": ref_t / count, "count": count, "mean_cost": float(ref.mean()), "device": "cpu"})
        for name, fn in methods.items():
            sol, t = timed(fn)
            validate(problem, inst, sol)
            c = cost(problem, inst, sol).double()
            gap = float(((c / ref) - 1).mean() * 100)
            dev = "cpu" if name == "nearest neighbour" else str(agent.device)
            rows.append({"part": f"{problem}{n}", "problem": problem, "size": n, "method": name, "gap_pct": gap, "seconds_per_instance": t / count,
                         "count": count, "mean_cost": float(c.mean()), "device": dev})
            print(f"{problem}{n} {name}: gap {gap:.2f}% ({t / count:.3f} s/instance)", flush=True)


def render(rows: list[dict], meta: dict) -> str:
    commits = sorted({str(r.get("commit", meta["commit"])) for r in rows})
    out = [f"Machine: {meta['machine']}; commit {', '.join(commits)}; {meta['date']}. Models: {meta['models']}. "
           "Gap = mean over instances of cost / reference - 1; time per instance (model: batch decode time / count).", "",
           "| problem | size | method | gap | s / instance | instances |", "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['problem'].upper()} | {r['size']} | {r['method']} | {r['gap_pct']:.2f}% | {r['seconds_per_instance']:.3f} | "
                   f"{r['count']} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", default="tsp,cvrp")
    ap.add_argument("--sizes", default="20,50,100")
    ap.add_argument("--count", type=int, default=32)
    ap.add_argument("--beam", type=int, default=16)
    ap.add_argument("--knn", type=int, default=100)
    ap.add_argument("--lkh-runs", type=int, default=10)
    ap.add_argument("--pyvrp-seconds", type=float, default=2.0)
    ap.add_argument("--tsp-model", default=str(PRETRAINED / "bq_nco_tsp"))
    ap.add_argument("--cvrp-model", default=str(PRETRAINED / "bq_nco_cvrp"))
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.manual_seed(0)
    models = {"tsp": args.tsp_model, "cvrp": args.cvrp_model}
    problems = args.problems.split(",")
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": machine(args.device), "commit": git_commit(), "torch": torch.__version__,
            "models": ", ".join(f"{p}: {models[p]}" for p in problems).replace(str(ROOT) + "/", "")}
    rows: list[dict] = []
    sizes = [int(s) for s in args.sizes.split(",")]
    for p in problems:
        bench_problem(rows, p, models[p], sizes, args.count, args)
    done = {f"{p}{n}" for p in problems for n in sizes}
    old = [r for r in read_rows(CSV_PATH) if r.get("part") not in done]  # keep the sizes not rerun
    rows = sorted(old + rows, key=lambda r: (r["problem"] != "tsp", int(r["size"])))
    write_results(CSV_PATH, rows, meta, "cop", render(rows, meta), "Combinatorial optimisation: BQ-NCO vs LKH-3 / PyVRP")
    print(render(rows, meta))


if __name__ == "__main__":
    main()
