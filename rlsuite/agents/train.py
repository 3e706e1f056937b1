"""Train, resume and load agents: the glue between the agent registry, envs and run directories."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from rlsuite.agents.registry import AGENTS, AgentSpec
from rlsuite.core.checkpoint import CheckpointError, first_difference, load_checkpoint
from rlsuite.core.config import config_from_dict
from rlsuite.core.run import (
    Run,
    RunConfig,
    check_spaces,
    default_run_dir,
    resolve_checkpoint,
    restore_training,
)
from rlsuite.core.seeding import resolve_device, seed_everything
from rlsuite.core.vec_env import make_vec_env, space_from_description

log = logging.getLogger("rlsuite")


def prepare_run_dir(run_cfg: RunConfig, algo: str) -> Path:
    """The run directory for a new run; refuses to mix a new run into an existing one."""
    run_dir = Path(run_cfg.run_dir) if run_cfg.run_dir else default_run_dir(run_cfg.env, algo, run_cfg.seed)
    if run_cfg.resume:
        return Path(run_cfg.resume)
    if run_dir.exists() and any(run_dir.iterdir()):
        if not run_cfg.overwrite:
            raise FileExistsError(
                f"run directory {str(run_dir)!r} already holds a run. Continue it with --resume {run_dir}, "
                "pick another --run-dir, or pass --overwrite to replace it."
            )
        shutil.rmtree(run_dir)
    return run_dir


def train(spec: AgentSpec, run_cfg: RunConfig, algo_cfg: Any) -> dict[str, Any]:
    """Train ``spec``'s agent as ``run_cfg`` says; resumes when ``run_cfg.resume`` is set.

    Returns:
        a summary: ``run_dir``, ``checkpoint``, ``curve``, ``eval_mean_return``, ``steps``.
    """
    device = resolve_device(run_cfg.device)
    if run_cfg.torch_threads > 0:
        torch.set_num_threads(run_cfg.torch_threads)
    run_dir = prepare_run_dir(run_cfg, spec.name)
    seed_everything(run_cfg.seed, run_cfg.deterministic)
    env = make_vec_env(run_cfg.env, algo_cfg.num_envs, device=device, seed=run_cfg.seed)
    agent = spec.agent_cls(algo_cfg, env.single_observation_space, env.single_action_space, device)
    start = 0
    if run_cfg.resume:
        ckpt = resolve_checkpoint(run_dir)
        restore_training(agent, env, ckpt)
        start = agent.global_step
        log.info("resumed %s from %s at step %d", spec.name, ckpt, start)
    run = Run(run_dir, run_cfg, algo_cfg, spec.name, start_step=start)
    try:
        agent.learn(env, run_cfg.total_steps, run, seed=run_cfg.seed)
    except KeyboardInterrupt:
        run.close()
        env.close()
        log.warning("interrupted; continue with: rlsuite train %s --resume %s", spec.name, run_dir)
        raise
    summary = run.finish(agent, env)
    env.close()
    summary["steps"] = agent.global_step
    return summary


def load_agent(path: str | Path, device: str | torch.device = "cpu") -> tuple[Any, dict[str, Any]]:
    """Build an agent from a run directory (its latest checkpoint) or a checkpoint directory.

    No environment is needed: the spaces and config come from the checkpoint.

    Returns:
        ``(agent, meta)`` where ``meta`` holds config, spaces, env id, step and versions.
    """
    ckpt = resolve_checkpoint(path)
    state, meta = load_checkpoint(ckpt, device=resolve_device(device))
    spec = AGENTS.get(meta["algo"])
    cfg = config_from_dict(spec.config_cls, meta["config"])
    obs_space = space_from_description(meta["observation_space"])
    act_space = space_from_description(meta["action_space"])
    agent = spec.agent_cls(cfg, obs_space, act_space, resolve_device(device))
    check_spaces(agent, meta, ckpt)
    diff = first_difference(agent.state_dict()["weights"], state["agent"]["weights"])
    if diff:
        raise CheckpointError(f"checkpoint {str(ckpt)!r} does not fit a {spec.name} agent with its own config: {diff}.")
    agent.load_state_dict(state["agent"])
    return agent, meta
