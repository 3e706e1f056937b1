"""``rlsuite report PATH...``: aggregate the final scores of many runs (IQM, median, mean, optimality gap with
stratified bootstrap intervals, performance profiles, probability of improvement) into Markdown and PNG files."""

from __future__ import annotations

import dataclasses

from rlsuite.cli.args import at_least, parse


@dataclasses.dataclass(frozen=True)
class ReportArgs:
    """Aggregate report of runs: per method (algorithm and the settings that differ) over tasks (envs, datasets),
    IQM / median / mean / optimality gap with 95% stratified bootstrap intervals, performance profiles and
    probability of improvement, written as report.md, scores.csv and PNG figures."""

    paths: tuple[str, ...]
    """run directories or folders that hold them (searched recursively), e.g. runs/sweep"""
    metric: str = "eval/mean_return"
    """metrics.csv column whose last value is a run's score"""
    normalize: str | None = None
    """MIN:MAX mapped to 0:1 on every task, e.g. 0:500"""
    normalize_by: str | None = None
    """CSV file with columns task,min,max: per-task normalisation"""
    reps: int = 2000
    """bootstrap resamples per interval"""
    out: str | None = None
    """report directory (None: report/ in the first PATH, or beside it when that PATH is a run directory)"""
    baseline: str | None = None
    """method that every other one is compared with by probability of improvement (None: every pair), e.g. ppo"""
    seed: int = 0
    """seed of the bootstrap resampling"""
    overwrite: bool = False
    """replace the files of an earlier report in --out"""

    def __post_init__(self) -> None:
        at_least(self, 1, "reps")
        if self.normalize is not None and self.normalize_by is not None:
            raise ValueError("give --normalize or --normalize-by, not both.")
        if self.normalize is not None:
            from rlsuite.report import parse_normalize

            parse_normalize(self.normalize)


def cmd_report(argv: list[str]) -> int:
    """``rlsuite report PATH... [--metric M] [--normalize MIN:MAX | --normalize-by CSV] [--reps N] [--out DIR]
    [--baseline NAME] [--seed S] [--overwrite]``."""
    a = parse(ReportArgs, argv, "rlsuite report", positional=("paths",))
    from rlsuite.report import make_report, parse_normalize

    s = make_report(a.paths, a.metric, parse_normalize(a.normalize) if a.normalize is not None else None, a.normalize_by,
                    a.reps, a.out, a.baseline, a.seed, a.overwrite)
    print(s["tables"]["aggregates"])
    if s["tables"]["improvement"]:
        print()
        print(s["tables"]["improvement"])
    if s["left_out"]:
        print(f"\nleft out {len(s['left_out'])} run(s):")
        for run, reason in s["left_out"]:
            print(f"  {run}: {reason}")
    print()
    for name, path in s["files"].items():
        print(f"{name}={path}")
    return 0
