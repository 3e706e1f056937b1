"""``rlsuite stl check FORMULA --trace FILE`` and ``rlsuite stl sample``."""

from __future__ import annotations

import argparse
import sys


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


def cmd_stl(argv: list[str]) -> int:
    """``rlsuite stl check FORMULA --trace FILE`` and ``rlsuite stl sample --family F --seed N``."""
    sub, rest = (argv[0], argv[1:]) if argv else ("", [])
    if sub == "check":
        import torch

        from rlsuite.envs.stl import ParseError, parse, robustness
        from rlsuite.envs.stl.spec import signals

        p = argparse.ArgumentParser(prog="rlsuite stl check", description="Robustness of an STL formula on a trace.")
        p.add_argument("formula", help='STL text, e.g. "G[0,10](x > 1)" or "always[0:10](x > 1)"')
        p.add_argument("--trace", required=True, help="CSV: a header of signal names, then one row per time step")
        p.add_argument("--mode", default="hard", choices=["hard", "smooth"])
        p.add_argument("--temperature", type=float, default=0.1, help="smooth mode: log-sum-exp temperature")
        a = p.parse_args(rest)
        try:
            f = parse(a.formula)
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
        from rlsuite.envs.stl.tasks import FAMILIES, sample_task

        p = argparse.ArgumentParser(prog="rlsuite stl sample", description="Print a generated STL task.")
        p.add_argument("--family", default="mixed", choices=[*FAMILIES, "mixed"])
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--horizon", type=int, default=64)
        a = p.parse_args(rest)
        print(sample_task(a.family, a.seed, a.horizon).describe())
        return 0
    from rlsuite.core.registry import unknown_name_message

    print(f"error: {unknown_name_message('stl subcommand', sub, ['check', 'sample'])}", file=sys.stderr)
    return 2
