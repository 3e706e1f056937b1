"""``rlsuite cop generate|label|solve``: combinatorial instances, reference solvers, solving files.

Training BQ-NCO is ``rlsuite train bq-nco`` (``rlsuite cop train`` is the same command).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Literal

from rlsuite.cli.args import above, at_least, group_usage, parse

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"

# rlsuite.envs.cop.problems.PROBLEMS and rlsuite.envs.cop.solvers.SOLVERS, spelt out so that --help needs
# no torch import (tests/cli/test_cli_args.py checks that they agree)
Problem = Literal["tsp", "atsp", "cvrp", "op", "kp"]
Solver = Literal["lkh", "pyvrp", "ortools", "dp", "nn", "greedy"]


@dataclasses.dataclass(frozen=True)
class GenerateArgs:
    """Write random instances (safetensors + JSON)."""

    problem: Problem
    """problem kind"""
    size: int
    """nodes (TSP, ATSP), clients (CVRP, OP) or items (KP)"""
    count: int
    """instances to write"""
    out: str
    """directory to write"""
    seed: int = 0
    """seed of the generator"""
    overwrite: bool = False
    """replace an instance set already in --out"""

    def __post_init__(self) -> None:
        at_least(self, 1, "size", "count")


@dataclasses.dataclass(frozen=True)
class LabelArgs:
    """Solve every instance of a set with a reference solver."""

    dir: str
    """instance set (from rlsuite cop generate)"""
    solver: Solver
    """reference solver (lkh: tsp, atsp; pyvrp: cvrp; ortools: op; dp: kp; nn: tsp, atsp, cvrp; greedy: op, kp)"""
    time_limit: float = 1.0
    """seconds per instance (pyvrp, ortools; LKH: 10 x restarts)"""
    seed: int = 0
    """solver seed"""
    overwrite: bool = False
    """replace labels the set already has"""

    def __post_init__(self) -> None:
        above(self, 0, "time_limit")


@dataclasses.dataclass(frozen=True)
class SolveArgs:
    """Solve a TSPLIB / CVRPLIB file with a BQ-NCO model (the shipped one by default) or a reference solver; the last line is cost=<number>."""

    file: str
    """a TSPLIB (.tsp, .atsp) or CVRPLIB (.vrp) file"""
    problem: Literal["tsp", "atsp", "cvrp"]
    """the file's problem kind"""
    model: str | None = None
    """a rlsuite train bq-nco run directory, one of its checkpoints, or a saved model directory (None: the shipped model for the problem)"""
    beam: int = 1
    """beam width (1: greedy)"""
    knn: int | None = None
    """feed only the K nearest remaining nodes (large instances; None: all)"""
    solver: Solver | None = None
    """solve with this reference solver instead of a model"""
    time_limit: float = 1.0
    """seconds for --solver"""
    optimum: float | None = None
    """known optimal cost: also print the gap"""
    device: str = "auto"
    """torch device of the model: auto | cpu | cuda | cuda:N"""
    max_dimension: int = 20_000
    """refuse files with a larger DIMENSION before allocating their n x n distances"""

    def __post_init__(self) -> None:
        at_least(self, 1, "beam", "knn", "max_dimension")
        above(self, 0, "time_limit", "optimum")


SUBCOMMANDS = {
    "generate": "write random instances",
    "label": "solve every instance of a set with a reference solver",
    "train": "train BQ-NCO (the same command as rlsuite train bq-nco)",
    "solve": "solve a TSPLIB / CVRPLIB file with a BQ-NCO model or a reference solver",
}


def cmd_cop(argv: list[str]) -> int:
    """``rlsuite cop generate|label|train|solve``: combinatorial optimisation (see docs/cop.md)."""
    sub, rest = (argv[0], argv[1:]) if argv else ("", [])
    handlers = {"generate": _cop_generate, "label": _cop_label, "train": _cop_train, "solve": _cop_solve}
    if sub not in handlers:
        return group_usage("cop", SUBCOMMANDS, sub)
    return handlers[sub](rest)


def _cop_train(argv: list[str]) -> int:
    """``rlsuite cop train`` is ``rlsuite train bq-nco`` (same options: rlsuite train bq-nco --help)."""
    from rlsuite.cli.train import cmd_train

    return cmd_train(["bq-nco", *argv])


def _cop_generate(argv: list[str]) -> int:
    a = parse(GenerateArgs, argv, "rlsuite cop generate")
    from rlsuite.envs.cop.dataset import save_instances
    from rlsuite.envs.cop.problems import generate

    inst = generate(a.problem, a.count, a.size, a.seed)
    d = save_instances(a.out, a.problem, inst, {"seed": a.seed, "generator": "rlsuite.envs.cop.problems.generate"}, a.overwrite)
    print(f"wrote {a.count} {a.problem}{a.size} instances (seed {a.seed}) to {d}")
    return 0


