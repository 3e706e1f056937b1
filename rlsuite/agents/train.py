"""The driver of agents that learn from an environment (``learns_from="env"``): train, resume, load.

``train(spec, run_cfg, algo_cfg)`` builds the env (with the spec's env keyword arguments), the agent,
and a :class:`rlsuite.core.run.Run`, and calls ``agent.learn(env, total_steps, run, seed)``; the run
evaluates and checkpoints on the way. ``--resume`` takes a run directory (its latest checkpoint) or one
checkpoint directory of it.

Launched by ``torchrun --nproc-per-node N -m rlsuite train ...`` (``WORLD_SIZE`` > 1; or inside a process
group that Ray Train made), the same function trains data-parallel (:mod:`rlsuite.core.distributed`): rank
``r`` seeds everything and its envs with ``seed + r``, every rank trains ``total_steps`` of its own env
steps (the run collects ``N * total_steps``), gradients are averaged over the ranks, and only rank 0 writes
the run directory. Without those variables nothing of this runs.

With ``--workers N`` (:mod:`rlsuite.core.rollout_workers`) the env's ``num_envs`` envs are stepped by ``N`` Ray
actors; the agent trains on them as on the local env (for a Gymnasium id, bit for bit the same run). Only
agents whose class sets ``remote_envs = True`` (they use the env through the batched-env contract alone) take it.
With ``--async-rollouts`` too, the workers act with copies of the policy and the agent's ``learn_async`` trains on
their batches as they come (PPO: V-trace corrected).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from rlsuite.agents.registry import AGENTS, AgentSpec, build_agent, env_kwargs_of, num_envs_of
from rlsuite.core import distributed
from rlsuite.core.checkpoint import CheckpointError, first_difference, load_checkpoint, read_checkpoint_meta
from rlsuite.core.config import config_from_dict
from rlsuite.core.ray_setup import require_ray
from rlsuite.core.rollout_workers import (
    check_resume_rollouts,
    check_workers,
    make_async_rollouts,
    make_remote_vec_env,
)
from rlsuite.core.run import (
    NothingToDo,
    Run,
    RunConfig,
    check_resume_budget,
    check_spaces,
    check_world_size,
    claim_run_dir,
    default_run_dir,
    parse_env_kwargs,
    resolve_checkpoint,
    restore_training,
)
from rlsuite.core.seeding import resolve_device, seed_everything
from rlsuite.core.vec_env import check_env_kwargs, make_vec_env, space_from_description

log = logging.getLogger("rlsuite")


def run_dir_of(path: str | Path) -> Path:
    """The run directory of ``path``: itself, or for a checkpoint directory ``RUN/checkpoints/NAME`` its ``RUN``."""
    path = Path(path)
    if (path / "meta.json").is_file() and path.parent.name == "checkpoints":
        return path.parent.parent
    return path


def prepare_run_dir(run_cfg: RunConfig, algo: str) -> Path:
    """The run directory for a new run; refuses to mix a new run into an existing one."""
    if run_cfg.resume:
        return run_dir_of(run_cfg.resume)
    return claim_run_dir(run_cfg.run_dir or default_run_dir(run_cfg.env, algo, run_cfg.seed), run_cfg.overwrite)


def check_resumable(checkpoint: str | Path, total_steps: int, run_dir: str | Path, world_size: int = 1) -> None:
    """Refuse, before any file is touched, to resume a run that has nothing left to do.

    A run whose checkpoint is its ``final`` one is finished for every budget between the one it was
    started with and the step it reached (agents that train whole iterations, such as PPO's rollouts,
    may overshoot their budget).

    Raises:
        NothingToDo: the run is finished for ``total_steps``.
        ValueError: ``total_steps`` is below the checkpoint's step (and the run was not started with it).
        CheckpointError: the checkpoint was written by a run of another number of processes than ``world_size``.
    """
    meta = read_checkpoint_meta(checkpoint)["meta"]
    check_world_size(meta, world_size, checkpoint)
    done = int(meta["step"])
    saved_total = int(meta.get("run", {}).get("total_steps", done))
    if Path(checkpoint).name == "final" and saved_total <= total_steps < done:
        raise NothingToDo(f"{run_dir} has already finished: its final checkpoint is at step {done} (--total-steps "
                          f"{saved_total}, rounded up to whole iterations); nothing to do. To train further, resume with "
                          f"--total-steps above {done}.")
    check_resume_budget(done, total_steps, run_dir)


def merged_env_kwargs(spec: AgentSpec, algo_cfg: Any, run_cfg: RunConfig) -> dict[str, Any]:
    """The env's keyword arguments: the agent's (e.g. TGPO's task) and ``--env-kwargs``.

    Raises:
        ValueError: ``--env-kwargs`` sets an argument the agent's config already sets.
    """
    own = env_kwargs_of(spec, algo_cfg)
    given = parse_env_kwargs(run_cfg.env_kwargs)
    both = sorted(set(own) & set(given))
    if both:
        raise ValueError(f"--env-kwargs sets {', '.join(both)}, which {spec.name} sets from its own options ({own}); "
                         "set them with the agent's flags instead.")
    return {**own, **given}


def check_rollout_workers(spec: AgentSpec, algo_cfg: Any, run_cfg: RunConfig, world_size: int = 1) -> None:
    """Refuse ``--workers`` where it cannot run, before anything is written or started.

    Raises:
        ValueError: the agent uses its env beyond the batched-env contract (its class does not set
            ``remote_envs = True``); ``--async-rollouts`` for an agent without ``learn_async`` or with reward scaling; a
            data-parallel run
            (torchrun); ``num_envs`` not a multiple of ``--workers``.
        ImportError: Ray is not installed (the message names ``pip install 'rlsuite[distributed]'``).
    """
    if not getattr(spec.agent_cls, "remote_envs", False):
        able = [n for n in AGENTS.names() if AGENTS.get(n).learns_from == "env" and getattr(AGENTS.get(n).agent_cls, "remote_envs", False)]
        raise ValueError(f"--workers {run_cfg.workers}: {spec.name} uses more of its env than the batched-env contract (reset, step, "
                         f"spaces, state), which is all that reaches the learner from rollout workers. Agents that train on rollout "
                         f"workers: {', '.join(able)}. Train {spec.name} with --workers 0.")
    if run_cfg.async_rollouts and not hasattr(spec.agent_cls, "learn_async"):
        able = [n for n in AGENTS.names() if AGENTS.get(n).learns_from == "env" and hasattr(AGENTS.get(n).agent_cls, "learn_async")]
        raise ValueError(f"--async-rollouts: {spec.name} has no asynchronous learner (learn_async); agents that have one: "
                         f"{', '.join(able)}. Train {spec.name} on synchronous workers (without --async-rollouts).")
    if run_cfg.async_rollouts and getattr(algo_cfg, "normalize_reward", False):
        raise ValueError("--async-rollouts with --normalize-reward: reward scaling keeps each env's discounted return across "
                         "rollouts, which asynchronous workers do not send. Drop --async-rollouts (synchronous workers keep it) "
                         "or pass --no-normalize-reward.")
    if world_size > 1:
        raise ValueError(f"--workers {run_cfg.workers} with torchrun ({world_size} processes): every rank would start workers of its "
                         "own. Use one of them: torchrun (data-parallel learners) or --workers (rollout workers).")
    check_workers(num_envs_of(spec, algo_cfg), run_cfg.workers)
    require_ray(f"--workers {run_cfg.workers} steps the envs in rollout workers, which run")


def train(spec: AgentSpec, run_cfg: RunConfig, algo_cfg: Any) -> dict[str, Any]:
    """Train ``spec``'s agent as ``run_cfg`` says; resumes when ``run_cfg.resume`` is set.

    Under torchrun (``WORLD_SIZE`` > 1) every rank calls it and trains data-parallel (module docstring).

    Returns:
        a summary: ``run_dir``, ``checkpoint``, ``curve``, ``eval_mean_return``, ``steps``, the trained ``agent``,
        and ``rank`` / ``world_size`` (0 and 1 in one process; on other ranks ``checkpoint`` and ``curve`` are None).

    Raises:
        NothingToDo: a resumed run has already done ``total_steps`` (no file is touched).
        ValueError: a resumed run is past ``total_steps``, or was made with other env options; bad launch
            variables; an agent that cannot be trained data-parallel; ``--workers`` where it cannot run
            (:func:`check_rollout_workers`).
        ImportError: ``--workers`` without Ray installed.
        CheckpointError: resuming with another number of processes than the run was made with, or a batched torch
            env's run with another number of rollout workers.
    """
    ctx = distributed.init(run_cfg.device)
    if ctx is None:
        return _train(spec, run_cfg, algo_cfg, None)
    level = log.level
    try:
        return _train(spec, run_cfg, algo_cfg, ctx)
    finally:
        log.setLevel(level)
        ctx.close()


def _train(spec: AgentSpec, run_cfg: RunConfig, algo_cfg: Any, ctx: distributed.Context | None) -> dict[str, Any]:
    rank, world = (ctx.rank, ctx.world_size) if ctx is not None else (0, 1)
    device = ctx.device if ctx is not None else resolve_device(run_cfg.device)
    if run_cfg.torch_threads > 0:
        torch.set_num_threads(run_cfg.torch_threads)
    if run_cfg.workers:
        check_rollout_workers(spec, algo_cfg, run_cfg, world)
    if run_cfg.resume:
        check_resumable(resolve_checkpoint(run_cfg.resume), run_cfg.total_steps, run_dir_of(run_cfg.resume), world)
    env_kwargs = merged_env_kwargs(spec, algo_cfg, run_cfg)
    check_env_kwargs(run_cfg.env, env_kwargs)
    if ctx is None:
        run_dir = prepare_run_dir(run_cfg, spec.name)
    else:  # rank 0 claims the run directory; the others only need its name
        run_dir = Path(ctx.broadcast_text(str(prepare_run_dir(run_cfg, spec.name)) if ctx.is_root else ""))
    seed = run_cfg.seed + rank  # every rank its own data; the weights are rank 0's (broadcast below)
    seed_everything(seed, run_cfg.deterministic)
    env_id, build_kwargs = run_cfg.env, env_kwargs
    if run_cfg.domain_rand:  # the same env, its physics drawn per episode (rlsuite.envs.robust); evaluation stays nominal
        env_id, build_kwargs = "rlsuite/Perturbed-v0", {"env": run_cfg.env, "env_kwargs": env_kwargs, "domain_rand": run_cfg.domain_rand}
    if run_cfg.resume:
        check_resume_rollouts(env_id, read_checkpoint_meta(resolve_checkpoint(run_cfg.resume))["meta"], run_cfg.workers,
                              run_cfg.async_rollouts)
    if run_cfg.async_rollouts:  # no env in this process: the workers act with copies of the policy
        env = make_async_rollouts(env_id, num_envs_of(spec, algo_cfg), run_cfg.workers, seed=seed, address=run_cfg.ray_address,
                                  **build_kwargs)
    elif run_cfg.workers:
        env = make_remote_vec_env(env_id, num_envs_of(spec, algo_cfg), run_cfg.workers, device=device, seed=seed,
                                  address=run_cfg.ray_address, **build_kwargs)
    else:
        env = make_vec_env(env_id, num_envs_of(spec, algo_cfg), device=device, seed=seed, **build_kwargs)
    try:
        return _train_on(spec, run_cfg, algo_cfg, ctx, env, env_kwargs, run_dir, seed, device)
    finally:
        env.close()  # also stops rollout workers (and their Ray) when an error ends the run early; closing twice is a no-op


def _train_on(spec: AgentSpec, run_cfg: RunConfig, algo_cfg: Any, ctx: distributed.Context | None, env: Any,
              env_kwargs: dict[str, Any], run_dir: Path, seed: int, device: torch.device) -> dict[str, Any]:
    rank, world = (ctx.rank, ctx.world_size) if ctx is not None else (0, 1)
    agent = build_agent(spec, algo_cfg, env.single_observation_space, env.single_action_space, device, seed)
    start = 0
    if run_cfg.resume:
        ckpt = resolve_checkpoint(run_cfg.resume)
        saved_kwargs = read_checkpoint_meta(ckpt)["meta"].get("env_kwargs", {})
        if json.loads(json.dumps(env_kwargs)) != saved_kwargs:  # compared as JSON: tuples read back as lists
            raise ValueError(f"{run_dir} was trained on {run_cfg.env} with {saved_kwargs}; resuming it with {env_kwargs} would "
                             "train its weights on another task. Resume with the options it was started with.")
        restore_training(agent, env, ckpt, rank, world)
        start = agent.global_step
        log.info("resumed %s from %s at step %d", spec.name, ckpt, start)
    if hasattr(agent, "check_env"):  # an agent that needs more of the env than its spaces says so before anything is written
        agent.check_env(env)
    parallel = None
    if ctx is not None:
        parallel = distributed.make_data_parallel(agent, ctx)
        log.info("%s; seed %d; each rank trains --total-steps %d of its own env steps (%d ranks: %d in all)", parallel.describe(),
                 seed, run_cfg.total_steps, world, world * run_cfg.total_steps)
        if not ctx.is_root:  # rank 0 logs the run; the others say what they do above, then only warnings and errors
            log.setLevel(logging.WARNING)
    note = agent.budget_note(run_cfg.total_steps) if hasattr(agent, "budget_note") and not run_cfg.async_rollouts else None
    if note:
        log.info(note)
    run = Run(run_dir, run_cfg, algo_cfg, spec.name, start_step=start, env_kwargs=env_kwargs, parallel=parallel)
    try:
        if run_cfg.async_rollouts:
            agent.learn_async(env, run_cfg.total_steps, run, seed=seed)
        else:
            agent.learn(env, run_cfg.total_steps, run, seed=seed)
    except KeyboardInterrupt:
        run.close()
        if rank == 0:
            log.warning("interrupted; continue with: %srlsuite train %s --resume %s",
                        f"torchrun --nproc-per-node {world} -m " if world > 1 else "", spec.name, run_dir)
        raise
    summary = run.finish(agent, env)
    if parallel is not None:
        parallel.remove()
    if hasattr(agent, "success_rate"):  # task-satisfaction agents (TGPO) report their own figure too
        summary["success_rate"] = agent.success_rate()
    summary["steps"] = agent.global_step
    summary["agent"] = agent
    summary["rank"], summary["world_size"] = rank, world
    return summary


def load_agent(path: str | Path, device: str | torch.device = "cpu") -> tuple[Any, dict[str, Any]]:
    """Build any registered agent from a run directory (its latest checkpoint) or a checkpoint directory.

    No environment or dataset is needed: the spaces and config come from the checkpoint, and the loaded
    agent can act (and, where it has one, export its policy module).

    Returns:
        ``(agent, meta)`` where ``meta`` holds algo, config, spaces, env id, step and versions.
    """
    ckpt = resolve_checkpoint(path)
    device = resolve_device(device)
    state, meta = load_checkpoint(ckpt, device=device)
    if "algo" not in meta or "config" not in meta:
        if str(meta.get("command", "")).startswith("llm"):
            raise CheckpointError(f"{str(ckpt)!r} is a language-model run ({meta['command']}); evaluate it with rlsuite llm eval RUN "
                                  "(rlsuite eval and export take the RL agents' runs).")
        raise CheckpointError(f"{str(ckpt)!r} has no algo/config in its meta.json; it was not written by an rlsuite run.")
    spec = AGENTS.get(meta["algo"])
    cfg = config_from_dict(spec.config_cls, meta["config"])
    obs_space = space_from_description(meta["observation_space"]) if meta.get("observation_space") else None
    act_space = space_from_description(meta["action_space"]) if meta.get("action_space") else None
    agent = build_agent(spec, cfg, obs_space, act_space, device, int(meta.get("run", {}).get("seed", 0)))
    if obs_space is not None:
        check_spaces(agent, meta, ckpt)
    if "weights" in state["agent"]:  # agents whose state separates the networks: check the shapes first
        diff = first_difference(agent.state_dict()["weights"], state["agent"]["weights"])
        if diff:
            raise CheckpointError(f"checkpoint {str(ckpt)!r} does not fit a {spec.name} agent with its own config: {diff}.")
    agent.load_state_dict(state["agent"])
    return agent, meta
