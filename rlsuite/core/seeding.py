"""Seeding, determinism, device selection and RNG-state capture for exact resume."""

from __future__ import annotations

import logging
import os
import random
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:N"`` into a :class:`torch.device`.

    ``auto`` picks CUDA when available, else CPU. Asking for CUDA on a machine without it fails with a
    message that says how to fix the call.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {spec!r} was requested but CUDA is not available on this machine "
                f"(torch {torch.__version__}). Use --device cpu or --device auto."
            )
        return torch.device(spec)
    raise ValueError(f"unknown device {spec!r}; allowed: auto, cpu, cuda, cuda:N.")


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices).

    Args:
        seed: any non-negative integer.
        deterministic: also ask torch for deterministic kernels (slower on GPU; CPU runs with a fixed
            thread count are already bit-reproducible for our agents).
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def get_rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Capture the global RNG states: returns ``(tensors, json_meta)`` for a checkpoint."""
    np_state = np.random.get_state()
    tensors = {
        "torch_cpu": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
    }
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    py_state = random.getstate()
    meta = {
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` captured."""
    torch.set_rng_state(tensors["torch_cpu"].cpu().to(torch.uint8))
    n_cuda = sum(1 for k in tensors if k.startswith("torch_cuda_"))
    if n_cuda and torch.cuda.is_available():
        states = [tensors[f"torch_cuda_{i}"].cpu().to(torch.uint8) for i in range(n_cuda)]
        torch.cuda.set_rng_state_all(states[: torch.cuda.device_count()])
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    name, pos, has_gauss, cached = meta["numpy"]
    keys = tensors["numpy_keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state((name, keys, pos, has_gauss, cached))
