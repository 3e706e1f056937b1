"""Device-resident replay buffers and a sampler that mixes two sources (offline + online).

Transitions are stored as ``(obs, action, reward, next_obs, terminated)``. ``next_obs`` is the true
next observation (``info["final_obs"]`` at an episode end) and only ``terminated`` stops bootstrapping,
so time-limit truncations are bootstrapped correctly by every off-policy agent.
"""

from __future__ import annotations

from typing import Any

import torch

FIELDS = ("obs", "actions", "rewards", "next_obs", "terminated")


class ReplayBuffer:
    """Circular buffer of transitions, preallocated on ``device``.

    Args:
        capacity: maximum number of transitions; the oldest are overwritten.
        obs_shape: single observation shape.
        action_shape: single action shape (``()`` for discrete).
        device: where the storage lives (sampling never leaves the device).
        action_dtype: dtype of stored actions.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...],
        device: torch.device | str = "cpu",
        action_dtype: torch.dtype = torch.float32,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}.")
        self.capacity = int(capacity)
        self.device = torch.device(device)
        z = dict(device=self.device)
        self.obs = torch.zeros((capacity, *obs_shape), **z)
        self.next_obs = torch.zeros((capacity, *obs_shape), **z)
        self.actions = torch.zeros((capacity, *action_shape), dtype=action_dtype, **z)
        self.rewards = torch.zeros(capacity, **z)
        self.terminated = torch.zeros(capacity, dtype=torch.bool, **z)
        self.ptr = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor,
    ) -> None:
        """Append a batch of ``B`` transitions (every argument has leading dimension ``B``)."""
        b = obs.shape[0]
        if b > self.capacity:
            raise ValueError(f"cannot add {b} transitions to a buffer of capacity {self.capacity}.")
        idx = (torch.arange(b, device=self.device) + self.ptr) % self.capacity
        self.obs[idx] = obs.to(self.device)
        self.actions[idx] = actions.to(self.device, self.actions.dtype)
        self.rewards[idx] = rewards.to(self.device, self.rewards.dtype)
        self.next_obs[idx] = next_obs.to(self.device)
        self.terminated[idx] = terminated.to(self.device, torch.bool)
        self.ptr = (self.ptr + b) % self.capacity
        self.size = min(self.size + b, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Uniformly sample ``batch_size`` transitions with replacement; returns ``{field: (B, ...)}``."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer; add transitions first.")
        idx = torch.randint(0, self.size, (batch_size,), device=self.device, generator=generator)
        return self.gather(idx)

    def gather(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Transitions at indices ``idx`` ``(B,)``."""
        return {
            "obs": self.obs[idx],
            "actions": self.actions[idx],
            "rewards": self.rewards[idx],
            "next_obs": self.next_obs[idx],
            "terminated": self.terminated[idx],
        }

    def state_dict(self) -> dict[str, Any]:
        """The filled part of the storage, in insertion order-independent layout, plus pointers."""
        n = self.size
        return {
            "ptr": self.ptr,
            "size": n,
            "capacity": self.capacity,
            **{f: getattr(self, f)[:n] for f in FIELDS},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["capacity"]) != self.capacity:
            raise ValueError(
                f"replay state has capacity {state['capacity']} but this buffer has {self.capacity}; "
                "create the buffer with the checkpoint's capacity."
            )
        n = int(state["size"])
        for f in FIELDS:
            getattr(self, f)[:n] = state[f].to(self.device)
        self.size, self.ptr = n, int(state["ptr"])


class MixedSampler:
    """Sample a fixed fraction of each batch from an offline buffer, the rest from an online buffer.

    With ``offline_fraction = 0.5`` and ``batch_size = 256`` every batch has exactly 128 offline and
    128 online transitions (offline first). While the online buffer is empty, the whole batch comes from
    the offline buffer, and vice versa.

    Args:
        offline: the fixed dataset buffer.
        online: the buffer filled by interaction.
        offline_fraction: share of each batch drawn from ``offline``, in ``[0, 1]``.
    """

    def __init__(self, offline: ReplayBuffer, online: ReplayBuffer, offline_fraction: float) -> None:
        if not 0.0 <= offline_fraction <= 1.0:
            raise ValueError(f"offline_fraction must be in [0, 1], got {offline_fraction}.")
        self.offline, self.online, self.offline_fraction = offline, online, offline_fraction

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        n_off = int(round(batch_size * self.offline_fraction))
        if len(self.online) == 0:
            n_off = batch_size
        elif len(self.offline) == 0:
            n_off = 0
        n_on = batch_size - n_off
        parts = []
        if n_off:
            parts.append(self.offline.sample(n_off, generator))
        if n_on:
            parts.append(self.online.sample(n_on, generator))
        if len(parts) == 1:
            return parts[0]
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
