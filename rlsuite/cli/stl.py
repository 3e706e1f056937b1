"""``rlsuite stl check FORMULA --trace FILE`` and ``rlsuite stl sample``."""

from __future__ import annotations

import dataclasses
import sys
from typing import Literal

from rlsuite.cli.args import above, at_least, group_usage, parse

# rlsuite.envs.stl.tasks.FAMILIES and "mixed", spelt out so that --help needs no torch import
# (tests/cli/test_cli_args.py checks that they agree)
Family = Literal["reach", "andor", "chain", "until", "mixed"]


@dataclasses.dataclass(frozen=True)
class CheckArgs:
    """Robustness of an STL formula on a trace."""

    formula: str
    """STL text, e.g. 'G[0,10](x > 1)' or 'always[0:10](x > 1)'"""
    trace: str
    """CSV: a header of signal names, then one row per time step"""
    mode: Literal["hard", "smooth"] = "hard"
    """hard: exact min/max semantics; smooth: log-sum-exp approximation"""
    temperature: float = 0.1
    """smooth mode: log-sum-exp temperature"""

    def __post_init__(self) -> None:
        above(self, 0, "temperature")


@dataclasses.dataclass(frozen=True)
class SampleArgs:
    """Print a generated STL task."""

    family: Family = "mixed"
    """task family (mixed: any of them)"""
    seed: int = 0
    """seed of the generator"""
    horizon: int = 64
    """episode length in steps"""

    def __post_init__(self) -> None:
        at_least(self, 1, "horizon")


def read_trace_csv(path: str) -> tuple[list[str], list[list[float]]]:
    """Signal names (the header) and rows of a trace CSV; bad input raises ValueError saying where."""
    import csv

    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
    except OSError as e:
        raise ValueError(f"cannot read trace file {path!r}: {e.strerror}.") from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    if len(rows) < 2:
        raise ValueError(f"trace file {path!r} needs a header of signal names and at least one row of values.")
    names = [c.strip() for c in rows[0]]
    values = []
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(names):
            raise ValueError(f"{path}:{i}: {len(row)} values, but the header names {len(names)} signals.")
        try:
            values.append([float(c) for c in row])
        except ValueError:
            bad = next(c for c in row if not _is_float(c))
            raise ValueError(f"{path}:{i}: {bad!r} is not a number.") from None
    return names, values


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


SUBCOMMANDS = {"check": "robustness of a formula on a trace (CSV)", "sample": "print a generated STL task"}


def cmd_stl(argv: list[str]) -> int:
    """``rlsuite stl check FORMULA --trace FILE`` and ``rlsuite stl sample --family F --seed N``."""
    sub, rest = (argv[0], argv[1:]) if argv else ("", [])
    if sub == "check":
        a = parse(CheckArgs, rest, "rlsuite stl check", positional=("formula",))
        import torch

        from rlsuite.envs.stl import ParseError, robustness
        from rlsuite.envs.stl import parse as parse_formula
        from rlsuite.envs.stl.spec import signals

        try:
            f = parse_formula(a.formula)
        except ParseError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        names, values = read_trace_csv(a.trace)
        missing = sorted(signals(f) - set(names))
        if missing:
            raise ValueError(f"the formula reads {missing}, which the trace's header {names} does not name.")
        rho = robustness(f, torch.tensor([values], dtype=torch.float64), names, mode=a.mode, temperature=a.temperature)
        value = float(rho[0, 0])
        print(f"{len(values)} steps, signals {', '.join(names)}; {'satisfied' if value > 0 else 'violated'}")
        print(f"robustness={value:.6g}")
        return 0
    if sub == "sample":
        a = parse(SampleArgs, rest, "rlsuite stl sample")
        from rlsuite.envs.stl.tasks import sample_task

        print(sample_task(a.family, a.seed, a.horizon).describe())
        return 0
    return group_usage("stl", SUBCOMMANDS, sub)
