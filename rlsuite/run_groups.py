"""Finding run directories and grouping them by configuration (what ``rlsuite plot`` and ``rlsuite report`` share).

A run directory is one that holds ``config.json`` and ``metrics.csv`` (what ``rlsuite train`` writes, see
:mod:`rlsuite.core.run`); :func:`find_run_dirs` collects them under given paths, however deep (a folder of
runs, a folder of folders of runs).

Runs are grouped by their ``config.json`` with the keys that only name the run left out
(:data:`IGNORED_KEYS`: ``seed``, ``run_dir``, ``resume``, ``overwrite``, ``device``, where the rollout workers ran
(``workers``, ``ray_address``), the versions and the logging switches), so the seeds of one configuration form one :class:`RunGroup`. A group's task is what it
is scored on (:func:`group_task`: the dataset of a dataset agent, else the env id, else the combinatorial
problem and size); :func:`group_labels` names groups by algorithm, env and the settings that differ between them.

    from rlsuite.run_groups import find_run_dirs, group_runs, run_series

    groups = group_runs(find_run_dirs(["runs/sweep"]))
    steps, values = run_series(groups[0].runs[0], "eval/mean_return")
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlsuite.core.logger import read_metrics

IGNORED_KEYS = frozenset({"seed", "run_dir", "resume", "overwrite", "device", "versions", "progress", "tensorboard",
                          "checkpoint_every", "keep_checkpoints", "data_dir", "workers", "ray_address"})
"""Keys of ``config.json`` (at any depth) that do not change what a run learns: left out when grouping."""

RUN_FILES = ("config.json", "metrics.csv")
"""The files that mark a run directory."""

TASK_KEYS = ("algo", "run.env", "run.dataset")
"""Flattened config keys that name the algorithm or the task, never listed among a label's settings."""


