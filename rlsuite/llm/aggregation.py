"""Loss aggregation over tokens and sequences, with explicit (global) denominators.

Every mode takes per-token values ``(B, T)`` and a completion mask ``(B, T)``. The denominators
(``num_tokens``, ``num_seqs``) default to this batch's own counts, but a trainer that splits a batch
into micro-batches passes the *whole* batch's counts, so that the sum of the micro-batch losses equals
the loss of the whole batch (splitting cannot change the gradient). Mode names follow verl:

=========================  ==========================================================  ==========
mode                       value                                                       used by
=========================  ==========================================================  ==========
token-mean                 ``sum(v * m) / num_tokens``                                 DAPO
token-sum                  ``sum(v * m)``
seq-mean-token-mean        ``sum_i [sum_t v_it m_it / sum_t m_it] / num_seqs``         GRPO
seq-mean-token-sum         ``sum_i sum_t v_it m_it / num_seqs``
seq-mean-token-sum-norm    ``sum(v * m) / (num_seqs * max_len)``                       Dr.GRPO
=========================  ==========================================================  ==========
"""

from __future__ import annotations

import torch

AGG_MODES = ("token-mean", "token-sum", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")


def aggregate(
    values: torch.Tensor,
    mask: torch.Tensor,
    mode: str,
    num_tokens: float | None = None,
    num_seqs: float | None = None,
    max_len: int | None = None,
) -> torch.Tensor:
    """Reduce per-token ``values`` ``(B, T)`` under ``mask`` ``(B, T)`` to a scalar (see the module table).

    Args:
        values: per-token loss values.
        mask: 1 for completion tokens that count, 0 for padding.
        mode: one of :data:`AGG_MODES`.
        num_tokens: global token count for ``token-mean`` (default: ``mask.sum()``).
        num_seqs: global sequence count for the ``seq-mean-*`` modes (default: ``B``).
        max_len: the generation cap ``L_max`` for ``seq-mean-token-sum-norm`` (default: ``T``).
    """
    if values.shape != mask.shape or values.dim() != 2:
        raise ValueError(f"values and mask must both be (B, T); got {tuple(values.shape)} and {tuple(mask.shape)}.")
    m = mask.to(values.dtype)
    vm = values * m
    if mode == "token-mean":
        return vm.sum() / (num_tokens if num_tokens is not None else m.sum().clamp_min(1.0))
    if mode == "token-sum":
        return vm.sum()
    n_seq = num_seqs if num_seqs is not None else values.shape[0]
    if mode == "seq-mean-token-mean":
        return (vm.sum(1) / m.sum(1).clamp_min(1.0)).sum() / n_seq
    if mode == "seq-mean-token-sum":
        return vm.sum() / n_seq
    if mode == "seq-mean-token-sum-norm":
        return vm.sum() / (n_seq * (max_len if max_len is not None else values.shape[1]))
    raise ValueError(f"unknown aggregation mode {mode!r}; allowed: {', '.join(AGG_MODES)}.")
