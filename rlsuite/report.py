"""Aggregate reports over many runs: interquartile mean, median, mean and optimality gap with stratified
bootstrap confidence intervals, performance profiles and probability of improvement.

``rlsuite report PATH...`` calls :func:`make_report`. It finds every run directory at or under the paths
(:func:`rlsuite.run_groups.find_run_dirs`: a directory with ``config.json`` and ``metrics.csv``, however
deep: a folder of runs, a folder of sweeps), groups the runs by configuration as ``rlsuite plot`` does
(:func:`rlsuite.run_groups.group_runs`: the seeds of one configuration form one group) and scores each run by
the last value of a ``metrics.csv`` column (default ``eval/mean_return``).

A group is one *method* on one *task*. The task is what the group is scored on
(:func:`rlsuite.run_groups.group_task`: the env id, the dataset, or the problem and size). The method is the
algorithm plus the settings that tell its groups on one task apart (:func:`method_names`): two PPO groups on
Hopper-v5 with learning rates 1e-3 and 3e-4 are the methods ``ppo learning_rate=0.001`` and ``ppo
learning_rate=0.0003``, and a PPO group on Walker2d-v5 joins the one with its learning rate; settings that
only change from task to task (a per-env preset, the budget) do not split a method. One PPO group per env
is simply the method ``ppo``. A method's scores form a ``(num_runs, num_tasks)`` matrix (NaN where a task
has fewer runs) and the statistics of :mod:`rlsuite.core.aggregate` apply:

- per method, over its tasks: IQM, median, mean and (normalised scores only) optimality gap, each with a
  stratified bootstrap 95% percentile interval;
- per method and task: IQM and mean with their intervals, the number of runs and their final steps;
- the performance profile of each method (fraction of runs scoring above each threshold, with bootstrap
  bands);
- the probability of improvement ``P(X > Y)`` of every pair of methods (or of every method against
  ``baseline``) on the tasks both have.

Scores are raw, or normalised (``0`` at ``min``, ``1`` at ``max``): with one ``(min, max)`` for every task,
or per task from a CSV file with columns ``task,min,max``. Raw scores of different tasks do not share a
scale, so their aggregates mix units; the report says so.

Files, each written atomically into ``out``: ``report.md`` (the tables), ``scores.csv`` (every run's
score), ``aggregates.png``, ``performance_profile.png`` and, with two methods or more,
``probability_of_improvement.png``.

    from rlsuite.report import make_report

    summary = make_report(["runs/sweep"], normalize=(0.0, 500.0), reps=2000, seed=0)
    print(summary["markdown"])
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlsuite.core import aggregate as agg
from rlsuite.core.atomic import atomic_path, atomic_write_text
from rlsuite.core.registry import suggest, unknown_name_message
from rlsuite.run_groups import (
    RunGroup,
    differing_keys,
    find_run_dirs,
    group_runs,
    group_task,
    is_run_dir,
    metric_columns,
    run_series,
    settings_label,
)

DEFAULT_METRIC = "eval/mean_return"
"""The ``metrics.csv`` column scored by default."""

CONFIDENCE = 0.95
"""Coverage of every interval."""

PROFILE_POINTS = 101
"""Thresholds of a performance profile (evenly spaced from the lowest to the highest score)."""

REPORT_FILES = ("report.md", "scores.csv", "aggregates.png", "performance_profile.png", "probability_of_improvement.png")
"""What :func:`make_report` writes into its ``out`` directory (the last only with two methods or more)."""


@dataclasses.dataclass(frozen=True)
class RunScore:
    """One run's final score.

    Attributes:
        run: the run directory.
        method: the method's name (see :func:`method_names`).
        task: what it is scored on (env id, dataset, or problem and size).
        step: the ``step`` of the row that logged the score.
        raw: the last value of the metric.
        score: ``raw`` normalised (equal to ``raw`` without normalisation).
    """

    run: Path
    method: str
    task: str
    step: float
    raw: float
    score: float


@dataclasses.dataclass(frozen=True)
class Method:
    """A method's scores on its tasks.

    Attributes:
        name: e.g. ``ppo`` or ``ppo learning_rate=0.001``.
        tasks: its tasks, sorted.
        runs: per task, its runs' :class:`RunScore` (in the order found).
        scores: ``(num_runs, num_tasks)`` of ``RunScore.score``, NaN where a task has fewer runs than another.
    """

    name: str
    tasks: tuple[str, ...]
    runs: tuple[tuple[RunScore, ...], ...]
    scores: np.ndarray

    @property
    def num_runs(self) -> int:
        return sum(len(r) for r in self.runs)


# ----------------------------------------------------------------------------- grouping and scores


def method_names(groups: Sequence[RunGroup]) -> list[str]:
    """A method name per group: the algorithm, and the settings that differ between its groups on one task.

    For each algorithm, the settings are the flattened ``config.json`` keys whose values differ between two
    of its groups that share a task (on any task); a group's name lists its values of those keys
    (``ppo learning_rate=0.001``). Groups of one algorithm on different tasks with the same values share a
    name: that is one method scored on several tasks. Names are unique within a task (the full dotted key
    is used when the last part is ambiguous, a ``#n`` suffix as a last resort).
    """
    by_algo: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        by_algo.setdefault(str(g.config.get("algo") or "run"), []).append(i)
    names = [""] * len(groups)
    for algo, members in by_algo.items():
        by_task: dict[str, list[int]] = {}
        for i in members:
            by_task.setdefault(group_task(groups[i]), []).append(i)
        keys = sorted({k for same in by_task.values() if len(same) > 1 for k in differing_keys([groups[i] for i in same])})

        for full_names in (False, True, None):
            for i in members:
                names[i] = " ".join([algo, *settings_label(groups[i], keys, full_names=bool(full_names))])
            if full_names is None:  # still ambiguous: number the groups of each task
                for same in by_task.values():
                    for n, i in enumerate(same):
                        names[i] = f"{names[i]} #{n + 1}"
            elif all(len({names[i] for i in same}) == len(same) for same in by_task.values()):  # unique within each task
                break
    return names


def _sweep_trials(folder: Path, cache: dict[Path, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The trials (by name) of ``folder/sweep.json``; empty when the folder holds none (or it is unreadable)."""
    if folder not in cache:
        trials: dict[str, dict[str, Any]] = {}
        try:
            doc = json.loads((folder / "sweep.json").read_text(encoding="utf-8"))
            trials = {str(t["name"]): t for t in doc.get("trials", []) if isinstance(t, dict) and "name" in t}
        except (OSError, ValueError, AttributeError, KeyError, TypeError):
            pass
        cache[folder] = trials
    return cache[folder]


def collect_scores(paths: Sequence[str | Path], metric: str = DEFAULT_METRIC) -> tuple[list[RunScore], list[tuple[Path, str]]]:
    """Every run at or under ``paths`` with its final ``metric`` (not yet normalised: ``score == raw``).

    Returns:
        ``(scores, left_out)``: ``left_out`` lists, with the reason, the runs that log no value of ``metric``,
        whose last value of it is not finite (NaN, inf: not an older value instead), and the trials of a sweep
        (a folder with ``sweep.json``) whose status there is not ``finished`` (pending, running, stopped, failed).

    Raises:
        FileNotFoundError: a path is missing or holds no run directory.
        ValueError: no run logs ``metric`` (the message lists the columns the runs have and the nearest one).
    """
    run_dirs = find_run_dirs(paths)
    groups = group_runs(run_dirs)
    names = method_names(groups)
    scores: list[RunScore] = []
    left_out: list[tuple[Path, str]] = []
    sweeps: dict[Path, dict[str, dict[str, Any]]] = {}
    for group, name in zip(groups, names, strict=True):
        task = group_task(group) or "(no task in config.json)"
        for run in group.runs:
            trial = _sweep_trials(run.parent, sweeps).get(run.name)
            if trial is not None and trial.get("status") != "finished":
                error = f": {trial['error']}" if trial.get("error") else ""
                left_out.append((run, f"its sweep ({run.parent / 'sweep.json'}) says this trial is "
                                      f"{trial.get('status')!r}, not finished{error}"))
                continue
            try:
                steps, values = run_series(run, metric, finite_only=False)
            except ValueError as e:
                left_out.append((run, str(e)))
                continue
            if not math.isfinite(float(values[-1])):
                left_out.append((run, f"its last {metric!r} (step {steps[-1]:g}) is {values[-1]}, not a finite number"))
                continue
            scores.append(RunScore(run, name, task, float(steps[-1]), float(values[-1]), float(values[-1])))
    if not scores:
        columns = sorted({c for r in run_dirs for c in metric_columns(r)} - {"step"})
        near = suggest(metric, columns)
        guess = f" Did you mean {near[0]!r}?" if near else ""
        where = ", ".join(str(p) for p in paths)
        raise ValueError(f"no run logs a value of {metric!r} (--metric): {len(run_dirs)} run director"
                         f"{'y' if len(run_dirs) == 1 else 'ies'} found under {where}.{guess} "
                         f"Their metrics.csv columns: {', '.join(columns) or 'none'}.")
    return scores, left_out


# ----------------------------------------------------------------------------- normalisation


def parse_normalize(text: str) -> tuple[float, float]:
    """``"MIN:MAX"`` -> ``(min, max)``: the scores that become 0 and 1 (``max > min``)."""
    parts = text.split(":")
    try:
        low, high = (float(p) for p in parts) if len(parts) == 2 else (math.nan, math.nan)
    except ValueError:
        low = high = math.nan
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise ValueError(f"--normalize takes MIN:MAX, two numbers with MAX > MIN (the scores that become 0 and 1), "
                         f"e.g. 0:500 or -1000:300; got {text!r}.")
    return low, high


def read_normalization(path: str | Path) -> dict[str, tuple[float, float]]:
    """``{task: (min, max)}`` from a CSV file with a header naming the columns ``task``, ``min`` and ``max``
    (other columns are ignored; one row per task).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a missing column, a repeated task, or a row that is not two numbers with max > min.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--normalize-by file {str(path)!r} not found; it is a CSV file with columns task,min,max.")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in ("task", "min", "max") if c not in header]
        if missing:
            raise ValueError(f"{path} must have the columns task,min,max (one row per task); its header is "
                             f"{','.join(header) or 'empty'} (missing {', '.join(missing)}).")
        table: dict[str, tuple[float, float]] = {}
        for line, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            task = row["task"]
            try:
                low, high = float(row["min"]), float(row["max"])
            except ValueError:
                low = high = math.nan
            if not (math.isfinite(low) and math.isfinite(high) and high > low):
                raise ValueError(f"{path}, line {line}: min and max of {task!r} must be numbers with max > min, "
                                 f"got {row['min']!r} and {row['max']!r}.")
            if task in table:
                raise ValueError(f"{path}, line {line}: task {task!r} appears twice.")
            table[task] = (low, high)
    return table


def normalize_scores(scores: list[RunScore], normalize: tuple[float, float] | None = None,
                     normalize_by: dict[str, tuple[float, float]] | None = None) -> list[RunScore]:
    """The runs with ``score`` normalised: by one ``(min, max)``, or per task by ``normalize_by``.

    Raises:
        ValueError: both given, or a task missing from ``normalize_by`` (the message lists both sides).
    """
    if normalize is not None and normalize_by is not None:
        raise ValueError("give --normalize or --normalize-by, not both.")
    if normalize is None and normalize_by is None:
        return scores
    if normalize_by is not None:
        missing = sorted({s.task for s in scores} - set(normalize_by))
        if missing:
            raise ValueError(f"--normalize-by has no row for task(s) {', '.join(missing)}; it has: "
                             f"{', '.join(sorted(normalize_by)) or 'none'}.")
    out = []
    for s in scores:
        low, high = normalize if normalize is not None else normalize_by[s.task]  # type: ignore[index]
        out.append(dataclasses.replace(s, score=float(agg.normalize(s.raw, low, high))))
    return out


def build_methods(scores: Sequence[RunScore]) -> list[Method]:
    """The runs' scores as one :class:`Method` per method name (in the order the names first appear)."""
    by_method: dict[str, dict[str, list[RunScore]]] = {}
    for s in scores:
        by_method.setdefault(s.method, {}).setdefault(s.task, []).append(s)
    methods = []
    for name, by_task in by_method.items():
        tasks = tuple(sorted(by_task))
        runs = tuple(tuple(by_task[t]) for t in tasks)
        matrix = np.full((max(len(r) for r in runs), len(tasks)), np.nan)
        for j, task_runs in enumerate(runs):
            matrix[: len(task_runs), j] = [r.score for r in task_runs]
        methods.append(Method(name, tasks, runs, matrix))
    return methods


def find_method(methods: Sequence[Method], name: str) -> Method:
    """The method called ``name``, or the only method of the algorithm ``name``.

    Raises:
        ValueError: no such method (the message lists the methods and the nearest name).
    """
    for m in methods:
        if m.name == name:
            return m
    of_algo = [m for m in methods if m.name.split(" ", 1)[0] == name]
    if len(of_algo) == 1:
        return of_algo[0]
    raise ValueError(unknown_name_message("method", name, [m.name for m in methods],
                                          "Give --baseline a method name as the report's table spells it (quoted)."))


# ----------------------------------------------------------------------------- statistics


def _stack(functions: Sequence[Any]) -> Any:
    return lambda s: np.stack([f(s) for f in functions], axis=-1)


def method_statistics(methods: Sequence[Method], normalized: bool, reps: int, rng: np.random.Generator,
                      baseline: str | None = None) -> dict[str, Any]:
    """The report's numbers (see the module docstring), every interval from ``rng``.

    Returns:
        ``{"aggregates": [{"method", "tasks", "runs", name: (point, low, high), ...}], "per_task": [{"task",
        "method", "runs", "steps", "IQM", "mean"}], "profile": {"taus", "curves": [{"method", "point", "low",
        "high"}]}, "improvement": [{"x", "y", "tasks", "p", "low", "high"}]}``.
    """
    names = ["IQM", "median", "mean"] + (["optimality gap"] if normalized else [])
    aggregates = []
    for m in methods:
        point, low, high = agg.interval_estimate(_stack([agg.AGGREGATES[n] for n in names]), m.scores, reps=reps, rng=rng,
                                                 confidence=CONFIDENCE)
        aggregates.append({"method": m.name, "tasks": len(m.tasks), "runs": m.num_runs,
                           **{n: (float(point[i]), float(low[i]), float(high[i])) for i, n in enumerate(names)}})
    per_task = []
    for task in sorted({t for m in methods for t in m.tasks}):
        for m in methods:
            if task not in m.tasks:
                continue
            runs = m.runs[m.tasks.index(task)]
            column = np.array([[r.score] for r in runs])
            point, low, high = agg.interval_estimate(_stack([agg.interquartile_mean, agg.mean]), column, reps=reps, rng=rng,
                                                     confidence=CONFIDENCE)
            steps = [r.step for r in runs]
            per_task.append({"task": task, "method": m.name, "runs": len(runs), "steps": (min(steps), max(steps)),
                             "IQM": (float(point[0]), float(low[0]), float(high[0])),
                             "mean": (float(point[1]), float(low[1]), float(high[1]))})
    every = np.concatenate([m.scores[~np.isnan(m.scores)] for m in methods])
    lo, hi = float(every.min()), float(every.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    taus = np.linspace(lo, hi, PROFILE_POINTS)
    curves = []
    for m in methods:
        point, low, high = agg.interval_estimate(lambda s: agg.score_distribution(s, taus), m.scores, reps=reps, rng=rng,
                                                 confidence=CONFIDENCE)
        curves.append({"method": m.name, "point": point, "low": low, "high": high})
    improvement = []
    if baseline is not None:
        base = find_method(methods, baseline)
        pairs = [(m, base) for m in methods if m is not base]
    else:
        pairs = [(a, b) for i, a in enumerate(methods) for b in methods[i + 1:]]
    for x, y in pairs:
        common = [t for t in x.tasks if t in y.tasks]
        if not common:
            improvement.append({"x": x.name, "y": y.name, "tasks": 0, "p": None, "low": None, "high": None})
            continue
        sx = x.scores[:, [x.tasks.index(t) for t in common]]
        sy = y.scores[:, [y.tasks.index(t) for t in common]]
        point, low, high = agg.interval_estimate(agg.probability_of_improvement, sx, sy, reps=reps, rng=rng, confidence=CONFIDENCE)
        improvement.append({"x": x.name, "y": y.name, "tasks": len(common), "p": float(point), "low": float(low), "high": float(high)})
    return {"statistics": names, "aggregates": aggregates, "per_task": per_task,
            "profile": {"taus": taus, "curves": curves}, "improvement": improvement}


# ----------------------------------------------------------------------------- writing


def _num(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def _interval(t: tuple[float, float, float]) -> str:
    return f"{_num(t[0])} [{_num(t[1])}, {_num(t[2])}]"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _steps(low: float, high: float) -> str:
    return f"{low:g}" if low == high else f"{low:g}-{high:g}"


def markdown_tables(stats: dict[str, Any]) -> dict[str, str]:
    """``{"aggregates", "per_task", "improvement"}``: the report's Markdown tables (``improvement`` empty with
    one method)."""
    names = stats["statistics"]
    aggregates = _table(["method", "tasks", "runs", *names],
                        [[a["method"], a["tasks"], a["runs"], *(_interval(a[n]) for n in names)] for a in stats["aggregates"]])
    per_task = _table(["task", "method", "runs", "final step", "IQM", "mean"],
                      [[r["task"], r["method"], r["runs"], _steps(*r["steps"]), _interval(r["IQM"]), _interval(r["mean"])]
                       for r in stats["per_task"]])
    rows = [[i["x"], i["y"], i["tasks"], _interval((i["p"], i["low"], i["high"])) if i["p"] is not None else "no common task"]
            for i in stats["improvement"]]
    improvement = _table(["X", "Y", "tasks", "P(X > Y)"], rows) if rows else ""
    return {"aggregates": aggregates, "per_task": per_task, "improvement": improvement}


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def plot_aggregates(stats: dict[str, Any], path: Path, xlabel: str) -> None:
    """One panel per statistic: each method's point estimate and interval (a horizontal bar)."""
    names, rows = stats["statistics"], stats["aggregates"]
    fig = _figure(2.6 * len(names) + 1.5, 0.45 * len(rows) + 1.3)
    axes = fig.subplots(1, len(names), sharey=True, squeeze=False)[0]
    ys = np.arange(len(rows))[::-1]
    colors = [f"C{i % 10}" for i in range(len(rows))]
    for ax, name in zip(axes, names, strict=True):
        for y, row, color in zip(ys, rows, colors, strict=True):
            point, low, high = row[name]
            ax.barh(y, high - low, left=low, height=0.6, color=color, alpha=0.55)
            ax.plot([point, point], [y - 0.3, y + 0.3], color="k", linewidth=1.5)
        ax.set_title(name + (" (lower is better)" if name == "optimality gap" else ""), fontsize="medium")
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(ys, [r["method"] for r in rows])
    fig.suptitle(f"point estimate (black) and {CONFIDENCE:.0%} stratified bootstrap interval (bar)", fontsize="small")
    _save(fig, path)


def plot_profile(stats: dict[str, Any], path: Path, xlabel: str) -> None:
    """Fraction of runs scoring above each threshold, per method, with its bootstrap band."""
    taus = stats["profile"]["taus"]
    fig = _figure(7, 4.2 + 0.22 * len(stats["profile"]["curves"]))
    ax = fig.add_subplot()
    for curve in stats["profile"]["curves"]:
        line = ax.plot(taus, curve["point"], label=curve["method"])[0]
        ax.fill_between(taus, curve["low"], curve["high"], color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel(f"threshold τ ({xlabel})")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"performance profile (shaded: {CONFIDENCE:.0%} bootstrap band)", fontsize="medium")
    ax.grid(alpha=0.3)
    fig.legend(fontsize="small", loc="outside lower left", frameon=False)
    _save(fig, path)


def plot_improvement(stats: dict[str, Any], path: Path) -> None:
    """``P(X > Y)`` of each pair with its interval; 0.5 (no difference) dashed."""
    rows = [i for i in stats["improvement"] if i["p"] is not None]
    labels = [f"{r['x']}  vs  {r['y']}" for r in rows]
    fig = _figure(4.5 + 0.075 * max(len(t) for t in labels), 0.45 * len(rows) + 1.5)
    ax = fig.add_subplot()
    ys = np.arange(len(rows))[::-1]
    for y, row in zip(ys, rows, strict=True):
        ax.barh(y, row["high"] - row["low"], left=row["low"], height=0.6, color="C0", alpha=0.55)
        ax.plot([row["p"], row["p"]], [y - 0.3, y + 0.3], color="k", linewidth=1.5)
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(ys, labels)
    ax.set_xlim(0, 1)
    ax.set_xlabel("P(X > Y)")
    fig.suptitle(f"probability that a run of X scores above a run of Y (averaged over tasks)\n"
                 f"point estimate (black) and {CONFIDENCE:.0%} stratified bootstrap interval (bar)", fontsize="small")
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path)


def aggregate_tables(methods: Sequence[Method], normalized: bool = False, reps: int = 2000, seed: int = 0,
                     baseline: str | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The report's statistics and Markdown tables for methods' scores (:func:`build_methods` of
    :class:`RunScore` s): what :func:`make_report` writes, and what the benchmark scripts use for their multi-seed
    tables (their scores come from their CSV files, not from run directories).

    Args:
        methods: the methods and their scores.
        normalized: the scores are normalised (0 = min, 1 = max): the optimality gap is added.
        reps: bootstrap resamples per interval (>= 1).
        seed: seed of the bootstrap's generator (the same seed and scores give the same intervals).
        baseline: a method name: probability of improvement over it only (default: every pair).

    Returns:
        ``(method_statistics(...), markdown_tables(...))``.
    """
    stats = method_statistics(methods, normalized, reps, np.random.default_rng(seed), baseline)
    return stats, markdown_tables(stats)


def default_out(paths: Sequence[str | Path]) -> Path:
    """``<first path>/report``; when the first path is itself a run directory, ``report`` beside it."""
    first = Path(paths[0])
    return (first.parent if is_run_dir(first) else first) / "report"


def _scores_csv(scores: Sequence[RunScore], normalized: bool) -> str:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "task", "run", "step", "value", *(["score"] if normalized else [])])
    for s in scores:
        w.writerow([s.method, s.task, str(s.run), f"{s.step:g}", repr(s.raw), *([repr(s.score)] if normalized else [])])
    return buf.getvalue()


def make_report(paths: Sequence[str | Path], metric: str = DEFAULT_METRIC, normalize: tuple[float, float] | None = None,
                normalize_by: str | Path | None = None, reps: int = 2000, out: str | Path | None = None,
                baseline: str | None = None, seed: int = 0, overwrite: bool = False) -> dict[str, Any]:
    """Score every run at or under ``paths`` and write the aggregate report into ``out``.

    Args:
        paths: run directories, or folders that hold them (searched recursively).
        metric: the ``metrics.csv`` column whose last value is a run's score.
        normalize: ``(min, max)`` mapped to ``(0, 1)`` for every task.
        normalize_by: a CSV file with columns ``task,min,max`` (per-task normalisation).
        reps: bootstrap resamples per interval.
        out: the report directory (default :func:`default_out`).
        baseline: a method name: probability of improvement of every other method over it (default: every pair).
        seed: seed of the bootstrap's generator (the same seed and runs give the same intervals).
        overwrite: replace the files of an earlier report in ``out``.

    Returns:
        ``{"out", "files": {name: path}, "metric", "scores": [RunScore], "left_out": [(run, reason)],
        "methods": [Method], "tables": {...}, "markdown", **method_statistics(...)}``.

    Raises:
        FileNotFoundError: a path is missing or holds no run directory; ``normalize_by`` is missing.
        FileExistsError: ``out`` already holds a report and ``overwrite`` is false.
        ValueError: no run logs ``metric``, a bad normalisation, an unknown ``baseline``, ``reps < 1``.
    """
    if not paths:
        raise ValueError("no path given; pass run directories or folders that hold them.")
    if reps < 1:
        raise ValueError(f"--reps must be >= 1, got {reps}.")
    if normalize is not None and normalize_by is not None:
        raise ValueError("give --normalize or --normalize-by, not both.")
    out = Path(out) if out is not None else default_out(paths)
    present = [f for f in REPORT_FILES if (out / f).exists()]
    if present and not overwrite:
        raise FileExistsError(f"{out} already holds a report ({', '.join(present)}); pass --overwrite to replace it, "
                              "or choose another --out.")
    table = read_normalization(normalize_by) if normalize_by is not None else None
    raw, left_out = collect_scores(paths, metric)
    scores = normalize_scores(raw, normalize, table)
    methods = build_methods(scores)
    if baseline is not None:
        find_method(methods, baseline)  # an unknown name fails before any statistic is computed
    normalized = normalize is not None or table is not None
    stats, tables = aggregate_tables(methods, normalized, reps, seed, baseline)

    tasks = sorted({s.task for s in scores})
    if normalize is not None:
        how = f"normalised with min {_num(normalize[0])} -> 0 and max {_num(normalize[1])} -> 1 on every task"
    elif normalize_by is not None:
        how = f"normalised per task with the min (-> 0) and max (-> 1) of `{normalize_by}`"
    else:
        how = "raw" + (" (not normalised: the aggregates over tasks mix their scales; pass --normalize or --normalize-by)"
                       if len(tasks) > 1 else "")
    lines = [
        f"# Report: {metric}",
        "",
        f"{len(scores)} runs of {len(methods)} method{'s' if len(methods) != 1 else ''} on {len(tasks)} task"
        f"{'s' if len(tasks) != 1 else ''} ({', '.join(tasks)}), found under {', '.join(f'`{p}`' for p in paths)}.",
        f"Score of a run: the last value of `{metric}` in its metrics.csv, {how}.",
        f"Intervals: {CONFIDENCE:.0%} stratified bootstrap percentile intervals (runs resampled within each task, "
        f"{reps} resamples, seed {seed}).",
        "",
        "## Aggregate over tasks",
        "",
        "IQM: mean of the middle half of all runs' scores; median and mean: of the per-task mean scores"
        + ("; optimality gap: mean shortfall below 1 (lower is better)." if normalized else
           ". The optimality gap (shortfall below 1) is given for normalised scores."),
        "",
        tables["aggregates"],
        "",
        "## Per task",
        "",
        tables["per_task"],
        "",
    ]
    if tables["improvement"]:
        lines += ["## Probability of improvement", "",
                  "P(X > Y): the probability that a run of X scores above a run of Y on a task (ties count half), "
                  "averaged over the tasks both have.", "", tables["improvement"], ""]
    figures = {"aggregates": out / "aggregates.png", "profile": out / "performance_profile.png"}
    if any(i["p"] is not None for i in stats["improvement"]):
        figures["improvement"] = out / "probability_of_improvement.png"
    lines += ["## Figures", ""] + [f"![{name}]({p.name})" for name, p in figures.items()] + [""]
    if left_out:
        lines += ["## Runs left out", "", *(f"- `{run}`: {reason}" for run, reason in left_out), ""]
    markdown = "\n".join(lines)

    xlabel = "normalised score" if normalized else metric
    out.mkdir(parents=True, exist_ok=True)
    plot_aggregates(stats, figures["aggregates"], xlabel)
    plot_profile(stats, figures["profile"], xlabel)
    if "improvement" in figures:
        plot_improvement(stats, figures["improvement"])
    elif (out / "probability_of_improvement.png").exists():  # from an earlier report being replaced
        (out / "probability_of_improvement.png").unlink()
    files = {"report": out / "report.md", "scores": out / "scores.csv", **figures}
    atomic_write_text(files["scores"], _scores_csv(scores, normalized))
    atomic_write_text(files["report"], markdown)
    return {"out": out, "files": files, "metric": metric, "scores": scores, "left_out": left_out, "methods": methods,
            "tables": tables, "markdown": markdown, **stats}
