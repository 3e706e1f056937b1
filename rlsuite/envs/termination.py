"""Termination conditions of Gymnasium MuJoCo tasks as batched functions of the observation, for
rollouts in learned models (model-based offline RL, offline policy evaluation).

``termination_fn(env_id)`` returns ``f(next_obs (B, obs)) -> (B,) bool`` in raw observation units (the
v5 envs' default ``healthy`` ranges), or ``None`` for tasks that never terminate. Unknown envs raise:
a model rollout that ignores termination overrates policies that fall, so the caller must decide.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

TerminationFn = Callable[[torch.Tensor], torch.Tensor]


def _hopper(o: torch.Tensor) -> torch.Tensor:
    # healthy: |state[1:]| < 100 (obs[1:]), z > 0.7, |angle| < 0.2
    healthy = (o[:, 1:].abs() < 100).all(-1) & (o[:, 0] > 0.7) & (o[:, 1].abs() < 0.2)
    return ~healthy | ~torch.isfinite(o).all(-1)


def _walker(o: torch.Tensor) -> torch.Tensor:
    healthy = (o[:, 0] > 0.8) & (o[:, 0] < 2.0) & (o[:, 1] > -1.0) & (o[:, 1] < 1.0)
    return ~healthy | ~torch.isfinite(o).all(-1)


def _ant(o: torch.Tensor) -> torch.Tensor:
    healthy = (o[:, 0] >= 0.2) & (o[:, 0] <= 1.0) & torch.isfinite(o).all(-1)
    return ~healthy


def _inverted_pendulum(o: torch.Tensor) -> torch.Tensor:
    return ~(torch.isfinite(o).all(-1) & (o[:, 1].abs() <= 0.2))


def _never(o: torch.Tensor) -> torch.Tensor:
    return ~torch.isfinite(o).all(-1)


_FNS: dict[str, TerminationFn] = {"Hopper": _hopper, "Walker2d": _walker, "Ant": _ant, "InvertedPendulum": _inverted_pendulum,
                                  "HalfCheetah": _never, "Swimmer": _never, "Pendulum": _never}


def termination_fn(env_id: str) -> TerminationFn:
    """See the module docstring; raises ``KeyError`` naming the known tasks for others."""
    base = env_id.split("/")[-1].split("-v")[0]
    if base not in _FNS:
        raise KeyError(f"no termination function for {env_id!r}; known: {', '.join(sorted(_FNS))}. Add one to "
                       "rlsuite/envs/termination.py, or use a short model horizon.")
    return _FNS[base]