@dataclasses.dataclass(frozen=True)
class RunGroup:
    """Runs that share a configuration.

    Attributes:
        config: the shared ``config.json`` without :data:`IGNORED_KEYS` (``{}`` for a run without one).
        runs: the run directories, in the order given.
    """

    config: dict[str, Any]
    runs: tuple[Path, ...]


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in IGNORED_KEYS}
    return value


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested dict as ``{"dotted.key": leaf}`` (a non-dict value: ``{"": value}`` with an empty prefix)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: value}


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` is a directory holding every file of :data:`RUN_FILES`."""
    path = Path(path)
    return all((path / f).is_file() for f in RUN_FILES)


def check_run_dir(run_dir: str | Path) -> Path:
    """``run_dir`` as a path, or a clear error when it is missing or holds no ``metrics.csv``."""
    path = Path(run_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"run directory {str(path)!r} not found.")
    if not (path / "metrics.csv").is_file():
        raise FileNotFoundError(f"{str(path)!r} has no metrics.csv: give run directories written by rlsuite train "
                                "(each holds config.json and metrics.csv).")
    return path


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Every run directory at or under ``paths`` (sorted per path, each once; the search does not enter a run
    directory nor a hidden directory such as an unfinished atomic write's ``.name.tmp``).

    Raises:
        FileNotFoundError: a path does not exist, or no run directory is found under one of them (the message
            says what was found there instead).
    """
    found: dict[Path, None] = {}
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise FileNotFoundError(f"{str(path)!r} not found; give run directories or folders that hold them.")
        runs: list[Path] = []
        partial: list[str] = []  # directories with one of the run files but not both
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                here = Path(root)
                if all(f in files for f in RUN_FILES):
                    runs.append(here)
                    dirs[:] = []
                    continue
                have = [f for f in RUN_FILES if f in files]
                if have:
                    partial.append(f"{here} (only {have[0]})")
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if not runs:
            if path.is_dir():
                entries = sorted(e.name for e in path.iterdir())
                shown = ", ".join(entries[:10]) + (f", ... ({len(entries) - 10} more)" if len(entries) > 10 else "")
                what = f"directories with part of a run: {'; '.join(partial[:5])}" if partial else \
                    f"it holds: {shown}" if entries else "it is empty"
            else:
                what = "it is a file"
            raise FileNotFoundError(f"no run directory at or under {str(path)!r} ({what}). A run directory holds "
                                    f"{' and '.join(RUN_FILES)}, as rlsuite train writes it.")
        found.update(dict.fromkeys(runs))
    return list(found)


def group_runs(run_dirs: Sequence[str | Path]) -> list[RunGroup]:
    """Group run directories by configuration (first appearance order); a run without ``config.json`` is a
    group of its own."""
    keys: dict[str, tuple[dict[str, Any], list[Path]]] = {}
    for i, d in enumerate(run_dirs):
        path = check_run_dir(d)
        cfg_file = path / "config.json"
        if cfg_file.is_file():
            config = _strip(json.loads(cfg_file.read_text(encoding="utf-8")))
            key = json.dumps(config, sort_keys=True)
        else:
            config, key = {}, f"#{i}"
        keys.setdefault(key, (config, []))[1].append(path)
    return [RunGroup(config, tuple(runs)) for config, runs in keys.values()]


def metric_columns(run_dir: str | Path) -> list[str]:
    """The column names of a run's ``metrics.csv`` (``[]`` when it has no row)."""
    rows = read_metrics(check_run_dir(run_dir) / "metrics.csv")
    return list(rows[0]) if rows else []


def run_series(run_dir: str | Path, metric: str, x: str = "step",
               finite_only: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(xs, ys)`` of column ``metric`` against column ``x`` in a run's ``metrics.csv`` (rows lacking either
    left out, sorted by ``x``; a repeated ``x`` keeps its last row). Rows whose value is NaN or infinite are
    left out too, unless ``finite_only`` is false (a final score must see a run's last value as it is)."""
    path = check_run_dir(run_dir)
    rows = read_metrics(path / "metrics.csv")
    columns = list(rows[0]) if rows else []
    for name, flag in ((metric, "--metric"), (x, "--x")):
        if name not in columns:
            from rlsuite.core.registry import suggest

            near = suggest(name, columns)
            guess = f" Did you mean {near[0]!r}?" if near else ""
            raise ValueError(f"{path}/metrics.csv has no column {name!r} ({flag}).{guess} Its columns: {', '.join(columns) or 'none'}.")
    points: dict[float, float] = {}
    for r in rows:
        try:
            xv, yv = float(r[x]), float(r[metric])
        except (TypeError, ValueError):  # empty: the row does not log it
            continue
        if math.isfinite(xv) and (math.isfinite(yv) or not finite_only):
            points[xv] = yv
    if not points:
        raise ValueError(f"{path}/metrics.csv logs no value of {metric!r} (its rows leave the column empty); "
                         "choose another --metric (e.g. rollout/ep_return) or train until an evaluation.")
    xs = np.array(sorted(points))
    return xs, np.array([points[v] for v in xs])


def _where(group: RunGroup, order: tuple[str, ...]) -> str:
    run = group.config.get("run", {}) if isinstance(group.config.get("run"), dict) else {}
    config = group.config.get("config", {}) if isinstance(group.config.get("config"), dict) else {}
    for key in order:
        if run.get(key):
            return str(run[key])
    return f"{config.get('problem', '')}{run.get('size', '')}" if "size" in run else ""


def group_task(group: RunGroup) -> str:
    """What a group is scored on: its dataset (dataset agents: the dataset names the env and the data), else its
    env id, else its problem and size (``tsp20``); ``""`` when its config says none of these."""
    return _where(group, ("dataset", "env"))


def describe_group(group: RunGroup) -> str:
    """``"<algo> <env>"`` of a group (its dataset, or problem and size, when it has no env; the first run's
    directory name when its config names nothing)."""
    return " ".join(str(p) for p in (group.config.get("algo"), _where(group, ("env", "dataset"))) if p) or group.runs[0].name


def differing_keys(groups: Sequence[RunGroup], exclude: Iterable[str] = TASK_KEYS) -> list[str]:
    """Flattened config keys (sorted) whose value is not the same in every group (absent counts as a value)."""
    flat = [flatten(g.config) for g in groups]
    keys = sorted({k for f in flat for k in f} - set(exclude))
    return [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1]


def settings_label(group: RunGroup, keys: Sequence[str], limit: int | None = None, full_names: bool = False) -> list[str]:
    """``["name=value", ...]`` for the ``keys`` a group's config has (names: the last part of the dotted key, or
    the whole key with ``full_names``); past ``limit`` settings the list ends with ``"..."``."""
    flat = flatten(group.config)
    extra = [f"{k if full_names else k.rsplit('.', 1)[-1]}={flat[k]}" for k in keys if k in flat]
    if limit is not None and len(extra) > limit:
        extra = [*extra[:limit], "..."]
    return extra


def group_labels(groups: list[RunGroup]) -> list[str]:
    """A label per group: algorithm and task, and (up to four of) the settings that differ between the groups."""
    keys = differing_keys(groups)
    labels = [" ".join([describe_group(g), *settings_label(g, keys, limit=4)]) for g in groups]
    if len(set(labels)) < len(labels):  # still ambiguous (e.g. runs without config.json): number them
        labels = [f"{i + 1}: {lab}" for i, lab in enumerate(labels)]
    return labels
