"""Checkpoint I/O: safetensors for tensors, JSON for everything else, written atomically.

A checkpoint is a directory::

    step_000012000/
        tensors.safetensors   every tensor of the nested state (weights, optimizer moments, buffers)
        meta.json             format version, sha256 of the tensor file, the nested state's skeleton
                              (non-tensor leaves inline, tensors as references) and caller metadata
                              (config, spaces, code version, step, RNG states ...)

Nothing is pickled. The directory is written under a temporary name and renamed into place, and the
``latest.json`` pointer beside it is replaced atomically (both through :mod:`rlsuite.core.atomic`), so a
crash mid-write leaves the previous checkpoint and pointer intact. Loading checks the hash first, so a
truncated or corrupted file fails clearly: the error names the file and what is wrong with it and, when
an older checkpoint beside it is intact, the exact ``--resume`` flag that continues from that one.

The nested state is any mix of dicts (string or int keys), lists, tuples, tensors, numbers, strings,
bools and None (what ``nn.Module.state_dict()`` and ``Optimizer.state_dict()`` return).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

# atomic_write_text and _fsync_dir stay importable from here, where they were defined before
from rlsuite.core.atomic import atomic_dir, atomic_write_json, atomic_write_text  # noqa: F401
from rlsuite.core.atomic import fsync_dir as _fsync_dir  # noqa: F401

FORMAT = "rlsuite-checkpoint"
FORMAT_VERSION = 1
TENSOR_FILE = "tensors.safetensors"
META_FILE = "meta.json"
LATEST = "latest.json"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupted, or does not match what it is loaded into."""


# ----------------------------------------------------------------------------- nested <-> flat


