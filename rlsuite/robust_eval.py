"""Robust evaluation of a run directory (``rlsuite eval RUN --robust``).

:func:`robust_evaluate_run` loads any run's latest policy (through the agent protocol, like
:func:`rlsuite.runs.evaluate_run`), evaluates it over an uncertainty set of its env
(:func:`rlsuite.envs.robust.robust_evaluate`) and writes, in the run directory:

- ``robust/<set>.csv``: one row per point: the parameters, the mean and std of the return, and each
  episode's return (``robust/<set>__<metric>.csv`` and so on for ``metric="profit"``: the episode sums of that
  per-step ``info`` figure);
- ``robust/<set>.png``: the curve (1-D set) or heat map (2-D, 3-D);
- ``robust.csv``: one summary row per robust evaluation (appended): checkpoint step, set, mode, points,
  episodes, seed, nominal, mean, worst, CVaR 10 %, AUC and the worst point;
- ``metrics.csv``: a row at the checkpoint's step with ``eval/robust/<set>/nominal``, ``.../mean``,
  ``.../worst``, ``.../cvar10``, ``.../auc`` (through the run's logger CSV writer, which widens the header).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import torch

from rlsuite.core.atomic import atomic_path
from rlsuite.core.evaluate import policy_of
from rlsuite.core.logger import CSVWriter
from rlsuite.core.seeding import resolve_device
from rlsuite.envs.robust.evaluate import RobustResult, plot_robust, robust_evaluate

SUMMARY_COLUMNS = ("step", "set", "mode", "points", "episodes", "seed", "nominal", "mean", "worst", "cvar10", "auc", "worst_at")


def set_slug(name: str) -> str:
    """A file-name and metric-key safe form of a set name (an inline set's text included)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "set"


def write_points_csv(result: RobustResult, path: str | Path) -> Path:
    """``robust/<set>.csv``: per point (``nominal`` first, then 0, 1, ...) the parameters, the mean and std of
    the return and every episode's return (written atomically)."""
    names = list(result.uncertainty_set.names)
    episodes = result.returns.shape[1]
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    m = result.metric
    w.writerow(["point", *names, f"mean_{m}", f"std_{m}", *(f"{m}_{e}" for e in range(episodes))])
    w.writerow(["nominal", *(repr(result.nominal[n]) for n in names), repr(float(result.nominal_returns.mean())),
                repr(float(result.nominal_returns.std())), *(repr(float(r)) for r in result.nominal_returns)])
    for i, (p, r) in enumerate(zip(result.points, result.returns, strict=True)):
        w.writerow([i, *(repr(float(x)) for x in p), repr(float(r.mean())), repr(float(r.std())), *(repr(float(x)) for x in r)])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())
    return path


def append_summary(path: str | Path, row: dict[str, Any]) -> Path:
    """Append one row to ``robust.csv`` (the header written with the first row)."""
    path = Path(path)
    new = not path.is_file() or path.stat().st_size == 0
    line = io.StringIO(newline="")
    w = csv.writer(line)
    if new:
        w.writerow(SUMMARY_COLUMNS)
    w.writerow([row[c] for c in SUMMARY_COLUMNS])
    with open(path, "a", newline="", encoding="utf-8") as f:
        f.write(line.getvalue())  # one write, as the metrics writer appends
    return path


