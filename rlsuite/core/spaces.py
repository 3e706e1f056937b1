"""Structured spaces (Dict, Tuple, Discrete, MultiDiscrete, MultiBinary) flattened into one float vector.

Agents read one float vector per observation. :func:`flatten_space` gives the ``Box`` of that vector and
:func:`flatten_obs` turns a *batch* of structured observations into a ``(N, D)`` float32 tensor on any
device. The layout is fixed and documented so that a trained policy can be fed by other code:

==================  ==================================================  ==========================
space               flattened as                                        width ``D``
==================  ==================================================  ==========================
``Box``             the values, row-major (``reshape(N, -1)``)          ``prod(shape)``
``Discrete(n)``     one-hot of ``x - start``                            ``n``
``MultiDiscrete``   one-hot per component (row-major over ``nvec``),    ``sum(nvec)``
                    concatenated; component ``i`` uses ``x_i - start_i``
``MultiBinary``     the bits as 0.0 / 1.0, row-major                    ``prod(n)``
``Dict``            its entries in **sorted key order**, each flattened  sum of the entries
                    by these rules (nested Dicts recursively)
``Tuple``           its entries in order, each flattened                sum of the entries
==================  ==================================================  ==========================

Bounds of the flat ``Box``: a ``Box``'s own bounds, ``[0, 1]`` for one-hot and binary parts. The
order is gymnasium's own ``flatten`` order (which also sorts ``Dict`` keys), but unlike
``gymnasium.spaces.flatten`` these functions are batched and work on torch tensors without a host copy.

Batched observations: a ``Box`` entry is ``(N, *shape)``, a ``Discrete`` entry ``(N,)`` integers, a
``MultiDiscrete`` / ``MultiBinary`` entry ``(N, *nvec.shape)``; a ``Dict`` is a mapping from its keys
to such batches (what ``gymnasium.vector`` envs return), a ``Tuple`` a sequence of them. NumPy arrays
and torch tensors are both accepted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

SUPPORTED = "Box, Discrete, MultiDiscrete, MultiBinary, Dict, Tuple"


def _unsupported(space: gym.Space) -> ValueError:
    return ValueError(f"cannot flatten space {space}; supported: {SUPPORTED} (nested freely).")


def flat_dim(space: gym.Space) -> int:
    """Width ``D`` of the flattened vector of ``space`` (see the module table)."""
    if isinstance(space, gym.spaces.Box):
        return int(np.prod(space.shape))
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return int(np.sum(space.nvec))
    if isinstance(space, gym.spaces.MultiBinary):
        return int(np.prod(space.shape))
    if isinstance(space, gym.spaces.Dict):
        return sum(flat_dim(space[k]) for k in sorted(space.keys()))
    if isinstance(space, gym.spaces.Tuple):
        return sum(flat_dim(s) for s in space.spaces)
    raise _unsupported(space)


def _bounds(space: gym.Space) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(space, gym.spaces.Box):
        return np.asarray(space.low, dtype=np.float32).ravel(), np.asarray(space.high, dtype=np.float32).ravel()
    if isinstance(space, gym.spaces.Discrete | gym.spaces.MultiDiscrete | gym.spaces.MultiBinary):
        d = flat_dim(space)
        return np.zeros(d, dtype=np.float32), np.ones(d, dtype=np.float32)
    if isinstance(space, gym.spaces.Dict | gym.spaces.Tuple):
        subs = [space[k] for k in sorted(space.keys())] if isinstance(space, gym.spaces.Dict) else list(space.spaces)
        parts = [_bounds(s) for s in subs]
        if not parts:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.float32)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    raise _unsupported(space)


def flatten_space(space: gym.Space) -> gym.spaces.Box:
    """The float32 ``Box`` ``(D,)`` of :func:`flatten_obs`'s rows (a ``Box`` is flattened too)."""
    low, high = _bounds(space)
    return gym.spaces.Box(low=low, high=high, shape=(flat_dim(space),), dtype=np.float32)


def is_flat(space: gym.Space) -> bool:
    """Whether ``space`` is already a 1-D ``Box`` (nothing to flatten)."""
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 1


def _tensor(x: Any, device: torch.device | None) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t if device is None else t.to(device)


def _one_hot(idx: torch.Tensor, n: int) -> torch.Tensor:
    """One-hot ``(N, n)`` float32; an index outside ``0..n-1`` gives an all-zero row (no host sync to check)."""
    idx = idx.long()
    valid = (idx >= 0) & (idx < n)
    return torch.nn.functional.one_hot(idx.clamp(0, n - 1), n).to(torch.float32) * valid[..., None].to(torch.float32)


def _flatten(space: gym.Space, obs: Any, device: torch.device | None, n: int | None, path: str) -> torch.Tensor:
    if isinstance(space, gym.spaces.Dict):
        if not isinstance(obs, Mapping):
            raise ValueError(f"observation{path} should be a mapping for {space}, got {type(obs).__name__}.")
        missing = set(space.keys()) - set(obs.keys())
        if missing:
            raise ValueError(f"observation{path} lacks the keys {sorted(missing)} of {space}.")
        parts = [_flatten(space[k], obs[k], device, n, f"{path}[{k!r}]") for k in sorted(space.keys())]
        return _cat(parts, n, device)
    if isinstance(space, gym.spaces.Tuple):
        if not isinstance(obs, Sequence) or len(obs) != len(space.spaces):
            raise ValueError(f"observation{path} should be a sequence of {len(space.spaces)} batches for {space}.")
        return _cat([_flatten(s, o, device, n, f"{path}[{i}]") for i, (s, o) in enumerate(zip(space.spaces, obs, strict=True))], n, device)
    t = _tensor(obs, device)
    if isinstance(space, gym.spaces.Box):
        return t.to(torch.float32).reshape(t.shape[0], -1)
    if isinstance(space, gym.spaces.Discrete):
        return _one_hot(t.reshape(-1) - int(space.start), int(space.n))
    if isinstance(space, gym.spaces.MultiDiscrete):
        nvec = np.asarray(space.nvec).ravel()
        start = np.asarray(space.start).ravel()
        flat = t.reshape(t.shape[0], -1)
        if flat.shape[1] != len(nvec):
            raise ValueError(f"observation{path} has {flat.shape[1]} components per row, {space} has {len(nvec)}.")
        return torch.cat([_one_hot(flat[:, i] - int(start[i]), int(nvec[i])) for i in range(len(nvec))], dim=1)
    if isinstance(space, gym.spaces.MultiBinary):
        return t.to(torch.float32).reshape(t.shape[0], -1)
    raise _unsupported(space)


def _cat(parts: list[torch.Tensor], n: int | None, device: torch.device | None) -> torch.Tensor:
    if not parts:
        return torch.zeros((n or 0, 0), device=device)
    dev = parts[0].device
    return torch.cat([p.to(dev) for p in parts], dim=1)


def flatten_obs(space: gym.Space, obs: Any, device: torch.device | str | None = None) -> torch.Tensor:
    """Flatten a batch of observations of ``space`` into ``(N, D)`` float32 (layout: module docstring).

    Args:
        space: the *single* observation space.
        obs: a batch of ``N`` observations (NumPy or torch), structured like ``space``.
        device: where the result lives (default: where the inputs are; NumPy inputs go to the CPU).
    """
    dev = torch.device(device) if device is not None else None
    out = _flatten(space, obs, dev, None, "")
    if out.shape[1] != flat_dim(space):
        raise ValueError(f"flattened observation has width {out.shape[1]}, expected {flat_dim(space)} for {space}.")
    return out
