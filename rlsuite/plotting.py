"""Compare runs in one figure: one line per configuration, mean and spread across its seeds.

Run directories (``rlsuite train ... --run-dir DIR``) are grouped by their ``config.json`` with the keys
that only name the run left out (:data:`IGNORED_KEYS`: ``seed``, ``run_dir``, ``resume``, ``overwrite``,
``device``, ``workers``, ``ray_address``, the versions and the logging switches), so the seeds of one configuration form one group
(the grouping lives in :mod:`rlsuite.run_groups`, shared with ``rlsuite report``).
Each run's ``metrics.csv`` column ``metric`` against column ``x`` is interpolated linearly on a common grid
(every ``x`` at which some run of the group logged the metric, inside the range every run of the group
covers); a group of one run is drawn as logged. A group of several runs is drawn as the mean with a
shaded band: min-max (default) or mean +- one sample standard deviation; the legend says which and how
many runs.

    from rlsuite.plotting import compare_runs

    summary = compare_runs(["runs/a", "runs/b", "runs/c"], "fig.png", metric="eval/mean_return")

:func:`compare_runs` writes the figure atomically and returns a summary (groups, their runs and final
values); ``rlsuite plot`` prints it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlsuite.run_groups import (
    IGNORED_KEYS,
    RunGroup,
    check_run_dir,
    describe_group,
    group_labels,
    group_runs,
    run_series,
)

__all__ = ["IGNORED_KEYS", "SPREADS", "RunGroup", "aggregate", "check_run_dir", "compare_runs", "group_runs", "run_series"]

SPREADS = ("minmax", "std", "none")
"""``minmax``: band from the lowest to the highest run; ``std``: mean +- one sample std; ``none``: mean only."""


def aggregate(series: Sequence[tuple[np.ndarray, np.ndarray]], spread: str = "minmax") -> dict[str, np.ndarray]:
    """Mean and band of several ``(xs, ys)`` on their common grid.

    Returns:
        ``{"x", "mean", "low", "high"}``, each ``(G,)``: the grid is every logged ``x`` inside
        ``[max of the runs' first x, min of their last x]``; ``low``/``high`` are the band (``spread``).
    """
    if spread not in SPREADS:
        raise ValueError(f"spread must be one of {', '.join(SPREADS)}, got {spread!r}.")
    lo = max(float(xs[0]) for xs, _ in series)
    hi = min(float(xs[-1]) for xs, _ in series)
    if lo > hi:
        ranges = ", ".join(f"[{xs[0]:g}, {xs[-1]:g}]" for xs, _ in series)
        raise ValueError(f"the runs of one configuration cover no common x range ({ranges}); plot them separately.")
    grid = np.unique(np.concatenate([xs[(xs >= lo) & (xs <= hi)] for xs, _ in series]))
    ys = np.stack([np.interp(grid, xs, y) for xs, y in series])  # (runs, G)
    mean = ys.mean(axis=0)
    if spread == "minmax":
        low, high = ys.min(axis=0), ys.max(axis=0)
    elif spread == "std" and len(series) > 1:
        std = ys.std(axis=0, ddof=1)
        low, high = mean - std, mean + std
    else:
        low, high = mean, mean
    return {"x": grid, "mean": mean, "low": low, "high": high}


def _xlabel(groups: list[RunGroup], x: str) -> str:
    if x == "step" and all(isinstance(g.config.get("run"), dict) and "total_steps" in g.config["run"] and "env" in g.config["run"]
                           for g in groups):
        return "environment steps"
    return x


def compare_runs(run_dirs: Sequence[str | Path], out: str | Path, metric: str = "eval/mean_return", x: str = "step",
                 spread: str = "minmax", title: str | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Plot ``metric`` against ``x`` for run directories, one line per configuration, into ``out`` (atomically).

    Args:
        run_dirs: run directories (each with ``metrics.csv``; ``config.json`` groups them).
        out: the figure file; its suffix picks the format (png, pdf, svg, ...).
        metric, x: ``metrics.csv`` columns.
        spread: band of a group of several runs (:data:`SPREADS`).
        title: the figure's title (default: the metric and the envs).
        overwrite: replace an existing ``out``.

    Returns:
        ``{"out", "metric", "x", "spread", "groups"}``; each group ``{"label", "legend", "runs", "x", "mean", "low",
        "high", "final_x", "final_mean", "final_low", "final_high"}`` (``legend``: its legend entry; ``x`` ...
        ``high``: what :func:`aggregate` drew; ``final_*``: their last point).

    Raises:
        FileNotFoundError: a run directory or its ``metrics.csv`` is missing.
        FileExistsError: ``out`` exists and ``overwrite`` is false.
        ValueError: no run given, a missing column (the message lists the columns), an unknown format or spread.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from rlsuite.core.atomic import atomic_path

    if not run_dirs:
        raise ValueError("no run directory given; pass one or more directories written by rlsuite train.")
    if spread not in SPREADS:
        raise ValueError(f"spread must be one of {', '.join(SPREADS)}, got {spread!r}.")
    out = Path(out)
    fig = Figure(figsize=(7, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    formats = fig.canvas.get_supported_filetypes()
    fmt = out.suffix.lstrip(".").lower()
    if fmt not in formats:
        raise ValueError(f"cannot write a figure as {out.name!r}: the suffix names the format, one of {', '.join(sorted(formats))}.")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass --overwrite to replace it, or choose another --out.")
    unique = list(dict.fromkeys(Path(d) for d in run_dirs))
    groups = group_runs(unique)
    series = [[run_series(r, metric, x) for r in g.runs] for g in groups]  # every error before anything is drawn
    labels = group_labels(groups)
    band_name = {"minmax": "min-max", "std": "± 1 std", "none": ""}[spread]

    ax = fig.add_subplot()
    summary = []
    for group, runs, label in zip(groups, series, labels, strict=True):
        agg = aggregate(runs, spread)
        n = len(runs)
        marker = "o" if len(agg["x"]) <= 25 else None
        if n > 1:
            how = f"mean of {n} runs" + (f", shaded {band_name}" if spread != "none" else "")
        else:
            how = f"1 run ({group.runs[0].name})"
        line = ax.plot(agg["x"], agg["mean"], marker=marker, ms=3, label=f"{label}: {how}")[0]
        if n > 1 and spread != "none":
            ax.fill_between(agg["x"], agg["low"], agg["high"], color=line.get_color(), alpha=0.2, linewidth=0)
        summary.append({"label": label, "legend": line.get_label(), "runs": [str(r) for r in group.runs], **agg,
                        "final_x": float(agg["x"][-1]),
                        "final_mean": float(agg["mean"][-1]), "final_low": float(agg["low"][-1]), "final_high": float(agg["high"][-1])})
    envs = sorted({describe_group(g) for g in groups})
    ax.set_title(title if title is not None else f"{metric}: {', '.join(envs) if len(envs) <= 3 else f'{len(envs)} setups'}")
    ax.set_xlabel(_xlabel(groups, x))
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(0.0, -0.14), frameon=False)  # below the axes: never over a line
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=fmt, bbox_inches="tight")
    return {"out": out, "metric": metric, "x": x, "spread": spread, "groups": summary}
