"""Fixed-horizon training: agents that train on batches of whole episodes which start together and last exactly
the env's ``horizon`` steps (SubPO, OSPO, the linear episodic agents).

- :func:`env_horizon`: the env's ``horizon``, or a clear error naming the agent and an env that has one;
- :func:`check_whole_episodes`: after a batch, that every episode ended at its last step and nowhere else;
- :func:`log_horizon_note`: the sentence said at the start when ``--total-steps`` is not a whole number of
  batches (such agents round it up).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def env_horizon(env: Any, algo: str, example: str) -> int:
    """``env.horizon`` as an int, or ``ValueError`` when the env has no positive int ``horizon``.

    Args:
        env: the batched env.
        algo: the agent's name, for the message (``SubPO``, ``ospo``).
        example: the envs that have one, for the message (``the rlsuite submodular grid envs``).
    """
    horizon = getattr(env, "horizon", None)
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(f"{algo} trains on whole episodes of a fixed length: the env needs an int attribute 'horizon' "
                         f"({example} have one); {type(env).__name__} has {horizon!r}.")
    return int(horizon)


def check_whole_episodes(ended: torch.Tensor, env: Any, algo: str, hint: str = "") -> None:
    """Raise ``ValueError`` unless the ``N`` episodes of a batch all ended at its last step and at no other.

    Args:
        ended: ``(T, N)`` bool, ``info["_final_obs"]`` of each of the batch's ``T`` steps (one host sync here).
        env: the env, for the message.
        algo: the agent's name, for the message.
        hint: appended to the message (what env to use instead).
    """
    T, N = ended.shape
    if bool(ended[:-1].any()) or not bool(ended[-1].all()):
        raise ValueError(f"{algo} needs all {N} parallel episodes to start together and end after exactly horizon={T} "
                         f"steps, but {type(env).__name__}'s episodes ended elsewhere{hint}.")


def log_horizon_note(total_steps: int, done: int, batch_steps: int, what: str) -> str | None:
    """The sentence to log when ``total_steps`` is not a whole number of batches of ``batch_steps`` from ``done``
    (``what``: the batch in words, ``4 episodes x 30 steps``); ``None`` when it is."""
    left = total_steps - done
    if left <= 0 or left % batch_steps == 0:
        return None
    reached = done + math.ceil(left / batch_steps) * batch_steps
    return (f"--total-steps {total_steps} is not a whole number of updates of {what} ({batch_steps} env steps) "
            f"from step {done}: training {reached} steps")
