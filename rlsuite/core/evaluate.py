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


def evaluate_policy(
    act: ActFn,
    env_id: str,
    episodes: int = 10,
    seed: int = 0,
    device: torch.device | str = "cpu",
    max_steps: int = 100_000,
    env_kwargs: dict[str, Any] | None = None,
    metric: str = "return",
) -> np.ndarray:
    """Run ``episodes`` episodes in parallel (one env each) and return their undiscounted returns (or the
    episode sums of another per-step figure the env reports in ``info``, such as the greenhouse's ``profit``).

    The arguments are those of :func:`evaluate_episodes`, which also gives the env's per-episode figures.
    """
    return evaluate_episodes(act, env_id, episodes, seed, device, max_steps, env_kwargs, metric)[0]


@torch.no_grad()
def evaluate_episodes(
    act: ActFn,
    env_id: str,
    episodes: int = 10,
    seed: int = 0,
    device: torch.device | str = "cpu",
    max_steps: int = 100_000,
    env_kwargs: dict[str, Any] | None = None,
    metric: str = "return",
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run ``episodes`` episodes in parallel (one env each); their returns (or ``metric`` sums) and the figures
    the env reports per finished episode.

    An env reports a figure of a finished episode as a float ``info["episode_<name>"]`` of shape
    ``(num_envs,)``, read where ``info["_final_obs"]`` is set (``episode_return`` and ``episode_length`` are the
    protocol's own and not repeated); the dispatch env, for example, reports ``episode_served`` and
    ``episode_pickup_min``.

    Args:
        act: maps observations ``(episodes, *obs_shape)`` to actions (called as ``act(obs, mask)`` when the
            env gives ``info["action_mask"]``; :func:`policy_of` builds one for an agent).
        env_id: Gymnasium id.
        episodes: number of episodes, one per parallel env.
        seed: seeds the episodes (same seed, same start states).
        device: device of the env tensors.
        max_steps: safety bound on steps per env; reaching it raises.
        env_kwargs: passed to the env constructor.
        metric: ``"return"``, or a key of the env's step ``info`` holding one number per env, summed over
            each episode.

    Returns:
        ``(returns, figures)``: ``(episodes,)`` float64 returns (episode sums of ``metric``), and
        ``{name: (episodes,) float64}`` for each ``info["episode_<name>"]`` figure (without the prefix).

    Raises:
        ValueError: the env's step ``info`` has no ``metric``.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}.")
    env = make_vec_env(env_id, num_envs=episodes, device=device, seed=seed, **(env_kwargs or {}))
    try:
        obs, info = env.reset(seed=seed)
        returns = torch.full((episodes,), float("nan"), dtype=torch.float64)
        finished = torch.zeros(episodes, dtype=torch.bool)
        sums = torch.zeros(episodes, dtype=torch.float64)
        figures: dict[str, torch.Tensor] = {}
        for _ in range(max_steps):
            mask = info.get("action_mask")
            obs, _, _, _, info = env.step(act(obs) if mask is None else act(obs, mask))
            if metric != "return":
                value = info.get(metric)
                if (not isinstance(value, torch.Tensor) or value.shape != (episodes,) or not value.is_floating_point()
                        or metric.startswith("episode_")):
                    per_env = sorted(k for k, v in info.items() if isinstance(v, torch.Tensor) and v.shape == (episodes,)
                                     and v.is_floating_point() and not k.startswith(("_", "episode_")))
                    raise ValueError(f"{env_id} reports no per-step info[{metric!r}] to sum; allowed: 'return' or one of "
                                     f"{', '.join(per_env) or 'none'}.")
                sums += torch.where(finished, 0.0, info[metric].cpu().to(torch.float64))
            done = info["_final_obs"].cpu()
            newly = done & ~finished
            if newly.any():
                episode = info["episode_return"].cpu().to(torch.float64) if metric == "return" else sums
                returns[newly] = episode[newly]
                for key, value in info.items():
                    if (key.startswith("episode_") and key not in ("episode_return", "episode_length")
                            and isinstance(value, torch.Tensor) and value.shape == (episodes,) and value.is_floating_point()):
                        column = figures.setdefault(key.removeprefix("episode_"),
                                                    torch.full((episodes,), float("nan"), dtype=torch.float64))
                        column[newly] = value.cpu().to(torch.float64)[newly]
                finished |= newly
                if finished.all():
                    return returns.numpy(), {k: v.numpy() for k, v in figures.items()}
        raise RuntimeError(f"{env_id}: {int((~finished).sum())} of {episodes} episodes did not end within {max_steps} steps.")
    finally:
        env.close()


class RenderUnavailableError(RuntimeError):
    """The env cannot be rendered offscreen here (no rgb_array mode, a renderer not installed, no GL);
    the message says what is missing and how to install or select it."""


def _render_hint(env_id: str, error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    if isinstance(error, gym.error.DependencyNotInstalled) or "pygame" in str(error):
        return (f"{text}. Install the renderer: pip install \"gymnasium[classic-control]\" (or pip install pygame; "
                f"Box2D envs: pip install \"gymnasium[box2d]\").")
    return (f"{text}. MuJoCo renders offscreen through EGL or OSMesa: set MUJOCO_GL=egl (a GPU driver with EGL) or "
            f"MUJOCO_GL=osmesa (apt install libosmesa6; pip install PyOpenGL).")


def check_renderable(env_id: str, env_kwargs: dict[str, Any] | None = None) -> None:
    """Render one frame of ``env_id`` offscreen (``render_mode="rgb_array"``), or raise
    :class:`RenderUnavailableError` saying what is missing: call it before creating any output, so that a
    missing renderer leaves nothing behind."""
    try:
        import imageio.v2  # noqa: F401
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        raise RenderUnavailableError("recording video needs imageio and imageio-ffmpeg: pip install 'rlsuite[video]'.") from None
    plain = gym.make(env_id, **(env_kwargs or {}))
    modes = list(plain.metadata.get("render_modes") or [])
    plain.close()
    if "rgb_array" not in modes:
        raise RenderUnavailableError(f"{env_id} cannot render frames offscreen (its render modes: {', '.join(modes) or 'none'}); "
                                     "record a Gymnasium env that has the rgb_array mode (classic control, MuJoCo).")
    env = gym.make(env_id, render_mode="rgb_array", **(env_kwargs or {}))
    try:
        env.reset(seed=0)
        frame = env.render()
    except Exception as e:  # noqa: BLE001 - whatever the renderer raises, the user needs the cause and the fix
        raise RenderUnavailableError(f"cannot render {env_id} offscreen: {_render_hint(env_id, e)}") from e
    finally:
        env.close()
    if frame is None or np.asarray(frame).ndim != 3:
        raise RenderUnavailableError(f"{env_id}'s render() gave no RGB frame (got {type(frame).__name__}).")


def _first_env(env: Any) -> gym.Env:
    """Env 0 of a :class:`~rlsuite.core.vec_env.GymVecAdapter` over a ``SyncVectorEnv`` (what renders)."""
    sub = getattr(getattr(env, "env", None), "envs", None)
    if not sub:
        raise RenderUnavailableError(f"{type(env).__name__} does not expose its environments to render (a Gymnasium env "
                                     "through the synchronous vector adapter does).")
    return sub[0]


@torch.no_grad()
def record_video(
    act: ActFn,
    env_id: str,
    path: str | Path,
    seed: int = 0,
    episodes: int = 1,
    device: torch.device | str = "cpu",
    env_kwargs: dict[str, Any] | None = None,
    max_steps: int = 100_000,
) -> float:
    """Record episode 0 of :func:`evaluate_policy` (same ``seed``, same ``episodes``) as an MP4 at ``path``.

    The envs are built exactly as :func:`evaluate_policy` builds them (``episodes`` parallel envs, the same
    seeds, the policy acting on the whole batch) with ``render_mode="rgb_array"``; env 0 is rendered
    before each of its steps until its first episode ends, so the video shows the episode whose return
    :func:`evaluate_policy` reports first, and the returned return equals it. The file is written
    atomically; call :func:`check_renderable` first so that a missing renderer creates nothing.
    MuJoCo renders without a display through EGL or OSMesa (``MUJOCO_GL=egl`` or ``osmesa``).

    Returns:
        the return of episode 0.
    """
    import imageio.v2 as imageio

    from rlsuite.core.atomic import atomic_path

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}.")
    env = make_vec_env(env_id, num_envs=episodes, device=device, seed=seed, render_mode="rgb_array", **(env_kwargs or {}))
    try:
        first = _first_env(env)
        fps = int(first.metadata.get("render_fps", 30))
        obs, info = env.reset(seed=seed)
        with atomic_path(path) as tmp, imageio.get_writer(str(tmp), fps=fps, macro_block_size=1) as writer:
            for _ in range(max_steps):
                writer.append_data(np.asarray(first.render()))
                mask = info.get("action_mask")
                obs, _, _, _, info = env.step(act(obs) if mask is None else act(obs, mask))
                if bool(info["_final_obs"][0]):
                    return float(info["episode_return"][0])
            raise RuntimeError(f"{env_id}: episode 0 did not end within {max_steps} steps.")
    finally:
        env.close()