def optional_tensor(t: torch.Tensor | None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``t`` as a checkpointable tensor: a copy of it, or an empty ``(0,)`` tensor of ``dtype`` for None (an
    agent's current observation before the env was first reset)."""
    return t.clone() if t is not None else torch.zeros(0, dtype=dtype)


def restore_optional(t: torch.Tensor | None, device: torch.device | str, dtype: torch.dtype | None = None) -> torch.Tensor | None:
    """The inverse of :func:`optional_tensor`: ``t`` on ``device`` (cast to ``dtype`` if given), None for an empty or
    missing one."""
    if t is None or not t.numel():
        return None
    return t.to(device) if dtype is None else t.to(device, dtype)


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


def storable_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``tensors`` as safetensors stores them: detached, on the CPU, contiguous, none sharing another's storage
    (a shared one is copied; safetensors refuses shared storage)."""
    seen: set[int] = set()
    flat: dict[str, torch.Tensor] = {}
    for k, t in tensors.items():
        t = t.detach().to("cpu").contiguous()
        if t.data_ptr() in seen and t.numel() > 0:
            t = t.clone()
        seen.add(t.data_ptr())
        flat[k] = t
    return flat


# ----------------------------------------------------------------------------- hashes


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


# ----------------------------------------------------------------------------- save / load


def save_checkpoint(path: str | os.PathLike, state: Any, meta: dict[str, Any] | None = None) -> Path:
    """Write ``state`` (nested, see module docstring) and ``meta`` (JSON-able) to directory ``path``.

    An existing checkpoint at ``path`` is replaced only once the new one is completely on disk.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors, skeleton = flatten_state(state)
    flat = storable_tensors(tensors)
    with atomic_dir(path) as tmp:
        save_file(flat, str(tmp / TENSOR_FILE))
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "sha256": {TENSOR_FILE: sha256_file(tmp / TENSOR_FILE)},
            "skeleton": skeleton,
            "meta": meta or {},
        }
        (tmp / META_FILE).write_text(json.dumps(doc, indent=1), encoding="utf-8")
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


def _describe_tensor_file_damage(tfile: Path) -> str:
    """What is wrong with a safetensors file whose hash does not match: cut short, or changed."""
    size = tfile.stat().st_size
    try:
        with open(tfile, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return f"only {size} bytes are there, fewer than the 8 bytes of the header length"
            (n,) = struct.unpack("<Q", head)
            if 8 + n > size:
                return f"only {size} bytes are there, fewer than its header's {8 + n}"
            header = json.loads(f.read(n))
        end = 8 + n + max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return "its safetensors header is unreadable"
    if size < end:
        return f"only {size} of its {end} bytes are there"
    return "its size is right but its bytes differ from the ones written"


def verify_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Check that a checkpoint directory is complete and intact, without loading its tensors.

    Returns the ``meta.json`` document. Reads the whole tensor file once (for its hash).

    Raises:
        CheckpointError: naming the file and what is wrong (missing, not JSON, other format version,
            truncated or corrupted tensor file).
    """
    path = Path(path)
    doc = read_checkpoint_meta(path)
    tfile = path / TENSOR_FILE
    if not tfile.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} has no {TENSOR_FILE}; it is incomplete.")
    expected = (doc.get("sha256") or {}).get(TENSOR_FILE)
    actual = sha256_file(tfile)
    if expected != actual:
        raise CheckpointError(
            f"checkpoint file {str(tfile)!r} is corrupted or truncated: {_describe_tensor_file_damage(tfile)} "
            f"(sha256 {actual[:12]}... does not match the {str(expected)[:12]}... recorded in {META_FILE})."
        )
    return doc


def _step_of(path: Path, doc: dict[str, Any] | None) -> int | None:
    step = ((doc or {}).get("meta") or {}).get("step")
    if isinstance(step, int):
        return step
    m = re.fullmatch(r"step_(\d+)", path.name)
    return int(m.group(1)) if m else None


def describe_fallback(checkpoint_dir: str | os.PathLike, bad: str | os.PathLike | None = None) -> str:
    """The sentence that tells a user how to continue when checkpoint ``bad`` cannot be used.

    Looks in ``checkpoint_dir`` for the newest *intact* checkpoint other than ``bad`` (and, when both
    steps are known, not newer than it) and returns ``"the previous checkpoint <path> is intact: resume
    from it with --resume <path>"``; otherwise says that there is none. ``bad=None`` (the pointer itself
    is broken) considers every checkpoint in the directory.
    """
    checkpoint_dir = Path(checkpoint_dir)
    bad_path = Path(bad) if bad is not None else None
    bad_step = None
    if bad_path is not None:
        try:
            bad_step = _step_of(bad_path, json.loads((bad_path / META_FILE).read_text(encoding="utf-8")))
        except (OSError, ValueError, AttributeError):
            bad_step = _step_of(bad_path, None)
    candidates = []
    if checkpoint_dir.is_dir():
        for p in checkpoint_dir.iterdir():
            if p.name.startswith(".") or not (p / META_FILE).is_file():
                continue
            if bad_path is not None and p.name == bad_path.name and p.parent.resolve() == bad_path.parent.resolve():
                continue
            try:
                step = _step_of(p, json.loads((p / META_FILE).read_text(encoding="utf-8")))
            except (OSError, ValueError, AttributeError):
                continue
            if bad_step is not None and step is not None and step > bad_step:
                continue
            candidates.append((-1 if step is None else step, p.name, p))
    for _, _, p in sorted(candidates, reverse=True):
        try:
            verify_checkpoint(p)
        except CheckpointError:
            continue
        return f"the previous checkpoint {p} is intact: resume from it with --resume {p}"
    return f"no intact earlier checkpoint is left in {str(checkpoint_dir)!r}"


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[Any, dict[str, Any]]:
    """Load a checkpoint directory; returns ``(state, meta)``.

    Raises:
        CheckpointError: the directory or a file is missing, the tensor file's hash does not match
            (truncated or corrupted), or the file cannot be parsed. The message names the file and,
            when an older checkpoint in the same directory is intact, the flag that resumes from it.
    """
    path = Path(path)
    try:
        doc = verify_checkpoint(path)
        tfile = path / TENSOR_FILE
        try:
            tensors = load_file(str(tfile), device=str(device))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"cannot read {str(tfile)!r}: {e}") from None
        state = unflatten_state(doc["skeleton"], tensors)
    except CheckpointError as e:
        raise CheckpointError(f"{e} {_capital(describe_fallback(path.parent, path))}.") from None
    return state, doc["meta"]


def _capital(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


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
    """Return the checkpoint that ``latest.json`` points to (without it: the highest ``step_*`` directory).

    Only the pointer is checked here; :func:`load_checkpoint` checks the checkpoint itself.

    Raises:
        CheckpointError: ``latest.json`` is unreadable or points at a checkpoint that is not there (the
            message gives the ``--resume`` flag of the newest intact one), or there is no checkpoint.
    """
    checkpoint_dir = Path(checkpoint_dir)
    pointer = checkpoint_dir / LATEST
    if pointer.is_file():
        try:
            name = json.loads(pointer.read_text(encoding="utf-8"))["checkpoint"]
            if not isinstance(name, str) or not name or Path(name).name != name:
                raise TypeError(f"'checkpoint' is {name!r}, not the name of a directory beside it")
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
            what = "has no 'checkpoint' entry" if isinstance(e, KeyError) else f"is corrupted ({e})"
            raise CheckpointError(f"{str(pointer)!r} {what}. {_capital(describe_fallback(checkpoint_dir))}.") from None
        cand = checkpoint_dir / name
        if not (cand / META_FILE).is_file():
            what = "is missing" if not cand.exists() else f"has no {META_FILE} (it is incomplete)"
            raise CheckpointError(
                f"{str(pointer)!r} points at the checkpoint {str(cand)!r}, which {what}. "
                f"{_capital(describe_fallback(checkpoint_dir, cand))}."
            )
        return cand
    steps = sorted(p for p in checkpoint_dir.glob("step_*") if (p / META_FILE).is_file())
    if not steps:
        raise CheckpointError(f"no checkpoint found in {str(checkpoint_dir)!r} (no {LATEST} and no step_* directory).")
    return steps[-1]
