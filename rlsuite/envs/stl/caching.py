"""Caching keyed on a tensor's identity and in-place version, shared by the STL envs and the grounding."""

from __future__ import annotations

import torch


def tensor_version(t: torch.Tensor) -> int:
    """In-place version counter of a tensor (inference tensors have none and cannot be changed in place
    outside inference mode; the envs never modify a state tensor in place)."""
    return -1 if t.is_inference() else t._version