def robust_evaluate_run(
    path: str | Path,
    uncertainty_set: str | None = None,
    grid: int | None = None,
    samples: int | None = None,
    episodes: int = 10,
    seed: int = 12345,
    device: str | torch.device = "cpu",
    deterministic: bool = True,
    on_point: Any = None,
    metric: str = "return",
) -> dict[str, Any]:
    """Evaluate a run's latest policy over an uncertainty set of its env and write the files above.

    Args:
        path: a run directory (its latest checkpoint) or a checkpoint directory.
        uncertainty_set: a set name or inline set (default: the env family's default set).
        grid, samples, episodes, seed: as :func:`rlsuite.envs.robust.robust_evaluate`.
        device: device of the policy and the env tensors.
        deterministic: the policy's mode instead of samples.
        on_point: progress callback, ``on_point(i, count, parameters, mean_return)``.
        metric: ``"return"`` or a per-step ``info`` figure summed per episode (the greenhouse's ``profit``); the files
            and metric keys of another figure carry its name (``robust/<set>__profit.csv``, ``eval/robust/<set>__profit/...``).

    Returns:
        ``{"algo", "env", "step", "result", "summary", "points_csv", "figure", "summary_csv", "metrics_csv", "keys"}``.

    Raises:
        ValueError: an instance solver's run (no physics to perturb), or what the harness refuses.
    """
    from rlsuite.agents.train import run_dir_of
    from rlsuite.runs import load_run

    device = resolve_device(device)
    agent, meta, spec = load_run(path, device)
    if spec.learns_from == "instances":
        raise ValueError(f"{spec.name} solves combinatorial instances: there is no env physics to perturb (drop --robust).")
    env_id = meta.get("run", {}).get("env")
    if not env_id:
        raise ValueError(f"the run at {path} records no env to evaluate on.")
    run_dir = run_dir_of(path)
    step = int(meta.get("step") or 0)
    result = robust_evaluate(policy_of(agent, deterministic), env_id, uncertainty_set, grid=grid, samples=samples,
                             episodes=episodes, seed=seed, device=device, env_kwargs=meta.get("env_kwargs", {}), on_point=on_point,
                             metric=metric)
    s = result.summary()
    slug = set_slug(result.uncertainty_set.name) + ("" if metric == "return" else f"__{set_slug(metric)}")
    points_csv = write_points_csv(result, run_dir / "robust" / f"{slug}.csv")
    shape = " x ".join(str(n) for n in result.grid_shape) if result.grid_shape else f"{len(result.points)} random"
    figure = plot_robust(result, run_dir / "robust" / f"{slug}.png",
                         title=f"{spec.name} on {env_id} (step {step}): {result.uncertainty_set.name}, {shape} points x {episodes} episodes")
    worst_at = ";".join(f"{k}={v:g}" for k, v in result.worst_point().items())
    summary_csv = append_summary(run_dir / "robust.csv", {
        "step": step, "set": result.uncertainty_set.name + ("" if metric == "return" else f" ({metric})"), "mode": result.mode, "points": len(result.points), "episodes": episodes,
        "seed": seed, "nominal": repr(s["nominal"]), "mean": repr(s["mean"]), "worst": repr(s["worst"]), "cvar10": repr(s["cvar"]),
        "auc": repr(s["auc"]), "worst_at": worst_at})
    keys = {f"eval/robust/{slug}/{k}": s[src] for k, src in
            (("nominal", "nominal"), ("mean", "mean"), ("worst", "worst"), ("cvar10", "cvar"), ("auc", "auc"))}
    metrics_csv = run_dir / "metrics.csv"
    CSVWriter(metrics_csv).write(step, {k: float(v) for k, v in keys.items()})
    return {"algo": spec.name, "env": env_id, "step": step, "result": result, "summary": s, "points_csv": points_csv,
            "figure": figure, "summary_csv": summary_csv, "metrics_csv": metrics_csv, "keys": sorted(keys),
            "worst_at": result.worst_point(), "grid": shape}


def summary_line(s: dict[str, float], metric: str = "return") -> str:
    """The last line ``rlsuite eval --robust`` prints: ``nominal_return=.. mean_return=.. worst_return=.. cvar10_return=.. auc_return=..``
    (``nominal_profit=..`` and so on for another metric)."""
    return " ".join(f"{k}_{metric}={s[src]:.4f}" for k, src in
                    (("nominal", "nominal"), ("mean", "mean"), ("worst", "worst"), ("cvar10", "cvar"), ("auc", "auc")))


__all__ = ["SUMMARY_COLUMNS", "append_summary", "robust_evaluate_run", "set_slug", "summary_line", "write_points_csv"]
