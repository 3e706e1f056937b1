"""Policy evaluation on fresh, seeded environments, and MP4 recording."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlsuite.core.vec_env import make_vec_env

log = logging.getLogger(__name__)

ActFn = Callable[..., torch.Tensor]
"""``act(obs)`` -> actions; on envs that carry ``info["action_mask"]`` it is called as ``act(obs, mask)``."""


def policy_of(agent: Any, deterministic: bool = True) -> ActFn:
    """``act(obs, mask=None)`` for an agent: the env's action mask reaches agents whose ``act`` takes
    ``action_mask``; an agent that cannot act under masks is refused on a masked env (it would pick
    forbidden actions) instead of being scored as if it could."""
    takes_mask = "action_mask" in inspect.signature(agent.act).parameters

    def act(obs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            return agent.act(obs, deterministic=deterministic)
        if not takes_mask:
            raise ValueError(f"the env gives info['action_mask'] but {type(agent).__name__}.act takes no action mask: "
                             "it would pick forbidden actions. Evaluate an agent that acts under masks (e.g. ppo).")
        return agent.act(obs, deterministic=deterministic, action_mask=mask)

    return act


@torch.no_grad()
def evaluate_policy(
    act: ActFn,
    env_id: str,
    episodes: int = 10,
    seed: int = 0,
    device: torch.device | str = "cpu",
    max_steps: int = 100_000,
    env_kwargs: dict[str, Any] | None = None,
) -> np.ndarray:
    """Run ``episodes`` episodes in parallel (one env each) and return their undiscounted returns.

    Args:
        act: maps observations ``(episodes, *obs_shape)`` to actions (called as ``act(obs, mask)`` when the
            env gives ``info["action_mask"]``; :func:`policy_of` builds one for an agent).
        env_id: Gymnasium id.
        episodes: number of episodes, one per parallel env.
        seed: seeds the episodes (same seed, same start states).
        device: device of the env tensors.
        max_steps: safety bound on steps per env; reaching it raises.
        env_kwargs: passed to the env constructor.

    Returns:
        ``(episodes,)`` float64 array of returns.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}.")
    env = make_vec_env(env_id, num_envs=episodes, device=device, seed=seed, **(env_kwargs or {}))
    try:
        obs, info = env.reset(seed=seed)
        returns = torch.full((episodes,), float("nan"), dtype=torch.float64)
        finished = torch.zeros(episodes, dtype=torch.bool)
        for _ in range(max_steps):
            mask = info.get("action_mask")
            obs, _, _, _, info = env.step(act(obs) if mask is None else act(obs, mask))
            done = info["_final_obs"].cpu()
            newly = done & ~finished
            if newly.any():
                returns[newly] = info["episode_return"].cpu().to(torch.float64)[newly]
                finished |= newly
                if finished.all():
                    return returns.numpy()
        raise RuntimeError(f"{env_id}: {int((~finished).sum())} of {episodes} episodes did not end within {max_steps} steps.")
    finally:
        env.close()


@torch.no_grad()
def record_video(
    act: ActFn,
    env_id: str,
    path: str | Path,
    seed: int = 0,
    episodes: int = 1,
    device: torch.device | str = "cpu",
    env_kwargs: dict[str, Any] | None = None,
) -> list[float]:
    """Render ``episodes`` episodes offscreen (``render_mode="rgb_array"``) into an MP4 at ``path``.

    MuJoCo renders without a display through EGL or OSMesa (set ``MUJOCO_GL=egl`` or ``osmesa``).

    Returns:
        the episodes' returns.
    """
    try:
        import imageio.v2 as imageio
    except ImportError:
        raise RuntimeError("recording video needs imageio and imageio-ffmpeg: pip install 'rlsuite[video]'.") from None
    env = gym.make(env_id, render_mode="rgb_array", **(env_kwargs or {}))
    fps = int(env.metadata.get("render_fps", 30))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    returns: list[float] = []
    try:
        with imageio.get_writer(str(tmp), fps=fps, macro_block_size=1) as writer:
            for ep in range(episodes):
                obs, info = env.reset(seed=seed + ep)
                total, done = 0.0, False
                while not done:
                    frame = env.render()
                    writer.append_data(np.asarray(frame))
                    o = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=device).unsqueeze(0)
                    mask = info.get("action_mask")
                    a = (act(o) if mask is None else act(o, torch.as_tensor(np.asarray(mask), device=device).unsqueeze(0)))[0]
                    a = a.cpu().numpy()
                    if isinstance(env.action_space, gym.spaces.Discrete):
                        a = int(a)
                    obs, r, term, trunc, info = env.step(a)
                    total += float(r)
                    done = term or trunc
                returns.append(total)
        tmp.replace(path)
    finally:
        env.close()
        tmp.unlink(missing_ok=True)
    return returns
