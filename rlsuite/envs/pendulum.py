"""Pendulum, batched in torch: a port of Gymnasium's ``Pendulum-v1`` that runs on the GPU.

This is the reference pattern for the suite's batched environments: the dynamics are written once,
batched (:func:`pendulum_dynamics`); :class:`PendulumVecEnv` steps ``num_envs`` pendulums on a device;
:class:`PendulumEnv` is the single-env Gymnasium view of the same code (``num_envs = 1``, NumPy out).

## Description
A rigid pendulum of mass ``m`` and length ``l`` hangs from a frictionless pivot; the agent applies a
torque to swing it up and keep it upright. Identical to Gymnasium's Pendulum-v1 (same constants,
integration, reward, limits and start distribution).

## Action Space
| Num | Action            | Min  | Max | Unit  |
|-----|-------------------|------|-----|-------|
| 0   | torque at the pivot | -2.0 | 2.0 | N m   |

Actions are clipped to ``[-max_torque, max_torque]``.

## Observation Space
| Num | Observation        | Min  | Max | Unit  |
|-----|--------------------|------|-----|-------|
| 0   | cos(theta)         | -1   | 1   |       |
| 1   | sin(theta)         | -1   | 1   |       |
| 2   | angular velocity   | -8   | 8   | rad/s |

``theta = 0`` is upright.

## Rewards
``r = -(angle_normalize(theta)^2 + 0.1 * theta_dot^2 + 0.001 * u^2)``, in ``[-16.27, 0]``; the three
terms are returned as ``info["reward_angle"]``, ``info["reward_velocity"]``, ``info["reward_torque"]``
(their sum is the reward).

## Starting State
``theta ~ U(-pi, pi)``, ``theta_dot ~ U(-1, 1)``.

## Episode End
Never terminates; truncated after ``max_episode_steps`` (200) steps.

## Arguments
``num_envs``, ``device``, ``g`` (gravity, default 10.0), ``max_episode_steps`` (``None`` disables the
internal time limit), ``dtype`` (``torch.float32``; ``torch.float64`` for bit-level comparisons).

## Version History
* v0: initial port of Gymnasium Pendulum-v1 (Gymnasium 1.x).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlsuite.core.seeding import resolve_device
from rlsuite.core.vec_env import TorchVecEnv

MAX_SPEED = 8.0
MAX_TORQUE = 2.0
DT = 0.05
MASS = 1.0
LENGTH = 1.0


def angle_normalize(x: torch.Tensor) -> torch.Tensor:
    """Wrap angles to ``[-pi, pi)``."""
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi


def pendulum_dynamics(
    th: torch.Tensor,
    thdot: torch.Tensor,
    u: torch.Tensor,
    g: float | torch.Tensor,
    mass: float | torch.Tensor = MASS,
    length: float | torch.Tensor = LENGTH,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """One semi-implicit Euler step of the pendulum, batched.

    Args:
        th, thdot, u: ``(N,)`` angle (rad), angular velocity (rad/s) and torque (already clipped).
        g, mass, length: gravity (m/s^2), mass (kg) and length (m): floats, or ``(N,)`` tensors (one per env).

    Returns:
        ``(new_th, new_thdot, reward_terms)`` where the terms (each ``(N,)``) sum to the reward of
        this step, computed on the state *before* the step as in Gymnasium.
    """
    terms = {
        "reward_angle": -angle_normalize(th).pow(2),
        "reward_velocity": -0.1 * thdot.pow(2),
        "reward_torque": -0.001 * u.pow(2),
    }
    new_thdot = thdot + (3.0 * g / (2.0 * length) * torch.sin(th) + 3.0 / (mass * length**2) * u) * DT
    new_thdot = new_thdot.clamp(-MAX_SPEED, MAX_SPEED)
    new_th = th + new_thdot * DT
    return new_th, new_thdot, terms


def _spaces() -> tuple[gym.spaces.Box, gym.spaces.Box]:
    high = np.array([1.0, 1.0, MAX_SPEED], dtype=np.float32)
    obs = gym.spaces.Box(low=-high, high=high, dtype=np.float32)
    act = gym.spaces.Box(low=-MAX_TORQUE, high=MAX_TORQUE, shape=(1,), dtype=np.float32)
    return obs, act


class PendulumVecEnv(TorchVecEnv):
    """``num_envs`` pendulums stepped together on ``device`` (see the module docstring)."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1,
        device: torch.device | str = "cpu",
        g: float = 10.0,
        max_episode_steps: int | None = 200,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
        self.num_envs = num_envs
        self.device = resolve_device(device)
        self.g = float(g)
        # floats here; rlsuite.envs.robust sets (N,) tensors (one value per env) to perturb the physics
        self.mass, self.length, self.max_torque = MASS, LENGTH, MAX_TORQUE
        self.max_episode_steps = max_episode_steps
        self.dtype = dtype
        self.single_observation_space, self.single_action_space = _spaces()
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(int(np.random.SeedSequence().generate_state(1)[0]))
        self.th = torch.zeros(num_envs, device=self.device, dtype=dtype)
        self.thdot = torch.zeros(num_envs, device=self.device, dtype=dtype)
        self.elapsed = torch.zeros(num_envs, device=self.device, dtype=torch.int64)
        self._init_episode_stats()

    def _sample_start(self) -> tuple[torch.Tensor, torch.Tensor]:
        r = torch.rand((2, self.num_envs), generator=self._gen, device=self.device, dtype=self.dtype)
        return (2.0 * r[0] - 1.0) * math.pi, 2.0 * r[1] - 1.0

    def _obs(self) -> torch.Tensor:
        return torch.stack([torch.cos(self.th), torch.sin(self.th), self.thdot], dim=-1).to(torch.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict]:
        """Reset every pendulum; ``options={"state": (N, 2) tensor}`` sets (theta, theta_dot) directly."""
        if seed is not None:
            self._gen.manual_seed(int(seed))
        if options and "state" in options:
            state = torch.as_tensor(options["state"], device=self.device, dtype=self.dtype).reshape(self.num_envs, 2)
            self.th, self.thdot = state[:, 0].clone(), state[:, 1].clone()
        else:
            self.th, self.thdot = self._sample_start()
        self.elapsed.zero_()
        self._init_episode_stats()
        return self._obs(), {}

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        u = torch.as_tensor(action, device=self.device).reshape(self.num_envs).to(self.dtype).clamp(-self.max_torque, self.max_torque)
        self.th, self.thdot, terms = pendulum_dynamics(self.th, self.thdot, u, self.g, self.mass, self.length)
        reward = (terms["reward_angle"] + terms["reward_velocity"] + terms["reward_torque"]).to(torch.float32)
        self.elapsed += 1
        terminated = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        if self.max_episode_steps is None:
            truncated = torch.zeros_like(terminated)
        else:
            truncated = self.elapsed >= self.max_episode_steps
        final_obs = self._obs()
        # Autoreset without a host sync: draw starts for every env and keep them where an episode ended.
        th0, thdot0 = self._sample_start()
        self.th = torch.where(truncated, th0, self.th)
        self.thdot = torch.where(truncated, thdot0, self.thdot)
        self.elapsed = torch.where(truncated, torch.zeros_like(self.elapsed), self.elapsed)
        info: dict[str, Any] = {k: v.to(torch.float32) for k, v in terms.items()}
        info["final_obs"] = final_obs
        info["_final_obs"] = truncated
        self._track_episodes(reward, truncated, info)
        return self._obs(), reward, terminated, truncated, info

    def state_dict(self) -> dict[str, Any]:
        return {
            "th": self.th.clone(),
            "thdot": self.thdot.clone(),
            "elapsed": self.elapsed.clone(),
            "generator": self._gen.get_state(),
            **self._episode_stats_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.th = state["th"].to(self.device, self.dtype).clone()
        self.thdot = state["thdot"].to(self.device, self.dtype).clone()
        self.elapsed = state["elapsed"].to(self.device).clone()
        self._gen.set_state(state["generator"].cpu().to(torch.uint8))
        self._load_episode_stats_state(state)


class PendulumEnv(gym.Env):
    """Single-env Gymnasium view of :class:`PendulumVecEnv` (CPU, float64 state, NumPy float32 out).

    The time limit comes from the registration (``max_episode_steps=200`` -> ``TimeLimit``).
    """

    metadata = {"render_modes": []}

    def __init__(self, g: float = 10.0) -> None:
        self._vec = PendulumVecEnv(num_envs=1, device="cpu", g=g, max_episode_steps=None, dtype=torch.float64)
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        vec_options = {"state": np.asarray(options["state"]).reshape(1, 2)} if options and "state" in options else None
        obs, _ = self._vec.reset(seed=int(self.np_random.integers(0, 2**63 - 1)), options=vec_options)
        return obs[0].numpy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        a = torch.as_tensor(np.asarray(action, dtype=np.float64)).reshape(1, 1)
        obs, reward, terminated, truncated, info = self._vec.step(a)
        terms = {k: float(info[k][0]) for k in ("reward_angle", "reward_velocity", "reward_torque")}
        return obs[0].numpy(), float(reward[0]), bool(terminated[0]), bool(truncated[0]), terms