def _cop_label(argv: list[str]) -> int:
    import time

    a = parse(LabelArgs, argv, "rlsuite cop label", positional=("dir",))
    from rlsuite.envs.cop.dataset import load_instances, save_labels
    from rlsuite.envs.cop.problems import cost, validate
    from rlsuite.envs.cop.solvers import SolverError, check_solver, solve

    problem, inst, meta = load_instances(a.dir)
    check_solver(problem, a.solver)
    if (Path(a.dir) / "labels.json").exists() and not a.overwrite:
        raise FileExistsError(f"{a.dir} is already labelled ({Path(a.dir) / 'labels.json'}); pass --overwrite to label it again.")
    B = meta["count"]
    sols: list[list[int]] = []
    t0 = time.monotonic()
    chunk = max(1, B // 10)
    for i in range(0, B, chunk):
        part = {k: v[i : i + chunk] for k, v in inst.items()}
        try:
            sols += solve(problem, part, a.solver, a.time_limit, a.seed)
        except SolverError as e:
            print(f"error: instances {i}..{i + len(next(iter(part.values()))) - 1} of {a.dir}: {e}", file=sys.stderr)
            return 1
        print(f"labelled {len(sols)}/{B} with {a.solver} ({time.monotonic() - t0:.0f} s)", flush=True)
    validate(problem, inst, sols)
    costs = cost(problem, inst, sols).double()
    save_labels(a.dir, sols, costs, {"solver": a.solver, "time_limit": a.time_limit, "seconds": time.monotonic() - t0})
    print(f"mean cost {float(costs.mean()):.4f} over {B} instances; labels in {a.dir}")
    print(f"mean_cost={float(costs.mean()):.6g}")
    return 0


def _cop_solve(argv: list[str]) -> int:
    import time

    a = parse(SolveArgs, argv, "rlsuite cop solve", positional=("file",))
    import numpy as np
    import torch

    from rlsuite.agents.bq_nco import BQNCO
    from rlsuite.envs.cop.env import COPEnv
    from rlsuite.envs.cop.io import normalised_coords, read_instance
    from rlsuite.envs.cop.solvers import SolverError, solve

    inst = read_instance(a.file, max_dimension=a.max_dimension)
    if inst.type.lower() != a.problem:
        raise ValueError(f"{a.file} is a {inst.type} instance but --problem {a.problem} was given.")
    t0 = time.monotonic()
    if a.solver:
        tens = {"dist": torch.as_tensor(inst.weights)[None]}
        if a.problem == "cvrp":
            xy = inst.coords if inst.coords is not None else np.zeros((inst.dimension, 2))
            tens.update(locs=torch.as_tensor(xy)[None], demand=torch.as_tensor(inst.demand)[None],
                        capacity=torch.tensor([inst.capacity]))
        try:
            sol = solve(a.problem, tens, a.solver, a.time_limit)[0]
        except SolverError as e:  # a solver crash or hang: said plainly, exit 1 (not a usage error, not a traceback)
            print(f"error: {a.file}: {e}", file=sys.stderr)
            return 1
        how = a.solver
    else:
        if a.problem == "atsp":
            raise ValueError("no BQ-NCO model for ATSP (it needs edge features); use --solver lkh or --solver nn.")
        model_dir = Path(a.model) if a.model else PRETRAINED_DIR / f"bq_nco_{a.problem}"
        if not (model_dir / "config.json").exists() and not (model_dir / "checkpoints").is_dir() and not (model_dir / "meta.json").exists():
            raise FileNotFoundError(f"no model at {model_dir}; train one with `rlsuite train bq-nco --problem {a.problem} --size 50 "
                                    f"--run-dir DIR` and pass --model DIR, or use --solver.")
        from rlsuite.core.seeding import resolve_device

        agent = BQNCO.load(model_dir, resolve_device(a.device))
        xy = torch.as_tensor(normalised_coords(inst), dtype=torch.float32)[None].to(agent.device)
        tens = {"locs": xy}
        if a.problem == "cvrp":
            tens.update(demand=torch.as_tensor(inst.demand, dtype=torch.float32)[None].to(agent.device),
                        capacity=torch.tensor([inst.capacity], dtype=torch.float32, device=agent.device))
        file_cost = lambda sols: torch.tensor([inst.tour_cost(s) for s in sols])  # noqa: E731
        sol = agent.solve(COPEnv(a.problem, tens), beam=a.beam, knn=a.knn, cost_fn=file_cost)[0]
        how = f"BQ-NCO {'greedy' if a.beam <= 1 else f'beam {a.beam}'} ({model_dir})"
    value = inst.tour_cost(sol)
    print(f"{inst.name}: {inst.type} with {inst.dimension} nodes, solved by {how} in {time.monotonic() - t0:.2f} s")
    if a.optimum is not None:
        print(f"gap={100 * (value - a.optimum) / a.optimum:.3f}%")
    print(f"cost={value:g}")
    return 0
