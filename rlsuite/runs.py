"""Any run directory, whatever its algorithm learns from: load, evaluate, export.

``rlsuite eval`` and ``rlsuite export`` call these; they look the algorithm up in the agent registry
(:mod:`rlsuite.agents.registry`) and use only the agent protocol, so a new algorithm needs nothing here.

- :func:`load_run` -> ``(agent, meta, spec)`` from a run directory or a checkpoint directory;
- :func:`evaluate_run` -> returns of the deterministic policy on fresh episodes (``env`` and ``dataset``
  agents), or the greedy cost on fresh instances (``instances`` agents);
- :func:`export_run` -> a parity-checked ONNX / TorchScript file of the policy module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlsuite.agents import AGENTS
from rlsuite.agents.registry import AgentSpec
from rlsuite.agents.train import load_agent
from rlsuite.core.seeding import resolve_device


class NotExportableError(ValueError):
    """The run's policy is not a network over observations (nothing to export)."""


def load_run(path: str | Path, device: str | torch.device = "cpu") -> tuple[Any, dict[str, Any], AgentSpec]:
    """The agent of a run directory (latest checkpoint) or checkpoint directory, ready to act."""
    agent, meta = load_agent(path, device)
    return agent, meta, AGENTS.get(meta["algo"])


def evaluate_run(path: str | Path, episodes: int = 10, seed: int = 12345, device: str | torch.device = "cpu",
                 deterministic: bool = True, video_path: str | Path | None = None) -> dict[str, Any]:
    """Evaluate a run's latest policy.

    With ``video_path``, episode 0 is also recorded there as an MP4 (the same envs, seeds and batch as the
    evaluation, so its return is ``values[0]``); whether the env renders here is checked before anything
    runs or is written (:class:`~rlsuite.core.evaluate.RenderUnavailableError` with the install hint).

    Returns:
        ``{"algo", "env", "step", "metric", "values", "mean"}``: ``metric`` is ``return`` (one value per
        episode) for env and dataset agents, ``cost`` (greedy mean cost on ``episodes`` fresh instances,
        beside nearest neighbour's in ``baseline``) for instance solvers; env agents also give ``figures``
        (``{name: (episodes,)}``, the env's per-episode figures such as dispatch's ``served``); with ``video_path`` also
        ``video`` (the file) and ``video_return``.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}.")
    device = resolve_device(device)
    agent, meta, spec = load_run(path, device)
    run = meta.get("run", {})
    if spec.learns_from == "instances":
        if video_path is not None:
            raise ValueError(f"{spec.name} solves combinatorial instances: there is no episode to record (drop --video).")
        from rlsuite.envs.cop.train import evaluate_instances

        out = evaluate_instances(agent, int(run.get("size", 20)), episodes, seed)
        return {"algo": spec.name, "env": f"{agent.cfg.problem}{run.get('size')}", "step": meta.get("step"), "metric": "cost",
                "values": np.array([out["greedy_cost"]]), "mean": out["greedy_cost"], "baseline": out["nn_cost"]}
    from rlsuite.core.evaluate import check_renderable, evaluate_episodes, policy_of, record_video

    env_id = run["env"]
    env_kwargs = meta.get("env_kwargs", {})
    if video_path is not None:
        check_renderable(env_id, env_kwargs)
    act = policy_of(agent, deterministic)
    returns, figures = evaluate_episodes(act, env_id, episodes=episodes, seed=seed, device=device, env_kwargs=env_kwargs)
    out = {"algo": spec.name, "env": env_id, "step": meta.get("step"), "metric": "return", "values": returns,
           "mean": float(returns.mean()), "figures": figures, "agent": agent, "env_kwargs": env_kwargs}
    if video_path is not None:
        out["video_return"] = record_video(act, env_id, video_path, seed=seed, episodes=episodes, device=device, env_kwargs=env_kwargs)
        out["video"] = Path(video_path)
    return out


def export_run(path: str | Path, fmt: str, out: str | Path, opset: int = 18) -> tuple[Path, float, dict[str, Any]]:
    """Export a run's policy module (normaliser and action scaling inside), parity-checked.

    Returns:
        ``(file, max_abs_diff, info)``.

    Raises:
        NotExportableError: the algorithm's policy is not a network over observations.
    """
    from rlsuite.robots.export import export_policy

    agent, meta, spec = load_run(path, "cpu")
    if not hasattr(agent, "deploy_module"):
        reason = getattr(agent, "export_unavailable", f"{spec.name} has no policy module to export.")
        raise NotExportableError(reason)
    info = {"algo": spec.name, "env": meta.get("run", {}).get("env"), "step": meta.get("step"),
            "observation_space": meta["observation_space"], "action_space": meta["action_space"]}
    file, diff = export_policy(agent.deploy_module(), out, fmt, agent.obs_dim, info, opset=opset)
    return Path(file), float(diff), info
