"""Checkpoint I/O: safetensors for tensors, JSON for everything else, written atomically.

A checkpoint is a directory::

    step_000012000/
        tensors.safetensors   every tensor of the nested state (weights, optimizer moments, buffers)
        meta.json             format version, sha256 of the tensor file, the nested state's skeleton
                              (non-tensor leaves inline, tensors as references) and caller metadata
                              (config, spaces, code version, step, RNG states ...)

Nothing is pickled. The directory is written under a temporary name and renamed into place, and the
``latest.json`` pointer beside it is replaced atomically, so a crash mid-write leaves the previous
checkpoint intact. Loading checks the hash first, so a truncated or corrupted file fails clearly.

The nested state is any mix of dicts (string or int keys), lists, tuples, tensors, numbers, strings,
bools and None (what ``nn.Module.state_dict()`` and ``Optimizer.state_dict()`` return).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT = "rlsuite-checkpoint"
FORMAT_VERSION = 1
TENSOR_FILE = "tensors.safetensors"
META_FILE = "meta.json"
LATEST = "latest.json"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupted, or does not match what it is loaded into."""


# ----------------------------------------------------------------------------- nested <-> flat


def flatten_state(state: Any, prefix: str = "") -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested state into ``(tensors, skeleton)``.

    ``tensors`` maps dotted paths to tensors; ``skeleton`` is the JSON-able structure with every tensor
    replaced by ``{"__tensor__": path}``. Dicts whose keys are not all strings are stored as
    ``{"__items__": [[key, value], ...]}`` so that int keys (optimizer state) survive JSON.
    """
    tensors: dict[str, torch.Tensor] = {}

    def walk(obj: Any, path: str) -> Any:
        if isinstance(obj, torch.Tensor):
            tensors[path] = obj
            return {"__tensor__": path}
        if isinstance(obj, dict):
            if all(isinstance(k, str) for k in obj):
                return {k: walk(v, f"{path}.{k}" if path else k) for k, v in obj.items()}
            return {"__items__": [[k, walk(v, f"{path}.{k}" if path else str(k))] for k, v in obj.items()]}
        if isinstance(obj, tuple):
            return {"__tuple__": [walk(v, f"{path}.{i}") for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [walk(v, f"{path}.{i}") for i, v in enumerate(obj)]
        if obj is None or isinstance(obj, bool | int | float | str):
            return obj
        raise TypeError(
            f"cannot store {type(obj).__name__} at {path!r} in a checkpoint; "
            "allowed: tensors, dicts, lists, tuples, numbers, strings, bools, None."
        )

    return tensors, walk(state, prefix)


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            key = skeleton["__tensor__"]
            if key not in tensors:
                raise CheckpointError(f"checkpoint metadata refers to tensor {key!r}, which the tensor file lacks.")
            return tensors[key]
        if "__items__" in skeleton:
            return {k: unflatten_state(v, tensors) for k, v in skeleton["__items__"]}
        if "__tuple__" in skeleton:
            return tuple(unflatten_state(v, tensors) for v in skeleton["__tuple__"])
        return {k: unflatten_state(v, tensors) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [unflatten_state(v, tensors) for v in skeleton]
    return skeleton


# ----------------------------------------------------------------------------- atomic files


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_tree(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a directory: every file's relative path and content hash, in sorted order."""
    root = Path(path)
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(root)).encode() + b"\0" + sha256_file(p).encode() + b"\n")
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace`` (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


# ----------------------------------------------------------------------------- save / load


def save_checkpoint(path: str | os.PathLike, state: Any, meta: dict[str, Any] | None = None) -> Path:
    """Write ``state`` (nested, see module docstring) and ``meta`` (JSON-able) to directory ``path``.

    An existing checkpoint at ``path`` is replaced only once the new one is completely on disk.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors, skeleton = flatten_state(state)
    seen: set[int] = set()
    flat: dict[str, torch.Tensor] = {}
    for k, t in tensors.items():
        t = t.detach().to("cpu").contiguous()
        if t.data_ptr() in seen and t.numel() > 0:  # safetensors refuses shared storage
            t = t.clone()
        seen.add(t.data_ptr())
        flat[k] = t
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        save_file(flat, str(tmp / TENSOR_FILE))
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "sha256": {TENSOR_FILE: sha256_file(tmp / TENSOR_FILE)},
            "skeleton": skeleton,
            "meta": meta or {},
        }
        with open(tmp / META_FILE, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_checkpoint_meta(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate ``meta.json`` of a checkpoint directory; returns the whole document."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"no checkpoint at {str(path)!r} (expected a directory holding {META_FILE}).")
    meta_path = path / META_FILE
    try:
        doc = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {str(path)!r} has no {META_FILE}; it is incomplete.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint metadata {str(meta_path)!r} is corrupted: {e}.") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{str(meta_path)!r} is not an rlsuite checkpoint (format field missing).")
    if doc.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {doc.get('format_version')}, "
            f"this rlsuite reads version {FORMAT_VERSION}."
        )
    return doc


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[Any, dict[str, Any]]:
    """Load a checkpoint directory; returns ``(state, meta)``.

    Raises:
        CheckpointError: the directory or a file is missing, the tensor file's hash does not match
            (truncated or corrupted), or the file cannot be parsed.
    """
    path = Path(path)
    doc = read_checkpoint_meta(path)
    tfile = path / TENSOR_FILE
    if not tfile.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} has no {TENSOR_FILE}; it is incomplete.")
    expected = doc.get("sha256", {}).get(TENSOR_FILE)
    actual = sha256_file(tfile)
    if expected != actual:
        raise CheckpointError(
            f"checkpoint file {str(tfile)!r} is corrupted or truncated: sha256 {actual[:12]}... does not match "
            f"the recorded {str(expected)[:12]}... Resume from an earlier checkpoint in {str(path.parent)!r}."
        )
    try:
        tensors = load_file(str(tfile), device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {str(tfile)!r}: {e}") from None
    return unflatten_state(doc["skeleton"], tensors), doc["meta"]


def first_difference(expected: Any, got: Any, path: str = "") -> str | None:
    """Describe the first place where two nested states differ in structure or tensor shape/dtype.

    Returns ``None`` when they agree. Used to refuse loading a checkpoint into a differently shaped agent.
    """
    where = path or "<root>"
    if isinstance(expected, torch.Tensor) or isinstance(got, torch.Tensor):
        if not (isinstance(expected, torch.Tensor) and isinstance(got, torch.Tensor)):
            return f"{where}: expected {type(expected).__name__}, checkpoint has {type(got).__name__}"
        if tuple(expected.shape) != tuple(got.shape):
            return f"{where}: expected shape {tuple(expected.shape)}, checkpoint has {tuple(got.shape)}"
        if expected.dtype != got.dtype:
            return f"{where}: expected dtype {expected.dtype}, checkpoint has {got.dtype}"
        return None
    if isinstance(expected, dict) and isinstance(got, dict):
        for k in expected:
            if k not in got:
                return f"{where}: checkpoint lacks key {k!r}"
        for k in got:
            if k not in expected:
                return f"{where}: checkpoint has unexpected key {k!r}"
        for k in expected:
            d = first_difference(expected[k], got[k], f"{path}.{k}" if path else str(k))
            if d:
                return d
        return None
    if isinstance(expected, list | tuple) and isinstance(got, list | tuple):
        if len(expected) != len(got):
            return f"{where}: expected {len(expected)} entries, checkpoint has {len(got)}"
        for i, (a, b) in enumerate(zip(expected, got, strict=True)):
            d = first_difference(a, b, f"{path}.{i}")
            if d:
                return d
        return None
    if type(expected) is not type(got) and not (isinstance(expected, int | float) and isinstance(got, int | float)):
        return f"{where}: expected {type(expected).__name__}, checkpoint has {type(got).__name__}"
    return None


def write_latest(checkpoint_dir: str | os.PathLike, name: str, step: int) -> None:
    """Point ``checkpoint_dir/latest.json`` at checkpoint ``name`` (atomic)."""
    atomic_write_json(Path(checkpoint_dir) / LATEST, {"checkpoint": name, "step": int(step)})


def find_latest(checkpoint_dir: str | os.PathLike) -> Path:
    """Return the checkpoint that ``latest.json`` points to (or the highest ``step_*`` directory)."""
    checkpoint_dir = Path(checkpoint_dir)
    pointer = checkpoint_dir / LATEST
    if pointer.is_file():
        try:
            name = json.loads(pointer.read_text())["checkpoint"]
            cand = checkpoint_dir / name
            if (cand / META_FILE).is_file():
                return cand
        except (json.JSONDecodeError, KeyError, TypeError):
            pass
    steps = sorted(p for p in checkpoint_dir.glob("step_*") if (p / META_FILE).is_file())
    if not steps:
        raise CheckpointError(f"no checkpoint found in {str(checkpoint_dir)!r}.")
    return steps[-1]
