"""Instance sets on disk: ``DIR/instances.safetensors`` + ``DIR/meta.json``, and after labelling
``DIR/labels.safetensors`` (solutions padded with -1, their costs) + ``DIR/labels.json`` (solver,
time limit, mean cost). safetensors and JSON only; every write is atomic (:mod:`rlsuite.core.atomic`:
temporary file in the same directory, fsync, rename, fsync of the directory). ``meta.json`` and
``labels.json`` are written last and removed first when a set is replaced: they mark a complete set, so
an interrupted rewrite reads as "no instance set" / "no labels", never as old metadata over new tensors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from rlsuite.core.atomic import atomic_path, atomic_write_json
from rlsuite.envs.cop.problems import check_problem, instance_size

SCHEMA = "rlsuite.cop_instances/1"


def _atomic_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_json(path, data, sort_keys=True)


def _atomic_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))


def save_instances(directory: str | os.PathLike, problem: str, inst: dict[str, torch.Tensor], meta: dict[str, Any],
                   overwrite: bool = False) -> Path:
    """Write an instance set; refuses to replace an existing one unless ``overwrite``."""
    check_problem(problem)
    d = Path(directory)
    if (d / "meta.json").exists() and not overwrite:
        raise FileExistsError(f"{d} already holds an instance set; choose another --out or pass --overwrite.")
    d.mkdir(parents=True, exist_ok=True)
    for stale in ("meta.json", "labels.json", "labels.safetensors"):  # the markers first
        (d / stale).unlink(missing_ok=True)
    _atomic_tensors(d / "instances.safetensors", inst)
    B = next(iter(inst.values())).shape[0]
    _atomic_json(d / "meta.json", {"schema": SCHEMA, "problem": problem, "size": instance_size(problem, inst), "count": B, **meta})
    return d


def load_instances(directory: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[str, dict[str, torch.Tensor], dict[str, Any]]:
    """``(problem, instances, meta)`` of an instance set written by :func:`save_instances`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    d = Path(directory)
    if not (d / "meta.json").exists():
        raise FileNotFoundError(f"{d} is not an instance set (no meta.json); create one with `rlsuite cop generate`.")
    try:
        meta = json.loads((d / "meta.json").read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{d / 'meta.json'} is not valid JSON ({e}); regenerate the set.") from None
    if meta.get("schema") != SCHEMA:
        raise ValueError(f"{d}: schema {meta.get('schema')!r}, expected {SCHEMA!r}.")
    try:
        inst = load_file(str(d / "instances.safetensors"), device=str(device))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{d / 'instances.safetensors'} cannot be read ({e}); the file is truncated or corrupted: regenerate it.") from None
    return meta["problem"], inst, meta


def save_labels(directory: str | os.PathLike, solutions: list[list[int]], costs: torch.Tensor, info: dict[str, Any]) -> Path:
    d = Path(directory)
    width = max((len(s) for s in solutions), default=0)
    pad = torch.full((len(solutions), width), -1, dtype=torch.long)
    for i, s in enumerate(solutions):
        pad[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    (d / "labels.json").unlink(missing_ok=True)  # the marker of complete labels goes first and comes back last
    _atomic_tensors(d / "labels.safetensors", {"solutions": pad, "costs": costs.to(torch.float64)})
    _atomic_json(d / "labels.json", {**info, "mean_cost": float(costs.double().mean())})
    return d


def load_labels(directory: str | os.PathLike) -> tuple[list[list[int]], torch.Tensor, dict[str, Any]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    d = Path(directory)
    if not (d / "labels.json").exists() or not (d / "labels.safetensors").exists():
        raise FileNotFoundError(f"{d} has no labels; run `rlsuite cop label {d} --solver <lkh|pyvrp|ortools|dp>` first.")
    try:
        t = load_file(str(d / "labels.safetensors"))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{d / 'labels.safetensors'} cannot be read ({e}); the file is truncated or corrupted: label the set again.") from None
    sols = [[int(x) for x in row if x >= 0] for row in t["solutions"].tolist()]
    return sols, t["costs"], json.loads((d / "labels.json").read_text())
