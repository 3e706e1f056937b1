"""``rlsuite plot RUN_DIR... --out FIG``: compare runs, one line per configuration, mean and spread across seeds."""

from __future__ import annotations

import dataclasses
from typing import Literal

from rlsuite.cli.args import parse


@dataclasses.dataclass(frozen=True)
class PlotArgs:
    """Plot a metric of several runs in one figure: runs sharing a config (all but seed, run dir, device) form one
    line, the mean across them with a shaded spread."""

    run_dirs: tuple[str, ...]
    """run directories (rlsuite train --run-dir), e.g. runs/ppo-s0 runs/ppo-s1 runs/ppo-s2"""
    out: str
    """figure file; the suffix picks the format (.png, .pdf, .svg)"""
    metric: str = "eval/mean_return"
    """metrics.csv column to plot (e.g. rollout/ep_return, train/value_loss)"""
    x: str = "step"
    """metrics.csv column on the x axis"""
    spread: Literal["minmax", "std", "none"] = "minmax"
    """band of a line with several runs: min-max, mean +- one sample std, or none"""
    title: str | None = None
    """figure title (None: the metric and the envs)"""
    overwrite: bool = False
    """replace an existing --out file"""


def cmd_plot(argv: list[str]) -> int:
    """``rlsuite plot RUN_DIR... --out FIG [--metric M] [--x X] [--spread minmax|std|none] [--overwrite]``."""
    a = parse(PlotArgs, argv, "rlsuite plot", positional=("run_dirs",))
    from rlsuite.plotting import compare_runs

    s = compare_runs(a.run_dirs, a.out, a.metric, a.x, a.spread, a.title, a.overwrite)
    for g in s["groups"]:
        n = len(g["runs"])
        band = f" ({'min' if a.spread == 'minmax' else '-1 std'} {g['final_low']:.4g}, {'max' if a.spread == 'minmax' else '+1 std'} " \
               f"{g['final_high']:.4g})" if n > 1 and a.spread != "none" else ""
        print(f"{g['label']}: {n} run{'s' if n > 1 else ''}, {a.metric} at {a.x} {g['final_x']:g}: "
              f"{'mean ' if n > 1 else ''}{g['final_mean']:.4g}{band}")
    print(f"figure={s['out']}")
    return 0
